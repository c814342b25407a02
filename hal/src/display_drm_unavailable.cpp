// SPDX-License-Identifier: MIT
// DRM/KMS DisplayCapture stand-in for builds without libdrm: always Unsupported.
#include "printcast/hal/display_drm.h"

namespace printcast::hal {

Result<std::unique_ptr<DisplayCapture>> createDrmDisplayCapture(const std::string& cardPath,
                                                                Syscalls& /*sys*/) {
  return Result<std::unique_ptr<DisplayCapture>>(
      Errc::Unsupported,
      "display " + cardPath + ": built without libdrm (PRINTCAST_WITH_DRM), no DRM/KMS capture");
}

}  // namespace printcast::hal
