// SPDX-License-Identifier: MIT
// Probe: touch panels when this build has no evdev touch backend (or no libevdev to read back).
#include "probe.h"

namespace printcast::probe {

Report probeTouch(const Options& /*options*/) {
  Report report;
  report.status = "not-built";
  report.details["reason"] = "this build has no evdev touch backend or no libevdev (hal/src/touch_evdev.cpp)";
  return report;
}

}  // namespace printcast::probe
