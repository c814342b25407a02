// SPDX-License-Identifier: MIT
// Probe: cameras when this build has no V4L2 capture backend.
#include "probe.h"

namespace printcast::probe {

Report probeCameras(const Options& /*options*/) {
  Report report;
  report.status = "not-built";
  report.details["reason"] = "this build has no V4L2 capture backend (hal/src/capture_v4l2.cpp)";
  return report;
}

}  // namespace printcast::probe
