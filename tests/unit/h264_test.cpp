// SPDX-License-Identifier: MIT
// H.264 bitstream tools: Annex-B splitting, RBSP unescaping, SPS parsing, AVCC and avcC.
#include "printcast/codecs/h264.h"

#include <gtest/gtest.h>

#include <vector>

namespace h264 = printcast::codecs::h264;
namespace hal = printcast::hal;
using printcast::hal::CodecConfig;
using printcast::hal::Errc;
using printcast::hal::Size;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes toBytes(std::span<const uint8_t> s) { return Bytes(s.begin(), s.end()); }

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Hand-assembled SPS NAL units (header byte 0x67 first), fields listed in syntax order
// (H.264 7.3.2.1.1). Cross-checked with FFmpeg's trace_headers bitstream filter.

// Baseline 640x480: profile_idc 66, constraint_set0+1 (0xc0), level_idc 30, sps_id 0,
// log2_max_frame_num_minus4 0, pic_order_cnt_type 2, max_num_ref_frames 1, gaps 0,
// pic_width_in_mbs_minus1 39, pic_height_in_map_units_minus1 29, frame_mbs_only 1,
// direct_8x8 1, no cropping, no VUI.
const Bytes kSpsBaseline640x480 = {0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xf6, 0x40};

// Main 1920x1080 coded as 1920x1088: profile_idc 77, constraint_set1 (0x40), level_idc 40,
// pic_order_cnt_type 0 (log2_max_pic_order_cnt_lsb_minus4 2), width 120 MBs, height 68 MBs,
// frame_cropping bottom 4 (x2 luma rows = 8), VUI with only timing info: num_units_in_tick 1,
// time_scale 60 (30 fps), fixed_frame_rate 1. The 32-bit timing fields need emulation
// prevention bytes (the 0x03s).
const Bytes kSpsMain1920x1080 = {0x67, 0x4d, 0x40, 0x28, 0xed, 0x00, 0xf0, 0x04, 0x4f, 0xcb, 0x08,
                                 0x00, 0x00, 0x03, 0x00, 0x08, 0x00, 0x00, 0x03, 0x01, 0xe4, 0x20};

// High 1280x720: profile_idc 100, level_idc 31, chroma_format_idc 1, 8-bit, no scaling
// matrices, width 80 MBs, height 45 MBs, no cropping, VUI timing 1/50 (25 fps).
const Bytes kSpsHigh1280x720 = {0x67, 0x64, 0x00, 0x1f, 0xac, 0xb4, 0x02, 0x80, 0x2d, 0xd0,
                                0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x19, 0x42};

const Bytes kPps = {0x68, 0xce, 0x38, 0x80};
const Bytes kIdr = {0x65, 0x88, 0x84, 0x00, 0x33, 0xff};
const Bytes kSlice = {0x41, 0x9a, 0x02, 0x04};

}  // namespace

TEST(H264Split, ThreeAndFourByteStartCodes) {
  const Bytes stream = concat({{0, 0, 0, 1}, kSpsBaseline640x480, {0, 0, 1}, kPps, {0, 0, 0, 1}, kIdr});
  const auto units = h264::splitAnnexB(stream);
  ASSERT_EQ(units.size(), 3u);
  EXPECT_EQ(toBytes(units[0].bytes), kSpsBaseline640x480);
  EXPECT_EQ(toBytes(units[1].bytes), kPps);
  EXPECT_EQ(toBytes(units[2].bytes), kIdr);
  EXPECT_EQ(units[0].type(), h264::kSps);
  EXPECT_EQ(units[1].type(), h264::kPps);
  EXPECT_EQ(units[2].type(), h264::kIdrSlice);
}

TEST(H264Split, TrailingZerosAndLeadingGarbageAreDropped) {
  // trailing_zero_8bits after a unit and at the end of the stream, bytes before the first
  // start code, and an empty unit between two start codes.
  const Bytes stream =
      concat({{0xaa, 0xbb}, {0, 0, 1}, kSlice, {0, 0, 0, 0}, {0, 0, 1}, {0, 0, 1}, kIdr, {0, 0}});
  const auto units = h264::splitAnnexB(stream);
  ASSERT_EQ(units.size(), 2u);
  EXPECT_EQ(toBytes(units[0].bytes), kSlice);
  EXPECT_EQ(toBytes(units[1].bytes), kIdr);
}

// The memchr scan finds the prefix wherever it is, and only a real 00 00 01.
TEST(H264Split, FindStartCodeEdges) {
  const Bytes none = {1, 0, 1, 0, 0, 2, 1, 0, 0};
  EXPECT_EQ(h264::findStartCode(none), none.size());
  const Bytes first = {0, 0, 1, 0x65};
  EXPECT_EQ(h264::findStartCode(first), 0u);
  EXPECT_EQ(h264::findStartCode(first, 1), first.size());  // from past its start
  const Bytes last = {0x65, 1, 1, 0, 0, 1};                // 01s before it are not preceded by 00 00
  EXPECT_EQ(h264::findStartCode(last), 3u);
  EXPECT_EQ(h264::findStartCode(last, 3), 3u);
  EXPECT_EQ(h264::findStartCode(last, 4), last.size());
  const Bytes fourByte = {0x41, 0, 0, 0, 1, 0x41};
  EXPECT_EQ(h264::findStartCode(fourByte), 2u);  // the 3-byte prefix inside 00 00 00 01
  EXPECT_EQ(h264::findStartCode(Bytes{}), 0u);
  EXPECT_EQ(h264::findStartCode(Bytes{0, 1}), 2u);
  EXPECT_EQ(h264::findStartCode(first, 100), first.size());  // from beyond the end
}

TEST(H264Split, NoStartCodeYieldsNothing) {
  EXPECT_TRUE(h264::splitAnnexB(Bytes{}).empty());
  EXPECT_TRUE(h264::splitAnnexB(Bytes{0x65, 0x88, 0x00, 0x00}).empty());
  EXPECT_TRUE(h264::splitAnnexB(Bytes{0, 0, 1}).empty());
}

TEST(H264Split, ContainsIdr) {
  EXPECT_TRUE(h264::containsIdr(concat({{0, 0, 0, 1}, kSpsBaseline640x480, {0, 0, 0, 1}, kIdr})));
  EXPECT_FALSE(h264::containsIdr(concat({{0, 0, 0, 1}, kSlice})));
  EXPECT_FALSE(h264::containsIdr(kIdr));  // no start code: not a stream
}

TEST(H264Split, APacketsNalIndexIsUsedAndAStaleOneIsNot) {
  hal::Packet p;
  p.data = concat({{0, 0, 0, 1}, kSpsBaseline640x480, {0, 0, 1}, kPps, {0, 0, 0, 1}, kIdr});
  const auto split = h264::splitAnnexB(p.data);
  p.nals = h264::nalRanges(p.data, split);
  ASSERT_EQ(p.nals.size(), 3u);
  EXPECT_EQ(p.nals[0].offset, 4u);
  EXPECT_EQ(p.nals[1].offset, 4u + kSpsBaseline640x480.size() + 3);
  const auto indexed = h264::nalUnits(p);
  ASSERT_EQ(indexed.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(indexed[i].bytes.data(), split[i].bytes.data());
    EXPECT_EQ(indexed[i].bytes.size(), split[i].bytes.size());
  }
  // The index is what the muxers read: a range of its own says which bytes a NAL unit is.
  p.nals = {hal::NalRange{4, 2}};
  ASSERT_EQ(h264::nalUnits(p).size(), 1u);
  EXPECT_EQ(h264::nalUnits(p)[0].bytes.size(), 2u);
  // One that does not fit the data is not trusted: the data is split again.
  p.nals = {hal::NalRange{static_cast<uint32_t>(p.data.size()) - 1, 2}};
  EXPECT_EQ(h264::nalUnits(p).size(), 3u);
  EXPECT_TRUE(h264::containsIdr(h264::nalUnits(p)));
  EXPECT_EQ(h264::annexBToLengthPrefixed(h264::nalUnits(p), true),
            h264::annexBToLengthPrefixed(p.data, true));
  EXPECT_EQ(h264::extractCodecConfig(h264::nalUnits(p)), h264::extractCodecConfig(p.data));
}

TEST(H264Rbsp, EmulationPreventionBytesAreRemoved) {
  EXPECT_EQ(h264::unescapeRbsp(Bytes{0x25, 0x00, 0x00, 0x03, 0x01, 0x02}),
            (Bytes{0x25, 0x00, 0x00, 0x01, 0x02}));
  EXPECT_EQ(h264::unescapeRbsp(Bytes{0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00}), (Bytes{0, 0, 0, 0, 0}));
  // A 03 not preceded by two zeros is data.
  EXPECT_EQ(h264::unescapeRbsp(Bytes{0x00, 0x03, 0x00, 0x03}), (Bytes{0x00, 0x03, 0x00, 0x03}));
  // A trailing 00 00 03 (cabac_zero_word) loses its 03 too.
  EXPECT_EQ(h264::unescapeRbsp(Bytes{0x11, 0x00, 0x00, 0x03}), (Bytes{0x11, 0x00, 0x00}));
  EXPECT_TRUE(h264::unescapeRbsp(Bytes{}).empty());
}

TEST(H264Sps, Baseline640x480) {
  const auto sps = h264::parseSps(kSpsBaseline640x480);
  ASSERT_TRUE(sps.ok()) << sps.error().describe();
  EXPECT_EQ(sps->profileIdc, 66);
  EXPECT_EQ(sps->constraintFlags, 0xc0);
  EXPECT_EQ(sps->levelIdc, 30);
  EXPECT_EQ(sps->spsId, 0u);
  EXPECT_EQ(sps->chromaFormatIdc, 1u);
  EXPECT_EQ(sps->size, (Size{640, 480}));
  EXPECT_FALSE(sps->fps.has_value());
}

TEST(H264Sps, Main1080pWithCroppingAndTiming) {
  const auto sps = h264::parseSps(kSpsMain1920x1080);
  ASSERT_TRUE(sps.ok()) << sps.error().describe();
  EXPECT_EQ(sps->profileIdc, 77);
  EXPECT_EQ(sps->levelIdc, 40);
  EXPECT_EQ(sps->size, (Size{1920, 1080}));
  ASSERT_TRUE(sps->fps.has_value());
  EXPECT_DOUBLE_EQ(*sps->fps, 30.0);
}

TEST(H264Sps, High720p) {
  const auto sps = h264::parseSps(kSpsHigh1280x720);
  ASSERT_TRUE(sps.ok()) << sps.error().describe();
  EXPECT_EQ(sps->profileIdc, 100);
  EXPECT_EQ(sps->levelIdc, 31);
  EXPECT_EQ(sps->chromaFormatIdc, 1u);
  EXPECT_EQ(sps->size, (Size{1280, 720}));
  ASSERT_TRUE(sps->fps.has_value());
  EXPECT_DOUBLE_EQ(*sps->fps, 25.0);
}

TEST(H264Sps, RejectsOtherUnitsAndTruncation) {
  auto notSps = h264::parseSps(kPps);
  ASSERT_FALSE(notSps.ok());
  EXPECT_EQ(notSps.code(), Errc::InvalidArgument);
  EXPECT_NE(notSps.error().message.find("nal_unit_type 8"), std::string::npos) << notSps.error().message;

  const Bytes truncated(kSpsBaseline640x480.begin(), kSpsBaseline640x480.begin() + 5);
  auto cut = h264::parseSps(truncated);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.code(), Errc::InvalidArgument);
  EXPECT_NE(cut.error().message.find("truncated"), std::string::npos) << cut.error().message;

  EXPECT_EQ(h264::parseSps(Bytes{}).code(), Errc::InvalidArgument);
  EXPECT_EQ(h264::parseSps(Bytes{0x67, 0x42}).code(), Errc::InvalidArgument);
  // forbidden_zero_bit set.
  Bytes forbidden = kSpsBaseline640x480;
  forbidden[0] |= 0x80;
  EXPECT_EQ(h264::parseSps(forbidden).code(), Errc::InvalidArgument);
}

TEST(H264Avcc, AnnexBToLengthPrefixedRoundTrip) {
  const Bytes annexB = concat({{0, 0, 0, 1}, kSpsBaseline640x480, {0, 0, 1}, kPps, {0, 0, 0, 1}, kIdr});
  const Bytes avcc = h264::annexBToLengthPrefixed(annexB, false);
  const Bytes expected = concat({{0, 0, 0, 9}, kSpsBaseline640x480, {0, 0, 0, 4}, kPps, {0, 0, 0, 6}, kIdr});
  EXPECT_EQ(avcc, expected);

  const auto back = h264::lengthPrefixedToAnnexB(avcc);
  ASSERT_TRUE(back.ok()) << back.error().describe();
  // Start codes come back as 4 bytes each; the units are the same.
  EXPECT_EQ(*back, concat({{0, 0, 0, 1}, kSpsBaseline640x480, {0, 0, 0, 1}, kPps, {0, 0, 0, 1}, kIdr}));
  EXPECT_EQ(h264::annexBToLengthPrefixed(*back, false), avcc);
}

TEST(H264Avcc, ParameterSetsAndAudDropped) {
  const Bytes annexB = concat({{0, 0, 0, 1},
                               {0x09, 0xf0},
                               {0, 0, 0, 1},
                               kSpsBaseline640x480,
                               {0, 0, 0, 1},
                               kPps,
                               {0, 0, 0, 1},
                               {0x06, 0x05, 0x01, 0x80},
                               {0, 0, 0, 1},
                               kIdr});
  const Bytes avcc = h264::annexBToLengthPrefixed(annexB, true);
  EXPECT_EQ(avcc, concat({{0, 0, 0, 4}, {0x06, 0x05, 0x01, 0x80}, {0, 0, 0, 6}, kIdr}));
}

TEST(H264Avcc, LengthPastEndIsRejected) {
  auto overrun = h264::lengthPrefixedToAnnexB(Bytes{0, 0, 0, 9, 0x65, 0x88});
  ASSERT_FALSE(overrun.ok());
  EXPECT_EQ(overrun.code(), Errc::InvalidArgument);
  EXPECT_NE(overrun.error().message.find("length 9"), std::string::npos) << overrun.error().message;
  EXPECT_EQ(h264::lengthPrefixedToAnnexB(Bytes{0, 0, 0, 2, 0x41, 0x9a, 0x00}).code(), Errc::InvalidArgument);
  auto empty = h264::lengthPrefixedToAnnexB(Bytes{});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(H264Avcc, DecoderConfigurationRecordBaseline) {
  const auto record = h264::avcDecoderConfigurationRecord(CodecConfig{kSpsBaseline640x480, kPps});
  ASSERT_TRUE(record.ok()) << record.error().describe();
  // ISO/IEC 14496-15 5.3.3.1, computed by hand:
  const Bytes expected = {
      0x01,              // configurationVersion
      0x42, 0xc0, 0x1e,  // profile 66, compatibility 0xc0, level 30
      0xff,              // 111111 + lengthSizeMinusOne 3
      0xe1,              // 111 + one SPS
      0x00, 0x09,        // SPS length 9
      0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xf6, 0x40,
      0x01,        // one PPS
      0x00, 0x04,  // PPS length 4
      0x68, 0xce, 0x38, 0x80,
  };
  EXPECT_EQ(*record, expected);
}

TEST(H264Avcc, DecoderConfigurationRecordHighHasChromaExtension) {
  const auto record = h264::avcDecoderConfigurationRecord(CodecConfig{kSpsHigh1280x720, kPps});
  ASSERT_TRUE(record.ok()) << record.error().describe();
  Bytes expected = {0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 20};
  expected.insert(expected.end(), kSpsHigh1280x720.begin(), kSpsHigh1280x720.end());
  expected.insert(expected.end(), {0x01, 0x00, 0x04, 0x68, 0xce, 0x38, 0x80});
  // 5.3.3.1.2 for profile 100: 111111 + chroma_format 1, 11111 + luma depth-8 0,
  // 11111 + chroma depth-8 0, no SPS extensions.
  expected.insert(expected.end(), {0xfd, 0xf8, 0xf8, 0x00});
  EXPECT_EQ(*record, expected);
}

TEST(H264Avcc, DecoderConfigurationRecordRejectsShortSets) {
  auto shortSps = h264::avcDecoderConfigurationRecord(CodecConfig{{0x67, 0x42, 0xc0}, kPps});
  ASSERT_FALSE(shortSps.ok());
  EXPECT_EQ(shortSps.code(), Errc::InvalidArgument);
  EXPECT_NE(shortSps.error().message.find("SPS of 3 bytes"), std::string::npos) << shortSps.error().message;
  auto noPps = h264::avcDecoderConfigurationRecord(CodecConfig{kSpsBaseline640x480, {}});
  ASSERT_FALSE(noPps.ok());
  EXPECT_NE(noPps.error().message.find("PPS"), std::string::npos);
}

TEST(H264Avcc, ExtractCodecConfig) {
  const Bytes au = concat({{0, 0, 0, 1}, kSpsMain1920x1080, {0, 0, 0, 1}, kPps, {0, 0, 1}, kIdr});
  const auto config = h264::extractCodecConfig(au);
  ASSERT_TRUE(config.has_value());
  EXPECT_EQ(config->sps, kSpsMain1920x1080);
  EXPECT_EQ(config->pps, kPps);
  EXPECT_FALSE(
      h264::extractCodecConfig(concat({{0, 0, 0, 1}, kSpsMain1920x1080, {0, 0, 1}, kIdr})).has_value());
  EXPECT_FALSE(h264::extractCodecConfig(concat({{0, 0, 0, 1}, kSlice})).has_value());
}
