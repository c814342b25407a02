// SPDX-License-Identifier: MIT
// x264 Encoder: keyframes and parameter sets, forced IDRs, GOP, rate control, config errors.
#include "printcast/codecs/x264_encoder.h"

#include <gtest/gtest.h>

#include <cstddef>

#include <algorithm>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "printcast/codecs/h264.h"

namespace h264 = printcast::codecs::h264;
using printcast::codecs::createX264Encoder;
using printcast::codecs::X264Options;
using printcast::hal::EncoderConfig;
using printcast::hal::Errc;
using printcast::hal::Frame;
using printcast::hal::FramePool;
using printcast::hal::PacketPtr;
using printcast::hal::Size;
using printcast::hal::Timestamp;
namespace fourcc = printcast::hal::fourcc;

namespace {

// Start of row `y` of `plane` of a buffer being filled.
uint8_t* rowOf(const FramePool::Writable& w, int plane, int y) {
  return w.data(plane) + static_cast<std::ptrdiff_t>(y) * w.stride(plane);
}

// A textured picture that moves every frame, so the encoder has real work (and bits to spend).
class MovingPicture {
 public:
  explicit MovingPicture(Size size) : size_(size) {
    auto pool = FramePool::create(fourcc::kI420, size, 2);
    EXPECT_TRUE(pool.ok());
    pool_ = *pool;
  }

  Frame next() {
    auto w = pool_->acquire();
    EXPECT_TRUE(w.ok());
    const int shift = static_cast<int>(n_ * 3);
    for (int y = 0; y < size_.height; ++y) {
      uint8_t* row = rowOf(*w, 0, y);
      for (int x = 0; x < size_.width; ++x) {
        const uint32_t h =
            static_cast<uint32_t>((x + shift) * 2654435761u) ^ static_cast<uint32_t>(y * 40503u);
        row[x] = static_cast<uint8_t>(((x + shift) ^ y) * 4 + ((h >> 13) & 0x1f));
      }
    }
    for (int p = 1; p < 3; ++p) {
      for (int y = 0; y < size_.height / 2; ++y) {
        uint8_t* row = rowOf(*w, p, y);
        for (int x = 0; x < size_.width / 2; ++x)
          row[x] = static_cast<uint8_t>(128 + ((x + y + shift) % 64) - 32);
      }
    }
    const Timestamp ts(std::chrono::milliseconds(1000 + n_ * 33));
    return std::move(*w).publish(ts, n_++);
  }

 private:
  Size size_;
  std::shared_ptr<FramePool> pool_;
  uint64_t n_ = 0;
};

EncoderConfig makeConfig(Size size, int bitrateKbps = 1000, int gop = 60) {
  EncoderConfig c;
  c.size = size;
  c.fps = 30;
  c.bitrateKbps = bitrateKbps;
  c.gopFrames = gop;
  return c;
}

PacketPtr encodeOne(printcast::hal::Encoder& enc, const Frame& frame) {
  auto packet = enc.encode(frame);
  EXPECT_TRUE(packet.ok()) << packet.error().describe();
  return packet.ok() ? *packet : nullptr;
}

std::vector<uint8_t> nalTypes(const std::vector<uint8_t>& annexB) {
  std::vector<uint8_t> types;
  for (const auto& nal : h264::splitAnnexB(annexB)) types.push_back(nal.type());
  return types;
}

bool has(const std::vector<uint8_t>& v, uint8_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

TEST(X264Encoder, Info) {
  auto enc = createX264Encoder();
  EXPECT_EQ(enc->info().name, "x264");
  EXPECT_EQ(enc->info().codec, fourcc::kH264);
  EXPECT_EQ(enc->info().inputFormats, (std::vector<printcast::hal::FourCC>{fourcc::kI420}));
  EXPECT_EQ(enc->codecConfig(), nullptr);
}

TEST(X264Encoder, SpsAt640x480IsBaselineLevel30) {
  auto enc = createX264Encoder();
  ASSERT_TRUE(enc->configure(makeConfig({640, 480}, 512)).ok());
  const auto config = enc->codecConfig();
  ASSERT_NE(config, nullptr);
  const auto sps = h264::parseSps(config->sps);
  ASSERT_TRUE(sps.ok()) << sps.error().describe();
  EXPECT_EQ(sps->size, (Size{640, 480}));
  EXPECT_EQ(sps->profileIdc, 66);
  EXPECT_EQ(sps->levelIdc, 30);  // 1200 MBs at 30 fps: level 3 (Table A-1)
  ASSERT_TRUE(sps->fps.has_value());
  EXPECT_DOUBLE_EQ(*sps->fps, 30.0);
  EXPECT_EQ(config->pps.at(0) & 0x1f, h264::kPps);
}

TEST(X264Encoder, SpsAt1280x720IsBaselineLevel31) {
  auto enc = createX264Encoder();
  ASSERT_TRUE(enc->configure(makeConfig({1280, 720}, 2000)).ok());
  const auto config = enc->codecConfig();
  ASSERT_NE(config, nullptr);
  const auto sps = h264::parseSps(config->sps);
  ASSERT_TRUE(sps.ok()) << sps.error().describe();
  EXPECT_EQ(sps->size, (Size{1280, 720}));
  EXPECT_EQ(sps->profileIdc, 66);
  EXPECT_EQ(sps->levelIdc, 31);  // 3600 MBs at 30 fps: level 3.1
  // The avcC record for FLV/MP4 builds from it.
  const auto avcc = h264::avcDecoderConfigurationRecord(*config);
  ASSERT_TRUE(avcc.ok());
  EXPECT_EQ((*avcc)[1], 66);
}

// Frames decoded from JPEG are full range (JFIF): the SPS says so, or players stretch them.
TEST(X264Encoder, FullRangeFramesAreSignalledInTheVui) {
  auto limited = createX264Encoder();
  ASSERT_TRUE(limited->configure(makeConfig({320, 240})).ok());
  const auto limitedSps = h264::parseSps(limited->codecConfig()->sps);
  ASSERT_TRUE(limitedSps.ok()) << limitedSps.error().describe();
  EXPECT_FALSE(limitedSps->fullRange);
  auto full = createX264Encoder();
  EncoderConfig config = makeConfig({320, 240});
  config.fullRange = true;
  ASSERT_TRUE(full->configure(config).ok());
  const auto fullSps = h264::parseSps(full->codecConfig()->sps);
  ASSERT_TRUE(fullSps.ok()) << fullSps.error().describe();
  EXPECT_TRUE(fullSps->fullRange);
  EXPECT_EQ(fullSps->size, (Size{320, 240}));  // the VUI after the flag still parses
  ASSERT_TRUE(fullSps->fps.has_value());
  EXPECT_DOUBLE_EQ(*fullSps->fps, 30.0);
}

TEST(X264Encoder, SpsWithCroppingFor1080p) {
  // 1080 is not a multiple of 16: x264 codes 1088 rows and crops 8.
  auto enc = createX264Encoder();
  ASSERT_TRUE(enc->configure(makeConfig({1920, 1080}, 4000)).ok());
  const auto sps = h264::parseSps(enc->codecConfig()->sps);
  ASSERT_TRUE(sps.ok()) << sps.error().describe();
  EXPECT_EQ(sps->size, (Size{1920, 1080}));
}

TEST(X264Encoder, FirstPacketIsAKeyframeWithParameterSets) {
  const Size size{640, 480};
  auto enc = createX264Encoder();
  ASSERT_TRUE(enc->configure(makeConfig(size)).ok());
  MovingPicture pictures(size);
  const Frame frame = pictures.next();
  const PacketPtr first = encodeOne(*enc, frame);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->codec, fourcc::kH264);
  EXPECT_TRUE(first->keyframe);
  EXPECT_TRUE(h264::containsIdr(first->data));
  EXPECT_EQ(first->pts, frame.timestamp());
  EXPECT_EQ(first->sequence, frame.sequence());
  EXPECT_EQ(first->size, size);
  ASSERT_NE(first->config, nullptr);
  EXPECT_EQ(first->config, enc->codecConfig());
  const auto inBand = h264::extractCodecConfig(first->data);
  ASSERT_TRUE(inBand.has_value());
  EXPECT_EQ(*inBand, *first->config);
  // SPS and PPS precede the IDR slice.
  const auto types = nalTypes(first->data);
  ASSERT_FALSE(types.empty());
  EXPECT_EQ(types.front(), h264::kSps);
  EXPECT_EQ(types.back(), h264::kIdrSlice);

  const PacketPtr second = encodeOne(*enc, pictures.next());
  ASSERT_NE(second, nullptr);
  EXPECT_FALSE(second->keyframe);
  EXPECT_FALSE(h264::containsIdr(second->data));
  EXPECT_TRUE(has(nalTypes(second->data), h264::kNonIdrSlice));
  EXPECT_FALSE(has(nalTypes(second->data), h264::kSps));
  EXPECT_EQ(second->sequence, 1u);
}

TEST(X264Encoder, RequestKeyframeMakesTheNextPacketAnIdr) {
  const Size size{320, 240};
  auto enc = createX264Encoder();
  ASSERT_TRUE(enc->configure(makeConfig(size, 500, 250)).ok());
  MovingPicture pictures(size);
  for (int i = 0; i < 5; ++i) ASSERT_NE(encodeOne(*enc, pictures.next()), nullptr);
  // From another thread, as an HTTP client joining would.
  std::thread([&] { enc->requestKeyframe(); }).join();
  const PacketPtr forced = encodeOne(*enc, pictures.next());
  ASSERT_NE(forced, nullptr);
  EXPECT_TRUE(forced->keyframe);
  EXPECT_TRUE(h264::containsIdr(forced->data));
  EXPECT_TRUE(h264::extractCodecConfig(forced->data).has_value());
  const PacketPtr after = encodeOne(*enc, pictures.next());
  ASSERT_NE(after, nullptr);
  EXPECT_FALSE(after->keyframe);
  EXPECT_FALSE(h264::containsIdr(after->data));
}

TEST(X264Encoder, ReleaseThenEncodeStartsWithAnIdrWithTheSameParameterSets) {
  const Size size{320, 240};
  auto enc = createX264Encoder();
  enc->release();  // before configure(): nothing to free, and encode() still refuses
  MovingPicture pictures(size);
  EXPECT_EQ(enc->encode(pictures.next()).code(), Errc::InvalidArgument);
  ASSERT_TRUE(enc->configure(makeConfig(size, 500, 250)).ok());
  const auto config = enc->codecConfig();
  ASSERT_NE(config, nullptr);
  for (int i = 0; i < 5; ++i) ASSERT_NE(encodeOne(*enc, pictures.next()), nullptr);
  enc->release();
  enc->release();                         // idempotent
  EXPECT_EQ(enc->codecConfig(), config);  // FLV/fMP4 clients keep their sequence header
  const Frame frame = pictures.next();
  const PacketPtr reopened = encodeOne(*enc, frame);
  ASSERT_NE(reopened, nullptr);
  EXPECT_TRUE(reopened->keyframe);
  EXPECT_TRUE(h264::containsIdr(reopened->data));
  EXPECT_EQ(reopened->sequence, frame.sequence());
  EXPECT_EQ(reopened->config, config);
  const auto inBand = h264::extractCodecConfig(reopened->data);
  ASSERT_TRUE(inBand.has_value());
  EXPECT_EQ(*inBand, *config);
  const PacketPtr after = encodeOne(*enc, pictures.next());
  ASSERT_NE(after, nullptr);
  EXPECT_FALSE(after->keyframe);
}

TEST(X264Encoder, GopSetsTheIdrDistance) {
  const Size size{320, 240};
  auto enc = createX264Encoder();
  ASSERT_TRUE(enc->configure(makeConfig(size, 500, 10)).ok());
  MovingPicture pictures(size);
  std::vector<int> idrs;
  for (int i = 0; i < 31; ++i) {
    const PacketPtr p = encodeOne(*enc, pictures.next());
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->keyframe, h264::containsIdr(p->data)) << "frame " << i;
    if (p->keyframe) idrs.push_back(i);
  }
  EXPECT_EQ(idrs, (std::vector<int>{0, 10, 20, 30}));
}

TEST(X264Encoder, BitrateIsRoughlyHonoured) {
  const Size size{640, 480};
  for (int kbps : {300, 1500}) {
    auto enc = createX264Encoder();
    ASSERT_TRUE(enc->configure(makeConfig(size, kbps)).ok());
    MovingPicture pictures(size);
    size_t bytes = 0;
    constexpr int kFrames = 60;  // two seconds at 30 fps
    for (int i = 0; i < kFrames; ++i) {
      const PacketPtr p = encodeOne(*enc, pictures.next());
      ASSERT_NE(p, nullptr);
      bytes += p->data.size();
    }
    const double actualKbps = static_cast<double>(bytes) * 8.0 / 1000.0 / (kFrames / 30.0);
    RecordProperty("actualKbpsFor" + std::to_string(kbps), static_cast<int>(actualKbps));
    EXPECT_GT(actualKbps, kbps * 0.6) << "target " << kbps;
    EXPECT_LT(actualKbps, kbps * 1.4) << "target " << kbps;
  }
}

TEST(X264Encoder, ReconfigureChangesTheSize) {
  auto enc = createX264Encoder();
  ASSERT_TRUE(enc->configure(makeConfig({320, 240})).ok());
  ASSERT_TRUE(enc->configure(makeConfig({640, 480})).ok());
  EXPECT_EQ(h264::parseSps(enc->codecConfig()->sps)->size, (Size{640, 480}));
  MovingPicture pictures({640, 480});
  const PacketPtr p = encodeOne(*enc, pictures.next());
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->keyframe);
}

TEST(X264Encoder, InvalidConfigsAreRejectedWithNamedErrors) {
  struct Bad {
    EncoderConfig config;
    std::string expect;
  };
  const std::vector<Bad> cases = {
      {makeConfig({641, 480}), "size 641x480 must be even"},
      {makeConfig({640, 0}), "size 640x0"},
      {makeConfig({640, 480}, 63), "bitrateKbps 63 outside 64..50000"},
      {makeConfig({640, 480}, 50001), "bitrateKbps 50001 outside 64..50000"},
      {makeConfig({640, 480}, 1000, 0), "gopFrames 0 outside 1..1000"},
      {makeConfig({640, 480}, 1000, 1001), "gopFrames 1001 outside 1..1000"},
  };
  auto enc = createX264Encoder();
  for (const Bad& bad : cases) {
    const auto status = enc->configure(bad.config);
    ASSERT_FALSE(status.ok()) << bad.expect;
    EXPECT_EQ(status.code(), Errc::InvalidArgument);
    EXPECT_NE(status.error().message.find(bad.expect), std::string::npos) << status.error().message;
  }
  for (int fps : {0, 121}) {
    EncoderConfig c = makeConfig({640, 480});
    c.fps = fps;
    const auto status = enc->configure(c);
    ASSERT_FALSE(status.ok());
    EXPECT_NE(status.error().message.find("fps " + std::to_string(fps) + " outside 1..120"),
              std::string::npos)
        << status.error().message;
  }
  EXPECT_EQ(enc->codecConfig(), nullptr);  // nothing was configured

  X264Options badPreset;
  badPreset.preset = "warpspeed";
  auto bad = createX264Encoder(badPreset);
  const auto status = bad->configure(makeConfig({640, 480}));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), Errc::InvalidArgument);
  EXPECT_NE(status.error().message.find("warpspeed"), std::string::npos);
}

TEST(X264Encoder, WrongFramesAreRejected) {
  auto enc = createX264Encoder();
  MovingPicture pictures({320, 240});
  const Frame frame = pictures.next();
  EXPECT_EQ(enc->encode(frame).code(), Errc::InvalidArgument);  // not configured yet
  ASSERT_TRUE(enc->configure(makeConfig({640, 480})).ok());
  auto wrongSize = enc->encode(frame);
  ASSERT_FALSE(wrongSize.ok());
  EXPECT_EQ(wrongSize.code(), Errc::InvalidArgument);
  EXPECT_NE(wrongSize.error().message.find("320x240"), std::string::npos);

  auto nv12Pool = FramePool::create(fourcc::kNV12, {640, 480}, 1);
  ASSERT_TRUE(nv12Pool.ok());
  auto w = (*nv12Pool)->acquire();
  ASSERT_TRUE(w.ok());
  const Frame nv12 = std::move(*w).publish(Timestamp{}, 0);
  auto wrongFormat = enc->encode(nv12);
  ASSERT_FALSE(wrongFormat.ok());
  EXPECT_EQ(wrongFormat.code(), Errc::InvalidArgument);
  EXPECT_NE(wrongFormat.error().message.find("NV12"), std::string::npos);
}

TEST(X264Encoder, PacketsSurviveTheLengthPrefixedRoundTrip) {
  auto enc = createX264Encoder();
  ASSERT_TRUE(enc->configure(makeConfig({320, 240})).ok());
  MovingPicture pictures({320, 240});
  for (int i = 0; i < 3; ++i) {
    const PacketPtr p = encodeOne(*enc, pictures.next());
    ASSERT_NE(p, nullptr);
    const auto avcc = h264::annexBToLengthPrefixed(p->data, false);
    const auto back = h264::lengthPrefixedToAnnexB(avcc);
    ASSERT_TRUE(back.ok());
    const auto original = h264::splitAnnexB(p->data);
    const auto roundTrip = h264::splitAnnexB(*back);
    ASSERT_EQ(original.size(), roundTrip.size());
    for (size_t k = 0; k < original.size(); ++k) {
      EXPECT_TRUE(std::equal(original[k].bytes.begin(), original[k].bytes.end(), roundTrip[k].bytes.begin(),
                             roundTrip[k].bytes.end()));
    }
  }
}

// Constant-quality mode (timelapses): the size follows the quality, not the bitrate setting, and
// a lower CRF spends more bits on the same pictures.
TEST(X264Encoder, CrfModeIgnoresTheBitrateAndFollowsTheQuality) {
  const Size size{320, 240};
  auto bytesAt = [&](float crf) {
    printcast::codecs::X264Options o;
    o.crf = crf;
    auto enc = createX264Encoder(o);
    EXPECT_TRUE(enc->configure(makeConfig(size, 64)).ok());
    MovingPicture pictures(size);
    size_t bytes = 0;
    for (int i = 0; i < 20; ++i) {
      const PacketPtr p = encodeOne(*enc, pictures.next());
      if (p) bytes += p->data.size();
    }
    return bytes;
  };
  const size_t good = bytesAt(18);
  const size_t poor = bytesAt(40);
  RecordProperty("bytesCrf18", static_cast<int>(good));
  RecordProperty("bytesCrf40", static_cast<int>(poor));
  EXPECT_GT(good, 2 * poor);
  // 64 kbps for 20 frames at 30 fps would be ~5.3 KB: CRF 18 is far above it.
  EXPECT_GT(good, 20000u);

  printcast::codecs::X264Options bad;
  bad.crf = 52;
  auto st = createX264Encoder(bad)->configure(makeConfig(size));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("crf 52 outside 0..51"), std::string::npos) << st.error().message;
}
