// SPDX-License-Identifier: MIT
// Auto frame skipping toward a system CPU target (h264-streamer's rules, see protocols.md).
#pragma once

#include <deque>

#include "printcast/hal/frame.h"

namespace printcast::streamer {

// Encode H.264 on every Nth camera frame, N in [1, 10], adjusted from system CPU samples taken
// every 500 ms: +2 (+3 when more than 35 points over) when an instant sample exceeds target+20;
// +1 when the 8-sample average exceeds target+5; -1 only after 4 consecutive samples below
// target-10 and at least 2 s after the last increase. Not thread-safe: one owner thread.
class AutoSkip {
 public:
  explicit AutoSkip(int targetCpuPercent) : target_(targetCpuPercent) {}

  void onCpuSample(double systemCpuPercent, hal::Timestamp now);
  // Whether the frame with this per-source sequence number should be encoded.
  bool shouldEncode(uint64_t sequence) const { return sequence % static_cast<uint64_t>(interval_) == 0; }
  int interval() const { return interval_; }
  double averageCpu() const;

  static constexpr int kMaxInterval = 10;
  static constexpr size_t kWindow = 8;

 private:
  int target_;
  int interval_ = 1;
  std::deque<double> samples_;
  int lowStreak_ = 0;
  hal::Timestamp lastIncrease_{};
};

}  // namespace printcast::streamer
