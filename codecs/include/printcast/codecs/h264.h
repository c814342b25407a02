// SPDX-License-Identifier: MIT
// H.264 bitstream utilities: NAL unit splitting, SPS parsing, Annex-B <-> length-prefixed,
// and the AVCDecoderConfigurationRecord used by FLV and MP4.
// Specs: ITU-T H.264 (Annex B byte stream; 7.3.2.1 SPS syntax), ISO/IEC 14496-15 5.3.3 (avcC).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "printcast/hal/geometry.h"
#include "printcast/hal/packet.h"
#include "printcast/hal/result.h"

namespace printcast::codecs::h264 {

// nal_unit_type values used here (H.264 Table 7-1).
enum NalType : uint8_t {
  kNonIdrSlice = 1,
  kIdrSlice = 5,
  kSei = 6,
  kSps = 7,
  kPps = 8,
  kAud = 9,
};

// One NAL unit inside a buffer: header byte first, no start code, trailing zero bytes trimmed.
struct NalUnit {
  std::span<const uint8_t> bytes;
  uint8_t type() const { return bytes.empty() ? 0 : (bytes[0] & 0x1f); }
};

// Position of the first start code prefix 00 00 01 at or after `from` (B.1.1), or stream.size()
// when there is none. Runs at memchr speed: coded data holds a 01 byte about once in 256.
size_t findStartCode(std::span<const uint8_t> stream, size_t from = 0);

// Split an Annex-B byte stream (3- or 4-byte start codes) into NAL units. Bytes before the first
// start code are ignored; an input without start codes yields no units.
std::vector<NalUnit> splitAnnexB(std::span<const uint8_t> stream);

// The NAL units of an H.264 packet: from its `nals` index when the producer set one, else
// splitAnnexB(data). The spans point into accessUnit.data.
std::vector<NalUnit> nalUnits(const hal::Packet& accessUnit);
// The index to store in hal::Packet::nals for `units` found in `data` (spans into it).
std::vector<hal::NalRange> nalRanges(std::span<const uint8_t> data, std::span<const NalUnit> units);

// True if the Annex-B access unit (or its NAL units) holds an IDR slice.
bool containsIdr(std::span<const uint8_t> annexB);
bool containsIdr(std::span<const NalUnit> units);

// Remove emulation prevention bytes (00 00 03 -> 00 00) giving the RBSP.
std::vector<uint8_t> unescapeRbsp(std::span<const uint8_t> nal);

struct Sps {
  uint8_t profileIdc = 0;
  uint8_t constraintFlags = 0;  // constraint_set0..5 flags byte, as in avcC profile_compatibility
  uint8_t levelIdc = 0;
  uint32_t spsId = 0;
  uint32_t chromaFormatIdc = 1;
  hal::Size size;             // display size after frame cropping
  std::optional<double> fps;  // from VUI timing info when present
  bool fullRange = false;     // VUI video_full_range_flag: samples span 0..255 (E.2.1)
};

// Parse a sequence parameter set NAL unit (with its header byte).
// Errors: InvalidArgument (not an SPS, truncated, or values out of the spec's range).
hal::Result<Sps> parseSps(std::span<const uint8_t> spsNal);

// Annex-B access unit -> NAL units each prefixed by a 4-byte big-endian length (AVCC sample
// format, as FLV and MP4 carry it). SPS, PPS and AUD units are dropped when `dropParameterSets`
// (they travel in the decoder configuration record instead).
std::vector<uint8_t> annexBToLengthPrefixed(std::span<const uint8_t> annexB, bool dropParameterSets);
std::vector<uint8_t> annexBToLengthPrefixed(std::span<const NalUnit> units, bool dropParameterSets);

// Length-prefixed (4-byte) -> Annex-B with 4-byte start codes. Errors: InvalidArgument when a
// length runs past the end.
hal::Result<std::vector<uint8_t>> lengthPrefixedToAnnexB(std::span<const uint8_t> avcc);

// AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) for one SPS and one PPS;
// profile, compatibility and level are copied from SPS bytes 1..3, lengthSizeMinusOne = 3.
// For profile_idc 100/110/122/144 the chroma_format/bit-depth extension (5.3.3.1.2) follows,
// read from the SPS.
// Errors: InvalidArgument (SPS shorter than 4 bytes, PPS empty, either longer than 65535
// bytes, or a High-profile SPS that does not parse).
hal::Result<std::vector<uint8_t>> avcDecoderConfigurationRecord(const hal::CodecConfig& config);

// Pull SPS and PPS out of an Annex-B access unit (or its NAL units); nullopt when either is missing.
std::optional<hal::CodecConfig> extractCodecConfig(std::span<const uint8_t> annexB);
std::optional<hal::CodecConfig> extractCodecConfig(std::span<const NalUnit> units);

}  // namespace printcast::codecs::h264
