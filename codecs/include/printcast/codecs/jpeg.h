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

}  // namespace printcast::codecs
