// SPDX-License-Identifier: MIT
// Stateful V4L2 memory-to-memory (M2M) video encoders: the Raspberry Pi's bcm2835-codec
// (/dev/video11), Rockchip/Allwinner/Amlogic stateful encoders, and the kernel's vicodec (FWHT,
// the lab's stand-in). Interface: the kernel's "Memory-to-Memory Stateful Video Encoder
// Interface" (Documentation/userspace-api/media/v4l/dev-encoder.rst).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "printcast/hal/encoder.h"
#include "printcast/hal/result.h"
#include "printcast/hal/syscalls.h"

namespace printcast::codecs {

struct V4l2M2mOptions {
  // The device node ("/dev/video11"); empty: the first node under devDir (sorted by number) that
  // is an M2M encoder of codedFormat (V4L2_CAP_VIDEO_M2M or _M2M_MPLANE, codedFormat among the
  // CAPTURE formats, a raw format among the OUTPUT formats).
  std::string device;
  std::string devDir = "/dev";
  // The coded format: H.264 for streaming; the lab's vicodec codes FWHT (V4L2_PIX_FMT_FWHT).
  hal::FourCC codedFormat = hal::fourcc::kH264;
  // Every device call goes through here (tests run the backend against a scripted fake kernel).
  hal::Syscalls* syscalls = nullptr;  // null: hal::realSyscalls()
  // A dequeue that takes longer than this is an encoder hang (the Pi's is known to): encode()
  // returns Timeout and the caller falls back to another backend.
  int pollTimeoutMs = 2000;
};

// A hal::Encoder (info().codec == options.codedFormat, name "v4l2m2m") over a stateful M2M
// encoder node. Errors creating it: Unsupported (built without V4L2, or no node is an encoder
// of that coded format: the message lists what each node is), NoDevice (options.device does
// not exist or is not such an encoder), PermissionDenied, Busy, Io.
// The node is opened O_RDWR | O_NONBLOCK by this call and kept open until release() or
// destruction.
//  - configure(): S_FMT on CAPTURE (codedFormat) then OUTPUT (the first of YU12, NV12, YUYV the
//    node takes; the driver's bytesperline and rounded-up height are kept, the frame goes in the
//    top-left corner and VIDIOC_S_SELECTION crops to it where supported), S_PARM 1/fps, the
//    controls (bitrate, GOP; for H.264 also I-period, constrained baseline, the level of the
//    size/rate/bitrate, REPEAT_SEQ_HEADER, QP 10..45; a control the driver refuses is logged and
//    skipped), 4+4 mmap buffers, STREAMON. A new configuration drains the old one first
//    (V4L2_ENC_CMD_STOP until V4L2_BUF_FLAG_LAST). Errors: InvalidArgument (size, fps, bitrateKbps,
//    gopFrames out of range, named), Unsupported (a size or format the driver will not take),
//    Disconnected, Io; after a failure encode() answers InvalidArgument ("not configured").
//  - encode(): I420 of config.size in, one packet out per call (pts and sequence of the frame whose
//    OUTPUT timestamp the CAPTURE buffer carries). H.264 keyframes carry SPS/PPS in front (the last
//    ones seen are prepended when the driver leaves them out). Errors: InvalidArgument (format,
//    size, not configured), Again (the driver flagged the picture corrupt; the next is forced to an
//    IDR), Timeout (no picture within pollTimeoutMs: the encoder hung; the next encode() starts a
//    fresh session), Disconnected (ENODEV) and Io (EIO): the object stays failed and every later
//    call returns the same error.
//  - codecConfig(): H.264 only, null for other coded formats. Stateful encoders hand out SPS/PPS
//    with the first picture, so it is null after configure() until the first packet.
//  - requestKeyframe(): V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME before the next picture is queued;
//    drivers without it (vicodec) keep their GOP.
//  - release(): drain, free the buffers, close the node; the next encode() reopens it with the
//    same configuration, starting with a keyframe.
// Threading: as hal::Encoder (one thread drives configure/encode/release; requestKeyframe and
// codecConfig from any thread). `syscalls` must outlive the encoder.
hal::Result<std::unique_ptr<hal::Encoder>> createV4l2M2mEncoder(const V4l2M2mOptions& options = {});

}  // namespace printcast::codecs
