// SPDX-License-Identifier: MIT
// FLV byte builders and a tolerant reader (Adobe FLV spec v10.1 annex E; AMF0 for onMetaData).
#include "printcast/transport/flv.h"

#include <bit>
#include <cassert>
#include <string_view>

namespace printcast::transport::flv {
namespace {

// FLV tag types (annex E.4.1, TagType).
constexpr uint8_t kTagVideo = 9;
constexpr uint8_t kTagScript = 18;
constexpr size_t kTagHeaderSize = 11;
constexpr size_t kPreviousTagSizeSize = 4;
constexpr size_t kFileHeaderSize = 9;
// VideoTagHeader for AVC (E.4.3.1): FrameType << 4 | CodecID 7, AVCPacketType, 24-bit CTS.
constexpr size_t kAvcVideoHeaderSize = 5;
constexpr uint8_t kAvcKeyframe = 0x17;
constexpr uint8_t kAvcInterFrame = 0x27;
constexpr uint8_t kAvcSequenceHeader = 0;
constexpr uint8_t kAvcNalu = 1;
// AMF0 markers (AMF0 spec 2.1).
constexpr uint8_t kAmfNumber = 0x00;
constexpr uint8_t kAmfString = 0x02;
constexpr uint8_t kAmfEcmaArray = 0x08;
constexpr uint8_t kAmfObjectEnd = 0x09;

// Big-endian writers into a fixed position (tag framing) or appended to a vector.
void store24(uint8_t* out, uint32_t value) {
  out[0] = static_cast<uint8_t>(value >> 16);
  out[1] = static_cast<uint8_t>(value >> 8);
  out[2] = static_cast<uint8_t>(value);
}
void store32(uint8_t* out, uint32_t value) {
  out[0] = static_cast<uint8_t>(value >> 24);
  store24(out + 1, value);
}
void put8(std::vector<uint8_t>& out, uint8_t value) { out.push_back(value); }
void put16(std::vector<uint8_t>& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}
void put32(std::vector<uint8_t>& out, uint32_t value) {
  uint8_t bytes[4];
  store32(bytes, value);
  out.insert(out.end(), bytes, bytes + 4);
}
void put64(std::vector<uint8_t>& out, uint64_t value) {
  put32(out, static_cast<uint32_t>(value >> 32));
  put32(out, static_cast<uint32_t>(value));
}

uint32_t load24(const uint8_t* in) {
  return static_cast<uint32_t>(in[0]) << 16 | static_cast<uint32_t>(in[1]) << 8 | in[2];
}
uint32_t load32(const uint8_t* in) { return static_cast<uint32_t>(in[0]) << 24 | load24(in + 1); }

// The 11-byte tag header (E.4.1): TagType (no filter bit), DataSize, Timestamp low 24 bits,
// TimestampExtended (the high 8 bits), StreamID 0.
void storeTagHeader(uint8_t* out, uint8_t type, size_t dataSize, uint32_t timestampMs) {
  assert(dataSize <= kMaxTagDataSize && "FLV tag body too large for the 24-bit DataSize");
  out[0] = type;
  store24(out + 1, static_cast<uint32_t>(dataSize));
  store24(out + 4, timestampMs & 0xFFFFFF);
  out[7] = static_cast<uint8_t>(timestampMs >> 24);
  store24(out + 8, 0);
}

// Wraps `body` into a complete tag followed by its PreviousTagSize.
std::vector<uint8_t> makeTag(uint8_t type, uint32_t timestampMs, const std::vector<uint8_t>& body) {
  std::vector<uint8_t> tag(kTagHeaderSize);
  tag.reserve(kTagHeaderSize + body.size() + kPreviousTagSizeSize);
  storeTagHeader(tag.data(), type, body.size(), timestampMs);
  tag.insert(tag.end(), body.begin(), body.end());
  put32(tag, static_cast<uint32_t>(kTagHeaderSize + body.size()));
  return tag;
}

// AMF0 property name inside an object / ECMA array: UI16 length + bytes, no type marker.
void putAmfName(std::vector<uint8_t>& out, std::string_view name) {
  put16(out, static_cast<uint16_t>(name.size()));
  out.insert(out.end(), name.begin(), name.end());
}
void putAmfString(std::vector<uint8_t>& out, std::string_view value) {
  put8(out, kAmfString);
  putAmfName(out, value);
}
// AMF0 Number: an IEEE 754 double, big-endian.
void putAmfNumber(std::vector<uint8_t>& out, double value) {
  put8(out, kAmfNumber);
  put64(out, std::bit_cast<uint64_t>(value));
}

}  // namespace

std::vector<uint8_t> fileHeader() {
  return {'F', 'L', 'V', 1, 0x01, 0, 0, 0, static_cast<uint8_t>(kFileHeaderSize), 0, 0, 0, 0};
}

std::vector<uint8_t> metadataTag(hal::Size size, double fps) {
  struct Property {
    std::string_view name;
    double value;
  };
  const Property properties[] = {
      {"width", static_cast<double>(size.width)},
      {"height", static_cast<double>(size.height)},
      {"framerate", fps},
      {"videocodecid", 7.0},  // 7 = AVC (E.4.3.1 CodecID)
  };
  std::vector<uint8_t> body;
  body.reserve(128);  // also keeps GCC 12's -O3 -Wstringop-overflow false positive away
  putAmfString(body, "onMetaData");
  put8(body, kAmfEcmaArray);
  put32(body, static_cast<uint32_t>(std::size(properties)));
  for (const Property& property : properties) {
    putAmfName(body, property.name);
    putAmfNumber(body, property.value);
  }
  // SCRIPTDATAOBJECTEND: an empty name followed by the object-end marker.
  put16(body, 0);
  put8(body, kAmfObjectEnd);
  return makeTag(kTagScript, 0, body);
}

std::vector<uint8_t> avcSequenceHeaderTag(std::span<const uint8_t> avcDecoderConfigurationRecord,
                                          uint32_t timestampMs) {
  std::vector<uint8_t> body{kAvcKeyframe, kAvcSequenceHeader, 0, 0, 0};
  body.insert(body.end(), avcDecoderConfigurationRecord.begin(), avcDecoderConfigurationRecord.end());
  return makeTag(kTagVideo, timestampMs, body);
}

TagFraming avcNaluTagFraming(size_t payloadSize, uint32_t timestampMs, bool keyframe) {
  assert(payloadSize <= kMaxNaluPayloadSize && "access unit too large for one FLV tag");
  TagFraming framing;
  const size_t dataSize = kAvcVideoHeaderSize + payloadSize;
  storeTagHeader(framing.prefix.data(), kTagVideo, dataSize, timestampMs);
  uint8_t* video = framing.prefix.data() + kTagHeaderSize;
  video[0] = keyframe ? kAvcKeyframe : kAvcInterFrame;
  video[1] = kAvcNalu;
  store24(video + 2, 0);  // CompositionTime: no B-frames, so PTS == DTS
  store32(framing.suffix.data(), static_cast<uint32_t>(kTagHeaderSize + dataSize));
  return framing;
}

ParsedStream parseStream(std::span<const uint8_t> bytes) {
  ParsedStream result;
  if (bytes.size() < kFileHeaderSize || bytes[0] != 'F' || bytes[1] != 'L' || bytes[2] != 'V' ||
      bytes[3] != 1) {
    return result;
  }
  // DataOffset is the header size; version 1 says 9, later versions may grow it, so skip any extra.
  const uint32_t dataOffset = load32(&bytes[5]);
  if (dataOffset < kFileHeaderSize) return result;
  result.flags = bytes[4];
  if (bytes.size() < dataOffset || bytes.size() - dataOffset < kPreviousTagSizeSize) return result;
  if (load32(&bytes[dataOffset]) != 0) result.previousTagSizesValid = false;
  size_t pos = static_cast<size_t>(dataOffset) + kPreviousTagSizeSize;
  result.consumed = pos;

  while (bytes.size() - pos >= kTagHeaderSize) {
    const uint8_t* header = &bytes[pos];
    const size_t dataSize = load24(header + 1);
    const size_t tagSize = kTagHeaderSize + dataSize + kPreviousTagSizeSize;
    if (bytes.size() - pos < tagSize) break;  // partial last tag: leave it for the next call
    Tag tag;
    tag.type = header[0] & 0x1F;  // the top bits are reserved and the Filter (encryption) flag
    tag.timestampMs = load24(header + 4) | static_cast<uint32_t>(header[7]) << 24;
    tag.data = bytes.subspan(pos + kTagHeaderSize, dataSize);
    // Tolerant: a wrong PreviousTagSize is recorded, but DataSize alone decides the framing.
    if (load32(&bytes[pos + kTagHeaderSize + dataSize]) != kTagHeaderSize + dataSize) {
      result.previousTagSizesValid = false;
    }
    result.tags.push_back(tag);
    pos += tagSize;
    result.consumed = pos;
  }
  return result;
}

}  // namespace printcast::transport::flv
