// SPDX-License-Identifier: MIT
// JPEG encoding (libturbojpeg) and JPEG header inspection.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "printcast/hal/encoder.h"
#include "printcast/hal/result.h"

namespace printcast::codecs {

// A JPEG Encoder (info().codec == fourcc::kMJPEG) backed by libturbojpeg. Accepts I420 and
// XRGB8888 frames of any size (configure() sets the quality; the size comes from each frame).
// Output: baseline JPEG, 4:2:0, with standard Huffman tables, no EXIF/JFIF thumbnail.
// I420 planes go into the JPEG as they are: JFIF defines YCbCr as full range, so limited-range
// (BT.601 16..235) input decodes with slightly lifted blacks and dimmed whites.
// Errors of configure(): InvalidArgument (jpegQuality outside 1..100); the size is ignored.
// Errors of encode(): InvalidArgument (empty frame, unsupported format, a side above 65535),
// Io (libturbojpeg failure). Threading: one thread at a time; packets are independent.
std::unique_ptr<hal::Encoder> createJpegEncoder();

struct JpegInfo {
  hal::Size size;
  int subsampling = 0;  // TJSAMP_* value
};

// Read a JPEG's header. Errors: InvalidArgument (not a JPEG / truncated header).
hal::Result<JpegInfo> inspectJpeg(std::span<const uint8_t> jpeg);

// Decode a JPEG (e.g. an MJPEG camera frame) into an I420 frame from `pool` (which must be an
// I420 pool of the JPEG's size), for the H.264 encoder. 4:2:0 JPEGs decode straight into the
// pool's planes (tjDecompressToYUVPlanes); 4:2:2, 4:4:0 and 4:4:4 chroma is averaged down to
// 4:2:0; greyscale gets neutral chroma. JFIF full-range YCbCr is passed through unchanged (as the
// encoder above does the other way). The frame carries `timestamp` and `sequence`.
// Errors: InvalidArgument (not a JPEG, pool format/size mismatch), Again (pool exhausted),
// Io (corrupt data). Threading: any thread; each call uses its own decompressor.
hal::Result<hal::Frame> decodeJpegToI420(std::span<const uint8_t> jpeg, hal::FramePool& pool,
                                         hal::Timestamp timestamp, uint64_t sequence);

}  // namespace printcast::codecs
