// SPDX-License-Identifier: MIT
// codecs::decodeJpegToI420: MJPEG camera frames (4:2:0 and 4:2:2) decoded to I420 for the encoders.
#include <gtest/gtest.h>
#include <turbojpeg.h>

#include <cstdlib>
#include <vector>

#include "printcast/codecs/jpeg.h"

namespace {

using printcast::hal::Errc;
using printcast::hal::FramePool;
using printcast::hal::Size;
using printcast::hal::Timestamp;
namespace fourcc = printcast::hal::fourcc;

// A JPEG of flat colour quadrants (so chroma averaging has nothing to blur) with `subsampling`.
std::vector<uint8_t> quadrantJpeg(int w, int h, int subsampling) {
  std::vector<uint8_t> rgb(static_cast<size_t>(w * h * 3));
  const uint8_t colours[4][3] = {{200, 30, 30}, {30, 200, 30}, {30, 30, 200}, {220, 220, 40}};
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const auto* c = colours[(x >= w / 2 ? 1 : 0) + (y >= h / 2 ? 2 : 0)];
      for (int k = 0; k < 3; ++k) rgb[static_cast<size_t>((y * w + x) * 3 + k)] = c[k];
    }
  }
  tjhandle tj = tjInitCompress();
  unsigned char* out = nullptr;
  unsigned long size = 0;  // NOLINT(google-runtime-int)
  EXPECT_EQ(tjCompress2(tj, rgb.data(), w, 0, h, TJPF_RGB, &out, &size, subsampling, 95, 0), 0);
  std::vector<uint8_t> jpeg(out, out + size);
  tjFree(out);
  tjDestroy(tj);
  return jpeg;
}

// Decode with libturbojpeg's own 4:2:0 path as the reference: luma must match exactly.
std::vector<uint8_t> referenceLuma(const std::vector<uint8_t>& jpeg, int w, int h) {
  tjhandle tj = tjInitDecompress();
  std::vector<uint8_t> y(static_cast<size_t>(w * h));
  std::vector<uint8_t> u(static_cast<size_t>(w * h));
  std::vector<uint8_t> v(static_cast<size_t>(w * h));
  unsigned char* planes[3] = {y.data(), u.data(), v.data()};
  EXPECT_EQ(tjDecompressToYUVPlanes(tj, jpeg.data(), jpeg.size(), planes, w, nullptr, h, 0), 0);
  tjDestroy(tj);
  return y;
}

class JpegDecode : public ::testing::TestWithParam<int> {};

TEST_P(JpegDecode, DecodesToI420WithTheLumaOfTheJpegAndAveragedChroma) {
  constexpr Size kSize{64, 32};
  const auto jpeg = quadrantJpeg(kSize.width, kSize.height, GetParam());
  auto pool = FramePool::create(fourcc::kI420, kSize, 1);
  ASSERT_TRUE(pool.ok());
  auto frame = printcast::codecs::decodeJpegToI420(jpeg, **pool, Timestamp(std::chrono::seconds(3)), 9);
  ASSERT_TRUE(frame.ok()) << frame.error().describe();
  EXPECT_EQ(frame->format(), fourcc::kI420);
  EXPECT_EQ(frame->size(), kSize);
  EXPECT_EQ(frame->sequence(), 9u);
  const auto luma = referenceLuma(jpeg, kSize.width, kSize.height);
  for (int y = 0; y < kSize.height; ++y) {
    for (int x = 0; x < kSize.width; ++x) {
      ASSERT_EQ(frame->plane(0).data[y * frame->plane(0).stride + x],
                luma[static_cast<size_t>(y * kSize.width + x)])
          << x << "," << y;
    }
  }
  // Chroma in the middle of each quadrant: red has high Cr, blue high Cb.
  const auto cb = [&](int x, int y) { return frame->plane(1).data[y * frame->plane(1).stride + x]; };
  const auto cr = [&](int x, int y) { return frame->plane(2).data[y * frame->plane(2).stride + x]; };
  EXPECT_GT(cr(8, 4), 180);   // red quadrant
  EXPECT_GT(cb(8, 12), 180);  // blue quadrant
  EXPECT_LT(std::abs(cb(24, 4) - 128), 80);
}

INSTANTIATE_TEST_SUITE_P(Subsampling, JpegDecode, ::testing::Values(TJSAMP_420, TJSAMP_422, TJSAMP_444));

TEST(JpegDecodeErrors, WrongPoolOrNotAJpeg) {
  const auto jpeg = quadrantJpeg(64, 32, TJSAMP_420);
  auto wrong = FramePool::create(fourcc::kI420, Size{32, 32}, 1);
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(printcast::codecs::decodeJpegToI420(jpeg, **wrong, {}, 0).code(), Errc::InvalidArgument);
  const std::vector<uint8_t> junk(100, 0x42);
  EXPECT_EQ(printcast::codecs::decodeJpegToI420(junk, **wrong, {}, 0).code(), Errc::InvalidArgument);
}

}  // namespace
