// SPDX-License-Identifier: MIT
// convertToI420: every source format through all eight Transforms, checked pixel by pixel.
#include "printcast/codecs/convert.h"

#include <gtest/gtest.h>

#include <cstddef>

#include <array>
#include <cstring>
#include <functional>
#include <memory>

using printcast::codecs::convertToI420;
using printcast::hal::Errc;
using printcast::hal::FourCC;
using printcast::hal::Frame;
using printcast::hal::FramePool;
using printcast::hal::Point;
using printcast::hal::Size;
using printcast::hal::Timestamp;
using printcast::hal::Transform;
namespace fourcc = printcast::hal::fourcc;

namespace {

// 12x8 source: wider than tall (so a missing transpose shows), quadrants of 6x4 (even, so
// every 2x2 chroma block lies inside one quadrant), and 12 px of XRGB8888 is 48 bytes, which the
// pool pads to a 64-byte stride.
constexpr Size kSrcSize{12, 8};

struct Rgb {
  uint8_t r, g, b;
};
// Quadrants: top-left red, top-right green, bottom-left blue, bottom-right white.
constexpr std::array<Rgb, 4> kQuadrantRgb = {{{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}}};
// The same colours in BT.601 limited range, (Y, U, V), for the YUV sources.
constexpr std::array<std::array<uint8_t, 3>, 4> kQuadrantYuv = {
    {{82, 90, 240}, {145, 54, 34}, {41, 240, 110}, {235, 128, 128}}};

int quadrant(int x, int y) { return (x >= kSrcSize.width / 2 ? 1 : 0) + (y >= kSrcSize.height / 2 ? 2 : 0); }

// Luma of YUV sources varies per pixel, so luma positions are checked pixel-exactly.
uint8_t lumaPattern(int x, int y) {
  return static_cast<uint8_t>(kQuadrantYuv[static_cast<size_t>(quadrant(x, y))][0] + ((x * 3 + y * 5) % 11) -
                              5);
}

// Start of row `y` of `plane` of a buffer being filled.
uint8_t* rowOf(const FramePool::Writable& w, int plane, int y) {
  return w.data(plane) + static_cast<std::ptrdiff_t>(y) * w.stride(plane);
}

Frame makeFrame(FourCC format, Size size, const std::function<void(FramePool::Writable&)>& fill) {
  auto pool = FramePool::create(format, size, 1);
  EXPECT_TRUE(pool.ok());
  auto w = (*pool)->acquire();
  EXPECT_TRUE(w.ok());
  for (int p = 0; p < printcast::hal::planeCount(format); ++p) {
    const int rows = p == 0 ? size.height : (size.height + 1) / 2;
    std::memset(w->data(p), 0x5a, static_cast<size_t>(w->stride(p)) * static_cast<size_t>(rows));  // padding
  }
  fill(*w);
  return std::move(*w).publish(Timestamp(std::chrono::milliseconds(1234)), 77);
}

Frame makeSource(FourCC format) {
  const Size s = kSrcSize;
  return makeFrame(format, s, [&](FramePool::Writable& w) {
    for (int y = 0; y < s.height; ++y) {
      for (int x = 0; x < s.width; ++x) {
        const auto q = static_cast<size_t>(quadrant(x, y));
        const Rgb c = kQuadrantRgb[q];
        const auto& yuv = kQuadrantYuv[q];
        uint8_t* row0 = rowOf(w, 0, y);
        if (format == fourcc::kXRGB8888) {
          uint8_t* px = row0 + static_cast<std::ptrdiff_t>(x) * 4;
          px[0] = c.b;
          px[1] = c.g;
          px[2] = c.r;
          px[3] = 0xff;
        } else if (format == fourcc::kRGB565) {
          const auto v = static_cast<uint16_t>(((c.r >> 3) << 11) | ((c.g >> 2) << 5) | (c.b >> 3));
          row0[static_cast<std::ptrdiff_t>(x) * 2] = static_cast<uint8_t>(v & 0xff);
          row0[x * 2 + 1] = static_cast<uint8_t>(v >> 8);
        } else if (format == fourcc::kYUYV) {
          row0[static_cast<std::ptrdiff_t>(x) * 2] = lumaPattern(x, y);
          row0[x * 2 + 1] = (x % 2 == 0) ? yuv[1] : yuv[2];
        } else {
          row0[x] = lumaPattern(x, y);
          if (x % 2 == 0 && y % 2 == 0) {
            if (format == fourcc::kI420) {
              w.data(1)[y / 2 * w.stride(1) + x / 2] = yuv[1];
              w.data(2)[y / 2 * w.stride(2) + x / 2] = yuv[2];
            } else {  // NV12
              w.data(1)[y / 2 * w.stride(1) + x] = yuv[1];
              w.data(1)[y / 2 * w.stride(1) + x + 1] = yuv[2];
            }
          }
        }
      }
    }
  });
}

uint8_t at(const Frame& f, int plane, Point p) {
  return f.plane(plane)
      .data[static_cast<size_t>(p.y) * static_cast<size_t>(f.plane(plane).stride) + static_cast<size_t>(p.x)];
}

bool near(int a, int b, int tolerance) { return a - b <= tolerance && b - a <= tolerance; }

struct Case {
  FourCC format;
  int lumaTolerance;   // RGB sources: libyuv's integer BT.601 vs the rounded table
  bool lumaIsPattern;  // YUV sources carry the per-pixel luma pattern
};

const std::array<Case, 5> kCases = {{{fourcc::kXRGB8888, 2, false},
                                     {fourcc::kRGB565, 3, false},
                                     {fourcc::kI420, 0, true},
                                     {fourcc::kNV12, 0, true},
                                     {fourcc::kYUYV, 0, true}}};

}  // namespace

TEST(ConvertToI420, EveryFormatAndTransformPutsEachPixelWhereApplyToPixelSays) {
  for (const Case& c : kCases) {
    const Frame src = makeSource(c.format);
    for (const Transform t : Transform::all()) {
      SCOPED_TRACE(c.format.str() + " " + std::string(t.name()));
      const Size outSize = t.apply(kSrcSize);
      auto pool = FramePool::create(fourcc::kI420, outSize, 1);
      ASSERT_TRUE(pool.ok());
      auto out = convertToI420(src, t, **pool);
      ASSERT_TRUE(out.ok()) << out.error().describe();
      ASSERT_EQ(out->size(), outSize);
      EXPECT_EQ(out->format(), fourcc::kI420);
      EXPECT_EQ(out->sequence(), 77u);
      EXPECT_EQ(out->timestamp(), src.timestamp());

      int mismatches = 0;
      for (int y = 0; y < kSrcSize.height; ++y) {
        for (int x = 0; x < kSrcSize.width; ++x) {
          const Point srcPos{x, y};
          const Point dstPos = t.applyToPixel(srcPos, kSrcSize);
          const auto& yuv = kQuadrantYuv[static_cast<size_t>(quadrant(x, y))];
          const int wantY = c.lumaIsPattern ? lumaPattern(x, y) : yuv[0];
          const Point chromaPos{dstPos.x / 2, dstPos.y / 2};
          const bool ok = near(at(*out, 0, dstPos), wantY, c.lumaTolerance) &&
                          near(at(*out, 1, chromaPos), yuv[1], c.lumaTolerance + 1) &&
                          near(at(*out, 2, chromaPos), yuv[2], c.lumaTolerance + 1);
          if (!ok && ++mismatches <= 3) {
            ADD_FAILURE() << "source (" << x << "," << y << ") -> (" << dstPos.x << "," << dstPos.y << "): Y "
                          << int{at(*out, 0, dstPos)} << " want " << wantY << ", U "
                          << int{at(*out, 1, chromaPos)} << " want " << int{yuv[1]} << ", V "
                          << int{at(*out, 2, chromaPos)} << " want " << int{yuv[2]};
          }
        }
      }
      EXPECT_EQ(mismatches, 0);
    }
  }
}

TEST(ConvertToI420, Rot90TurnsTheTopLeftQuadrantToTheTopRight) {
  // The same fact as above stated without applyToPixel: Rot90 of a landscape image puts its
  // top-left (red) corner at the portrait image's top-right.
  const Frame src = makeSource(fourcc::kXRGB8888);
  auto pool = FramePool::create(fourcc::kI420, Size{8, 12}, 1);
  ASSERT_TRUE(pool.ok());
  auto out = convertToI420(src, Transform::rot90(), **pool);
  ASSERT_TRUE(out.ok()) << out.error().describe();
  EXPECT_NEAR(at(*out, 0, Point{7, 0}), 82, 2);    // red
  EXPECT_NEAR(at(*out, 0, Point{0, 0}), 41, 2);    // blue (bottom-left went to top-left)
  EXPECT_NEAR(at(*out, 0, Point{0, 11}), 235, 2);  // white
  EXPECT_NEAR(at(*out, 0, Point{7, 11}), 145, 2);  // green
}

TEST(ConvertToI420, PoolMismatchIsRejected) {
  const Frame src = makeSource(fourcc::kXRGB8888);
  auto wrongSize = FramePool::create(fourcc::kI420, kSrcSize, 1);  // rot90 needs 8x12
  ASSERT_TRUE(wrongSize.ok());
  auto r = convertToI420(src, Transform::rot90(), **wrongSize);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::InvalidArgument);
  EXPECT_NE(r.error().message.find("8x12"), std::string::npos) << r.error().message;

  auto wrongFormat = FramePool::create(fourcc::kNV12, kSrcSize, 1);
  ASSERT_TRUE(wrongFormat.ok());
  EXPECT_EQ(convertToI420(src, Transform::identity(), **wrongFormat).code(), Errc::InvalidArgument);
}

TEST(ConvertToI420, ExhaustedPoolReturnsAgain) {
  const Frame src = makeSource(fourcc::kI420);
  auto pool = FramePool::create(fourcc::kI420, kSrcSize, 1);
  ASSERT_TRUE(pool.ok());
  auto first = convertToI420(src, Transform::identity(), **pool);
  ASSERT_TRUE(first.ok());
  auto second = convertToI420(src, Transform::identity(), **pool);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.code(), Errc::Again);
  *first = Frame();  // the lease drops, the buffer returns
  EXPECT_TRUE(convertToI420(src, Transform::identity(), **pool).ok());
}

TEST(ConvertToI420, CompressedSourceIsRejected) {
  static const uint8_t kJpeg[] = {0xff, 0xd8, 0xff, 0xd9};
  printcast::hal::FrameDescription d;
  d.format = fourcc::kMJPEG;
  d.size = kSrcSize;
  d.planeCount = 1;
  d.planes[0] = {kJpeg, 0, sizeof kJpeg};
  d.bytesUsed = sizeof kJpeg;
  const Frame jpeg = Frame::adopt(d, {});
  auto pool = FramePool::create(fourcc::kI420, kSrcSize, 1);
  ASSERT_TRUE(pool.ok());
  auto r = convertToI420(jpeg, Transform::identity(), **pool);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::InvalidArgument);
  EXPECT_NE(r.error().message.find("MJPG"), std::string::npos) << r.error().message;
  EXPECT_EQ(convertToI420(Frame(), Transform::identity(), **pool).code(), Errc::InvalidArgument);
}

// scaleI420: the quadrants land where they should at half and double size, and the frame keeps
// its timestamp and sequence.
TEST(ScaleI420, HalfAndDoubleSizeKeepTheQuadrantsAndTheTimestamp) {
  const Frame src = makeSource(fourcc::kI420);
  for (const Size to : {Size{6, 4}, Size{24, 16}}) {
    auto pool = FramePool::create(fourcc::kI420, to, 1);
    ASSERT_TRUE(pool.ok());
    auto out = printcast::codecs::scaleI420(src, **pool);
    ASSERT_TRUE(out.ok()) << out.error().describe();
    EXPECT_EQ(out->size(), to);
    EXPECT_EQ(out->timestamp(), src.timestamp());
    EXPECT_EQ(out->sequence(), src.sequence());
    // The centre of each quadrant keeps its colour (luma within the source's +-5 texture).
    for (int q = 0; q < 4; ++q) {
      const Point centre{(q % 2) * to.width / 2 + to.width / 4, (q / 2) * to.height / 2 + to.height / 4};
      EXPECT_NEAR(at(*out, 0, centre), kQuadrantYuv[static_cast<size_t>(q)][0], 6)
          << to.str() << " quadrant " << q;
    }
  }
  auto nv12 = FramePool::create(fourcc::kNV12, Size{6, 4}, 1);
  ASSERT_TRUE(nv12.ok());
  EXPECT_EQ(printcast::codecs::scaleI420(src, **nv12).code(), Errc::InvalidArgument);
}
