// SPDX-License-Identifier: MIT
// The streamer's on-demand H.264 decoder: nothing decoded while unwanted, the kept GOP decoded
// at once on demand (from where the decoder stopped or from the IDR), overflow, idle release,
// new parameter sets, a build without a decoder. Real x264 streams and libavcodec underneath.
#include "h264_on_demand_decoder.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "printcast/codecs/h264_decoder.h"
#include "printcast/codecs/x264_encoder.h"

using printcast::codecs::createH264Decoder;
using printcast::codecs::H264Decoder;
using printcast::hal::Errc;
using printcast::hal::Frame;
using printcast::hal::FramePool;
using printcast::hal::PacketPtr;
using printcast::hal::Size;
using printcast::hal::Timestamp;
using printcast::streamer::H264OnDemandDecoder;
namespace fourcc = printcast::hal::fourcc;
using namespace std::chrono_literals;

namespace {

constexpr Size kSize{320, 240};

// Luma of picture `n`: a gradient and a box that moves 4 px per picture.
uint8_t lumaAt(int x, int y, int n) {
  const bool box = x >= 20 + 4 * n % 200 && x < 80 + 4 * n % 200 && y >= 60 && y < 120;
  return static_cast<uint8_t>(box ? 220 : 30 + (x + 2 * y) / 4 % 150);
}

// `count` access units from our x264 encoder (IDR every `gop`), sequence = picture number.
std::vector<PacketPtr> encode(int count, int gop, Size size = kSize) {
  auto encoder = printcast::codecs::createX264Encoder();
  printcast::hal::EncoderConfig config;
  config.size = size;
  config.fps = 30;
  config.bitrateKbps = 2000;
  config.gopFrames = gop;
  EXPECT_TRUE(encoder->configure(config).ok());
  auto pool = *FramePool::create(fourcc::kI420, size, 2);
  std::vector<PacketPtr> packets;
  for (int n = 0; n < count; ++n) {
    auto w = pool->acquire();
    for (int y = 0; y < size.height; ++y) {
      for (int x = 0; x < size.width; ++x) w->data(0)[y * w->stride(0) + x] = lumaAt(x, y, n);
    }
    for (int p = 1; p < 3; ++p) {
      for (int y = 0; y < size.height / 2; ++y)
        std::memset(w->data(p) + y * w->stride(p), 128, size.width / 2);
    }
    auto packet = encoder->encode(std::move(*w).publish(Timestamp(std::chrono::milliseconds(33 * n)), n));
    EXPECT_TRUE(packet.ok());
    packets.push_back(*packet);
  }
  return packets;
}

double lumaPsnr(const Frame& frame, int n) {
  double squares = 0;
  for (int y = 0; y < frame.size().height; ++y) {
    for (int x = 0; x < frame.size().width; ++x) {
      const double d = frame.plane(0).data[y * frame.plane(0).stride + x] - lumaAt(x, y, n);
      squares += d * d;
    }
  }
  const double mse = squares / (frame.size().width * frame.size().height);
  return mse == 0 ? 99 : 10 * std::log10(255.0 * 255.0 / mse);
}

// libavcodec's decoder, counting what it is fed and how many were made.
struct Counts {
  int decoders = 0;
  int fed = 0;
};
class CountingDecoder final : public H264Decoder {
 public:
  CountingDecoder(std::unique_ptr<H264Decoder> inner, Counts& counts)
      : inner_(std::move(inner)), counts_(counts) {}
  printcast::hal::Result<Frame> decode(std::span<const uint8_t> au, FramePool& pool, Timestamp pts,
                                       uint64_t sequence) override {
    ++counts_.fed;
    return inner_->decode(au, pool, pts, sequence);
  }
  void reset() override { inner_->reset(); }
  Size pictureSize() const override { return inner_->pictureSize(); }
  std::string name() const override { return inner_->name(); }

 private:
  std::unique_ptr<H264Decoder> inner_;
  Counts& counts_;
};

H264OnDemandDecoder::DecoderFactory countingFactory(Counts& counts) {
  return [&counts]() -> printcast::hal::Result<std::unique_ptr<H264Decoder>> {
    auto decoder = createH264Decoder();
    if (!decoder) return std::move(decoder).error();
    ++counts.decoders;
    return std::unique_ptr<H264Decoder>(std::make_unique<CountingDecoder>(std::move(*decoder), counts));
  };
}

}  // namespace

TEST(H264OnDemandDecoder, DecodesNothingWhileUnwantedButKeepsTheGop) {
  const auto packets = encode(10, 30);
  Counts counts;
  H264OnDemandDecoder decoder({}, countingFactory(counts));
  for (const auto& p : packets) EXPECT_EQ(decoder.push(p, false).code(), Errc::Again);
  EXPECT_EQ(counts.fed, 0);
  EXPECT_EQ(decoder.stats().keptAccessUnits, 10u);
  EXPECT_FALSE(decoder.stats().decoding);
}

TEST(H264OnDemandDecoder, ADemandMidGopDecodesTheKeptGopAtOnceAndGivesTheNewestPicture) {
  const auto packets = encode(20, 30);
  Counts counts;
  H264OnDemandDecoder decoder({}, countingFactory(counts));
  for (int n = 0; n < 10; ++n) ASSERT_EQ(decoder.push(packets[n], false).code(), Errc::Again);
  {
    auto picture = decoder.push(packets[10], true);
    ASSERT_TRUE(picture.ok()) << picture.error().describe();
    EXPECT_EQ(picture->sequence(), 10u);
    EXPECT_EQ(picture->size(), kSize);
    EXPECT_GT(lumaPsnr(*picture, 10), 35.0);
  }                           // the streamer, too, lets go of a picture once it is a JPEG (the pool has two)
  EXPECT_EQ(counts.fed, 11);  // the IDR, nine P-frames, this one
  EXPECT_EQ(decoder.stats().catchUps, 1u);
  EXPECT_EQ(decoder.stats().catchUpAccessUnits, 10u);
  EXPECT_TRUE(decoder.stats().decoding);
  // In step from here: one access unit, one decode.
  {
    auto next = decoder.push(packets[11], true);
    ASSERT_TRUE(next.ok()) << next.error().describe();
    EXPECT_GT(lumaPsnr(*next, 11), 35.0);
  }
  EXPECT_EQ(counts.fed, 12);
  // Idle for a while, then wanted again: it goes on from where it stopped.
  for (int n = 12; n < 16; ++n) ASSERT_EQ(decoder.push(packets[n], false).code(), Errc::Again);
  EXPECT_EQ(counts.fed, 12);
  auto later = decoder.push(packets[16], true);
  ASSERT_TRUE(later.ok()) << later.error().describe();
  EXPECT_GT(lumaPsnr(*later, 16), 35.0);
  EXPECT_EQ(counts.fed, 17);
  EXPECT_EQ(counts.decoders, 1);
  EXPECT_EQ(decoder.stats().pictures, 3u);
}

TEST(H264OnDemandDecoder, AfterANewIdrWhileIdleItStartsFromThatIdr) {
  const auto packets = encode(14, 8);  // IDRs at 0 and 8
  ASSERT_TRUE(packets[8]->keyframe);
  Counts counts;
  H264OnDemandDecoder decoder({}, countingFactory(counts));
  ASSERT_TRUE(decoder.push(packets[0], true).ok());
  for (int n = 1; n < 12; ++n) ASSERT_EQ(decoder.push(packets[n], false).code(), Errc::Again);
  EXPECT_EQ(decoder.stats().keptAccessUnits, 4u);  // 8..11
  auto picture = decoder.push(packets[12], true);
  ASSERT_TRUE(picture.ok());
  EXPECT_GT(lumaPsnr(*picture, 12), 35.0);
  EXPECT_EQ(counts.fed, 1 + 5);  // the first IDR; then 8..12
}

TEST(H264OnDemandDecoder, AnOverflowingGopIsDroppedAndADemandWaitsForTheNextIdr) {
  const auto packets = encode(16, 10);  // IDRs at 0 and 10
  Counts counts;
  H264OnDemandDecoder decoder({.maxGopBytes = 8u << 20, .maxGopAccessUnits = 5}, countingFactory(counts));
  for (int n = 0; n < 7; ++n) ASSERT_EQ(decoder.push(packets[n], false).code(), Errc::Again);
  EXPECT_EQ(decoder.stats().gopOverflows, 1u);
  EXPECT_EQ(decoder.stats().keptAccessUnits, 0u);
  auto waiting = decoder.push(packets[7], true);
  EXPECT_EQ(waiting.code(), Errc::Again);
  EXPECT_NE(waiting.error().message.find("IDR"), std::string::npos) << waiting.error().message;
  EXPECT_EQ(counts.fed, 0);
  EXPECT_EQ(decoder.push(packets[8], true).code(), Errc::Again);
  EXPECT_EQ(decoder.push(packets[9], true).code(), Errc::Again);
  auto picture = decoder.push(packets[10], true);
  ASSERT_TRUE(picture.ok()) << picture.error().describe();
  EXPECT_GT(lumaPsnr(*picture, 10), 35.0);
  // A decoder in step goes on through the next overflow: it needs no kept access units.
  for (int n = 11; n < 16; ++n) {
    auto p = decoder.push(packets[n], true);
    ASSERT_TRUE(p.ok()) << n << ": " << p.error().describe();
  }
  EXPECT_EQ(decoder.stats().gopOverflows, 2u);
}

TEST(H264OnDemandDecoder, AnIdleDecoderIsFreedAndTheNextDemandStartsFromTheKeptIdr) {
  const auto packets = encode(10, 30);
  Counts counts;
  H264OnDemandDecoder decoder({.idleRelease = 1s}, countingFactory(counts));
  const Timestamp t0(100s);
  ASSERT_TRUE(decoder.push(packets[0], true, t0).ok());
  ASSERT_EQ(decoder.push(packets[1], false, t0 + 500ms).code(), Errc::Again);
  EXPECT_EQ(decoder.stats().idleReleases, 0u);
  ASSERT_EQ(decoder.push(packets[2], false, t0 + 1500ms).code(), Errc::Again);
  EXPECT_EQ(decoder.stats().idleReleases, 1u);
  auto picture = decoder.push(packets[3], true, t0 + 2s);
  ASSERT_TRUE(picture.ok());
  EXPECT_GT(lumaPsnr(*picture, 3), 35.0);
  EXPECT_EQ(counts.decoders, 2);
  EXPECT_EQ(counts.fed, 1 + 4);  // the new decoder starts at the IDR
}

TEST(H264OnDemandDecoder, NewParameterSetsGetANewDecoderAndPool) {
  const auto small = encode(3, 30);
  const auto large = encode(3, 30, {640, 480});
  Counts counts;
  H264OnDemandDecoder decoder({}, countingFactory(counts));
  for (const auto& p : small) ASSERT_TRUE(decoder.push(p, true).ok());
  for (const auto& p : large) {
    auto picture = decoder.push(p, true);
    ASSERT_TRUE(picture.ok()) << picture.error().describe();
    EXPECT_EQ(picture->size(), (Size{640, 480}));
  }
  EXPECT_EQ(counts.decoders, 2);
}

TEST(H264OnDemandDecoder, ResetForgetsTheKeptGop) {
  const auto packets = encode(6, 30);
  Counts counts;
  H264OnDemandDecoder decoder({}, countingFactory(counts));
  for (int n = 0; n < 4; ++n) ASSERT_EQ(decoder.push(packets[n], false).code(), Errc::Again);
  decoder.reset();
  EXPECT_EQ(decoder.stats().keptAccessUnits, 0u);
  EXPECT_EQ(decoder.push(packets[4], true).code(), Errc::Again);  // no IDR since the reset
}

TEST(H264OnDemandDecoder, WithoutADecoderDemandsAreUnsupportedAndNothingIsKept) {
  const auto packets = encode(4, 30);
  int asked = 0;
  H264OnDemandDecoder decoder({}, [&asked]() -> printcast::hal::Result<std::unique_ptr<H264Decoder>> {
    ++asked;
    return {Errc::Unsupported, "H.264 decoder: built without libavcodec (PRINTCAST_WITH_AVCODEC)"};
  });
  ASSERT_EQ(decoder.push(packets[0], false).code(), Errc::Again);
  auto picture = decoder.push(packets[1], true);
  ASSERT_EQ(picture.code(), Errc::Unsupported);
  EXPECT_NE(picture.error().message.find("libavcodec"), std::string::npos);
  EXPECT_EQ(decoder.stats().keptAccessUnits, 0u);
  EXPECT_EQ(decoder.push(packets[2], true).code(), Errc::Unsupported);
  EXPECT_EQ(decoder.stats().keptAccessUnits, 0u);
  EXPECT_EQ(asked, 1);  // asked once, not per access unit
}
