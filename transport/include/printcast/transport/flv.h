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

// Threading: every function here is pure (no shared state); call from any thread.
// Sizes: a tag body is at most 2^24 - 1 bytes (24-bit DataSize); timestamps are milliseconds,
// 32 bits (24 low bits + TimestampExtended), so they wrap after about 49.7 days.

inline constexpr size_t kMaxTagDataSize = 0xFFFFFF;
// Largest access unit one AVC NALU tag can carry (DataSize minus the 5-byte video header).
// Callers must drop (and count) larger access units: the builders below assert on them.
inline constexpr size_t kMaxNaluPayloadSize = kMaxTagDataSize - 5;

// "FLV", version 1, flags 0x01 (video only: players wait forever for audio with 0x05),
// header size 9, then PreviousTagSize0 = 0. 13 bytes.
std::vector<uint8_t> fileHeader();

// Script data tag "onMetaData" (AMF0 ECMA array: width, height, framerate, videocodecid 7)
// at timestamp 0, followed by its PreviousTagSize.
std::vector<uint8_t> metadataTag(hal::Size size, double fps);

// Video tag holding the AVC sequence header (0x17 0x00 0 0 0 + `avcDecoderConfigurationRecord`),
// followed by its PreviousTagSize. The record (ISO/IEC 14496-15 5.3.3.1) is copied as given.
std::vector<uint8_t> avcSequenceHeaderTag(std::span<const uint8_t> avcDecoderConfigurationRecord,
                                          uint32_t timestampMs);

// The bytes around the payload of one AVC NALU video tag, so the payload (an access unit in
// 4-byte length-prefixed form, shared by all clients) is never copied per client:
//   prefix = 11-byte tag header (type 9, data size, 24+8 bit timestamp, stream id 0)
//            + 5-byte video header (0x17 keyframe / 0x27 inter, AVCPacketType 1, CTS 0)
//   suffix = 4-byte big-endian PreviousTagSize (= 11 + 5 + payloadSize)
// A client sends prefix, payload, suffix. CompositionTime is 0 (no B-frames: PTS == DTS).
// Precondition: payloadSize <= kMaxNaluPayloadSize.
struct TagFraming {
  std::array<uint8_t, 16> prefix{};
  std::array<uint8_t, 4> suffix{};
};
TagFraming avcNaluTagFraming(size_t payloadSize, uint32_t timestampMs, bool keyframe);

// A tag read back by parseStream() (for tests and tools).
struct Tag {
  uint8_t type = 0;  // TagType (low 5 bits): 8 audio, 9 video, 18 script
  uint32_t timestampMs = 0;
  std::span<const uint8_t> data;  // tag body (after the 11-byte header); points into the input
};

struct ParsedStream {
  uint8_t flags = 0;  // header TypeFlags
  std::vector<Tag> tags;
  // Bytes from the start of the input that were read: file header + PreviousTagSize0 + every
  // complete tag with its PreviousTagSize. bytes[consumed..] is the partial remainder. 0 when
  // the header is missing, incomplete or not FLV version 1.
  size_t consumed = 0;
  bool previousTagSizesValid = true;  // every PreviousTagSize (PreviousTagSize0 = 0 included) matched
};

// Parse an FLV byte stream (header first). Tolerant: a partial last tag is not an error (it is
// left unconsumed), unknown tag types are returned as they are, and a wrong PreviousTagSize only
// clears previousTagSizesValid (DataSize alone decides the framing). A header of more than 9 bytes
// (DataOffset) is skipped. When the input does not start with a complete "FLV" version 1 header,
// the result has no tags and consumed 0 (flags are set once the 9-byte header was read).
// The returned tags point into `bytes`: keep the input alive while using them.
ParsedStream parseStream(std::span<const uint8_t> bytes);

}  // namespace printcast::transport::flv
