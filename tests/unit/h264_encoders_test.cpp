// SPDX-License-Identifier: MIT
// H.264 encoder selection (codecs/h264_encoders.h): the backend order from the board and the
// user's choice, refusals that name why, and the fallback to the next backend while encoding.
#include "printcast/codecs/h264_encoders.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "printcast/codecs/h264.h"

namespace {

namespace fs = std::filesystem;
namespace codecs = printcast::codecs;
namespace hal = printcast::hal;
using hal::EncoderBackend;
using hal::Errc;

hal::Frame greyFrame(hal::FramePool& pool, int n) {
  auto w = pool.acquire();
  EXPECT_TRUE(w.ok());
  const hal::Size size = pool.size();
  for (int p = 0; p < 3; ++p) {
    const int rows = p == 0 ? size.height : size.height / 2;
    std::memset(w->data(p), 64 + n * 8, static_cast<size_t>(w->stride(p)) * rows);
  }
  return std::move(*w).publish(hal::Clock::now(), static_cast<uint64_t>(n));
}

std::shared_ptr<hal::FramePool> pool(hal::Size size) {
  auto p = hal::FramePool::create(hal::fourcc::kI420, size, 2);
  EXPECT_TRUE(p.ok());
  return *p;
}

// x264 that fails with `failure` from its `failAfter`-th encode on, as a hardware encoder does
// when its device goes away or it hangs.
class FailingEncoder final : public hal::Encoder {
 public:
  FailingEncoder(int failAfter, hal::Errc failure, std::string profile)
      : inner_(codecs::createX264Encoder({.preset = "superfast", .profile = std::move(profile)})),
        failAfter_(failAfter),
        failure_(failure) {}
  hal::EncoderInfo info() const override {
    auto i = inner_->info();
    i.name = "failing";
    return i;
  }
  hal::Status configure(const hal::EncoderConfig& config) override { return inner_->configure(config); }
  hal::Result<hal::PacketPtr> encode(const hal::Frame& frame) override {
    if (encodes_++ >= failAfter_) return hal::Error{failure_, 0, "device lost"};
    return inner_->encode(frame);
  }
  void requestKeyframe() override { inner_->requestKeyframe(); }
  std::shared_ptr<const hal::CodecConfig> codecConfig() const override { return inner_->codecConfig(); }

 private:
  std::unique_ptr<hal::Encoder> inner_;
  int encodes_ = 0;
  int failAfter_;
  hal::Errc failure_;
};

std::vector<std::string> names(const std::vector<EncoderBackend>& order) {
  std::vector<std::string> out;
  for (auto b : order) out.emplace_back(codecs::h264BackendName(b));
  return out;
}

TEST(H264BackendOrder, AutoIsTheBoardsListWithX264Last) {
  const std::vector board{EncoderBackend::X264, EncoderBackend::VaApi, EncoderBackend::V4L2M2M};
  auto order = codecs::h264BackendOrder(board, "auto");
  ASSERT_TRUE(order.ok());
  EXPECT_EQ(names(*order), (std::vector<std::string>{"vaapi", "v4l2m2m", "x264"}));
}

TEST(H264BackendOrder, ANamedBackendGoesFirstAndTheBoardsOthersFollow) {
  const std::vector board{EncoderBackend::VaApi, EncoderBackend::V4L2M2M, EncoderBackend::X264};
  auto order = codecs::h264BackendOrder(board, "v4l2m2m");
  ASSERT_TRUE(order.ok());
  EXPECT_EQ(names(*order), (std::vector<std::string>{"v4l2m2m", "vaapi", "x264"}));
  // A board that lists only x264 still tries the named one first.
  const std::vector x264Only{EncoderBackend::X264};
  order = codecs::h264BackendOrder(x264Only, "vaapi");
  ASSERT_TRUE(order.ok());
  EXPECT_EQ(names(*order), (std::vector<std::string>{"vaapi", "x264"}));
}

TEST(H264BackendOrder, AnUnknownNameIsRefusedWithTheChoices) {
  const std::vector board{EncoderBackend::X264};
  auto order = codecs::h264BackendOrder(board, "nvenc");
  ASSERT_FALSE(order.ok());
  EXPECT_EQ(order.code(), Errc::InvalidArgument);
  EXPECT_NE(order.error().message.find("nvenc"), std::string::npos);
  EXPECT_NE(order.error().message.find("v4l2m2m"), std::string::npos);
}

TEST(H264BackendNames, RoundTrip) {
  for (auto b :
       {EncoderBackend::X264, EncoderBackend::VaApi, EncoderBackend::V4L2M2M, EncoderBackend::Vendor}) {
    EXPECT_EQ(codecs::parseH264Backend(codecs::h264BackendName(b)), b);
  }
  EXPECT_FALSE(codecs::parseH264Backend("auto").has_value());
}

// The real backends' refusals on a machine without their hardware: VA-API and vendor are not
// built in; the M2M backend finds no encoder node in an empty /dev.
TEST(SelectingEncoder, BackendsThatCannotOpenAreRefusedWithTheirReasonAndX264Encodes) {
  const fs::path dev = fs::path(::testing::TempDir()) / "h264_encoders_empty_dev";
  fs::create_directories(dev);
  codecs::H264BackendOptions options;
  options.v4l2m2m.devDir = dev.string();
  const std::vector order{EncoderBackend::VaApi, EncoderBackend::V4L2M2M, EncoderBackend::Vendor,
                          EncoderBackend::X264};
  auto encoder = codecs::createH264Encoder(order, options);
  EXPECT_EQ(encoder->activeName(), "none");
  EXPECT_EQ(encoder->info().name, "none");
  ASSERT_TRUE(encoder->configure({.size = {320, 240}, .fps = 10}).ok());
  EXPECT_EQ(encoder->activeName(), "x264");
  EXPECT_EQ(encoder->info().name, "x264");
  const auto refused = encoder->refusals();
  ASSERT_EQ(refused.size(), 3U);
  EXPECT_EQ(refused[0].backend, "vaapi");
  EXPECT_NE(refused[0].reason.find("VA-API"), std::string::npos) << refused[0].reason;
  EXPECT_EQ(refused[1].backend, "v4l2m2m");
  EXPECT_FALSE(refused[1].reason.empty());
  EXPECT_EQ(refused[2].backend, "vendor");
  for (const auto& r : refused) EXPECT_FALSE(r.runtime);

  auto frames = pool({320, 240});
  auto packet = encoder->encode(greyFrame(*frames, 0));
  ASSERT_TRUE(packet.ok()) << packet.error().describe();
  EXPECT_TRUE((*packet)->keyframe);
  EXPECT_EQ(encoder->codecConfig(), (*packet)->config);
}

TEST(SelectingEncoder, ARefusedConfigurationMovesOnAndNamesEveryReason) {
  std::vector<codecs::SelectingEncoder::Candidate> candidates;
  // x264 refuses an odd size: both candidates refuse, and the error says why for each.
  candidates.push_back(
      {"first", [] { return hal::Result<std::unique_ptr<hal::Encoder>>(codecs::createX264Encoder()); }});
  candidates.push_back(
      {"second", [] { return hal::Result<std::unique_ptr<hal::Encoder>>(codecs::createX264Encoder()); }});
  codecs::SelectingEncoder encoder(std::move(candidates));
  auto st = encoder.configure({.size = {321, 240}, .fps = 10});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Errc::InvalidArgument);
  EXPECT_NE(st.error().message.find("first:"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("second:"), std::string::npos) << st.error().message;
  EXPECT_EQ(encoder.refusals().size(), 2U);
  auto frames = pool({320, 240});
  EXPECT_EQ(encoder.encode(greyFrame(*frames, 0)).code(), Errc::InvalidArgument);
  // A configuration both accept: the first is used, and the old refusals are gone.
  ASSERT_TRUE(encoder.configure({.size = {320, 240}, .fps = 10}).ok());
  EXPECT_EQ(encoder.activeName(), "first");
  EXPECT_TRUE(encoder.refusals().empty());
}

TEST(SelectingEncoder, ABackendThatFailsWhileEncodingHandsOverOnAnIdrWithItsOwnParameterSets) {
  std::vector<codecs::SelectingEncoder::Candidate> candidates;
  candidates.push_back({"hardware", [] {
                          return hal::Result<std::unique_ptr<hal::Encoder>>(
                              std::make_unique<FailingEncoder>(5, Errc::Disconnected, "main"));
                        }});
  candidates.push_back(
      {"x264", [] { return hal::Result<std::unique_ptr<hal::Encoder>>(codecs::createX264Encoder()); }});
  codecs::SelectingEncoder encoder(std::move(candidates));
  ASSERT_TRUE(encoder.configure({.size = {320, 240}, .fps = 10, .gopFrames = 100}).ok());
  EXPECT_EQ(encoder.activeName(), "hardware");
  auto frames = pool({320, 240});
  std::shared_ptr<const hal::CodecConfig> first;
  for (int i = 0; i < 5; ++i) {
    auto packet = encoder.encode(greyFrame(*frames, i));
    ASSERT_TRUE(packet.ok());
    EXPECT_EQ((*packet)->keyframe, i == 0);
    first = (*packet)->config;
  }
  ASSERT_NE(first, nullptr);
  // The sixth frame: the hardware backend fails; x264 encodes that same frame as an IDR.
  auto packet = encoder.encode(greyFrame(*frames, 5));
  ASSERT_TRUE(packet.ok()) << packet.error().describe();
  EXPECT_TRUE((*packet)->keyframe);
  EXPECT_EQ((*packet)->sequence, 5U);
  ASSERT_NE((*packet)->config, nullptr);
  EXPECT_FALSE(*(*packet)->config == *first) << "main (CABAC) vs constrained baseline: a new SPS";
  EXPECT_TRUE(printcast::codecs::h264::containsIdr((*packet)->data));
  EXPECT_EQ(encoder.activeName(), "x264");
  EXPECT_EQ(encoder.fallbacks(), 1U);
  EXPECT_EQ(encoder.codecConfig(), (*packet)->config);
  auto refused = encoder.refusals();
  ASSERT_EQ(refused.size(), 1U);
  EXPECT_EQ(refused[0].backend, "hardware");
  EXPECT_TRUE(refused[0].runtime);
  EXPECT_NE(refused[0].reason.find("device lost"), std::string::npos);
  // A later reconfiguration does not go back to the backend that failed.
  ASSERT_TRUE(encoder.configure({.size = {640, 480}, .fps = 10}).ok());
  EXPECT_EQ(encoder.activeName(), "x264");
  EXPECT_EQ(encoder.refusals().size(), 1U);
}

// A hardware-like backend that takes NV12 as it is and reports a DMA-BUF input path; it fails
// (device lost) from its `failAfter`-th encode on.
class NativeNv12Encoder final : public hal::Encoder {
 public:
  explicit NativeNv12Encoder(int failAfter) : failAfter_(failAfter) {}
  hal::EncoderInfo info() const override {
    return {.name = "native",
            .codec = hal::fourcc::kH264,
            .inputFormats = {hal::fourcc::kI420, hal::fourcc::kNV12}};
  }
  hal::Status configure(const hal::EncoderConfig&) override { return {}; }
  hal::Result<hal::PacketPtr> encode(const hal::Frame&) override {
    if (encodes_++ >= failAfter_) return hal::Error{Errc::Disconnected, 0, "device lost"};
    auto p = std::make_shared<hal::Packet>();
    p->codec = hal::fourcc::kH264;
    return hal::PacketPtr(std::move(p));
  }
  void requestKeyframe() override {}
  std::shared_ptr<const hal::CodecConfig> codecConfig() const override { return nullptr; }
  hal::EncoderInputPath inputPath() const override {
    return {"dmabuf", "", static_cast<uint64_t>(encodes_), 0};
  }

 private:
  int encodes_ = 0;
  int failAfter_;
};

TEST(SelectingEncoder, InfoAndInputPathAreTheActiveBackendsAndFollowAFallback) {
  std::vector<codecs::SelectingEncoder::Candidate> candidates;
  candidates.push_back(
      {"native",
       [] { return hal::Result<std::unique_ptr<hal::Encoder>>(std::make_unique<NativeNv12Encoder>(2)); }});
  candidates.push_back(
      {"x264", [] { return hal::Result<std::unique_ptr<hal::Encoder>>(codecs::createX264Encoder()); }});
  codecs::SelectingEncoder encoder(std::move(candidates));
  EXPECT_EQ(encoder.inputPath().path, "");
  EXPECT_EQ(encoder.inputPath().reason, "no encoder configured");
  ASSERT_TRUE(encoder.configure({.size = {320, 240}, .fps = 10}).ok());
  EXPECT_EQ(encoder.info().inputFormats, (std::vector<hal::FourCC>{hal::fourcc::kI420, hal::fourcc::kNV12}))
      << "the caller may hand NV12 camera frames to this backend as they are";
  auto frames = pool({320, 240});
  ASSERT_TRUE(encoder.encode(greyFrame(*frames, 0)).ok());
  EXPECT_EQ(encoder.inputPath().path, "dmabuf");
  EXPECT_EQ(encoder.inputPath().importedFrames, 1U);
  ASSERT_TRUE(encoder.encode(greyFrame(*frames, 1)).ok());
  // The third encode fails: x264 takes over, and with it I420 only and a copying input path.
  ASSERT_TRUE(encoder.encode(greyFrame(*frames, 2)).ok());
  EXPECT_EQ(encoder.activeName(), "x264");
  EXPECT_EQ(encoder.info().inputFormats, std::vector<hal::FourCC>{hal::fourcc::kI420});
  EXPECT_EQ(encoder.inputPath().path, "copy");
}

TEST(SelectingEncoder, WhenTheLastBackendFailsTheErrorIsReturned) {
  std::vector<codecs::SelectingEncoder::Candidate> candidates;
  candidates.push_back({"only", [] {
                          return hal::Result<std::unique_ptr<hal::Encoder>>(
                              std::make_unique<FailingEncoder>(1, Errc::Timeout, "baseline"));
                        }});
  codecs::SelectingEncoder encoder(std::move(candidates));
  ASSERT_TRUE(encoder.configure({.size = {320, 240}, .fps = 10}).ok());
  auto frames = pool({320, 240});
  ASSERT_TRUE(encoder.encode(greyFrame(*frames, 0)).ok());
  auto failed = encoder.encode(greyFrame(*frames, 1));
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(encoder.activeName(), "none");
  EXPECT_EQ(encoder.encode(greyFrame(*frames, 2)).code(), Errc::InvalidArgument);
}

TEST(SelectingEncoder, AKeyframeRequestFromAnotherThreadReachesTheActiveBackend) {
  const std::vector order{EncoderBackend::X264};
  auto encoder = codecs::createH264Encoder(order);
  ASSERT_TRUE(encoder->configure({.size = {320, 240}, .fps = 10, .gopFrames = 100}).ok());
  auto frames = pool({320, 240});
  ASSERT_TRUE(encoder->encode(greyFrame(*frames, 0)).ok());
  auto p = encoder->encode(greyFrame(*frames, 1));
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE((*p)->keyframe);
  std::thread([&] { encoder->requestKeyframe(); }).join();
  p = encoder->encode(greyFrame(*frames, 2));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE((*p)->keyframe);
}

}  // namespace
