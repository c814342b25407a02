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
// Errors of encode(): InvalidArgument (unsupported format), Io (libturbojpeg failure).
std::unique_ptr<hal::Encoder> createJpegEncoder();

struct JpegInfo {
  hal::Size size;
  int subsampling = 0;  // TJSAMP_* value
};

// Read a JPEG's header. Errors: InvalidArgument (not a JPEG / truncated header).
hal::Result<JpegInfo> inspectJpeg(std::span<const uint8_t> jpeg);

}  // namespace printcast::codecs
