// SPDX-License-Identifier: MIT
// FLV builders against hand-checked bytes (FLV spec v10.1 annex E, AMF0), and parseStream robustness.
#include "printcast/transport/flv.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

namespace flv = printcast::transport::flv;
using Bytes = std::vector<uint8_t>;

namespace {

// The small avcC of the brief: version 1, Baseline (0x42), compat 0xC0, level 3.0 (0x1E),
// 4-byte NAL lengths (0xFF), one 4-byte SPS, one 2-byte PPS.
const Bytes kAvcC{0x01, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, 0x00, 0x04, 0x67,
                  0x42, 0xC0, 0x1E, 0x01, 0x00, 0x02, 0x68, 0xCE};

Bytes framingBytes(const flv::TagFraming& framing) {
  Bytes out(framing.prefix.begin(), framing.prefix.end());
  out.insert(out.end(), framing.suffix.begin(), framing.suffix.end());
  return out;
}

void append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

struct Frame {
  Bytes payload;
  uint32_t timestampMs;
  bool keyframe;
};

// A complete tag: prefix + payload + suffix, the way a client receives it.
Bytes naluTag(const Frame& frame) {
  const flv::TagFraming framing =
      flv::avcNaluTagFraming(frame.payload.size(), frame.timestampMs, frame.keyframe);
  Bytes out(framing.prefix.begin(), framing.prefix.end());
  append(out, frame.payload);
  out.insert(out.end(), framing.suffix.begin(), framing.suffix.end());
  return out;
}

// header + metadata + sequence header + 3 frames, with the tag boundaries (offsets) of each.
struct TestStream {
  Bytes bytes;
  std::vector<size_t> tagEnds;  // offset just after each tag's PreviousTagSize
  std::vector<Frame> frames;
};

TestStream makeStream() {
  TestStream s;
  s.frames = {
      {{0x00, 0x00, 0x00, 0x03, 0x65, 0x88, 0x84}, 0, true},
      {{0x00, 0x00, 0x00, 0x02, 0x41, 0x9A}, 40, false},
      {{0x00, 0x00, 0x00, 0x02, 0x41, 0x9B}, 0x01234567, false},
  };
  s.bytes = flv::fileHeader();
  const size_t headerEnd = s.bytes.size();
  append(s.bytes, flv::metadataTag({800, 480}, 30.0));
  s.tagEnds.push_back(s.bytes.size());
  append(s.bytes, flv::avcSequenceHeaderTag(kAvcC, 0));
  s.tagEnds.push_back(s.bytes.size());
  for (const Frame& frame : s.frames) {
    append(s.bytes, naluTag(frame));
    s.tagEnds.push_back(s.bytes.size());
  }
  s.tagEnds.insert(s.tagEnds.begin(), headerEnd);
  return s;
}

}  // namespace

TEST(Flv, FileHeaderIsVideoOnlyVersion1) {
  const Bytes expected{'F', 'L', 'V', 0x01, 0x01, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(flv::fileHeader(), expected);
}

// The byte tables below are laid out by field, by hand.
// clang-format off
TEST(Flv, SequenceHeaderTagBytes) {
  const Bytes expected{
      // Tag header: type 9, DataSize 22 (5 + 17), timestamp 0, extended 0, stream id 0.
      0x09, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      // Keyframe + AVC, AVCPacketType 0 (sequence header), CompositionTime 0.
      0x17, 0x00, 0x00, 0x00, 0x00,
      // AVCDecoderConfigurationRecord, copied as given.
      0x01, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, 0x00, 0x04, 0x67, 0x42, 0xC0, 0x1E, 0x01, 0x00, 0x02, 0x68, 0xCE,
      // PreviousTagSize = 11 + 22 = 33.
      0x00, 0x00, 0x00, 0x21};
  EXPECT_EQ(flv::avcSequenceHeaderTag(kAvcC, 0), expected);
}

TEST(Flv, SequenceHeaderTagCarriesItsTimestamp) {
  const Bytes tag = flv::avcSequenceHeaderTag(kAvcC, 0x0A0B0C0D);
  ASSERT_EQ(tag.size(), 11u + 22u + 4u);
  EXPECT_EQ((Bytes{tag.begin() + 4, tag.begin() + 8}), (Bytes{0x0B, 0x0C, 0x0D, 0x0A}));
}

TEST(Flv, NaluFramingKeyframeAtZero) {
  const Bytes expected{
      0x09, 0x00, 0x00, 0x69,  // type 9, DataSize 105 = 5 + 100
      0x00, 0x00, 0x00, 0x00,  // timestamp 0, extended 0
      0x00, 0x00, 0x00,        // stream id
      0x17, 0x01, 0x00, 0x00, 0x00,  // keyframe AVC, NALU, CTS 0
      0x00, 0x00, 0x00, 0x74};       // PreviousTagSize 116 = 11 + 5 + 100
  EXPECT_EQ(framingBytes(flv::avcNaluTagFraming(100, 0, true)), expected);
}

TEST(Flv, NaluFramingInterFrameAt40) {
  const Bytes expected{
      0x09, 0x00, 0x03, 0xED,  // DataSize 1005 = 0x3ED
      0x00, 0x00, 0x28, 0x00,  // timestamp 40 = 0x28, extended 0
      0x00, 0x00, 0x00,
      0x27, 0x01, 0x00, 0x00, 0x00,  // inter frame
      0x00, 0x00, 0x03, 0xF8};       // 1016 = 0x3F8
  EXPECT_EQ(framingBytes(flv::avcNaluTagFraming(1000, 40, false)), expected);
}

TEST(Flv, NaluFramingUsesTheExtendedTimestampByte) {
  const Bytes expected{
      0x09, 0x01, 0x00, 0x05,  // DataSize 65541 = 0x010005
      0x23, 0x45, 0x67, 0x01,  // low 24 bits 0x234567, then the high byte 0x01
      0x00, 0x00, 0x00,
      0x17, 0x01, 0x00, 0x00, 0x00,
      0x00, 0x01, 0x00, 0x10};  // 65552 = 0x010010
  EXPECT_EQ(framingBytes(flv::avcNaluTagFraming(65536, 0x01234567, true)), expected);
  const Bytes interExpected{0x09, 0x00, 0x00, 0x05, 0x23, 0x45, 0x67, 0x01, 0x00, 0x00, 0x00,
                            0x27, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10};
  EXPECT_EQ(framingBytes(flv::avcNaluTagFraming(0, 0x01234567, false)), interExpected);
}

TEST(Flv, MetadataTagBytes) {
  const Bytes tag = flv::metadataTag({800, 480}, 30.0);
  const Bytes expected{
      // Script tag, DataSize 97, timestamp 0, stream id 0.
      0x12, 0x00, 0x00, 0x61, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      // AMF0 string "onMetaData".
      0x02, 0x00, 0x0A, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a',
      // ECMA array of 4 entries.
      0x08, 0x00, 0x00, 0x00, 0x04,
      // "width": Number 800.0 = 0x4089000000000000.
      0x00, 0x05, 'w', 'i', 'd', 't', 'h', 0x00, 0x40, 0x89, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      // "height": 480.0 = 0x407E000000000000.
      0x00, 0x06, 'h', 'e', 'i', 'g', 'h', 't', 0x00, 0x40, 0x7E, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      // "framerate": 30.0 = 0x403E000000000000.
      0x00, 0x09, 'f', 'r', 'a', 'm', 'e', 'r', 'a', 't', 'e', 0x00, 0x40, 0x3E, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00,
      // "videocodecid": 7.0 = 0x401C000000000000.
      0x00, 0x0C, 'v', 'i', 'd', 'e', 'o', 'c', 'o', 'd', 'e', 'c', 'i', 'd', 0x00, 0x40, 0x1C, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00,
      // Object end.
      0x00, 0x00, 0x09,
      // PreviousTagSize 108 = 11 + 97.
      0x00, 0x00, 0x00, 0x6C};
  EXPECT_EQ(tag, expected);
  // The size fields on their own, so a failure above says which part is off.
  ASSERT_EQ(tag.size(), 11u + 97u + 4u);
  EXPECT_EQ((Bytes{tag.begin() + 1, tag.begin() + 4}), (Bytes{0x00, 0x00, 0x61}));
  EXPECT_EQ((Bytes{tag.end() - 4, tag.end()}), (Bytes{0x00, 0x00, 0x00, 0x6C}));
  const Bytes widthEntry{0x00, 0x05, 'w', 'i', 'd', 't', 'h', 0x00, 0x40, 0x89, 0, 0, 0, 0, 0, 0};
  EXPECT_NE(std::search(tag.begin(), tag.end(), widthEntry.begin(), widthEntry.end()), tag.end());
}

// clang-format on

TEST(Flv, MetadataTagFractionalFramerate) {
  // 29.97 = 0x403DF851EB851EB8 (IEEE 754 double, big-endian in AMF0).
  const Bytes tag = flv::metadataTag({1280, 720}, 29.97);
  const Bytes entry{'f',  'r',  'a',  'm',  'e',  'r',  'a',  't',  'e',
                    0x00, 0x40, 0x3D, 0xF8, 0x51, 0xEB, 0x85, 0x1E, 0xB8};
  EXPECT_NE(std::search(tag.begin(), tag.end(), entry.begin(), entry.end()), tag.end());
}

TEST(Flv, ParseStreamRoundTrip) {
  const TestStream s = makeStream();
  const flv::ParsedStream parsed = flv::parseStream(s.bytes);
  EXPECT_EQ(parsed.flags, 0x01);
  EXPECT_EQ(parsed.consumed, s.bytes.size());
  EXPECT_TRUE(parsed.previousTagSizesValid);
  ASSERT_EQ(parsed.tags.size(), 5u);

  EXPECT_EQ(parsed.tags[0].type, 18);
  EXPECT_EQ(parsed.tags[0].timestampMs, 0u);
  EXPECT_EQ(parsed.tags[0].data.size(), 97u);

  EXPECT_EQ(parsed.tags[1].type, 9);
  Bytes seq{0x17, 0x00, 0x00, 0x00, 0x00};
  append(seq, kAvcC);
  EXPECT_EQ(Bytes(parsed.tags[1].data.begin(), parsed.tags[1].data.end()), seq);

  for (size_t i = 0; i < s.frames.size(); ++i) {
    const flv::Tag& tag = parsed.tags[2 + i];
    EXPECT_EQ(tag.type, 9) << i;
    EXPECT_EQ(tag.timestampMs, s.frames[i].timestampMs) << i;
    Bytes body{static_cast<uint8_t>(s.frames[i].keyframe ? 0x17 : 0x27), 0x01, 0x00, 0x00, 0x00};
    append(body, s.frames[i].payload);
    EXPECT_EQ(Bytes(tag.data.begin(), tag.data.end()), body) << i;
  }
}

TEST(Flv, ParseStreamLeavesAPartialTagUnconsumedAtEveryOffset) {
  const TestStream s = makeStream();
  for (size_t cut = 0; cut <= s.bytes.size(); ++cut) {
    const std::span<const uint8_t> prefix(s.bytes.data(), cut);
    const flv::ParsedStream parsed = flv::parseStream(prefix);
    // The complete tags are those ending at or before the cut; the header counts once complete.
    size_t expectedConsumed = 0;
    size_t expectedTags = 0;
    for (size_t i = 0; i < s.tagEnds.size(); ++i) {
      if (s.tagEnds[i] <= cut) {
        expectedConsumed = s.tagEnds[i];
        expectedTags = i;  // tagEnds[0] is the file header, not a tag
      }
    }
    EXPECT_EQ(parsed.consumed, expectedConsumed) << "cut at " << cut;
    EXPECT_EQ(parsed.tags.size(), expectedTags) << "cut at " << cut;
    EXPECT_TRUE(parsed.previousTagSizesValid) << "cut at " << cut;

    // Feeding the rest after the consumed part gives the remaining tags: a reader that keeps
    // bytes[consumed..] and appends the next chunk sees every tag exactly once.
    if (expectedConsumed > 0) {
      Bytes resumed = flv::fileHeader();
      resumed.insert(resumed.end(), s.bytes.begin() + static_cast<std::ptrdiff_t>(expectedConsumed),
                     s.bytes.end());
      EXPECT_EQ(parsed.tags.size() + flv::parseStream(resumed).tags.size(), 5u) << "cut at " << cut;
    }
  }
}

TEST(Flv, ParseStreamRejectsWhatIsNotFlvVersion1) {
  Bytes bytes = makeStream().bytes;
  bytes[0] = 'G';
  EXPECT_EQ(flv::parseStream(bytes).consumed, 0u);
  EXPECT_TRUE(flv::parseStream(bytes).tags.empty());
  bytes[0] = 'F';
  bytes[3] = 2;
  EXPECT_EQ(flv::parseStream(bytes).consumed, 0u);
  bytes[3] = 1;
  bytes[8] = 8;  // DataOffset below the 9-byte header
  EXPECT_EQ(flv::parseStream(bytes).consumed, 0u);
  EXPECT_EQ(flv::parseStream({}).consumed, 0u);
}

TEST(Flv, ParseStreamReportsAWrongPreviousTagSizeButKeepsGoing) {
  TestStream s = makeStream();
  s.bytes[s.tagEnds[2] - 1] ^= 0x01;  // PreviousTagSize of the sequence header
  const flv::ParsedStream parsed = flv::parseStream(s.bytes);
  EXPECT_FALSE(parsed.previousTagSizesValid);
  EXPECT_EQ(parsed.tags.size(), 5u);
  EXPECT_EQ(parsed.consumed, s.bytes.size());
}

TEST(Flv, ParseStreamSkipsALongerHeader) {
  // DataOffset 12: three extra header bytes before PreviousTagSize0.
  Bytes bytes{'F', 'L', 'V', 0x01, 0x01, 0x00, 0x00, 0x00, 0x0C, 0xAA, 0xBB, 0xCC, 0x00, 0x00, 0x00, 0x00};
  append(bytes, flv::avcSequenceHeaderTag(kAvcC, 0));
  const flv::ParsedStream parsed = flv::parseStream(bytes);
  EXPECT_EQ(parsed.consumed, bytes.size());
  ASSERT_EQ(parsed.tags.size(), 1u);
  EXPECT_EQ(parsed.tags[0].data.size(), 22u);
}

TEST(Flv, ParseStreamSurvivesRandomBytesAndTruncations) {
  std::mt19937 rng(20240611);
  auto checkInvariants = [](std::span<const uint8_t> input, const flv::ParsedStream& parsed) {
    ASSERT_LE(parsed.consumed, input.size());
    for (const flv::Tag& tag : parsed.tags) {
      // Every tag body lies inside the consumed part of the input.
      ASSERT_GE(tag.data.data(), input.data());
      ASSERT_LE(tag.data.data() + tag.data.size(), input.data() + parsed.consumed);
    }
  };

  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<size_t> length(0, 512);
  for (int i = 0; i < 2000; ++i) {
    Bytes input(length(rng));
    for (uint8_t& b : input) b = static_cast<uint8_t>(byte(rng));
    // Half the buffers get a valid header so the tag loop sees random tag headers too.
    if (i % 2 == 0 && input.size() >= 13) {
      const Bytes header = flv::fileHeader();
      std::copy(header.begin(), header.end(), input.begin());
    }
    checkInvariants(input, flv::parseStream(input));
  }

  const Bytes valid = makeStream().bytes;
  std::uniform_int_distribution<size_t> cut(0, valid.size());
  for (int i = 0; i < 2000; ++i) {
    Bytes input(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(cut(rng)));
    // Corrupt one byte in some of them: sizes and header fields become arbitrary.
    if (i % 3 == 0 && !input.empty()) {
      input[std::uniform_int_distribution<size_t>(0, input.size() - 1)(rng)] =
          static_cast<uint8_t>(byte(rng));
    }
    checkInvariants(input, flv::parseStream(input));
  }
}
