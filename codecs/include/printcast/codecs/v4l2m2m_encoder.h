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
  // The raw OUTPUT format to negotiate first when the node takes it: the camera's (YU12, NV12 or
  // YUYV), so that its frames can go in as they are (and by DMA-BUF import, see encode()). Any
  // other value, or a format the node lacks: the default order YU12, NV12, YUYV.
  hal::FourCC preferredInput{};
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
//  - configure(): S_FMT on CAPTURE (codedFormat) then OUTPUT (options.preferredInput, else the first
//    of YU12, NV12, YUYV the node takes: the "native" format; the driver's bytesperline and rounded-up height
//    are kept, the frame goes in the top-left corner and VIDIOC_S_SELECTION crops to it where supported),
//    S_PARM 1/fps, the controls (bitrate, GOP; for H.264 also I-period, constrained baseline, the level of
//    the size/rate/bitrate, REPEAT_SEQ_HEADER, QP 10..45; a control the driver refuses is logged and
//    skipped), 4+4 mmap buffers (8 DMABUF OUTPUT slots instead when the last session imported),
//    STREAMON. A new configuration drains the old one first
//    (V4L2_ENC_CMD_STOP until V4L2_BUF_FLAG_LAST). Errors: InvalidArgument (size, fps, bitrateKbps,
//    gopFrames out of range, named), Unsupported (a size or format the driver will not take),
//    Disconnected, Io; after a failure encode() answers InvalidArgument ("not configured").
//  - info().inputFormats: {YU12 (I420)} plus the native OUTPUT format when that is NV12 or YUYV
//    (the configured one after configure(), the node's first choice before).
//  - encode(): a frame of config.size in I420 or in the native format, one packet out per call (pts
//    and sequence of the frame whose OUTPUT timestamp the CAPTURE buffer carries). Input path:
//     * DMABUF import (no copy) when the frame is in the native format, carries a DMA-BUF
//       (hal::Frame::dmabufFd(), e.g. a V4L2 camera's frame straight from dequeue()) of at least
//       the driver's sizeimage, and its planes have the driver's layout (bytesperline as stride,
//       chroma right behind the luma: the driver did not pad the size). The OUTPUT queue is
//       switched to V4L2_MEMORY_DMABUF when the first such frame comes (STREAMOFF/REQBUFS/STREAMON
//       on OUTPUT only, once no OUTPUT buffer is in flight: no picture is lost) and back to MMAP
//       when a frame that cannot be imported comes, so a source should not alternate. Each
//       DMA-BUF goes back to the OUTPUT slot it used before (the import stays attached). The
//       encoder keeps a lease on the frame (a copy of the hal::Frame) until the driver has
//       dequeued its OUTPUT buffer, so the source cannot refill the buffer while it is read;
//       encode() dequeues finished OUTPUT buffers before returning, so normally no lease outlives
//       the call; release(), a reconfigure, a hang and destruction drop them after STREAMOFF.
//     * MMAP (a copy) otherwise: native frames copied row by row, I420 converted as it is copied.
//    When the driver refuses the import (REQBUFS or QBUF of V4L2_MEMORY_DMABUF answer EINVAL,
//    ENOTTY, ...), the encoder copies for the rest of its life and logs it once (info).
//    inputPath() says which path the last frame took ("dmabuf" / "mmap"), why not dmabuf (the
//    reason: "frame carries no DMA-BUF", "frame format ... is not the OUTPUT format ...",
//    "frame plane ... differs from the driver's ...", "DMA-BUF of N bytes, the driver wants M",
//    "the driver pads ...", "the driver refused DMABUF import: <call>: <errno>") and counts both. H.264
//    keyframes carry SPS/PPS in front (the last ones seen are prepended when the driver leaves them out).
//    Errors: InvalidArgument (format, size, a format neither I420 nor native, not configured), Again (the
//    driver flagged the picture corrupt; the next is forced to an IDR), Timeout (no picture within
//    pollTimeoutMs: the encoder hung; the next encode() starts a fresh session), Disconnected (ENODEV) and Io
//    (EIO): the object stays failed and every later call returns the same error.
//  - codecConfig(): H.264 only, null for other coded formats. Stateful encoders hand out SPS/PPS
//    with the first picture, so it is null after configure() until the first packet.
//  - requestKeyframe(): V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME before the next picture is queued;
//    drivers without it (vicodec) keep their GOP.
//  - release(): drain, free the buffers, close the node; the next encode() reopens it with the
//    same configuration, starting with a keyframe.
// Threading: as hal::Encoder (one thread drives configure/encode/release; requestKeyframe,
// codecConfig and inputPath from any thread). Leases of imported frames drop on the encode thread. `syscalls`
// must outlive the encoder.
hal::Result<std::unique_ptr<hal::Encoder>> createV4l2M2mEncoder(const V4l2M2mOptions& options = {});

}  // namespace printcast::codecs
