// SPDX-License-Identifier: MIT
// RateMeter: frames per second over the last two seconds, and a running total.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>

#include "printcast/hal/frame.h"

namespace printcast::streamer {

// Threading: tick() from the thread that produces, fps()/total() from any thread.
class RateMeter {
 public:
  void tick(hal::Timestamp now = hal::Clock::now()) {
    std::lock_guard lock(mutex_);
    times_.push_back(now);
    trim(now);
    ++total_;
  }
  double fps() const {
    std::lock_guard lock(mutex_);
    const hal::Timestamp now = hal::Clock::now();
    size_t n = 0;
    for (auto t : times_) n += (now - t <= kWindow) ? 1 : 0;
    return static_cast<double>(n) / std::chrono::duration<double>(kWindow).count();
  }
  uint64_t total() const {
    std::lock_guard lock(mutex_);
    return total_;
  }

 private:
  static constexpr auto kWindow = std::chrono::seconds(2);
  void trim(hal::Timestamp now) {
    while (!times_.empty() && now - times_.front() > kWindow) times_.pop_front();
  }
  mutable std::mutex mutex_;
  std::deque<hal::Timestamp> times_;
  uint64_t total_ = 0;
};

}  // namespace printcast::streamer
