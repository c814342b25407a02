// SPDX-License-Identifier: MIT
// Opening a display capture from candidate nodes: DRM/KMS cards first, fbdev as the fallback.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "printcast/hal/display_capture.h"
#include "printcast/hal/result.h"
#include "printcast/hal/syscalls.h"

namespace printcast::hal {

struct DisplayCandidates {
  std::vector<std::string> drmCards;    // "/dev/dri/card0"; tried first, in order
  std::vector<std::string> fbdevNodes;  // "/dev/fb0"; tried when no card gives a capture
};

// The first candidate that opens: each DRM card with createDrmDisplayCapture() (so a card without
// an active CRTC, or a build without libdrm, passes on to the next), then each fbdev node with
// createFbdevDisplayCapture().
// Errors: NoDevice when there are no candidates; otherwise, if every candidate failed,
// PermissionDenied when any failed for permission (the one a user can fix), else the code of the
// last failure; the message lists every candidate's reason.
// Threading: any thread. `sys` must outlive the capture.
Result<std::unique_ptr<DisplayCapture>> openDisplayCapture(const DisplayCandidates& candidates,
                                                           Syscalls& sys = realSyscalls());

// Device nodes in `dir` named `prefix` + a number ("card" -> card0, card1; not renderD128),
// sorted by that number. Empty when `dir` does not exist. Reads the directory (not through the
// Syscalls seam: tests point `dir` at a temporary folder).
std::vector<std::string> listNumberedNodes(const std::string& dir, std::string_view prefix);

}  // namespace printcast::hal
