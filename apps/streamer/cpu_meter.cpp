// SPDX-License-Identifier: MIT
// CpuMeter: /proc/stat and /proc/self/stat sampling.
#include "cpu_meter.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

namespace printcast::streamer {

CpuMeter::Sample CpuMeter::sample() {
  Sample out;
  uint64_t busy = 0;
  uint64_t total = 0;
  {
    std::ifstream stat("/proc/stat");
    std::string cpu;
    uint64_t v[8] = {};
    if (stat >> cpu >> v[0] >> v[1] >> v[2] >> v[3] >> v[4] >> v[5] >> v[6] >> v[7]) {
      for (uint64_t x : v) total += x;
      busy = total - v[3] - v[4];  // minus idle and iowait
    }
  }
  uint64_t processTicks = 0;
  {
    std::ifstream self("/proc/self/stat");
    std::string line;
    std::getline(self, line);
    const auto close = line.rfind(')');
    if (close != std::string::npos) {
      std::istringstream rest(line.substr(close + 2));
      std::string field;
      // Fields after the command: state(3) ... utime(14) stime(15).
      for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14 || i == 15) processTicks += std::stoull(field);
      }
    }
  }
  const int64_t wallNs = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
  if (lastTotal_ != 0 && total > lastTotal_) {
    out.systemPercent =
        100.0 * static_cast<double>(busy - lastBusy_) / static_cast<double>(total - lastTotal_);
  }
  if (lastWallNs_ != 0 && wallNs > lastWallNs_) {
    const double ticksPerSecond = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double cpuSeconds = static_cast<double>(processTicks - lastProcessTicks_) / ticksPerSecond;
    out.processPercent = 100.0 * cpuSeconds / (static_cast<double>(wallNs - lastWallNs_) / 1e9);
  }
  lastBusy_ = busy;
  lastTotal_ = total;
  lastProcessTicks_ = processTicks;
  lastWallNs_ = wallNs;
  return out;
}

}  // namespace printcast::streamer
