// SPDX-License-Identifier: MIT
// MPEG-TS muxer (ISO/IEC 13818-1): packet framing, PAT/PMT with CRC, continuity counters, PCR,
// PES headers read back with our parser, and a written .ts file read by ffprobe and ffmpeg.
#include "printcast/transport/mpegts.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "hls_test_support.h"
#include "printcast/codecs/h264.h"

using namespace printcast;
namespace ts = transport::mpegts;
namespace h264 = codecs::h264;

namespace {

// `count` access units at 15 fps (ticks 6000 apart, starting at `firstTicks`) through one Muxer,
// PAT/PMT first.
std::vector<uint8_t> muxStream(printcast::testing::H264Source& source, int count, uint64_t firstTicks = 0) {
  ts::Muxer muxer;
  std::vector<uint8_t> out = muxer.programTables();
  for (int i = 0; i < count; ++i) {
    auto au = source.next();
    muxer.writeAccessUnit(*au, firstTicks + static_cast<uint64_t>(i) * 6000, out);
  }
  return out;
}

}  // namespace

TEST(MpegTs, Crc32IsTheMpeg2Variant) {
  const std::string check = "123456789";  // the CRC catalogue's check input
  EXPECT_EQ(ts::crc32({reinterpret_cast<const uint8_t*>(check.data()), check.size()}), 0x0376E6E7u);
}

TEST(MpegTs, PacketsAre188BytesWithTablesContinuityAndPcr) {
  printcast::testing::H264Source source;
  const auto bytes = muxStream(source, 20);
  ASSERT_EQ(bytes.size() % ts::kPacketSize, 0u);
  for (size_t off = 0; off < bytes.size(); off += ts::kPacketSize) ASSERT_EQ(bytes[off], 0x47) << off;
  const auto parsed = ts::parse(bytes);
  EXPECT_TRUE(parsed.syncOk);
  EXPECT_TRUE(parsed.havePat);
  EXPECT_TRUE(parsed.havePmt);
  EXPECT_TRUE(parsed.psiCrcOk);
  EXPECT_EQ(parsed.pmtPid, ts::kPmtPid);
  EXPECT_EQ(parsed.videoPid, ts::kVideoPid);
  EXPECT_EQ(parsed.pcrPid, ts::kVideoPid);
  EXPECT_EQ(parsed.continuityErrors, 0u);
  ASSERT_EQ(parsed.pes.size(), 20u);
  for (size_t i = 0; i < parsed.pes.size(); ++i) {
    const auto& pes = parsed.pes[i];
    EXPECT_EQ(pes.streamId, 0xE0);
    ASSERT_TRUE(pes.hasPts);
    EXPECT_FALSE(pes.hasDts) << "no B-frames: PTS only";
    EXPECT_EQ(pes.pts, i * 6000 + ts::kPtsDelay);
    ASSERT_TRUE(pes.hasPcr) << "a PCR with every access unit";
    EXPECT_EQ(pes.pcr27MHz, i * 6000 * 300) << "PCR = decode time, kPtsDelay before the PTS";
    EXPECT_EQ(pes.randomAccess, i == 0) << "random_access_indicator only on the IDR";
    // AUD first, then (IDR) SPS and PPS before the slice.
    const auto nals = h264::splitAnnexB(pes.payload);
    ASSERT_FALSE(nals.empty());
    EXPECT_EQ(nals[0].type(), h264::kAud);
    if (i == 0) {
      std::vector<uint8_t> order;
      for (const auto& n : nals) order.push_back(n.type());
      const auto sps = std::find(order.begin(), order.end(), h264::kSps);
      const auto pps = std::find(order.begin(), order.end(), h264::kPps);
      const auto idr = std::find(order.begin(), order.end(), h264::kIdrSlice);
      ASSERT_NE(idr, order.end());
      EXPECT_LT(sps, idr);
      EXPECT_LT(pps, idr);
    }
  }
}

TEST(MpegTs, ContinuityCountersCarryAcrossSegmentsFromOneMuxer) {
  printcast::testing::H264Source source;
  ts::Muxer muxer;
  std::vector<uint8_t> all;
  for (int segment = 0; segment < 3; ++segment) {
    std::vector<uint8_t> seg = muxer.programTables();
    for (int i = 0; i < 7; ++i) muxer.writeAccessUnit(*source.next(), (segment * 7 + i) * 6000u, seg);
    all.insert(all.end(), seg.begin(), seg.end());
  }
  const auto parsed = ts::parse(all);
  EXPECT_EQ(parsed.continuityErrors, 0u);
  EXPECT_EQ(parsed.pes.size(), 21u);
}

TEST(MpegTs, IdrWithoutParameterSetsGetsThemFromTheCodecConfig) {
  printcast::testing::H264Source source;
  auto au = source.next();
  ASSERT_TRUE(au->keyframe);
  // The same IDR with its SPS/PPS stripped, as some H.264 cameras send it, and the config beside.
  auto stripped = std::make_shared<hal::Packet>(*au);
  stripped->data.clear();
  for (const auto& nal : h264::splitAnnexB(au->data)) {
    if (nal.type() == h264::kSps || nal.type() == h264::kPps) continue;
    stripped->data.insert(stripped->data.end(), {0, 0, 0, 1});
    stripped->data.insert(stripped->data.end(), nal.bytes.begin(), nal.bytes.end());
  }
  stripped->config = std::make_shared<hal::CodecConfig>(*h264::extractCodecConfig(au->data));
  const auto payload = ts::accessUnitPayload(*stripped);
  const auto config = h264::extractCodecConfig(payload);
  ASSERT_TRUE(config.has_value());
  EXPECT_EQ(*config, *stripped->config);
  EXPECT_EQ(h264::splitAnnexB(payload)[0].type(), h264::kAud);
  // An access unit that has an AUD already gets no second one.
  hal::Packet withAud;
  withAud.codec = hal::fourcc::kH264;
  withAud.data = payload;
  withAud.keyframe = true;
  const auto again = ts::accessUnitPayload(withAud);
  size_t auds = 0;
  for (const auto& nal : h264::splitAnnexB(again)) auds += nal.type() == h264::kAud ? 1 : 0;
  EXPECT_EQ(auds, 1u);
}

TEST(MpegTs, TimestampsWrapAt33Bits) {
  printcast::testing::H264Source source;
  const uint64_t nearWrap = (uint64_t{1} << 33) - 3000 - ts::kPtsDelay;
  const auto parsed = ts::parse(muxStream(source, 2, nearWrap));
  ASSERT_EQ(parsed.pes.size(), 2u);
  EXPECT_EQ(parsed.pes[0].pts, (uint64_t{1} << 33) - 3000);
  EXPECT_EQ(parsed.pes[1].pts, 3000u) << "wrapped";
}

TEST(MpegTs, FfprobeAndFfmpegReadAWrittenFile) {
  printcast::testing::H264Source source;
  const auto bytes = muxStream(source, 30);
  const auto path =
      std::filesystem::temp_directory_path() / ("printcast-mpegts-" + std::to_string(getpid()) + ".ts");
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  const auto [rc, text] = printcast::testing::runShell(
      "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
      "stream=codec_name,width,height,nb_read_frames:format=format_name -of default=nw=1 " +
      path.string() + " 2>&1");
  EXPECT_EQ(rc, 0) << text;
  EXPECT_NE(text.find("codec_name=h264"), std::string::npos) << text;
  EXPECT_NE(text.find("width=320"), std::string::npos) << text;
  EXPECT_NE(text.find("nb_read_frames=30"), std::string::npos) << text;
  EXPECT_NE(text.find("format_name=mpegts"), std::string::npos) << text;

  const auto [prc, packets] = printcast::testing::runShell(
      "ffprobe -v error -select_streams v:0 -show_entries packet=pts,flags -of csv=p=0 " + path.string() +
      " 2>&1");
  ASSERT_EQ(prc, 0) << packets;
  std::istringstream lines(packets);
  std::string line;
  int64_t last = -1;
  int n = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    const int64_t pts = std::stoll(line.substr(0, line.find(',')));
    if (n == 0) {
      EXPECT_NE(line.find('K'), std::string::npos) << "first packet is a keyframe: " << line;
    }
    EXPECT_GT(pts, last) << "timestamps increase";
    last = pts;
    ++n;
  }
  EXPECT_EQ(n, 30);

  const auto [drc, decodeErrors] =
      printcast::testing::runShell("ffmpeg -v error -i " + path.string() + " -f null - 2>&1");
  EXPECT_EQ(drc, 0);
  EXPECT_EQ(decodeErrors, "");
  std::filesystem::remove(path);
}
