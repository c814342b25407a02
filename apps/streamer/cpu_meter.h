// SPDX-License-Identifier: MIT
// CPU load from /proc/stat (whole system) and /proc/self/stat (this process), as percentages.
#pragma once

#include <cstdint>

namespace printcast::streamer {

// Each sample() returns the load since the previous sample (the first call returns 0).
// System load is the busy share of all CPUs (100 = every core busy); process load is this
// process's CPU time over wall time on one core's scale (200 = two cores busy).
// Not thread-safe: one sampling thread.
class CpuMeter {
 public:
  struct Sample {
    double systemPercent = 0;
    double processPercent = 0;
  };
  Sample sample();

 private:
  uint64_t lastBusy_ = 0;
  uint64_t lastTotal_ = 0;
  uint64_t lastProcessTicks_ = 0;
  int64_t lastWallNs_ = 0;
};

}  // namespace printcast::streamer
