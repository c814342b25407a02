// SPDX-License-Identifier: MIT
// fbdev DisplayCapture: grabs the visible page of a Linux framebuffer device (/dev/fbN).
#pragma once

#include <memory>
#include <string>

#include "printcast/hal/display_capture.h"
#include "printcast/hal/result.h"
#include "printcast/hal/syscalls.h"

namespace printcast::hal {

// Opens `path` (O_RDONLY) and reads its geometry: FBIOGET_VSCREENINFO (xres x yres visible,
// bits_per_pixel and the red/green/blue bitfields, xoffset/yoffset of the visible page) and
// FBIOGET_FSCREENINFO (line_length = the stride, smem_len = the framebuffer's bytes). The whole
// framebuffer (smem_len) is mapped read-only (MAP_SHARED) once.
// Source: the kernel's Documentation/fb/api.rst and include/uapi/linux/fb.h.
//
// Formats (info().format, which grabs carry as-is; the board's orientation is applied later):
//  - 32 bpp with red at bit 16, green at 8, blue at 0, 8 bits each -> kXRGB8888
//    (bytes B, G, R, X in memory: the printers' "BGRX" panels);
//  - 16 bpp with red 11/5, green 5/6, blue 0/5 -> kRGB565.
// Any other layout (BGR order, 24 bpp, palettes, planar types) is Unsupported.
// The stride is line_length, never width * bytes per pixel (drivers pad rows).
//
// grab(): re-reads FBIOGET_VSCREENINFO so the page shown now is copied: with double buffering
// (yres_virtual = 2 * yres) the driver pans with yoffset, and the picture starts at
// yoffset * line_length + xoffset * bytes per pixel. It then copies that page into a pooled frame,
// unless it did not change since the previous grab: then the previous frame is returned again
// with its sequence (see DisplayCapture::grab; the sampling trade-off is in scanout_copier.h).
// grab() errors: Again (all 4 pool buffers leased), Disconnected (ENODEV: the device went away;
// the object stays dead), Unsupported (the mode changed to another size or format: open a new
// capture), Io (the visible page lies outside smem_len, other ioctl failures).
//
// Creation errors: NoDevice (no such node, or not a framebuffer: ENOTTY), PermissionDenied
// (EACCES: the user needs the `video` group), Unsupported (pixel layout as above; a driver
// without mmap), Io.
// Threading: as DisplayCapture (one thread calls grab(); info() from any thread).
// Ownership: the capture owns the fd and the mapping; frames are copies that outlive it.
// `sys` must outlive the capture (tests pass a fake kernel).
Result<std::unique_ptr<DisplayCapture>> createFbdevDisplayCapture(const std::string& path,
                                                                  Syscalls& sys = realSyscalls());

}  // namespace printcast::hal
