// SPDX-License-Identifier: MIT
// AutoSkip: h264-streamer's frame-skip controller.
#include "auto_skip.h"

#include <algorithm>
#include <numeric>

namespace printcast::streamer {

double AutoSkip::averageCpu() const {
  if (samples_.empty()) return 0.0;
  return std::accumulate(samples_.begin(), samples_.end(), 0.0) / static_cast<double>(samples_.size());
}

void AutoSkip::onCpuSample(double cpu, hal::Timestamp now) {
  samples_.push_back(cpu);
  if (samples_.size() > kWindow) samples_.pop_front();
  const double avg = averageCpu();
  int step = 0;
  if (cpu > target_ + 20) {
    step = cpu > target_ + 35 ? 3 : 2;
  } else if (avg > target_ + 5) {
    step = 1;
  }
  if (step > 0) {
    lowStreak_ = 0;
    const int next = std::min(kMaxInterval, interval_ + step);
    if (next != interval_) {
      interval_ = next;
      lastIncrease_ = now;
    }
    return;
  }
  lowStreak_ = cpu < target_ - 10 ? lowStreak_ + 1 : 0;
  if (lowStreak_ >= 4 && now - lastIncrease_ >= std::chrono::seconds(2) && interval_ > 1) {
    --interval_;
    lowStreak_ = 0;
  }
}

}  // namespace printcast::streamer
