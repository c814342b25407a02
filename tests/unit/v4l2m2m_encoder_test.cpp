// SPDX-License-Identifier: MIT
// The V4L2 M2M stateful encoder backend against a scripted fake kernel (fake_v4l2m2m_kernel.h).
#include "printcast/codecs/v4l2m2m_encoder.h"

#include <linux/videodev2.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fake_v4l2m2m_kernel.h"
#include "printcast/codecs/h264.h"

namespace {

namespace fs = std::filesystem;
namespace h264 = printcast::codecs::h264;
namespace fourcc = printcast::hal::fourcc;
using printcast::codecs::createV4l2M2mEncoder;
using printcast::codecs::V4l2M2mOptions;
using printcast::hal::Encoder;
using printcast::hal::EncoderConfig;
using printcast::hal::Errc;
using printcast::hal::FourCC;
using printcast::hal::Frame;
using printcast::hal::FramePool;
using printcast::hal::PacketPtr;
using printcast::hal::Size;
using printcast::hal::Timestamp;
using Kernel = printcast::testing::FakeM2mKernel;

// The sample values of the test picture: distinct per plane, row and column.
uint8_t lumaAt(int x, int y) { return static_cast<uint8_t>((x * 3 + y * 7) & 0xff); }
uint8_t cbAt(int x, int y) { return static_cast<uint8_t>(0x40 + ((x + 2 * y) & 0x3f)); }
uint8_t crAt(int x, int y) { return static_cast<uint8_t>(0x90 + ((2 * x + y) & 0x3f)); }

class V4l2M2mEncoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("printcast-m2m-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    addNode("video0", Kernel::Kind::Camera);
    addNode("video1", Kernel::Kind::Decoder);
    addNode("video11", Kernel::Kind::Encoder);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  void addNode(const std::string& name, Kernel::Kind kind) {
    { std::ofstream(dir_ / name); }  // a plain file stands in for the node: the fake opens it
    kernel_.nodes[fs::canonical(dir_ / name).string()] = kind;
  }

  V4l2M2mOptions options(FourCC coded = fourcc::kH264) {
    V4l2M2mOptions o;
    o.devDir = dir_.string();
    o.codedFormat = coded;
    o.syscalls = &kernel_;
    o.pollTimeoutMs = 1000;
    return o;
  }

  std::unique_ptr<Encoder> open(const V4l2M2mOptions& o) {
    auto enc = createV4l2M2mEncoder(o);
    EXPECT_TRUE(enc.ok()) << (enc.ok() ? "" : enc.error().describe());
    return enc.ok() ? std::move(*enc) : nullptr;
  }

  std::unique_ptr<Encoder> configured(Size size = {640, 480}, FourCC coded = fourcc::kH264) {
    auto enc = open(options(coded));
    if (!enc) return nullptr;
    EncoderConfig c;
    c.size = size;
    c.fps = 30;
    c.bitrateKbps = 2000;
    c.gopFrames = 30;
    auto st = enc->configure(c);
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().describe());
    return st.ok() ? std::move(enc) : nullptr;
  }

  // An I420 frame of the test picture (the pool pads strides to 64 bytes).
  static Frame frame(Size size, int64_t ms, uint64_t sequence) {
    auto pool = FramePool::create(fourcc::kI420, size, 1);
    EXPECT_TRUE(pool.ok());
    auto w = (*pool)->acquire();
    EXPECT_TRUE(w.ok());
    for (int y = 0; y < size.height; ++y) {
      for (int x = 0; x < size.width; ++x)
        w->data(0)[static_cast<size_t>(y * w->stride(0) + x)] = lumaAt(x, y);
    }
    for (int y = 0; y < size.height / 2; ++y) {
      for (int x = 0; x < size.width / 2; ++x) {
        w->data(1)[static_cast<size_t>(y * w->stride(1) + x)] = cbAt(x, y);
        w->data(2)[static_cast<size_t>(y * w->stride(2) + x)] = crAt(x, y);
      }
    }
    return std::move(*w).publish(Timestamp(std::chrono::milliseconds(ms)), sequence);
  }

  PacketPtr encodeOk(Encoder& enc, Size size, int64_t ms, uint64_t sequence) {
    auto p = enc.encode(frame(size, ms, sequence));
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().describe());
    return p.ok() ? *p : nullptr;
  }

  size_t controlSets(uint32_t id) const {
    size_t n = 0;
    for (const auto& c : kernel_.calls) n += c.rfind(Kernel::ctrl(id, 0).substr(0, 16), 0) == 0 ? 1 : 0;
    return n;
  }

  Kernel kernel_;
  fs::path dir_;
};

TEST_F(V4l2M2mEncoderTest, FindsTheEncoderNodeByCapabilityAmongCameraAndDecoder) {
  auto enc = open(options());
  ASSERT_TRUE(enc);
  EXPECT_EQ(kernel_.openKinds(), std::vector<Kernel::Kind>{Kernel::Kind::Encoder})
      << "the camera and decoder nodes were probed and closed again";
  const auto info = enc->info();
  EXPECT_EQ(info.name, "v4l2m2m");
  EXPECT_EQ(info.codec, fourcc::kH264);
  EXPECT_EQ(info.inputFormats, std::vector<FourCC>{fourcc::kI420});
  EXPECT_EQ(enc->codecConfig(), nullptr);

  auto byPath = createV4l2M2mEncoder([&] {
    auto o = options();
    o.device = (dir_ / "video11").string();
    return o;
  }());
  EXPECT_TRUE(byPath.ok()) << (byPath.ok() ? "" : byPath.error().describe());
}

TEST_F(V4l2M2mEncoderTest, RefusalNamesEveryNodeAndWhy) {
  kernel_.codedFormats = {FourCC::make('F', 'W', 'H', 'T')};  // an encoder, but not of H.264
  auto enc = createV4l2M2mEncoder(options());
  ASSERT_FALSE(enc.ok());
  EXPECT_EQ(enc.code(), Errc::Unsupported);
  const std::string& m = enc.error().message;
  for (const char* node : {"video0", "video1", "video11"}) EXPECT_NE(m.find(node), std::string::npos) << m;
  EXPECT_NE(m.find("not a memory-to-memory node"), std::string::npos) << m;
  EXPECT_NE(m.find("codes NV12, not H264"), std::string::npos) << m;  // the decoder
  EXPECT_NE(m.find("codes FWHT, not H264"), std::string::npos) << m;
  EXPECT_EQ(kernel_.openFds(), 0);

  auto o = options();
  o.device = (dir_ / "video0").string();
  auto camera = createV4l2M2mEncoder(o);
  ASSERT_FALSE(camera.ok());
  EXPECT_EQ(camera.code(), Errc::NoDevice);
  o.device = (dir_ / "video9").string();
  auto missing = createV4l2M2mEncoder(o);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.code(), Errc::NoDevice);
}

TEST_F(V4l2M2mEncoderTest, ChoosesI420WhenOfferedAndCopiesRowsWithTheDriversStride) {
  kernel_.rawFormats = {fourcc::kNV12, fourcc::kYUYV, fourcc::kI420};
  kernel_.strideAlign = 64;  // 200 -> 256 bytes per row
  const Size size{200, 100};
  auto enc = configured(size);
  ASSERT_TRUE(enc);
  EXPECT_EQ(kernel_.outputFormat().pixelformat, fourcc::kI420.code);
  ASSERT_TRUE(encodeOk(*enc, size, 1000, 1));
  const size_t bpl = 256;
  const size_t cbpl = bpl / 2;
  ASSERT_EQ(kernel_.lastInput.size(), bpl * 100 + 2 * cbpl * 50);
  for (int y : {0, 1, 57, 99}) {
    for (int x : {0, 1, 133, 199}) EXPECT_EQ(kernel_.lastInput[y * bpl + x], lumaAt(x, y)) << x << "," << y;
  }
  const size_t cb = bpl * 100;
  const size_t cr = cb + cbpl * 50;
  for (int y : {0, 13, 49}) {
    for (int x : {0, 7, 99}) {
      EXPECT_EQ(kernel_.lastInput[cb + y * cbpl + x], cbAt(x, y));
      EXPECT_EQ(kernel_.lastInput[cr + y * cbpl + x], crAt(x, y));
    }
  }
}

TEST_F(V4l2M2mEncoderTest, FallsBackToNv12AndInterleavesTheChroma) {
  kernel_.rawFormats = {fourcc::kYUYV, fourcc::kNV12};
  const Size size{64, 32};
  auto enc = configured(size);
  ASSERT_TRUE(enc);
  EXPECT_EQ(kernel_.outputFormat().pixelformat, fourcc::kNV12.code);
  ASSERT_TRUE(encodeOk(*enc, size, 1000, 1));
  ASSERT_EQ(kernel_.lastInput.size(), 64u * 32u * 3u / 2u);
  EXPECT_EQ(kernel_.lastInput[5 * 64 + 9], lumaAt(9, 5));
  const size_t uv = 64 * 32;
  for (int y : {0, 15}) {
    for (int x : {0, 31}) {
      EXPECT_EQ(kernel_.lastInput[uv + y * 64 + 2 * x], cbAt(x, y));
      EXPECT_EQ(kernel_.lastInput[uv + y * 64 + 2 * x + 1], crAt(x, y));
    }
  }
}

TEST_F(V4l2M2mEncoderTest, YuyvOnlyEncoderGetsPackedPixels) {
  kernel_.rawFormats = {fourcc::kYUYV};
  const Size size{16, 8};
  auto enc = configured(size);
  ASSERT_TRUE(enc);
  ASSERT_TRUE(encodeOk(*enc, size, 1000, 1));
  ASSERT_EQ(kernel_.lastInput.size(), 16u * 2u * 8u);
  const size_t row = 3 * 32;
  EXPECT_EQ(kernel_.lastInput[row + 4 * 2], lumaAt(4, 3));
  EXPECT_EQ(kernel_.lastInput[row + 4 * 2 + 1], cbAt(2, 1));
  EXPECT_EQ(kernel_.lastInput[row + 4 * 2 + 2], lumaAt(5, 3));
  EXPECT_EQ(kernel_.lastInput[row + 4 * 2 + 3], crAt(2, 1));
}

TEST_F(V4l2M2mEncoderTest, DriverRoundedHeightIsCroppedAndPacketsCarryTheVisibleSize) {
  kernel_.rawFormats = {fourcc::kI420};
  kernel_.heightAlign = 16;  // bcm2835-codec: 1080 -> 1088
  kernel_.strideAlign = 32;
  const Size size{1920, 1080};
  auto enc = configured(size);
  ASSERT_TRUE(enc);
  EXPECT_EQ(kernel_.outputFormat().height, 1088u);
  ASSERT_EQ(kernel_.crops.size(), 1u);
  EXPECT_EQ(kernel_.crops[0].width, 1920u);
  EXPECT_EQ(kernel_.crops[0].height, 1080u);
  EXPECT_EQ(kernel_.controls[V4L2_CID_MPEG_VIDEO_H264_LEVEL], V4L2_MPEG_VIDEO_H264_LEVEL_4_0);
  auto p = encodeOk(*enc, size, 1000, 1);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->size, size);
  const size_t bpl = 1920;
  ASSERT_EQ(kernel_.lastInput.size(), bpl * 1088 * 3 / 2);
  EXPECT_EQ(kernel_.lastInput[1079 * bpl + 1919], lumaAt(1919, 1079));
  EXPECT_EQ(kernel_.lastInput[1080 * bpl], 16) << "the padding rows are black";
  const size_t cb = bpl * 1088;
  EXPECT_EQ(kernel_.lastInput[cb + 539 * (bpl / 2) + 959], cbAt(959, 539));
  EXPECT_EQ(kernel_.lastInput[cb + 543 * (bpl / 2)], 128);
  const size_t cr = cb + (bpl / 2) * 544;
  EXPECT_EQ(kernel_.lastInput[cr + 539 * (bpl / 2) + 959], crAt(959, 539));
}

TEST_F(V4l2M2mEncoderTest, SetsRateAndH264ControlsAndSurvivesRefusedOnes) {
  kernel_.rejectedControls = {V4L2_CID_MPEG_VIDEO_BITRATE};
  auto enc = open(options());
  ASSERT_TRUE(enc);
  EncoderConfig c;
  c.size = {1280, 720};
  c.fps = 30;
  c.bitrateKbps = 3000;
  c.gopFrames = 45;
  ASSERT_TRUE(enc->configure(c).ok());
  auto& ctl = kernel_.controls;
  EXPECT_EQ(ctl.count(V4L2_CID_MPEG_VIDEO_BITRATE), 0u) << "refused, and configure() went on";
  EXPECT_EQ(kernel_.count(Kernel::ctrl(V4L2_CID_MPEG_VIDEO_BITRATE, 3000000)), 1u);
  EXPECT_EQ(ctl[V4L2_CID_MPEG_VIDEO_GOP_SIZE], 45);
  EXPECT_EQ(ctl[V4L2_CID_MPEG_VIDEO_H264_I_PERIOD], 45);
  EXPECT_EQ(ctl[V4L2_CID_MPEG_VIDEO_H264_PROFILE], V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE);
  EXPECT_EQ(ctl[V4L2_CID_MPEG_VIDEO_H264_LEVEL], V4L2_MPEG_VIDEO_H264_LEVEL_3_1);
  EXPECT_EQ(ctl[V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER], 1);
  EXPECT_LT(ctl[V4L2_CID_MPEG_VIDEO_H264_MIN_QP], ctl[V4L2_CID_MPEG_VIDEO_H264_MAX_QP]);
  EXPECT_EQ(kernel_.lastTimePerFrame.numerator, 1u);
  EXPECT_EQ(kernel_.lastTimePerFrame.denominator, 30u);
  EXPECT_LT(kernel_.lastIndexOf("S_FMT CAPTURE"), kernel_.lastIndexOf("S_FMT OUTPUT"))
      << "dev-encoder.rst: the coded format first";
  EXPECT_LT(kernel_.lastIndexOf("S_FMT OUTPUT"), kernel_.lastIndexOf("REQBUFS OUTPUT"));
  EXPECT_EQ(kernel_.count("QBUF CAPTURE"), 4u);
  EXPECT_EQ(kernel_.count("STREAMON OUTPUT"), 1u);
  EXPECT_EQ(kernel_.count("STREAMON CAPTURE"), 1u);
}

TEST_F(V4l2M2mEncoderTest, ProfileFallsBackToBaselineAndOldDriversGetSCtrl) {
  kernel_.extControls = false;
  kernel_.rejectedValues = {
      {V4L2_CID_MPEG_VIDEO_H264_PROFILE, V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE}};
  auto enc = configured({320, 240});
  ASSERT_TRUE(enc);
  EXPECT_EQ(kernel_.count(Kernel::ctrl(V4L2_CID_MPEG_VIDEO_H264_PROFILE,
                                       V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE)),
            1u);
  EXPECT_EQ(
      kernel_.count(Kernel::ctrl(V4L2_CID_MPEG_VIDEO_H264_PROFILE, V4L2_MPEG_VIDEO_H264_PROFILE_BASELINE)),
      1u);
  EXPECT_EQ(kernel_.controls[V4L2_CID_MPEG_VIDEO_H264_PROFILE], V4L2_MPEG_VIDEO_H264_PROFILE_BASELINE);
  EXPECT_GT(kernel_.count("S_CTRL"), 5u);
  EXPECT_EQ(kernel_.controls[V4L2_CID_MPEG_VIDEO_GOP_SIZE], 30);
  // 300 macroblocks at 30 fps and 2 Mbit/s: level 2.0 (H.264 Table A-1).
  EXPECT_EQ(kernel_.controls[V4L2_CID_MPEG_VIDEO_H264_LEVEL], V4L2_MPEG_VIDEO_H264_LEVEL_2_0);
}

TEST_F(V4l2M2mEncoderTest, SParmWithoutSupportIsTolerated) {
  kernel_.ioctlErrno["S_PARM"] = ENOTTY;  // vicodec
  auto enc = configured({320, 240});
  ASSERT_TRUE(enc);
  EXPECT_TRUE(encodeOk(*enc, {320, 240}, 1000, 1));
}

TEST_F(V4l2M2mEncoderTest, RefusesOutOfRangeConfigNamingTheField) {
  auto enc = open(options());
  ASSERT_TRUE(enc);
  auto notYet = enc->encode(frame({64, 64}, 1, 1));
  ASSERT_FALSE(notYet.ok());
  EXPECT_EQ(notYet.code(), Errc::InvalidArgument);
  EXPECT_NE(notYet.error().message.find("not configured"), std::string::npos);
  const auto refuse = [&](EncoderConfig c, const char* field) {
    auto st = enc->configure(c);
    ASSERT_FALSE(st.ok()) << field;
    EXPECT_EQ(st.code(), Errc::InvalidArgument);
    EXPECT_NE(st.error().message.find(field), std::string::npos) << st.error().message;
  };
  EncoderConfig c;
  c.fps = 0;
  refuse(c, "fps");
  c = {};
  c.size = {641, 480};
  refuse(c, "size");
  c = {};
  c.bitrateKbps = 60000;
  refuse(c, "bitrateKbps");
  c = {};
  c.gopFrames = 0;
  refuse(c, "gopFrames");
  EXPECT_EQ(kernel_.count("S_FMT CAPTURE"), 0u);
}

TEST_F(V4l2M2mEncoderTest, FailedConfigureLeavesItUnconfigured) {
  kernel_.ioctlErrno["REQBUFS CAPTURE"] = ENOMEM;
  auto enc = open(options());
  ASSERT_TRUE(enc);
  EncoderConfig c;
  ASSERT_FALSE(enc->configure(c).ok());
  EXPECT_EQ(kernel_.liveMappings(), 0u) << "the OUTPUT buffers mapped before the failure are unmapped";
  auto p = enc->encode(frame(c.size, 1, 1));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.code(), Errc::InvalidArgument);
  kernel_.ioctlErrno.clear();
  ASSERT_TRUE(enc->configure(c).ok());
  EXPECT_TRUE(encodeOk(*enc, c.size, 1, 1));
}

TEST_F(V4l2M2mEncoderTest, PacketsCarryPtsSequenceKeyframeAndCodecConfig) {
  const Size size{320, 240};
  auto enc = configured(size);
  ASSERT_TRUE(enc);
  std::vector<PacketPtr> packets;
  for (int i = 0; i < 3; ++i)
    packets.push_back(encodeOk(*enc, size, 5000 + 33 * i, 100u + static_cast<uint64_t>(i)));
  ASSERT_EQ(packets.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(packets[static_cast<size_t>(i)]);
    EXPECT_EQ(packets[static_cast<size_t>(i)]->pts, Timestamp(std::chrono::milliseconds(5000 + 33 * i)));
    EXPECT_EQ(packets[static_cast<size_t>(i)]->sequence, 100u + static_cast<uint64_t>(i));
    EXPECT_EQ(packets[static_cast<size_t>(i)]->codec, fourcc::kH264);
    EXPECT_EQ(packets[static_cast<size_t>(i)]->size, size);
  }
  EXPECT_TRUE(packets[0]->keyframe);
  EXPECT_FALSE(packets[1]->keyframe);
  EXPECT_EQ(packets[0]->data, Kernel::annexB({Kernel::sps(), Kernel::pps(), Kernel::idr()}));
  EXPECT_EQ(packets[1]->data, Kernel::annexB({Kernel::slice()}));
  ASSERT_TRUE(packets[0]->config);
  EXPECT_EQ(packets[0]->config->sps, Kernel::sps());
  EXPECT_EQ(packets[0]->config->pps, Kernel::pps());
  ASSERT_TRUE(enc->codecConfig());
  EXPECT_EQ(*enc->codecConfig(), *packets[0]->config);
  EXPECT_EQ(packets[2]->config, packets[0]->config) << "one shared CodecConfig while it does not change";
}

TEST_F(V4l2M2mEncoderTest, IdrWithoutParameterSetsGetsThemPrepended) {
  kernel_.spsOnEveryIdr = false;
  kernel_.keyframeFlag = false;  // keyframes known from the bitstream alone
  auto enc = open(options());
  ASSERT_TRUE(enc);
  EncoderConfig c;
  c.size = {64, 64};
  c.gopFrames = 2;
  ASSERT_TRUE(enc->configure(c).ok());
  auto first = encodeOk(*enc, c.size, 10, 1);
  auto second = encodeOk(*enc, c.size, 20, 2);
  auto third = encodeOk(*enc, c.size, 30, 3);
  ASSERT_TRUE(first && second && third);
  EXPECT_TRUE(first->keyframe);
  EXPECT_FALSE(second->keyframe);
  EXPECT_TRUE(third->keyframe);
  EXPECT_EQ(third->data, Kernel::annexB({Kernel::sps(), Kernel::pps(), Kernel::idr()}));
  EXPECT_TRUE(h264::containsIdr(third->data));
}

TEST_F(V4l2M2mEncoderTest, RequestKeyframeSetsForceKeyFrameBeforeTheNextQbuf) {
  const Size size{64, 64};
  auto enc = configured(size);
  ASSERT_TRUE(enc);
  ASSERT_TRUE(encodeOk(*enc, size, 10, 1));
  auto second = encodeOk(*enc, size, 20, 2);
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->keyframe);
  EXPECT_EQ(kernel_.count(Kernel::ctrl(V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, 1)), 0u);
  enc->requestKeyframe();
  const auto before = kernel_.calls.size();
  auto third = encodeOk(*enc, size, 30, 3);
  ASSERT_TRUE(third);
  EXPECT_TRUE(third->keyframe);
  const auto force = kernel_.lastIndexOf(Kernel::ctrl(V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, 1));
  EXPECT_GE(force, static_cast<ptrdiff_t>(before)) << "set by the third encode";
  EXPECT_LT(force, kernel_.lastIndexOf("QBUF OUTPUT")) << "before its picture is queued";
  auto fourth = encodeOk(*enc, size, 40, 4);
  ASSERT_TRUE(fourth);
  EXPECT_FALSE(fourth->keyframe);
  EXPECT_EQ(kernel_.count(Kernel::ctrl(V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, 1)), 1u) << "once per request";
}

TEST_F(V4l2M2mEncoderTest, ReconfigureDrainsUntilLastThenSetsTheFormatsAgain) {
  auto enc = configured({320, 240});
  ASSERT_TRUE(enc);
  ASSERT_TRUE(encodeOk(*enc, {320, 240}, 10, 1));
  kernel_.calls.clear();
  EncoderConfig c;
  c.size = {640, 360};
  ASSERT_TRUE(enc->configure(c).ok());
  const auto& calls = kernel_.calls;
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.front(), "ENCODER_CMD");
  EXPECT_EQ(kernel_.lastBuffers, 1) << "the drain dequeued the LAST buffer";
  const auto streamoff = kernel_.lastIndexOf("STREAMOFF CAPTURE");
  ASSERT_GT(streamoff, 0);
  EXPECT_LT(kernel_.lastIndexOf("DQBUF CAPTURE"), streamoff);
  EXPECT_LT(streamoff, kernel_.lastIndexOf("S_FMT CAPTURE"));
  EXPECT_EQ(kernel_.count("REQBUFS OUTPUT"), 2u) << "freed (count 0) and allocated again";
  EXPECT_EQ(kernel_.outputFormat().width, 640u);
  EXPECT_EQ(kernel_.outputFormat().height, 360u);
  auto p = encodeOk(*enc, c.size, 20, 2);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->keyframe);
  EXPECT_EQ(p->size, c.size);
  auto wrong = enc->encode(frame({320, 240}, 30, 3));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.code(), Errc::InvalidArgument);
}

TEST_F(V4l2M2mEncoderTest, AHungEncoderTimesOutWithinPollTimeout) {
  kernel_.produce = false;
  auto o = options();
  o.pollTimeoutMs = 50;
  auto enc = open(o);
  ASSERT_TRUE(enc);
  ASSERT_TRUE(enc->configure(EncoderConfig{}).ok());
  const auto start = std::chrono::steady_clock::now();
  auto p = enc->encode(frame({640, 480}, 10, 1));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.code(), Errc::Timeout);
  EXPECT_NE(p.error().message.find("hung"), std::string::npos) << p.error().message;
  EXPECT_GE(elapsed, std::chrono::milliseconds(45));
  EXPECT_LT(elapsed, std::chrono::milliseconds(1000));
  // The next encode starts a fresh session and works once the encoder does.
  kernel_.produce = true;
  auto again = encodeOk(*enc, {640, 480}, 20, 2);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->keyframe);
  EXPECT_EQ(again->sequence, 2u);
}

TEST_F(V4l2M2mEncoderTest, UnplugGivesDisconnectedForGood) {
  auto enc = configured({64, 64});
  ASSERT_TRUE(enc);
  ASSERT_TRUE(encodeOk(*enc, {64, 64}, 10, 1));
  kernel_.ioctlErrno["QBUF OUTPUT"] = ENODEV;
  auto p = enc->encode(frame({64, 64}, 20, 2));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.code(), Errc::Disconnected);
  kernel_.ioctlErrno.clear();
  auto later = enc->encode(frame({64, 64}, 30, 3));
  ASSERT_FALSE(later.ok());
  EXPECT_EQ(later.code(), Errc::Disconnected);
  auto reconfigure = enc->configure(EncoderConfig{});
  ASSERT_FALSE(reconfigure.ok());
  EXPECT_EQ(reconfigure.code(), Errc::Disconnected);
  enc.reset();
  EXPECT_EQ(kernel_.liveMappings(), 0u);
  EXPECT_EQ(kernel_.openFds(), 0);
}

TEST_F(V4l2M2mEncoderTest, ReleaseFreesEverythingAndEncodeReopensWithAKeyframe) {
  const Size size{64, 64};
  auto enc = configured(size);
  ASSERT_TRUE(enc);
  ASSERT_TRUE(encodeOk(*enc, size, 10, 1));
  auto p = encodeOk(*enc, size, 20, 2);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->keyframe);
  const auto config = enc->codecConfig();
  enc->release();
  EXPECT_EQ(kernel_.openFds(), 0);
  EXPECT_EQ(kernel_.liveMappings(), 0u);
  EXPECT_FALSE(kernel_.streaming());
  EXPECT_EQ(enc->codecConfig(), config) << "the configuration and parameter sets stay";
  kernel_.calls.clear();
  auto reopened = encodeOk(*enc, size, 30, 3);
  ASSERT_TRUE(reopened);
  EXPECT_TRUE(reopened->keyframe);
  EXPECT_EQ(kernel_.count("open"), 1u);
  EXPECT_EQ(kernel_.openKinds(), std::vector<Kernel::Kind>{Kernel::Kind::Encoder});
  EXPECT_EQ(kernel_.outputFormat().width, 64u);
}

TEST_F(V4l2M2mEncoderTest, DestructorStopsStreamingAndUnmaps) {
  auto enc = configured({64, 64});
  ASSERT_TRUE(enc);
  ASSERT_TRUE(encodeOk(*enc, {64, 64}, 10, 1));
  EXPECT_GT(kernel_.liveMappings(), 0u);
  enc.reset();
  EXPECT_FALSE(kernel_.streaming());
  EXPECT_EQ(kernel_.liveMappings(), 0u);
  EXPECT_EQ(kernel_.openFds(), 0);
}

TEST_F(V4l2M2mEncoderTest, FwhtOnASinglePlanarNodeLikeVicodec) {
  const FourCC fwht = FourCC::make('F', 'W', 'H', 'T');
  kernel_.mplane = false;
  kernel_.codedFormats = {fwht};
  kernel_.rawFormats = {fourcc::kYUYV, fourcc::kI420};
  kernel_.ioctlErrno["S_PARM"] = ENOTTY;
  kernel_.rejectedControls = {V4L2_CID_MPEG_VIDEO_BITRATE, V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME};
  const Size size{64, 48};
  auto enc = configured(size, fwht);
  ASSERT_TRUE(enc);
  EXPECT_EQ(enc->info().codec, fwht);
  EXPECT_EQ(kernel_.outputFormat().pixelformat, fourcc::kI420.code);
  for (uint32_t id : {V4L2_CID_MPEG_VIDEO_H264_I_PERIOD, V4L2_CID_MPEG_VIDEO_H264_PROFILE,
                      V4L2_CID_MPEG_VIDEO_H264_LEVEL, V4L2_CID_MPEG_VIDEO_H264_MIN_QP,
                      V4L2_CID_MPEG_VIDEO_H264_MAX_QP, V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER}) {
    EXPECT_EQ(controlSets(id), 0u) << std::hex << id;
  }
  EXPECT_EQ(kernel_.controls[V4L2_CID_MPEG_VIDEO_GOP_SIZE], 30);
  auto first = encodeOk(*enc, size, 10, 7);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->codec, fwht);
  EXPECT_EQ(first->data, Kernel::fwht(0, true));
  EXPECT_TRUE(first->keyframe) << "the I-frame flag of its FWHT header (vicodec flags no buffer)";
  EXPECT_EQ(first->config, nullptr);
  EXPECT_EQ(first->sequence, 7u);
  enc->requestKeyframe();  // refused by the driver: noted, encoding goes on
  auto second = encodeOk(*enc, size, 20, 8);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->data, Kernel::fwht(1, false));
  EXPECT_FALSE(second->keyframe);
  EXPECT_EQ(enc->codecConfig(), nullptr);
}

// --- DMA-BUF import (a camera frame straight from its V4L2 buffer) ---------------------------------

// A frame whose buffer is a memfd standing for a camera's exported DMA-BUF: `format` (YU12 or
// NV12) of `size` in the single-buffer layout with `stride` bytes per luma row, holding the test
// picture. `released` counts dropped last leases.
Frame dmabufFrame(FourCC format, Size size, int stride, int64_t ms, uint64_t sequence,
                  std::atomic<int>* released) {
  const auto w = static_cast<size_t>(size.width);
  const auto h = static_cast<size_t>(size.height);
  const auto bpl = static_cast<size_t>(stride);
  const size_t luma = bpl * h;
  const size_t chroma = format == fourcc::kNV12 ? bpl * (h / 2) : (bpl / 2) * (h / 2);
  const size_t length = format == fourcc::kNV12 ? luma + chroma : luma + 2 * chroma;
  const int fd = ::memfd_create("printcast-test-dmabuf", MFD_CLOEXEC);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(length)), 0);
  auto* mem = static_cast<uint8_t*>(::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  EXPECT_NE(mem, MAP_FAILED);
  for (size_t y = 0; y < h; ++y) {
    for (size_t x = 0; x < w; ++x) mem[y * bpl + x] = lumaAt(static_cast<int>(x), static_cast<int>(y));
  }
  for (size_t y = 0; y < h / 2; ++y) {
    for (size_t x = 0; x < w / 2; ++x) {
      const auto cx = static_cast<int>(x);
      const auto cy = static_cast<int>(y);
      if (format == fourcc::kNV12) {
        mem[luma + y * bpl + 2 * x] = cbAt(cx, cy);
        mem[luma + y * bpl + 2 * x + 1] = crAt(cx, cy);
      } else {
        mem[luma + y * (bpl / 2) + x] = cbAt(cx, cy);
        mem[luma + chroma + y * (bpl / 2) + x] = crAt(cx, cy);
      }
    }
  }
  printcast::hal::FrameDescription d;
  d.format = format;
  d.size = size;
  d.timestamp = Timestamp(std::chrono::milliseconds(ms));
  d.sequence = sequence;
  d.planes[0] = {mem, stride, luma};
  if (format == fourcc::kNV12) {
    d.planeCount = 2;
    d.planes[1] = {mem + luma, stride, chroma};
  } else {
    d.planeCount = 3;
    d.planes[1] = {mem + luma, stride / 2, chroma};
    d.planes[2] = {mem + luma + chroma, stride / 2, chroma};
  }
  d.bytesUsed = length;
  d.dmabufFd = fd;
  d.dmabufLength = length;
  return Frame::adopt(d, [mem, length, fd, released] {
    ::munmap(mem, length);
    ::close(fd);
    if (released != nullptr) ++*released;
  });
}

class V4l2M2mDmabufTest : public V4l2M2mEncoderTest, public ::testing::WithParamInterface<bool> {};

TEST_P(V4l2M2mDmabufTest, ImportsTheFramesDmabufAndHoldsItsLeaseUntilTheOutputBufferIsDequeued) {
  kernel_.mplane = GetParam();
  kernel_.rawFormats = {fourcc::kI420};
  const Size size{64, 32};
  auto enc = configured(size);
  ASSERT_TRUE(enc);
  EXPECT_EQ(enc->info().inputFormats, std::vector<FourCC>{fourcc::kI420}) << "YU12 is the native format";
  std::atomic<int> released{0};
  Frame first = dmabufFrame(fourcc::kI420, size, 64, 10, 1, &released);
  Frame second = dmabufFrame(fourcc::kI420, size, 64, 20, 2, &released);

  kernel_.holdOutput = true;  // the driver is still reading the first frame when encode() returns
  auto p = enc->encode(first);
  ASSERT_TRUE(p.ok()) << p.error().describe();
  EXPECT_EQ((*p)->sequence, 1u);
  EXPECT_EQ(kernel_.outputMemory, (std::vector<uint32_t>{V4L2_MEMORY_MMAP, V4L2_MEMORY_DMABUF}))
      << "the OUTPUT queue switched to DMABUF for the first importable frame";
  ASSERT_EQ(kernel_.imported.size(), 1u);
  EXPECT_EQ(kernel_.imported[0].fd, first.dmabufFd());
  EXPECT_EQ(kernel_.imported[0].length, first.dmabufLength());
  EXPECT_EQ(kernel_.imported[0].bytesused, 64u * 32u * 3u / 2u);
  ASSERT_EQ(kernel_.lastInput.size(), 64u * 32u * 3u / 2u);
  EXPECT_EQ(kernel_.lastInput[5 * 64 + 9], lumaAt(9, 5)) << "the driver read the frame's own memory";
  EXPECT_EQ(kernel_.lastInput[64 * 32 + 3 * 32 + 7], cbAt(7, 3));
  EXPECT_EQ(first.leaseCount(), 2) << "the encoder holds a lease while the buffer is queued";
  auto path = enc->inputPath();
  EXPECT_EQ(path.path, "dmabuf");
  EXPECT_EQ(path.reason, "");
  EXPECT_EQ(path.importedFrames, 1u);
  EXPECT_EQ(path.copiedFrames, 0u);

  // The driver gives the buffer back: the next encode() dequeues it and drops the lease.
  kernel_.holdOutput = false;
  kernel_.releaseOutputs();
  ASSERT_TRUE(enc->encode(second).ok());
  EXPECT_EQ(first.leaseCount(), 1) << "released once its OUTPUT buffer was dequeued";
  EXPECT_EQ(second.leaseCount(), 1) << "dequeued before encode() returned";
  EXPECT_EQ(kernel_.outputsWithDriver(), 0u);
  ASSERT_EQ(kernel_.imported.size(), 2u);
  EXPECT_NE(kernel_.imported[1].index, kernel_.imported[0].index) << "another dma-buf, another slot";

  // The same dma-buf comes back to the same slot (vb2 keeps the import attached).
  ASSERT_TRUE(enc->encode(first).ok());
  ASSERT_TRUE(enc->encode(second).ok());
  ASSERT_EQ(kernel_.imported.size(), 4u);
  EXPECT_EQ(kernel_.imported[2].index, kernel_.imported[0].index);
  EXPECT_EQ(kernel_.imported[3].index, kernel_.imported[1].index);
  EXPECT_EQ(kernel_.outputMemory.size(), 2u) << "no further switch";
  EXPECT_EQ(enc->inputPath().importedFrames, 4u);

  // Destruction with a frame still queued: STREAMOFF, then the lease drops.
  kernel_.holdOutput = true;
  ASSERT_TRUE(enc->encode(first).ok());
  EXPECT_EQ(first.leaseCount(), 2);
  enc.reset();
  EXPECT_EQ(first.leaseCount(), 1);
  EXPECT_FALSE(kernel_.streaming());
  EXPECT_EQ(kernel_.openFds(), 0);
  first = Frame();
  second = Frame();
  EXPECT_EQ(released.load(), 2);
}

INSTANTIATE_TEST_SUITE_P(MplaneAndSinglePlanar, V4l2M2mDmabufTest, ::testing::Bool());

TEST_F(V4l2M2mEncoderTest, DmabufRefusedByReqbufsFallsBackToMmapForGoodWithTheReason) {
  kernel_.rawFormats = {fourcc::kI420};
  kernel_.dmabufImport = false;
  const Size size{64, 32};
  auto enc = configured(size);
  ASSERT_TRUE(enc);
  Frame f = dmabufFrame(fourcc::kI420, size, 64, 10, 1, nullptr);
  auto p = enc->encode(f);
  ASSERT_TRUE(p.ok()) << p.error().describe();
  EXPECT_EQ((*p)->sequence, 1u);
  EXPECT_TRUE(kernel_.imported.empty());
  EXPECT_EQ(kernel_.outputMemory, (std::vector<uint32_t>{V4L2_MEMORY_MMAP, V4L2_MEMORY_MMAP}))
      << "REQBUFS DMABUF refused, MMAP buffers again";
  EXPECT_EQ(kernel_.lastInput[5 * 64 + 9], lumaAt(9, 5)) << "the frame was copied instead";
  EXPECT_EQ(f.leaseCount(), 1) << "a copied frame is not held";
  auto path = enc->inputPath();
  EXPECT_EQ(path.path, "mmap");
  EXPECT_NE(path.reason.find("the driver refused DMABUF import"), std::string::npos) << path.reason;
  EXPECT_NE(path.reason.find("VIDIOC_REQBUFS"), std::string::npos) << path.reason;
  EXPECT_EQ(path.copiedFrames, 1u);
  // Not asked again, also after a reconfigure.
  ASSERT_TRUE(enc->encode(f).ok());
  EncoderConfig c;
  c.size = size;
  ASSERT_TRUE(enc->configure(c).ok());
  ASSERT_TRUE(enc->encode(f).ok());
  EXPECT_EQ(kernel_.outputMemory.size(), 3u) << "only the reconfigure's own MMAP REQBUFS";
  EXPECT_EQ(kernel_.outputMemory.back(), static_cast<uint32_t>(V4L2_MEMORY_MMAP));
  EXPECT_EQ(enc->inputPath().reason, path.reason);
}

TEST_F(V4l2M2mEncoderTest, DmabufRefusedByQbufFallsBackToMmapWithTheReason) {
  kernel_.rawFormats = {fourcc::kI420};
  kernel_.dmabufQbufErrno = EINVAL;  // vb2 could not attach this dma-buf
  const Size size{64, 32};
  auto enc = configured(size);
  ASSERT_TRUE(enc);
  Frame f = dmabufFrame(fourcc::kI420, size, 64, 10, 1, nullptr);
  auto p = enc->encode(f);
  ASSERT_TRUE(p.ok()) << p.error().describe();
  EXPECT_EQ(kernel_.outputMemory,
            (std::vector<uint32_t>{V4L2_MEMORY_MMAP, V4L2_MEMORY_DMABUF, V4L2_MEMORY_MMAP}));
  EXPECT_EQ(kernel_.lastInput[5 * 64 + 9], lumaAt(9, 5));
  EXPECT_EQ(f.leaseCount(), 1);
  const auto path = enc->inputPath();
  EXPECT_EQ(path.path, "mmap");
  EXPECT_NE(path.reason.find("VIDIOC_QBUF"), std::string::npos) << path.reason;
  EXPECT_NE(path.reason.find("Invalid argument"), std::string::npos) << path.reason;
  ASSERT_TRUE(enc->encode(f).ok());
  EXPECT_EQ(kernel_.outputMemory.size(), 3u);
}

TEST_F(V4l2M2mEncoderTest, AStrideOtherThanTheDriversIsCopiedRowByRow) {
  kernel_.rawFormats = {fourcc::kI420};
  const Size size{64, 32};
  auto enc = configured(size);
  ASSERT_TRUE(enc);
  Frame f = dmabufFrame(fourcc::kI420, size, 128, 10, 1, nullptr);  // a camera padding its rows
  ASSERT_TRUE(enc->encode(f).ok());
  EXPECT_TRUE(kernel_.imported.empty());
  EXPECT_EQ(kernel_.outputMemory, std::vector<uint32_t>{V4L2_MEMORY_MMAP});
  ASSERT_EQ(kernel_.lastInput.size(), 64u * 32u * 3u / 2u);
  EXPECT_EQ(kernel_.lastInput[31 * 64 + 63], lumaAt(63, 31));
  EXPECT_EQ(kernel_.lastInput[64 * 32 + 15 * 32 + 31], cbAt(31, 15));
  const auto path = enc->inputPath();
  EXPECT_EQ(path.path, "mmap");
  EXPECT_NE(path.reason.find("differs from the driver's"), std::string::npos) << path.reason;
}

TEST_F(V4l2M2mEncoderTest, NativeNv12IsAcceptedCopiedAsItIsOrImported) {
  kernel_.rawFormats = {fourcc::kNV12};
  const Size size{64, 32};
  auto enc = configured(size);
  ASSERT_TRUE(enc);
  EXPECT_EQ(enc->info().inputFormats, (std::vector<FourCC>{fourcc::kI420, fourcc::kNV12}));

  // From a heap pool (no DMA-BUF, stride padded to 64): copied without conversion.
  auto pool = FramePool::create(fourcc::kNV12, size, 1);
  ASSERT_TRUE(pool.ok());
  {
    auto w = (*pool)->acquire();
    ASSERT_TRUE(w.ok());
    for (int y = 0; y < 32; ++y) {
      for (int x = 0; x < 64; ++x) w->data(0)[y * w->stride(0) + x] = lumaAt(x, y);
    }
    for (int y = 0; y < 16; ++y) {
      for (int x = 0; x < 32; ++x) {
        w->data(1)[y * w->stride(1) + 2 * x] = cbAt(x, y);
        w->data(1)[y * w->stride(1) + 2 * x + 1] = crAt(x, y);
      }
    }
    Frame heap = std::move(*w).publish(Timestamp(std::chrono::milliseconds(10)), 1);
    ASSERT_TRUE(enc->encode(heap).ok());
  }
  ASSERT_EQ(kernel_.lastInput.size(), 64u * 32u * 3u / 2u);
  EXPECT_EQ(kernel_.lastInput[7 * 64 + 9], lumaAt(9, 7));
  EXPECT_EQ(kernel_.lastInput[64 * 32 + 5 * 64 + 2 * 11], cbAt(11, 5));
  EXPECT_EQ(kernel_.lastInput[64 * 32 + 5 * 64 + 2 * 11 + 1], crAt(11, 5));
  EXPECT_EQ(enc->inputPath().reason, "frame carries no DMA-BUF");
  EXPECT_TRUE(kernel_.imported.empty());

  // From a camera buffer: imported.
  Frame camera = dmabufFrame(fourcc::kNV12, size, 64, 20, 2, nullptr);
  ASSERT_TRUE(enc->encode(camera).ok());
  ASSERT_EQ(kernel_.imported.size(), 1u);
  EXPECT_EQ(kernel_.lastInput[64 * 32 + 5 * 64 + 2 * 11 + 1], crAt(11, 5));
  EXPECT_EQ(enc->inputPath().path, "dmabuf");

  // I420 still goes in (converted into the NV12 buffer), the queue back on MMAP.
  ASSERT_TRUE(encodeOk(*enc, size, 30, 3));
  EXPECT_EQ(kernel_.outputMemory,
            (std::vector<uint32_t>{V4L2_MEMORY_MMAP, V4L2_MEMORY_DMABUF, V4L2_MEMORY_MMAP}));
  EXPECT_EQ(kernel_.lastInput[64 * 32 + 5 * 64 + 2 * 11], cbAt(11, 5));
  const auto path = enc->inputPath();
  EXPECT_EQ(path.path, "mmap");
  EXPECT_EQ(path.reason, "frame carries no DMA-BUF");
  EXPECT_EQ(path.importedFrames, 1u);
  EXPECT_EQ(path.copiedFrames, 2u);

  // Neither I420 nor native: refused, naming both.
  auto yuyv = FramePool::create(fourcc::kYUYV, size, 1);
  ASSERT_TRUE(yuyv.ok());
  auto w = (*yuyv)->acquire();
  ASSERT_TRUE(w.ok());
  auto refused = enc->encode(std::move(*w).publish(Timestamp(std::chrono::milliseconds(40)), 4));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.code(), Errc::InvalidArgument);
  EXPECT_NE(refused.error().message.find("neither YU12 (I420) nor the OUTPUT format NV12"), std::string::npos)
      << refused.error().message;
}

TEST_F(V4l2M2mEncoderTest, PreferredInputIsNegotiatedFirstWhenTheNodeTakesIt) {
  kernel_.rawFormats = {fourcc::kI420, fourcc::kNV12, fourcc::kYUYV};
  auto o = options();
  o.preferredInput = fourcc::kYUYV;  // the camera's
  auto enc = open(o);
  ASSERT_TRUE(enc);
  EXPECT_EQ(enc->info().inputFormats, (std::vector<FourCC>{fourcc::kI420, fourcc::kYUYV}));
  EncoderConfig c;
  c.size = {64, 32};
  ASSERT_TRUE(enc->configure(c).ok());
  EXPECT_EQ(kernel_.outputFormat().pixelformat, fourcc::kYUYV.code);

  kernel_.rawFormats = {fourcc::kNV12, fourcc::kI420};
  auto other = open(o);  // a node without YUYV: the default order
  ASSERT_TRUE(other);
  EXPECT_EQ(other->info().inputFormats, std::vector<FourCC>{fourcc::kI420});
}

TEST_F(V4l2M2mEncoderTest, PaddedDriverBufferIsNeverImported) {
  kernel_.rawFormats = {fourcc::kI420};
  kernel_.heightAlign = 16;  // 40 -> 48 rows
  const Size size{64, 40};
  auto enc = configured(size);
  ASSERT_TRUE(enc);
  Frame f = dmabufFrame(fourcc::kI420, size, 64, 10, 1, nullptr);
  ASSERT_TRUE(enc->encode(f).ok());
  EXPECT_TRUE(kernel_.imported.empty());
  EXPECT_NE(enc->inputPath().reason.find("pads"), std::string::npos) << enc->inputPath().reason;
  EXPECT_EQ(kernel_.lastInput[39 * 64 + 5], lumaAt(5, 39));
  EXPECT_EQ(kernel_.lastInput[40 * 64], 16) << "the padding rows stay black";
}

}  // namespace
