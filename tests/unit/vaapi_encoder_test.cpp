// SPDX-License-Identifier: MIT
// VA-API encoder: its refusals with real libva on a machine without a VA-API encoder (empty and
// missing device folders, missing nodes, files and character devices that are no DRM render
// node), and the SPS/PPS it hands to drivers, parsed by our SPS parser and decoded by libavcodec
// with an I_PCM picture written here.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "../../codecs/src/h264_parameter_sets.h"
#include "printcast/codecs/h264.h"
#include "printcast/codecs/h264_decoder.h"
#include "printcast/codecs/h264_encoders.h"
#include "printcast/codecs/vaapi_encoder.h"
#include "printcast/hal/frame.h"

namespace {

namespace fs = std::filesystem;
using namespace printcast;
using hal::Errc;

fs::path tempDir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---- refusals --------------------------------------------------------------------------------

TEST(VaapiEncoder, EmptyDeviceFolderHasNoRenderNode) {
  const fs::path dir = tempDir("vaapi_empty_dri");
  auto encoder = codecs::createVaapiEncoder({.devDir = dir.string()});
  ASSERT_FALSE(encoder.ok());
  EXPECT_EQ(encoder.code(), Errc::Unsupported);
  EXPECT_TRUE(contains(encoder.error().message, "no render node under " + dir.string()))
      << encoder.error().message;
}

TEST(VaapiEncoder, MissingDeviceFolderHasNoRenderNode) {
  const fs::path dir = fs::path(::testing::TempDir()) / "vaapi_no_such_dri";
  fs::remove_all(dir);
  auto encoder = codecs::createVaapiEncoder({.devDir = dir.string()});
  ASSERT_FALSE(encoder.ok());
  EXPECT_EQ(encoder.code(), Errc::Unsupported);
  EXPECT_TRUE(contains(encoder.error().message, "no render node")) << encoder.error().message;
}

TEST(VaapiEncoder, MissingRenderNodeIsNoDeviceNamingIt) {
  const fs::path node = tempDir("vaapi_missing_node") / "renderD128";
  auto encoder = codecs::createVaapiEncoder({.renderNode = node.string()});
  ASSERT_FALSE(encoder.ok());
  EXPECT_EQ(encoder.code(), Errc::NoDevice);
  EXPECT_TRUE(contains(encoder.error().message, node.string())) << encoder.error().message;
}

TEST(VaapiEncoder, RegularFileFoundAsRenderNodeIsRefusedBeforeLibva) {
  const fs::path dir = tempDir("vaapi_file_node");
  std::ofstream(dir / "renderD128") << "not a device";
  std::ofstream(dir / "card0") << "not a render node";  // never a candidate
  auto encoder = codecs::createVaapiEncoder({.devDir = dir.string()});
  ASSERT_FALSE(encoder.ok());
  EXPECT_EQ(encoder.code(), Errc::NoDevice);
  EXPECT_TRUE(contains(encoder.error().message, (dir / "renderD128").string() + " is not a device node"))
      << encoder.error().message;
}

// /dev/null is a character device but no DRM node: libva (2.17) refuses it in vaGetDisplayDRM, so
// vaInitialize is never reached. (A DRM node without a VA driver, which fails in vaInitialize,
// needs a machine with a GPU or vgem.)
TEST(VaapiEncoder, CharacterDeviceThatIsNoDrmNodeIsRefusedByLibva) {
  auto encoder = codecs::createVaapiEncoder({.renderNode = "/dev/null"});
  ASSERT_FALSE(encoder.ok());
  EXPECT_EQ(encoder.code(), Errc::NoDevice) << encoder.error().describe();
  EXPECT_TRUE(contains(encoder.error().message, "/dev/null is no DRM device")) << encoder.error().message;
  // Found through a device folder too (a symlink named like a render node).
  const fs::path dir = tempDir("vaapi_null_node");
  fs::create_symlink("/dev/null", dir / "renderD130");
  auto found = codecs::createVaapiEncoder({.devDir = dir.string()});
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.code(), Errc::NoDevice);
  EXPECT_TRUE(contains(found.error().message, (dir / "renderD130").string() + " is no DRM device"))
      << found.error().message;
}

// As root (CI) open() ignores file modes: the check runs in a child that drops to uid 65534.
TEST(VaapiEncoder, UnreadableNodeIsPermissionDenied) {
  const fs::path node = tempDir("vaapi_denied") / "renderD128";
  std::ofstream(node) << "x";
  ASSERT_EQ(::chmod(node.c_str(), 0), 0);
  auto check = [&] {
    auto encoder = codecs::createVaapiEncoder({.renderNode = node.string()});
    return !encoder.ok() && encoder.code() == Errc::PermissionDenied &&
           contains(encoder.error().message, node.string());
  };
  if (::geteuid() != 0) {
    EXPECT_TRUE(check());
    return;
  }
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    constexpr uid_t kNobody = 65534;
    if (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) ::_exit(3);
    ::_exit(check() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 3) << "could not drop to uid 65534";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "an unreadable node is not PermissionDenied naming its path";
}

// The selection opens this backend: on this machine it refuses as createVaapiEncoder() does.
TEST(VaapiEncoder, SelectionOpensThisBackendAndGetsTheSameRefusal) {
  auto direct = codecs::createVaapiEncoder();
  if (direct.ok()) GTEST_SKIP() << "machine: has a working VA-API H.264 encoder";
  auto selected = codecs::openH264Backend(hal::EncoderBackend::VaApi);
  ASSERT_FALSE(selected.ok());
  EXPECT_EQ(selected.code(), direct.code());
  EXPECT_EQ(selected.error().message, direct.error().message);

  const fs::path dir = tempDir("vaapi_selection_dri");
  codecs::H264BackendOptions options;
  options.vaapi.devDir = dir.string();
  auto viaOptions = codecs::openH264Backend(hal::EncoderBackend::VaApi, options);
  ASSERT_FALSE(viaOptions.ok());
  EXPECT_TRUE(contains(viaOptions.error().message, "no render node under " + dir.string()));

  // And the selecting encoder falls back to x264, keeping the reason.
  const std::vector order{hal::EncoderBackend::VaApi, hal::EncoderBackend::X264};
  auto encoder = codecs::createH264Encoder(order, options);
  ASSERT_TRUE(encoder->configure({.size = {320, 240}, .fps = 10}).ok());
  EXPECT_EQ(encoder->activeName(), "x264");
  const auto refused = encoder->refusals();
  ASSERT_EQ(refused.size(), 1U);
  EXPECT_EQ(refused[0].backend, "vaapi");
  EXPECT_TRUE(contains(refused[0].reason, "no render node")) << refused[0].reason;
}

// ---- the bit writer and parameter sets ----------------------------------------------------------

std::string bitString(const codecs::h264::BitWriter& w) {
  std::string s;
  for (uint8_t b : w.bytes())
    for (int i = 7; i >= 0; --i) s += ((b >> i) & 1) != 0 ? '1' : '0';
  return s;
}

TEST(H264ParameterSets, ExpGolombCodes) {
  codecs::h264::BitWriter w;
  w.ue(0);   // 1
  w.ue(1);   // 010
  w.ue(2);   // 011
  w.ue(3);   // 00100
  w.se(1);   // 010
  w.se(-1);  // 011
  w.se(0);   // 1
  w.alignZero();
  EXPECT_EQ(bitString(w),
            "1"
            "010"
            "011"
            "00100"
            "010"
            "011"
            "1"
            "00000");
  codecs::h264::BitWriter big;
  big.ue(0xfffffffeu);  // 31 zeros, then 32 bits of 0xffffffff
  big.alignZero();
  EXPECT_EQ(bitString(big).substr(0, 63), std::string(31, '0') + std::string(32, '1'));
}

TEST(H264ParameterSets, EmulationPreventionRoundTrips) {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::vector<uint8_t> rbsp(static_cast<size_t>(1 + rng() % 64));
    for (auto& b : rbsp) b = static_cast<uint8_t>(rng() % 4 == 0 ? rng() % 4 : rng());  // many 00..03
    const std::vector<uint8_t> nal = codecs::h264::nalUnit(3, 7, rbsp);
    ASSERT_EQ(nal[0], 0x67);
    // No start code prefix (00 00 00..02) inside the unit (7.4.1).
    for (size_t i = 2; i < nal.size(); ++i)
      ASSERT_FALSE(nal[i - 2] == 0 && nal[i - 1] == 0 && nal[i] <= 2) << i;
    EXPECT_EQ(codecs::h264::unescapeRbsp(std::span(nal).subspan(1)), rbsp);
  }
}

TEST(H264ParameterSets, LevelsFollowTableA1) {
  using codecs::h264::levelFor;
  EXPECT_EQ(levelFor({640, 480}, 30, 1000, false), 30);
  EXPECT_EQ(levelFor({640, 480}, 30, 15000, false), 32);  // bitrate beyond 3.1's 14000
  EXPECT_EQ(levelFor({1280, 720}, 30, 2000, false), 31);
  EXPECT_EQ(levelFor({1920, 1080}, 30, 4000, false), 40);
  EXPECT_EQ(levelFor({1920, 1080}, 30, 25000, false), 41);
  EXPECT_EQ(levelFor({1920, 1080}, 30, 25000, true), 40);  // High: 1.25 x MaxBR
  EXPECT_EQ(levelFor({1920, 1080}, 60, 4000, false), 42);
  EXPECT_EQ(levelFor({176, 144}, 15, 64, false), 10);
  EXPECT_EQ(levelFor({16384, 16384}, 120, 50000, false), 0);
}

struct Profile {
  uint8_t idc;
  uint8_t constraints;
};
constexpr Profile kProfiles[] = {{66, 0xc0}, {77, 0x40}, {100, 0x00}};

codecs::h264::SpsFields spsFor(Profile p, hal::Size size, int fps, bool fullRange) {
  codecs::h264::SpsFields f;
  f.profileIdc = p.idc;
  f.constraintFlags = p.constraints;
  f.levelIdc = codecs::h264::levelFor(size, fps, 4000, p.idc == 100);
  f.size = size;
  f.fps = fps;
  f.fullRange = fullRange;
  return f;
}

TEST(H264ParameterSets, SpsParsesBackToItsFields) {
  for (const Profile p : kProfiles) {
    for (const hal::Size size : {hal::Size{1280, 720}, hal::Size{1920, 1080}, hal::Size{642, 362}}) {
      for (const bool fullRange : {false, true}) {
        const auto fields = spsFor(p, size, 25, fullRange);
        const std::vector<uint8_t> nal = codecs::h264::writeSps(fields);
        auto sps = codecs::h264::parseSps(nal);
        ASSERT_TRUE(sps.ok()) << sps.error().describe();
        EXPECT_EQ(sps->profileIdc, p.idc);
        EXPECT_EQ(sps->constraintFlags, p.constraints);
        EXPECT_EQ(sps->levelIdc, fields.levelIdc);
        EXPECT_EQ(sps->size, size) << int(p.idc) << " " << size.str();
        ASSERT_TRUE(sps->fps.has_value());
        EXPECT_DOUBLE_EQ(*sps->fps, 25.0);
        EXPECT_EQ(sps->fullRange, fullRange);
        // The avcC record (FLV, MP4) takes it with the PPS.
        const hal::CodecConfig config{nal, codecs::h264::writePps({.highProfile = p.idc == 100})};
        EXPECT_TRUE(codecs::h264::avcDecoderConfigurationRecord(config).ok());
      }
    }
  }
}

TEST(H264ParameterSets, PpsCarriesEntropyModeAndHighFields) {
  const auto cavlc = codecs::h264::writePps({.cabac = false});
  const auto cabac = codecs::h264::writePps({.cabac = true});
  const auto high = codecs::h264::writePps({.cabac = true, .highProfile = true});
  ASSERT_GE(cavlc.size(), 2U);
  EXPECT_EQ(cavlc[0], 0x68);
  // pic_parameter_set_id ue(0) "1", seq_parameter_set_id ue(0) "1", then entropy_coding_mode_flag.
  EXPECT_EQ(cavlc[1] & 0xe0, 0xc0);
  EXPECT_EQ(cabac[1] & 0xe0, 0xe0);
  EXPECT_NE(high, cabac);  // transform_8x8_mode_flag, pic_scaling_matrix_present_flag, second_chroma_qp
  EXPECT_GE(high.size(), cabac.size());
}

// An IDR access unit of I_PCM macroblocks (mb_type 25 in an I slice, 7.3.5): every sample given,
// no prediction, so any decoder shows exactly these values if it took our SPS and PPS (CAVLC).
std::vector<uint8_t> pcmIdr(const codecs::h264::SpsFields& sps, uint8_t y, uint8_t u, uint8_t v) {
  codecs::h264::BitWriter w;
  w.ue(0);                         // first_mb_in_slice
  w.ue(7);                         // slice_type: I, every slice of the picture
  w.ue(0);                         // pic_parameter_set_id
  w.bits(0, sps.log2MaxFrameNum);  // frame_num
  w.ue(0);                         // idr_pic_id
  w.bits(0, sps.log2MaxPocLsb);    // pic_order_cnt_lsb
  w.bit(0);                        // no_output_of_prior_pics_flag
  w.bit(0);                        // long_term_reference_flag
  w.se(0);                         // slice_qp_delta
  w.ue(1);                         // disable_deblocking_filter_idc (the PPS has the control)
  const int mbs = codecs::h264::macroblocks(sps.size.width) * codecs::h264::macroblocks(sps.size.height);
  for (int mb = 0; mb < mbs; ++mb) {
    w.ue(25);  // I_PCM
    w.alignZero();
    for (int i = 0; i < 256; ++i) w.bits(y, 8);
    for (int i = 0; i < 64; ++i) w.bits(u, 8);
    for (int i = 0; i < 64; ++i) w.bits(v, 8);
  }
  w.trailingBits();
  const std::vector<uint8_t> slice = codecs::h264::nalUnit(3, 5, w.bytes());
  std::vector<uint8_t> au;
  for (const auto& nal :
       {codecs::h264::writeSps(sps), codecs::h264::writePps({.highProfile = sps.profileIdc == 100}), slice}) {
    au.insert(au.end(), {0, 0, 0, 1});
    au.insert(au.end(), nal.begin(), nal.end());
  }
  return au;
}

TEST(H264ParameterSets, LibavcodecDecodesAPictureUnderOurSpsAndPps) {
  auto created = codecs::createH264Decoder();
  if (!created.ok() && created.code() == Errc::Unsupported) {
    GTEST_SKIP() << "machine: this build has no H.264 decoder (" << created.error().message << ")";
  }
  ASSERT_TRUE(created.ok()) << created.error().describe();
  for (const Profile p : kProfiles) {
    for (const hal::Size size : {hal::Size{1280, 720}, hal::Size{1920, 1080}, hal::Size{642, 362}}) {
      SCOPED_TRACE(::testing::Message() << "profile " << int(p.idc) << " " << size.str());
      auto decoder = codecs::createH264Decoder();
      ASSERT_TRUE(decoder.ok());
      const auto sps = spsFor(p, size, 30, p.idc == 77);
      const std::vector<uint8_t> au = pcmIdr(sps, 0x52, 0x61, 0x9a);
      auto pool = hal::FramePool::create(hal::fourcc::kI420, size, 1);
      ASSERT_TRUE(pool.ok());
      auto frame = (*decoder)->decode(au, **pool, hal::Timestamp{}, 1);
      ASSERT_TRUE(frame.ok()) << frame.error().describe();
      ASSERT_EQ(frame->size(), size);
      EXPECT_EQ((*decoder)->pictureSize(), size);
      for (int row : {0, size.height / 2, size.height - 1}) {
        EXPECT_EQ(frame->plane(0).data[ptrdiff_t{frame->plane(0).stride} * row], 0x52);
        EXPECT_EQ(frame->plane(0).data[ptrdiff_t{frame->plane(0).stride} * row + size.width - 1], 0x52);
      }
      for (int row : {0, size.height / 2 - 1}) {
        EXPECT_EQ(frame->plane(1).data[ptrdiff_t{frame->plane(1).stride} * row + size.width / 2 - 1], 0x61);
        EXPECT_EQ(frame->plane(2).data[ptrdiff_t{frame->plane(2).stride} * row], 0x9a);
      }
    }
  }
}

}  // namespace
