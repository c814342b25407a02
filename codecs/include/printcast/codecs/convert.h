// SPDX-License-Identifier: MIT
// Colour conversion, scaling and rotation (libyuv) between the raw formats printcast handles.
#pragma once

#include "printcast/hal/frame.h"
#include "printcast/hal/result.h"
#include "printcast/hal/transform.h"

namespace printcast::codecs {

// Convert `src` (I420, NV12, YUYV, XRGB8888 or RGB565) to I420 while applying `transform`
// (display orientation). The output size is transform.apply(src.size()); `pool` must be an
// I420 pool of exactly that size. BT.601 limited range, as JPEG/H.264 encoders expect.
// Any plane strides are accepted for I420/NV12; packed sources need a stride that is a whole
// number of pixels (YUYV: of pixel pairs), which every V4L2/DRM buffer has.
// Errors: InvalidArgument (pool format/size mismatch, unsupported source format, such a stride),
// Again (pool exhausted). Threading: any thread; the pool serialises buffer hand-out.
hal::Result<hal::Frame> convertToI420(const hal::Frame& src, hal::Transform transform, hal::FramePool& pool);

// Scale an I420 frame to the size of `pool` (an I420 pool) with libyuv's box filter (bilinear
// when enlarging): a stream at --stream-resolution, a snapshot at --snapshot-resolution, from the
// camera's picture. Timestamp and sequence are kept. Errors: InvalidArgument (src not I420, pool
// not I420), Again (pool exhausted). Threading: any thread.
hal::Result<hal::Frame> scaleI420(const hal::Frame& src, hal::FramePool& pool);

}  // namespace printcast::codecs
