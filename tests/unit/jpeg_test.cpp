// SPDX-License-Identifier: MIT
// JPEG encoder (libturbojpeg): I420 and XRGB8888 frames encoded, decoded back and compared.
#include "printcast/codecs/jpeg.h"

#include <gtest/gtest.h>

#include <turbojpeg.h>
#include <cstddef>

#include <algorithm>
#include <array>
#include <functional>
#include <string>
#include <vector>

using printcast::codecs::createJpegEncoder;
using printcast::codecs::inspectJpeg;
using printcast::hal::EncoderConfig;
using printcast::hal::Errc;
using printcast::hal::FourCC;
using printcast::hal::Frame;
using printcast::hal::FramePool;
using printcast::hal::PacketPtr;
using printcast::hal::Size;
using printcast::hal::Timestamp;
namespace fourcc = printcast::hal::fourcc;

namespace {

constexpr Size kSize{96, 64};  // quadrants of 48x32: whole 16x16 MCUs, no colour bleeding

struct Rgb {
  int r, g, b;
};

// Start of row `y` of `plane` of a buffer being filled.
uint8_t* rowOf(const FramePool::Writable& w, int plane, int y) {
  return w.data(plane) + static_cast<std::ptrdiff_t>(y) * w.stride(plane);
}

Frame makeFrame(FourCC format, Size size, const std::function<void(FramePool::Writable&)>& fill) {
  auto pool = FramePool::create(format, size, 1);
  EXPECT_TRUE(pool.ok());
  auto w = (*pool)->acquire();
  EXPECT_TRUE(w.ok());
  fill(*w);
  return std::move(*w).publish(Timestamp(std::chrono::milliseconds(42)), 7);
}

int quadrant(int x, int y, Size s) { return (x >= s.width / 2 ? 1 : 0) + (y >= s.height / 2 ? 2 : 0); }

// Decoded RGB pixels (3 bytes each) plus the size read back from the header.
struct Decoded {
  Size size;
  int subsampling = -1;
  std::vector<uint8_t> rgb;
  Rgb at(int x, int y) const {
    const size_t i = (static_cast<size_t>(y) * static_cast<size_t>(size.width) + static_cast<size_t>(x)) * 3;
    return Rgb{rgb[i], rgb[i + 1], rgb[i + 2]};
  }
};

Decoded decode(const std::vector<uint8_t>& jpeg) {
  Decoded d;
  tjhandle tj = tjInitDecompress();
  EXPECT_NE(tj, nullptr);
  int colorspace = 0;
  EXPECT_EQ(tjDecompressHeader3(tj, jpeg.data(), jpeg.size(), &d.size.width, &d.size.height, &d.subsampling,
                                &colorspace),
            0)
      << tjGetErrorStr2(tj);
  d.rgb.resize(static_cast<size_t>(d.size.width) * static_cast<size_t>(d.size.height) * 3);
  EXPECT_EQ(
      tjDecompress2(tj, jpeg.data(), jpeg.size(), d.rgb.data(), d.size.width, 0, d.size.height, TJPF_RGB, 0),
      0)
      << tjGetErrorStr2(tj);
  tjDestroy(tj);
  return d;
}

void expectNear(Rgb got, Rgb want, int tolerance, const std::string& where) {
  EXPECT_NEAR(got.r, want.r, tolerance) << where;
  EXPECT_NEAR(got.g, want.g, tolerance) << where;
  EXPECT_NEAR(got.b, want.b, tolerance) << where;
}

// Markers of the JPEG header up to the start of scan.
std::vector<uint8_t> headerMarkers(const std::vector<uint8_t>& jpeg) {
  std::vector<uint8_t> markers;
  size_t pos = 2;  // after SOI
  while (pos + 4 <= jpeg.size() && jpeg[pos] == 0xff) {
    const uint8_t marker = jpeg[pos + 1];
    markers.push_back(marker);
    if (marker == 0xda) break;  // SOS
    pos += 2 + ((static_cast<size_t>(jpeg[pos + 2]) << 8) | jpeg[pos + 3]);
  }
  return markers;
}

void expectWellFormed(const PacketPtr& packet, Size size) {
  ASSERT_NE(packet, nullptr);
  EXPECT_EQ(packet->codec, fourcc::kMJPEG);
  EXPECT_TRUE(packet->keyframe);
  EXPECT_EQ(packet->size, size);
  EXPECT_EQ(packet->sequence, 7u);
  EXPECT_EQ(packet->pts, Timestamp(std::chrono::milliseconds(42)));
  EXPECT_EQ(packet->config, nullptr);
  ASSERT_GE(packet->data.size(), 4u);
  EXPECT_EQ(packet->data[0], 0xff);
  EXPECT_EQ(packet->data[1], 0xd8);
  EXPECT_EQ(packet->data[packet->data.size() - 2], 0xff);
  EXPECT_EQ(packet->data[packet->data.size() - 1], 0xd9);
  const auto markers = headerMarkers(packet->data);
  ASSERT_FALSE(markers.empty());
  EXPECT_EQ(markers.back(), 0xda) << "no start of scan";
  for (uint8_t m : markers) EXPECT_NE(m, 0xe1) << "EXIF (APP1) segment present";
  EXPECT_NE(std::find(markers.begin(), markers.end(), 0xc4), markers.end()) << "no Huffman tables";
}

}  // namespace

TEST(JpegEncoder, Info) {
  auto enc = createJpegEncoder();
  const auto info = enc->info();
  EXPECT_EQ(info.codec, fourcc::kMJPEG);
  EXPECT_EQ(info.name, "turbojpeg");
  EXPECT_EQ(info.inputFormats, (std::vector<FourCC>{fourcc::kI420, fourcc::kXRGB8888}));
  EXPECT_EQ(enc->codecConfig(), nullptr);
}

TEST(JpegEncoder, I420FrameDecodesToTheSameColours) {
  // JFIF YCbCr (full range) per quadrant: grey 128, bright 200, and two colours.
  const std::array<std::array<uint8_t, 3>, 4> yuv = {
      {{128, 128, 128}, {200, 128, 128}, {100, 128, 200}, {150, 60, 128}}};
  // Expected RGB from the JFIF equations: R = Y + 1.402 (Cr-128), G = Y - 0.344 (Cb-128) - 0.714 (Cr-128),
  // B = Y + 1.772 (Cb-128).
  const std::array<Rgb, 4> rgb = {{{128, 128, 128}, {200, 200, 200}, {201, 49, 100}, {150, 173, 30}}};
  const Frame frame = makeFrame(fourcc::kI420, kSize, [&](FramePool::Writable& w) {
    for (int y = 0; y < kSize.height; ++y) {
      for (int x = 0; x < kSize.width; ++x) {
        const auto& c = yuv[static_cast<size_t>(quadrant(x, y, kSize))];
        w.data(0)[y * w.stride(0) + x] = c[0];
        w.data(1)[y / 2 * w.stride(1) + x / 2] = c[1];
        w.data(2)[y / 2 * w.stride(2) + x / 2] = c[2];
      }
    }
  });
  auto enc = createJpegEncoder();
  EncoderConfig config;
  config.jpegQuality = 90;
  ASSERT_TRUE(enc->configure(config).ok());
  auto packet = enc->encode(frame);
  ASSERT_TRUE(packet.ok()) << packet.error().describe();
  expectWellFormed(*packet, kSize);

  const Decoded d = decode((*packet)->data);
  EXPECT_EQ(d.size, kSize);
  EXPECT_EQ(d.subsampling, TJSAMP_420);
  for (int q = 0; q < 4; ++q) {
    const int cx = (q % 2) * kSize.width / 2 + kSize.width / 4;
    const int cy = (q / 2) * kSize.height / 2 + kSize.height / 4;
    expectNear(d.at(cx, cy), rgb[static_cast<size_t>(q)], 6, "quadrant " + std::to_string(q));
  }

  const auto info = inspectJpeg((*packet)->data);
  ASSERT_TRUE(info.ok()) << info.error().describe();
  EXPECT_EQ(info->size, kSize);
  EXPECT_EQ(info->subsampling, TJSAMP_420);
}

TEST(JpegEncoder, Xrgb8888FrameDecodesToTheSameColours) {
  const std::array<Rgb, 4> rgb = {{{230, 20, 20}, {20, 200, 40}, {30, 40, 220}, {250, 250, 250}}};
  const Frame frame = makeFrame(fourcc::kXRGB8888, kSize, [&](FramePool::Writable& w) {
    for (int y = 0; y < kSize.height; ++y) {
      for (int x = 0; x < kSize.width; ++x) {
        const Rgb c = rgb[static_cast<size_t>(quadrant(x, y, kSize))];
        uint8_t* px = rowOf(w, 0, y) + static_cast<std::ptrdiff_t>(x) * 4;  // B, G, R, X in memory
        px[0] = static_cast<uint8_t>(c.b);
        px[1] = static_cast<uint8_t>(c.g);
        px[2] = static_cast<uint8_t>(c.r);
        px[3] = 0;
      }
    }
  });
  auto enc = createJpegEncoder();
  auto packet = enc->encode(frame);  // default quality 80 without configure()
  ASSERT_TRUE(packet.ok()) << packet.error().describe();
  expectWellFormed(*packet, kSize);

  const Decoded d = decode((*packet)->data);
  EXPECT_EQ(d.size, kSize);
  EXPECT_EQ(d.subsampling, TJSAMP_420);
  for (int q = 0; q < 4; ++q) {
    const int cx = (q % 2) * kSize.width / 2 + kSize.width / 4;
    const int cy = (q / 2) * kSize.height / 2 + kSize.height / 4;
    expectNear(d.at(cx, cy), rgb[static_cast<size_t>(q)], 10, "quadrant " + std::to_string(q));
  }
}

TEST(JpegEncoder, OddSizeAndPaddedStrideWork) {
  const Size odd{33, 17};  // the pool pads the 33-byte luma rows to 64
  const Frame frame = makeFrame(fourcc::kI420, odd, [&](FramePool::Writable& w) {
    for (int p = 0; p < 3; ++p) {
      const int rows = p == 0 ? odd.height : (odd.height + 1) / 2;
      for (int y = 0; y < rows; ++y)
        std::fill_n(rowOf(w, p, y), w.stride(p), static_cast<uint8_t>(p == 0 ? 90 : 128));
    }
  });
  auto enc = createJpegEncoder();
  auto packet = enc->encode(frame);
  ASSERT_TRUE(packet.ok()) << packet.error().describe();
  const Decoded d = decode((*packet)->data);
  EXPECT_EQ(d.size, odd);
  expectNear(d.at(32, 16), Rgb{90, 90, 90}, 4, "bottom-right pixel");
}

TEST(JpegEncoder, QualityOutOfRangeIsRejected) {
  auto enc = createJpegEncoder();
  for (int quality : {0, 101, -5}) {
    EncoderConfig config;
    config.jpegQuality = quality;
    const auto status = enc->configure(config);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.code(), Errc::InvalidArgument);
    EXPECT_NE(status.error().message.find("jpegQuality " + std::to_string(quality) + " outside 1..100"),
              std::string::npos)
        << status.error().message;
  }
  EncoderConfig config;
  config.jpegQuality = 1;
  EXPECT_TRUE(enc->configure(config).ok());
  config.jpegQuality = 100;
  EXPECT_TRUE(enc->configure(config).ok());
}

TEST(JpegEncoder, UnsupportedFormatIsRejected) {
  const Frame frame = makeFrame(fourcc::kNV12, kSize, [](FramePool::Writable&) {});
  auto enc = createJpegEncoder();
  auto packet = enc->encode(frame);
  ASSERT_FALSE(packet.ok());
  EXPECT_EQ(packet.code(), Errc::InvalidArgument);
  EXPECT_NE(packet.error().message.find("NV12"), std::string::npos) << packet.error().message;
  EXPECT_EQ(enc->encode(Frame()).code(), Errc::InvalidArgument);
}

TEST(JpegEncoder, HigherQualityMakesLargerFiles) {
  const Frame frame = makeFrame(fourcc::kI420, kSize, [&](FramePool::Writable& w) {
    for (int y = 0; y < kSize.height; ++y) {
      for (int x = 0; x < kSize.width; ++x)
        w.data(0)[y * w.stride(0) + x] = static_cast<uint8_t>((x * 37 + y * 91) & 0xff);
      if (y % 2 == 0) {
        std::fill_n(rowOf(w, 1, y / 2), kSize.width / 2, uint8_t{128});
        std::fill_n(rowOf(w, 2, y / 2), kSize.width / 2, uint8_t{128});
      }
    }
  });
  auto enc = createJpegEncoder();
  EncoderConfig config;
  config.jpegQuality = 20;
  ASSERT_TRUE(enc->configure(config).ok());
  auto low = enc->encode(frame);
  config.jpegQuality = 95;
  ASSERT_TRUE(enc->configure(config).ok());
  auto high = enc->encode(frame);
  ASSERT_TRUE(low.ok() && high.ok());
  EXPECT_LT((*low)->data.size(), (*high)->data.size());
}

TEST(InspectJpeg, RejectsGarbageAndTruncation) {
  auto garbage = inspectJpeg(std::vector<uint8_t>{0x00, 0x01, 0x02, 0x03, 0x04});
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.code(), Errc::InvalidArgument);
  auto truncated = inspectJpeg(std::vector<uint8_t>{0xff, 0xd8, 0xff, 0xe0, 0x00});
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.code(), Errc::InvalidArgument);
  EXPECT_EQ(inspectJpeg(std::vector<uint8_t>{}).code(), Errc::InvalidArgument);
}
