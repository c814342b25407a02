// SPDX-License-Identifier: MIT
// H.264 decoder (libavcodec): x264 pictures back at high PSNR, 4:2:2/4:4:4/4:0:0 and 10-bit
// streams, P-frames before any IDR, garbage, truncated access units, pool mismatches.
#include "printcast/codecs/h264_decoder.h"

#include <gtest/gtest.h>
#include <x264.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "printcast/codecs/h264.h"
#include "printcast/codecs/x264_encoder.h"

namespace h264 = printcast::codecs::h264;
using printcast::codecs::createH264Decoder;
using printcast::codecs::createX264Encoder;
using printcast::codecs::H264Decoder;
using printcast::hal::EncoderConfig;
using printcast::hal::Errc;
using printcast::hal::Frame;
using printcast::hal::FramePool;
using printcast::hal::PacketPtr;
using printcast::hal::Size;
using printcast::hal::Timestamp;
namespace fourcc = printcast::hal::fourcc;

namespace {

// Sample (x, y) of plane `p` of the synthetic picture number `n`: smooth gradients with a
// moving box and some texture (what a camera sees, roughly), so the encoder has real work.
uint8_t sampleAt(int p, int x, int y, int n) {
  if (p == 0) {
    const bool box = x >= 40 + 4 * n && x < 140 + 4 * n && y >= 60 && y < 160;
    const int texture = ((x * 7 + y * 13) % 17) - 8;
    return static_cast<uint8_t>(std::clamp(box ? 220 : 40 + (x + y) / 8 % 160 + texture, 16, 235));
  }
  return static_cast<uint8_t>(p == 1 ? 128 + (x / 4) % 48 - 24 : 128 + (y / 4) % 48 - 24);
}

std::shared_ptr<FramePool> makePool(Size size, int count = 2) {
  auto pool = FramePool::create(fourcc::kI420, size, count);
  EXPECT_TRUE(pool.ok());
  return pool.ok() ? *pool : nullptr;
}

Frame sourcePicture(FramePool& pool, int n) {
  auto w = pool.acquire();
  EXPECT_TRUE(w.ok());
  const Size size = pool.size();
  for (int p = 0; p < 3; ++p) {
    const int width = p == 0 ? size.width : (size.width + 1) / 2;
    const int height = p == 0 ? size.height : (size.height + 1) / 2;
    for (int y = 0; y < height; ++y) {
      uint8_t* row = w->data(p) + static_cast<ptrdiff_t>(y) * w->stride(p);
      for (int x = 0; x < width; ++x) row[x] = sampleAt(p, x, y, n);
    }
  }
  return std::move(*w).publish(Timestamp(std::chrono::milliseconds(1000 + 33 * n)), static_cast<uint64_t>(n));
}

// `count` x264 access units of the synthetic pictures (the first an IDR, then P-frames).
std::vector<PacketPtr> encodeX264(Size size, int count, int gop = 250, int bitrateKbps = 4000) {
  auto encoder = createX264Encoder();
  EncoderConfig config;
  config.size = size;
  config.fps = 30;
  config.bitrateKbps = bitrateKbps;
  config.gopFrames = gop;
  EXPECT_TRUE(encoder->configure(config).ok());
  auto pool = makePool(size);
  std::vector<PacketPtr> packets;
  for (int n = 0; n < count; ++n) {
    auto packet = encoder->encode(sourcePicture(*pool, n));
    EXPECT_TRUE(packet.ok()) << packet.error().describe();
    if (packet.ok()) packets.push_back(*packet);
  }
  return packets;
}

// PSNR of plane `p` of `decoded` against the synthetic picture `n`, in dB.
double psnr(const Frame& decoded, int p, int n) {
  const Size size = decoded.size();
  const int width = p == 0 ? size.width : (size.width + 1) / 2;
  const int height = p == 0 ? size.height : (size.height + 1) / 2;
  double squares = 0;
  for (int y = 0; y < height; ++y) {
    const uint8_t* row = decoded.plane(p).data + static_cast<ptrdiff_t>(y) * decoded.plane(p).stride;
    for (int x = 0; x < width; ++x) {
      const double d = static_cast<double>(row[x]) - sampleAt(p, x, y, n);
      squares += d * d;
    }
  }
  const double mse = squares / (static_cast<double>(width) * height);
  return mse == 0 ? 99.0 : 10.0 * std::log10(255.0 * 255.0 / mse);
}

std::unique_ptr<H264Decoder> makeDecoder() {
  auto decoder = createH264Decoder();
  EXPECT_TRUE(decoder.ok()) << decoder.error().describe();
  return decoder.ok() ? std::move(*decoder) : nullptr;
}

printcast::hal::Result<Frame> decode(H264Decoder& decoder, const PacketPtr& packet, FramePool& pool) {
  return decoder.decode(packet->data, pool, packet->pts, packet->sequence);
}

// Access units from libx264 directly, for what our encoder never makes: 4:2:2, 4:4:4,
// monochrome and 10-bit streams (High 4:2:2 / High 4:4:4 Predictive / High 10 profiles).
std::vector<std::vector<uint8_t>> encodeRawX264(Size size, int csp, int bitDepth, const char* profile,
                                                int count) {
  x264_param_t param;
  x264_param_default_preset(&param, "ultrafast", "zerolatency");
  param.i_width = size.width;
  param.i_height = size.height;
  param.i_csp = csp | (bitDepth > 8 ? X264_CSP_HIGH_DEPTH : 0);
  param.i_bitdepth = bitDepth;
  param.i_log_level = X264_LOG_ERROR;
  param.b_annexb = 1;
  param.b_repeat_headers = 1;
  param.rc.i_rc_method = X264_RC_CQP;
  param.rc.i_qp_constant = 18;
  std::vector<std::vector<uint8_t>> units;
  if (x264_param_apply_profile(&param, profile) < 0) return units;
  x264_t* encoder = x264_encoder_open(&param);
  if (encoder == nullptr) return units;
  x264_picture_t picture;
  x264_picture_alloc(&picture, param.i_csp, size.width, size.height);
  for (int n = 0; n < count; ++n) {
    for (int p = 0; p < picture.img.i_plane; ++p) {
      const int cw = csp == X264_CSP_I444 || p == 0 ? size.width : size.width / 2;
      const int ch = csp == X264_CSP_I420 && p > 0 ? size.height / 2 : size.height;
      for (int y = 0; y < ch; ++y) {
        for (int x = 0; x < cw; ++x) {
          // Chroma constant over each 2x2 block, so averaging down to 4:2:0 loses nothing.
          const int v = p == 0 ? sampleAt(0, x, y, n)
                               : sampleAt(p, csp == X264_CSP_I444 ? x / 2 : x,
                                          csp == X264_CSP_I420 || p == 0 ? y : y / 2, n);
          if (bitDepth > 8) {
            // memcpy, not a uint16_t* cast: -Wcast-align on armhf (strict alignment targets).
            const auto sample = static_cast<uint16_t>(v << (bitDepth - 8));
            std::memcpy(picture.img.plane[p] + static_cast<ptrdiff_t>(y) * picture.img.i_stride[p] +
                            static_cast<ptrdiff_t>(x) * 2,
                        &sample, sizeof sample);
          } else {
            picture.img.plane[p][static_cast<ptrdiff_t>(y) * picture.img.i_stride[p] + x] =
                static_cast<uint8_t>(v);
          }
        }
      }
    }
    picture.i_pts = n;
    x264_nal_t* nals = nullptr;
    int nalCount = 0;
    x264_picture_t out;
    const int bytes = x264_encoder_encode(encoder, &nals, &nalCount, &picture, &out);
    if (bytes > 0) units.emplace_back(nals[0].p_payload, nals[0].p_payload + bytes);
  }
  x264_picture_clean(&picture);
  x264_encoder_close(encoder);
  return units;
}

}  // namespace

TEST(H264Decoder, NameSaysLibavcodec) {
  auto decoder = makeDecoder();
  ASSERT_NE(decoder, nullptr);
  EXPECT_EQ(decoder->name().rfind("libavcodec ", 0), 0u) << decoder->name();
  EXPECT_TRUE(decoder->pictureSize().empty());
}

TEST(H264Decoder, DecodesX264PicturesWithTheirSizeTimeAndSequenceAtHighPsnr) {
  const Size size{640, 480};
  const auto packets = encodeX264(size, 30);
  ASSERT_EQ(packets.size(), 30u);
  auto decoder = makeDecoder();
  auto pool = makePool(size);
  double worstY = 99;
  double worstC = 99;
  for (size_t n = 0; n < packets.size(); ++n) {
    auto frame = decode(*decoder, packets[n], *pool);
    ASSERT_TRUE(frame.ok()) << "access unit " << n << ": " << frame.error().describe();
    EXPECT_EQ(frame->format(), fourcc::kI420);
    EXPECT_EQ(frame->size(), size);
    EXPECT_EQ(frame->timestamp(), packets[n]->pts);  // no delay: the picture of this access unit
    EXPECT_EQ(frame->sequence(), n);
    worstY = std::min(worstY, psnr(*frame, 0, static_cast<int>(n)));
    worstC = std::min({worstC, psnr(*frame, 1, static_cast<int>(n)), psnr(*frame, 2, static_cast<int>(n))});
  }
  EXPECT_EQ(decoder->pictureSize(), size);
  std::printf("640x480 x264 (4 Mbit/s) decoded: worst PSNR Y %.1f dB, chroma %.1f dB\n", worstY, worstC);
  EXPECT_GT(worstY, 35.0);
  EXPECT_GT(worstC, 35.0);
}

TEST(H264Decoder, Decodes1080pWithCroppingAndSaysHowLongAPictureTakes) {
  const Size size{1920, 1080};  // coded as 1920x1088 with frame cropping (H.264 7.4.2.1.1)
  const auto packets = encodeX264(size, 30, 250, 8000);
  ASSERT_EQ(packets.size(), 30u);
  auto decoder = makeDecoder();
  auto pool = makePool(size);
  double worstY = 99;
  std::chrono::steady_clock::duration decoding{};
  for (size_t n = 0; n < packets.size(); ++n) {
    const auto start = std::chrono::steady_clock::now();
    auto frame = decode(*decoder, packets[n], *pool);
    decoding += std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(frame.ok()) << "access unit " << n << ": " << frame.error().describe();
    ASSERT_EQ(frame->size(), size);
    worstY = std::min(worstY, psnr(*frame, 0, static_cast<int>(n)));
  }
  const auto perPicture =
      std::chrono::duration<double, std::milli>(decoding) / static_cast<double>(packets.size());
  std::printf("1920x1080 x264 (8 Mbit/s): %.2f ms per picture (decode + copy out), worst PSNR Y %.1f dB\n",
              perPicture.count(), worstY);
  RecordProperty("ms_per_1080p_picture", std::to_string(perPicture.count()));
  EXPECT_GT(worstY, 35.0);
}

TEST(H264Decoder, PFramesBeforeAnyIdrGiveNoPictureThenTheIdrDecodes) {
  const Size size{320, 240};
  const auto packets = encodeX264(size, 6);
  ASSERT_EQ(packets.size(), 6u);
  ASSERT_TRUE(packets[0]->keyframe);
  auto decoder = makeDecoder();
  auto pool = makePool(size);
  for (size_t n = 1; n < packets.size(); ++n) {
    auto frame = decode(*decoder, packets[n], *pool);
    ASSERT_FALSE(frame.ok()) << "a P-frame without its IDR gave a picture";
    EXPECT_TRUE(frame.code() == Errc::Again || frame.code() == Errc::InvalidArgument)
        << frame.error().describe();
    if (n == 1) std::printf("a P-frame first: %s\n", frame.error().describe().c_str());
  }
  for (size_t n = 0; n < packets.size(); ++n) {
    auto frame = decode(*decoder, packets[n], *pool);
    ASSERT_TRUE(frame.ok()) << "access unit " << n << ": " << frame.error().describe();
    EXPECT_GT(psnr(*frame, 0, static_cast<int>(n)), 35.0);
  }
}

TEST(H264Decoder, GarbageIsAnErrorAndTheDecoderGoesOnAfterIt) {
  const Size size{320, 240};
  const auto packets = encodeX264(size, 3);
  auto decoder = makeDecoder();
  auto pool = makePool(size);
  std::mt19937 random(42);
  std::vector<uint8_t> noise(4096);
  for (auto& b : noise) b = static_cast<uint8_t>(random());
  // Noise, noise behind a start code, and noise behind each NAL unit type's header byte.
  std::vector<std::vector<uint8_t>> inputs{noise};
  for (int type = 1; type <= 31; ++type) {
    std::vector<uint8_t> unit{0, 0, 0, 1, static_cast<uint8_t>(0x60 | type)};
    unit.insert(unit.end(), noise.begin(), noise.begin() + 64 * type);
    inputs.push_back(std::move(unit));
  }
  int rejected = 0;
  for (const auto& input : inputs) {
    auto frame = decoder->decode(input, *pool, Timestamp{}, 0);
    ASSERT_FALSE(frame.ok()) << "garbage of " << input.size() << " bytes gave a picture";
    EXPECT_NE(frame.error().message.find("H.264 decoder"), std::string::npos) << frame.error().message;
    if (frame.code() == Errc::InvalidArgument) ++rejected;
  }
  std::printf("garbage: %d of %zu inputs rejected by libavcodec, e.g. \"%s\"\n", rejected, inputs.size(),
              decoder->decode(inputs[7], *pool, Timestamp{}, 0).error().message.c_str());
  EXPECT_GT(rejected, 0);
  EXPECT_EQ(decoder->decode({}, *pool, Timestamp{}, 0).code(), Errc::InvalidArgument);
  // A real stream after the garbage decodes (from its IDR).
  decoder->reset();
  for (size_t n = 0; n < packets.size(); ++n) {
    auto frame = decode(*decoder, packets[n], *pool);
    ASSERT_TRUE(frame.ok()) << "access unit " << n << ": " << frame.error().describe();
    EXPECT_GT(psnr(*frame, 0, static_cast<int>(n)), 35.0);
  }
}

TEST(H264Decoder, TruncatedAccessUnitsDoNotCrashAndTheNextIdrRecovers) {
  const Size size{320, 240};
  const auto packets = encodeX264(size, 8, 4);  // IDRs at 0 and 4
  ASSERT_EQ(packets.size(), 8u);
  ASSERT_TRUE(packets[4]->keyframe);
  auto decoder = makeDecoder();
  auto pool = makePool(size);
  int pictures = 0;
  int errors = 0;
  for (size_t cut : {size_t{5}, size_t{40}, packets[0]->data.size() / 2, packets[0]->data.size() - 1}) {
    for (size_t n = 0; n < 4; ++n) {
      const auto& au = packets[n]->data;
      auto frame = decoder->decode(std::span<const uint8_t>(au.data(), std::min(cut, au.size())), *pool,
                                   packets[n]->pts, n);
      (frame.ok() ? pictures : errors) += 1;
      if (!frame.ok()) {
        EXPECT_TRUE(frame.code() == Errc::Again || frame.code() == Errc::InvalidArgument)
            << frame.error().describe();
      }
    }
    decoder->reset();
  }
  std::printf("truncated access units: %d concealed pictures, %d errors\n", pictures, errors);
  for (size_t n = 4; n < packets.size(); ++n) {
    auto frame = decode(*decoder, packets[n], *pool);
    ASSERT_TRUE(frame.ok()) << "access unit " << n << ": " << frame.error().describe();
    EXPECT_GT(psnr(*frame, 0, static_cast<int>(n)), 35.0);
  }
}

TEST(H264Decoder, APoolOfAnotherSizeIsRefusedNamingThePictureSize) {
  const Size size{320, 240};
  const auto packets = encodeX264(size, 2);
  auto decoder = makeDecoder();
  auto wrong = makePool({640, 480});
  auto frame = decode(*decoder, packets[0], *wrong);
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(frame.code(), Errc::InvalidArgument);
  EXPECT_NE(frame.error().message.find("320x240"), std::string::npos) << frame.error().message;
  EXPECT_EQ(decoder->pictureSize(), size);
  auto pool = makePool(decoder->pictureSize());
  auto next = decode(*decoder, packets[1], *pool);
  ASSERT_TRUE(next.ok()) << next.error().describe();
  EXPECT_GT(psnr(*next, 0, 1), 35.0);
}

TEST(H264Decoder, AnExhaustedPoolIsAgain) {
  const Size size{320, 240};
  const auto packets = encodeX264(size, 2);
  auto decoder = makeDecoder();
  auto pool = makePool(size, 1);
  auto held = decode(*decoder, packets[0], *pool);
  ASSERT_TRUE(held.ok());
  auto frame = decode(*decoder, packets[1], *pool);
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(frame.code(), Errc::Again);
}

// 4:2:2 and 4:4:4 chroma averaged down to 4:2:0, monochrome with neutral chroma.
TEST(H264Decoder, OtherChromaFormatsBecomeI420) {
  const Size size{320, 240};
  struct Case {
    int csp;
    const char* profile;
  };
  for (const Case c :
       {Case{X264_CSP_I422, "high422"}, Case{X264_CSP_I444, "high444"}, Case{X264_CSP_I400, "high"}}) {
    SCOPED_TRACE(c.profile);
    const auto units = encodeRawX264(size, c.csp, 8, c.profile, 3);
    ASSERT_EQ(units.size(), 3u) << "libx264 cannot encode this chroma format";
    ASSERT_TRUE(h264::containsIdr(units[0]));
    auto sps = h264::parseSps(h264::extractCodecConfig(units[0])->sps);
    ASSERT_TRUE(sps.ok());
    EXPECT_EQ(sps->chromaFormatIdc, c.csp == X264_CSP_I400 ? 0u : c.csp == X264_CSP_I422 ? 2u : 3u);
    auto decoder = makeDecoder();
    auto pool = makePool(size);
    for (size_t n = 0; n < units.size(); ++n) {
      auto frame = decoder->decode(units[n], *pool, Timestamp{}, n);
      ASSERT_TRUE(frame.ok()) << frame.error().describe();
      EXPECT_EQ(frame->format(), fourcc::kI420);
      EXPECT_GT(psnr(*frame, 0, static_cast<int>(n)), 35.0);
      if (c.csp == X264_CSP_I400) {
        EXPECT_EQ(frame->plane(1).data[0], 128);
        EXPECT_EQ(frame->plane(2).data[frame->plane(2).stride * 50 + 70], 128);
      } else {
        EXPECT_GT(psnr(*frame, 1, static_cast<int>(n)), 35.0);
        EXPECT_GT(psnr(*frame, 2, static_cast<int>(n)), 35.0);
      }
    }
  }
}

TEST(H264Decoder, TenBitStreamsAreUnsupportedNamingThePixelFormat) {
  const Size size{320, 240};
  const auto units = encodeRawX264(size, X264_CSP_I420, 10, "high10", 1);
  ASSERT_EQ(units.size(), 1u) << "libx264 cannot encode 10-bit";
  auto decoder = makeDecoder();
  auto pool = makePool(size);
  auto frame = decoder->decode(units[0], *pool, Timestamp{}, 0);
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(frame.code(), Errc::Unsupported);
  EXPECT_NE(frame.error().message.find("yuv420p10"), std::string::npos) << frame.error().message;
}

TEST(H264Decoder, PicturesAboveSixteenMegapixelsAreRefused) {
  const Size size{4352, 4096};  // 17.8 M pixels: more than 4096x4096
  const auto units = encodeRawX264(size, X264_CSP_I420, 8, "high", 1);
  ASSERT_EQ(units.size(), 1u);
  auto decoder = makeDecoder();
  auto pool = makePool({16, 16});
  auto frame = decoder->decode(units[0], *pool, Timestamp{}, 0);
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(frame.code(), Errc::InvalidArgument) << frame.error().describe();
  EXPECT_TRUE(decoder->pictureSize().empty());
  std::printf("17.8 MP: %s\n", frame.error().message.c_str());
}
