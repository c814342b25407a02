// SPDX-License-Identifier: MIT
// Stand-in for the V4L2 backend in builds without it (PRINTCAST_WITH_V4L2=OFF or no V4L2 found).
#include "printcast/hal/v4l2.h"

namespace printcast::hal {

bool v4l2Available() noexcept { return false; }

Result<std::vector<V4l2DeviceInfo>> enumerateV4l2Devices(Syscalls& /*sys*/, const V4l2Paths& /*paths*/) {
  return Result<std::vector<V4l2DeviceInfo>>(Errc::Unsupported,
                                             "v4l2: this build has no V4L2 capture backend");
}

Result<std::unique_ptr<Capture>> createV4l2Capture(std::string_view nameOrPath, Syscalls& /*sys*/,
                                                   const V4l2Paths& /*paths*/) {
  return Result<std::unique_ptr<Capture>>(
      Errc::Unsupported, "camera " + std::string(nameOrPath.empty() ? "(first V4L2 device)" : nameOrPath) +
                             ": this build has no V4L2 capture backend (PRINTCAST_WITH_V4L2)");
}

V4l2Camera* v4l2CameraOf(Capture& /*capture*/) noexcept { return nullptr; }

}  // namespace printcast::hal
