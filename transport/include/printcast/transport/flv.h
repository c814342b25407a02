// SPDX-License-Identifier: MIT
// FLV byte builders for H.264 video-only streams.
// Spec: Adobe Flash Video File Format Specification v10.1, annex E (FLV header, tags, AVC video
// tags with AVCPacketType 0 = sequence header, 1 = NALU); AMF0 for onMetaData.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "printcast/hal/geometry.h"

namespace printcast::transport::flv {

// "FLV", version 1, flags 0x01 (video only: players wait forever for audio with 0x05),
// header size 9, then PreviousTagSize0 = 0. 13 bytes.
std::vector<uint8_t> fileHeader();

// Script data tag "onMetaData" (AMF0 ECMA array: width, height, framerate, videocodecid 7)
// at timestamp 0, followed by its PreviousTagSize.
std::vector<uint8_t> metadataTag(hal::Size size, double fps);

// Video tag holding the AVC sequence header (0x17 0x00 0 0 0 + `avcDecoderConfigurationRecord`),
// followed by its PreviousTagSize.
std::vector<uint8_t> avcSequenceHeaderTag(std::span<const uint8_t> avcDecoderConfigurationRecord,
                                          uint32_t timestampMs);

// The bytes around the payload of one AVC NALU video tag, so the payload (an access unit in
// 4-byte length-prefixed form, shared by all clients) is never copied per client:
//   prefix = 11-byte tag header (type 9, data size, 24+8 bit timestamp, stream id 0)
//            + 5-byte video header (0x17 keyframe / 0x27 inter, AVCPacketType 1, CTS 0)
//   suffix = 4-byte big-endian PreviousTagSize (= 11 + 5 + payloadSize)
struct TagFraming {
  std::array<uint8_t, 16> prefix{};
  std::array<uint8_t, 4> suffix{};
};
TagFraming avcNaluTagFraming(size_t payloadSize, uint32_t timestampMs, bool keyframe);

// A tag read back by parseTags() (for tests and tools).
struct Tag {
  uint8_t type = 0;  // 8 audio, 9 video, 18 script
  uint32_t timestampMs = 0;
  std::span<const uint8_t> data;  // tag body (after the 11-byte header)
};

struct ParsedStream {
  uint8_t flags = 0;  // header TypeFlags
  std::vector<Tag> tags;
  size_t consumed = 0;  // bytes of complete tags read (a trailing partial tag is left over)
  bool previousTagSizesValid = true;  // every PreviousTagSize matched its tag
};

// Parse an FLV byte stream (header first). A partial last tag is not an error.
// Returns nullopt-like empty result with consumed 0 when the header is not "FLV" version 1.
ParsedStream parseStream(std::span<const uint8_t> bytes);

}  // namespace printcast::transport::flv
