// SPDX-License-Identifier: MIT
// FourCC names and plane geometry of the formats printcast handles.
#include "printcast/hal/pixel_format.h"
#include "printcast/hal/geometry.h"

#include <fmt/format.h>

namespace printcast::hal {

std::string FourCC::str() const {
  std::string s(4, ' ');
  for (int i = 0; i < 4; ++i) {
    const char c = static_cast<char>((code >> (8 * i)) & 0xff);
    s[static_cast<size_t>(i)] = (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return s;
}

int bytesPerPixel(FourCC format) noexcept {
  if (format == fourcc::kXRGB8888) return 4;
  if (format == fourcc::kRGB565 || format == fourcc::kYUYV) return 2;
  if (format == fourcc::kI420 || format == fourcc::kNV12) return 1;
  return 0;
}

int planeCount(FourCC format) noexcept {
  if (format == fourcc::kI420) return 3;
  if (format == fourcc::kNV12) return 2;
  return 1;
}

bool isCompressed(FourCC format) noexcept { return format == fourcc::kMJPEG || format == fourcc::kH264; }

size_t packedImageSize(FourCC format, int width, int height) noexcept {
  if (width <= 0 || height <= 0 || isCompressed(format)) return 0;
  const auto w = static_cast<size_t>(width);
  const auto h = static_cast<size_t>(height);
  const size_t cw = (w + 1) / 2;
  const size_t ch = (h + 1) / 2;
  if (format == fourcc::kI420 || format == fourcc::kNV12) return w * h + 2 * cw * ch;
  return w * h * static_cast<size_t>(bytesPerPixel(format));
}

std::string Size::str() const { return fmt::format("{}x{}", width, height); }

}  // namespace printcast::hal
