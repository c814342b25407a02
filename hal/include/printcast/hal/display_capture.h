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
  int stride = 0;    // bytes per row of the scan-out buffer (fbdev line_length); grabbed
                     // frames have their own stride: read Frame::plane(0).stride
};

// Grabs are in the panel's native orientation; the board's mount orientation (a Transform)
// turns them upright (see codecs/convert.h). Threading: one thread at a time calls grab();
// info() from any thread.
class DisplayCapture {
 public:
  virtual ~DisplayCapture() = default;

  virtual DisplayInfo info() const = 0;

  // Copy the visible page into a pooled frame (format info().format, size info().size).
  // The frame's sequence starts at 0 and advances only when the pixels changed since the
  // previous grab; an unchanged grab returns a frame with the previous sequence, which callers
  // use to skip re-encoding.
  // Errors: Again (all pool buffers leased), NoSignal (display off/blanked), Disconnected, Io;
  // device backends also Unsupported (the mode changed to one the backend cannot follow: open a
  // new capture) and PermissionDenied (DRM: a newly shown framebuffer's handle is withheld).
  virtual Result<Frame> grab() = 0;
};

}  // namespace printcast::hal
