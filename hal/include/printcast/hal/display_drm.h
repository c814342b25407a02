// SPDX-License-Identifier: MIT
// DRM/KMS DisplayCapture: grabs the framebuffer an active CRTC scans out (/dev/dri/cardN).
#pragma once

#include <memory>
#include <string>

#include "printcast/hal/display_capture.h"
#include "printcast/hal/result.h"
#include "printcast/hal/syscalls.h"

namespace printcast::hal {

// Opens `cardPath` (O_RDWR), lists the CRTCs (DRM_IOCTL_MODE_GETRESOURCES) and picks the first
// active one (DRM_IOCTL_MODE_GETCRTC: mode_valid and a framebuffer attached). Its framebuffer is
// described with DRM_IOCTL_MODE_GETFB2 (DRM_IOCTL_MODE_GETFB on kernels before 5.7) and mapped
// read-only through a dumb-buffer map (DRM_IOCTL_MODE_MAP_DUMB + mmap of the card) or, when that
// fails, through PRIME (DRM_IOCTL_PRIME_HANDLE_TO_FD + mmap of the dma-buf). The GEM handles are
// closed (DRM_IOCTL_GEM_CLOSE) once mapped. Source: the kernel's Documentation/gpu/drm-kms.rst
// and drm-uapi.rst, include/uapi/drm/drm_mode.h.
//
// Formats: DRM_FORMAT_XRGB8888 and ARGB8888 (alpha ignored) -> kXRGB8888, RGB565 -> kRGB565,
// linear layout only (no modifier or DRM_FORMAT_MOD_LINEAR); plane 0 only. Stride = the FB's pitch.
//
// grab(): re-reads the CRTC's current framebuffer every time, because compositors page-flip
// between several framebuffers; up to 3 framebuffers stay mapped (keyed by FB id) so flipping
// does not remap. If the new framebuffer has another size or format, info() and the frames follow
// it. Unchanged pictures keep the previous sequence (scanout_copier.h explains the sampling).
// Limitation: a framebuffer id the kernel recycles for a new framebuffer while its old mapping is
// still cached is not noticed (ids are recycled only after RMFB, rare on a running display).
// grab() errors: NoSignal (the CRTC was switched off), Disconnected (ENODEV: card removed; the
// object stays dead), Again (all 4 pool buffers leased), PermissionDenied / Unsupported as below
// for a newly shown framebuffer, Io.
//
// Creation errors: NoDevice (no such node, or not a KMS device: ENOTTY/EOPNOTSUPP/EINVAL),
// NoSignal (no active CRTC: no display connected or it is off), PermissionDenied (EACCES on open:
// the `video` group; or the kernel withheld the FB's GEM handle: only the DRM master or a
// CAP_SYS_ADMIN process gets it), Unsupported (a format, modifier or buffer that can be mapped
// neither as a dumb buffer nor through PRIME), Io.
// The Syscalls seam: every call (open, ioctl, mmap, munmap, close) goes through `sys`; libdrm
// supplies only the uapi headers and format names for messages (its drmIoctl() would bypass
// the seam, so its wrappers are not used).
// Threading: as DisplayCapture (one thread calls grab(); info() from any thread).
// Ownership: the capture owns the card fd and the mappings; frames are copies.
// A build without libdrm has this function too: it returns Unsupported.
Result<std::unique_ptr<DisplayCapture>> createDrmDisplayCapture(const std::string& cardPath,
                                                                Syscalls& sys = realSyscalls());

}  // namespace printcast::hal
