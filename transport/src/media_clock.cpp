// SPDX-License-Identifier: MIT
// MediaClock (see media_clock.h).
#include "printcast/transport/media_clock.h"

#include <algorithm>
#include <chrono>

namespace printcast::transport {

hal::Timestamp MediaClock::map(int64_t ticks, int64_t rate, hal::Timestamp arrival) {
  const auto media = std::chrono::duration_cast<hal::Timestamp::duration>(
      std::chrono::duration<double>(static_cast<double>(ticks) / static_cast<double>(rate)));
  // arrival - media time, as a duration since the clock's epoch (media time 0 on the capture clock).
  const auto transit = arrival.time_since_epoch() - media;
  auto restart = [&] {
    started_ = true;
    windowStart_ = arrival;
    windowMin_ = previousMin_ = base_ = transit;
    lastMedia_ = media;
  };
  if (!started_) restart();
  if (arrival - windowStart_ >= kWindow) {
    previousMin_ = windowMin_;
    windowMin_ = transit;
    windowStart_ = arrival;
  } else {
    windowMin_ = std::min(windowMin_, transit);
  }
  // Toward the aim, by at most an eighth of the media time since the last picture.
  const auto aim = std::min(windowMin_, previousMin_);
  const auto step = std::max(media - lastMedia_, hal::Timestamp::duration::zero()) / 8;
  base_ += std::clamp(aim - base_, -step, step);
  lastMedia_ = media;
  hal::Timestamp pts{base_ + media};
  if (arrival - pts > kJump || pts - arrival > kJump) {
    restart();
    pts = arrival;
  }
  return pts;
}

}  // namespace printcast::transport
