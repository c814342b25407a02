// SPDX-License-Identifier: MIT
// DisplayCapture: grabs the picture a display shows (the printer's LCD) as it sits in memory.
#pragma once

#include <string>

#include "printcast/hal/frame.h"
#include "printcast/hal/result.h"

namespace printcast::hal {

struct DisplayInfo {
  std::string name;  // "/dev/fb0", "card0 CRTC 38", "memory"
  Size size;         // the scan-out buffer's size in its own (panel) orientation
  FourCC format;     // kXRGB8888 or kRGB565
  int stride = 0;    // bytes per row of the scan-out buffer (fbdev line_length)
};

// Grabs are in the panel's native orientation; the board's mount orientation (a Transform)
// turns them upright (see codecs/convert.h). Threading: one thread at a time calls grab();
// info() from any thread.
class DisplayCapture {
 public:
  virtual ~DisplayCapture() = default;

  virtual DisplayInfo info() const = 0;

  // Copy the visible page into a pooled frame (format info().format, size info().size).
  // `sequence` increases on each grab; frames whose pixels did not change since the previous
  // grab keep the previous sequence (callers skip them).
  // Errors: Again (all pool buffers leased), NoSignal (display off/blanked), Disconnected, Io;
  // device backends also Unsupported (the mode changed to one the backend cannot follow: open a
  // new capture) and PermissionDenied (DRM: a newly shown framebuffer's handle is withheld).
  virtual Result<Frame> grab() = 0;
};

}  // namespace printcast::hal
