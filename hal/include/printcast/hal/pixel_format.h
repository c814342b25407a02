// SPDX-License-Identifier: MIT
// Pixel formats as V4L2/DRM FourCC codes, and the plane geometry of the ones printcast handles.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace printcast::hal {

// A FourCC code, little-endian packed as in linux/videodev2.h (v4l2_fourcc) and drm_fourcc.h.
struct FourCC {
  uint32_t code = 0;

  static constexpr FourCC make(char a, char b, char c, char d) {
    return FourCC{static_cast<uint32_t>(static_cast<uint8_t>(a)) |
                  (static_cast<uint32_t>(static_cast<uint8_t>(b)) << 8) |
                  (static_cast<uint32_t>(static_cast<uint8_t>(c)) << 16) |
                  (static_cast<uint32_t>(static_cast<uint8_t>(d)) << 24)};
  }
  constexpr bool operator==(const FourCC&) const = default;
  // The four characters, e.g. "YUYV".
  std::string str() const;
};

// V4L2 names (videodev2.h) unless noted.
namespace fourcc {
inline constexpr FourCC kI420 = FourCC::make('Y', 'U', '1', '2');   // planar 4:2:0, Y then U then V
inline constexpr FourCC kNV12 = FourCC::make('N', 'V', '1', '2');   // Y plane + interleaved UV plane
inline constexpr FourCC kYUYV = FourCC::make('Y', 'U', 'Y', 'V');   // packed 4:2:2, Y0 U Y1 V
inline constexpr FourCC kMJPEG = FourCC::make('M', 'J', 'P', 'G');  // one JPEG per frame
inline constexpr FourCC kH264 = FourCC::make('H', '2', '6', '4');   // Annex-B access units
// DRM_FORMAT_XRGB8888: 32 bpp, bytes in memory B, G, R, X (the printers' framebuffer, "BGRX").
inline constexpr FourCC kXRGB8888 = FourCC::make('X', 'R', '2', '4');
// DRM_FORMAT_RGB565: 16 bpp little-endian, R in the top 5 bits.
inline constexpr FourCC kRGB565 = FourCC::make('R', 'G', '1', '6');
}  // namespace fourcc

// Bytes per pixel of the first plane for packed formats (XRGB8888 4, RGB565 2, YUYV 2),
// 1 for the luma plane of planar YUV, 0 for compressed formats.
int bytesPerPixel(FourCC format) noexcept;

// Number of planes (I420 3, NV12 2, packed/compressed 1).
int planeCount(FourCC format) noexcept;

// True for compressed formats (MJPEG, H264), whose frames carry a byte count, not a geometry.
bool isCompressed(FourCC format) noexcept;

// Size in bytes of a tightly packed image (stride = width * bpp, chroma rounded up);
// 0 for compressed formats.
size_t packedImageSize(FourCC format, int width, int height) noexcept;

}  // namespace printcast::hal
