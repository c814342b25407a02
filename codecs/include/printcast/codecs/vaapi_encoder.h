// SPDX-License-Identifier: MIT
// H.264 encoding on Intel and AMD GPUs through VA-API (libva's DRM display on a render node).
// Interface: libva's va.h / va_enc_h264.h (VAEncSequence/Picture/SliceParameterBufferH264,
// VAEncMiscParameter*), as libva-utils' encode/h264encode.c drives it.
#pragma once

#include <memory>
#include <string>

#include "printcast/hal/encoder.h"
#include "printcast/hal/result.h"

namespace printcast::codecs {

struct VaapiOptions {
  // The DRM render node ("/dev/dri/renderD128"); empty: the first renderD* under devDir, by number.
  std::string renderNode{};
  std::string devDir = "/dev/dri";
};

// A hal::Encoder (name "vaapi", info().codec == fourcc::kH264, input I420) over the VA-API driver
// of a render node. This call opens the node (O_RDWR), initialises libva on it and picks the
// first of H.264 Constrained Baseline, Main, High (browsers take all three; Constrained Baseline
// first) that the driver encodes (VAEntrypointEncSlice, else the low-power VAEntrypointEncSliceLP)
// with YUV 4:2:0 render targets and CBR (else VBR) rate control.
// Errors creating it:
//   Unsupported       built without VA-API; no render node under devDir ("no render node under
//                     /dev/dri"); libva has no driver for the node ("no VA-API driver for
//                     /dev/dri/renderD128: <vaErrorStr>", with the driver file libva tried when
//                     it said); the driver has no H.264 encoder, no 4:2:0 target or neither CBR
//                     nor VBR (the message lists the H.264 profiles and entrypoints it offers)
//   NoDevice          renderNode does not exist, is not a character device, or is one libva
//                     takes for no DRM device (vaGetDisplayDRM)
//   PermissionDenied  open() answers EACCES/EPERM (the user is not in the node's group, "render")
//   Io                any other open() or libva failure
//  - configure(): the x264 backend's limits (InvalidArgument naming size, fps 1..120, bitrateKbps
//    64..50000 or gopFrames 1..1000); Unsupported for a size above the driver's maximum; then
//    the VA config, three NV12 surfaces of the size rounded up to 16 (the input, the picture being
//    coded and its one reference), a coded buffer and the context (Io naming the failing call).
//    A refused value leaves the previous configuration in force; after a failed VA call encode()
//    answers InvalidArgument ("not configured").
//  - encode(): I420 of config.size; one Annex-B access unit per call, no delay and no B-frames:
//    an IDR (SPS/PPS in front) on the first frame, every gopFrames and after requestKeyframe(),
//    else a P-frame on the previous picture; pts and sequence of the frame. The SPS/PPS are our
//    own (packed headers, VA_ENC_PACKED_HEADER_SEQUENCE) when the driver takes them, with VUI
//    timing and full range as config.fullRange says; else the driver's (its SPS has no
//    full-range flag). Errors: InvalidArgument (format, size, not configured), Io naming the VA
//    call and vaErrorStr (the next encode() starts a new session with an IDR), Io "driver emits
//    no SPS/PPS" when an IDR comes without them and packed headers are not supported.
//  - codecConfig(): our SPS/PPS from configure() with packed headers; else null until the first
//    IDR and then the driver's.
//  - release(): frees the context, surfaces and buffers (the display stays open); the next encode()
//    recreates them with the same configuration and SPS/PPS, starting with an IDR.
// Threading: as hal::Encoder (one thread drives configure/encode/release; requestKeyframe and
// codecConfig from any thread). Not verified on GPU hardware: the refusal paths are unit-tested,
// the encode path follows h264encode.c and ffmpeg's vaapi_encode_h264.c.
hal::Result<std::unique_ptr<hal::Encoder>> createVaapiEncoder(const VaapiOptions& options = {});

}  // namespace printcast::codecs
