// SPDX-License-Identifier: MIT
// H.264 bitstream tools: Annex-B splitting, RBSP unescaping, SPS parsing, AVCC and avcC.
#include <cstddef>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "printcast/codecs/h264.h"

namespace printcast::codecs::h264 {

namespace {

// MSB-first reader over an RBSP with Exp-Golomb codes (H.264 7.2, 9.1). Reading past the end
// sets failed() and returns zeros, so a parser checks once at the end of each section.
class BitReader {
 public:
  explicit BitReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  bool failed() const { return failed_; }

  uint32_t bits(int count) {
    uint32_t v = 0;
    for (int i = 0; i < count; ++i) v = (v << 1) | bit();
    return v;
  }
  uint32_t bit() {
    if (pos_ >= bytes_.size() * 8) {
      failed_ = true;
      return 0;
    }
    const uint32_t b = (bytes_[pos_ / 8] >> (7 - pos_ % 8)) & 1u;
    ++pos_;
    return b;
  }
  // ue(v): H.264 9.1. Values above 2^32 - 2 are not representable and fail.
  uint32_t ue() {
    int zeros = 0;
    while (bit() == 0) {
      if (failed_ || ++zeros > 31) {
        failed_ = true;
        return 0;
      }
    }
    if (zeros == 0) return 0;
    const uint64_t v = (uint64_t{1} << zeros) - 1 + bits(zeros);
    if (v > std::numeric_limits<uint32_t>::max() - 1) {
      failed_ = true;
      return 0;
    }
    return static_cast<uint32_t>(v);
  }
  // se(v): H.264 9.1.1.
  int64_t se() {
    const uint32_t k = ue();
    const int64_t magnitude = (int64_t{k} + 1) / 2;
    return (k & 1u) != 0 ? magnitude : -magnitude;
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
  bool failed_ = false;
};

hal::Error invalid(std::string message) {
  return hal::Error{hal::Errc::InvalidArgument, 0, "SPS: " + std::move(message)};
}

// Profiles whose SPS carries chroma_format_idc and bit depths (H.264 7.3.2.1.1).
bool hasChromaInfo(uint32_t profileIdc) {
  switch (profileIdc) {
    case 100:
    case 110:
    case 122:
    case 244:
    case 44:
    case 83:
    case 86:
    case 118:
    case 128:
    case 138:
    case 139:
    case 134:
    case 135: return true;
    default: return false;
  }
}

// scaling_list() (7.3.2.1.1.1): only parsed to skip it.
void skipScalingList(BitReader& r, int size) {
  int64_t lastScale = 8;
  int64_t nextScale = 8;
  for (int j = 0; j < size; ++j) {
    if (nextScale != 0) {
      const int64_t delta = r.se();
      nextScale = (lastScale + delta + 256) % 256;
    }
    lastScale = nextScale == 0 ? lastScale : nextScale;
    if (r.failed()) return;
  }
}

struct SpsDetails {
  Sps sps;
  uint32_t bitDepthLumaMinus8 = 0;
  uint32_t bitDepthChromaMinus8 = 0;
};

hal::Result<SpsDetails> parseSpsDetails(std::span<const uint8_t> spsNal) {
  if (spsNal.empty()) return invalid("empty NAL unit");
  if ((spsNal[0] & 0x80) != 0) return invalid("forbidden_zero_bit is set");
  if ((spsNal[0] & 0x1f) != kSps) {
    return invalid(fmt::format("nal_unit_type {} is not 7 (SPS)", spsNal[0] & 0x1f));
  }
  const std::vector<uint8_t> rbsp = unescapeRbsp(spsNal.subspan(1));
  BitReader r(rbsp);

  SpsDetails d;
  Sps& sps = d.sps;
  sps.profileIdc = static_cast<uint8_t>(r.bits(8));
  sps.constraintFlags = static_cast<uint8_t>(r.bits(8));
  sps.levelIdc = static_cast<uint8_t>(r.bits(8));
  sps.spsId = r.ue();
  if (r.failed()) return invalid("truncated header");
  if (sps.spsId > 31) return invalid(fmt::format("seq_parameter_set_id {} outside 0..31", sps.spsId));

  bool separateColourPlane = false;
  if (hasChromaInfo(sps.profileIdc)) {
    sps.chromaFormatIdc = r.ue();
    if (sps.chromaFormatIdc > 3) {
      return invalid(fmt::format("chroma_format_idc {} outside 0..3", sps.chromaFormatIdc));
    }
    if (sps.chromaFormatIdc == 3) separateColourPlane = r.bit() != 0;
    d.bitDepthLumaMinus8 = r.ue();
    d.bitDepthChromaMinus8 = r.ue();
    if (d.bitDepthLumaMinus8 > 6 || d.bitDepthChromaMinus8 > 6) {
      return invalid(fmt::format("bit_depth_luma/chroma_minus8 {}/{} outside 0..6", d.bitDepthLumaMinus8,
                                 d.bitDepthChromaMinus8));
    }
    r.bit();             // qpprime_y_zero_transform_bypass_flag
    if (r.bit() != 0) {  // seq_scaling_matrix_present_flag
      const int lists = sps.chromaFormatIdc != 3 ? 8 : 12;
      for (int i = 0; i < lists && !r.failed(); ++i) {
        if (r.bit() != 0) skipScalingList(r, i < 6 ? 16 : 64);
      }
    }
  }

  const uint32_t log2MaxFrameNumMinus4 = r.ue();
  if (log2MaxFrameNumMinus4 > 12) {
    return invalid(fmt::format("log2_max_frame_num_minus4 {} outside 0..12", log2MaxFrameNumMinus4));
  }
  const uint32_t pocType = r.ue();
  if (pocType == 0) {
    const uint32_t log2MaxPocLsbMinus4 = r.ue();
    if (log2MaxPocLsbMinus4 > 12) {
      return invalid(fmt::format("log2_max_pic_order_cnt_lsb_minus4 {} outside 0..12", log2MaxPocLsbMinus4));
    }
  } else if (pocType == 1) {
    r.bit();  // delta_pic_order_always_zero_flag
    r.se();   // offset_for_non_ref_pic
    r.se();   // offset_for_top_to_bottom_field
    const uint32_t cycle = r.ue();
    if (cycle > 255) {
      return invalid(fmt::format("num_ref_frames_in_pic_order_cnt_cycle {} outside 0..255", cycle));
    }
    for (uint32_t i = 0; i < cycle && !r.failed(); ++i) r.se();
  } else if (pocType > 2) {
    return invalid(fmt::format("pic_order_cnt_type {} outside 0..2", pocType));
  }
  r.ue();   // max_num_ref_frames
  r.bit();  // gaps_in_frame_num_value_allowed_flag
  const uint32_t widthMbsMinus1 = r.ue();
  const uint32_t heightMapUnitsMinus1 = r.ue();
  const uint32_t frameMbsOnly = r.bit();
  if (frameMbsOnly == 0) r.bit();  // mb_adaptive_frame_field_flag
  r.bit();                         // direct_8x8_inference_flag
  uint32_t cropLeft = 0, cropRight = 0, cropTop = 0, cropBottom = 0;
  if (r.bit() != 0) {  // frame_cropping_flag
    cropLeft = r.ue();
    cropRight = r.ue();
    cropTop = r.ue();
    cropBottom = r.ue();
  }
  if (r.failed()) return invalid("truncated before the end of the picture geometry");

  // Largest level (6.2) allows 139264 macroblocks per frame; anything wider is corrupt.
  constexpr uint32_t kMaxMbs = 139264;
  if (widthMbsMinus1 >= kMaxMbs || heightMapUnitsMinus1 >= kMaxMbs ||
      uint64_t{widthMbsMinus1 + 1} * (heightMapUnitsMinus1 + 1) > kMaxMbs) {
    return invalid(fmt::format("picture of {}x{} macroblocks exceeds the {} the spec allows",
                               uint64_t{widthMbsMinus1} + 1, uint64_t{heightMapUnitsMinus1} + 1, kMaxMbs));
  }
  const int64_t codedWidth = (int64_t{widthMbsMinus1} + 1) * 16;
  const int64_t codedHeight = (2 - int64_t{frameMbsOnly}) * (int64_t{heightMapUnitsMinus1} + 1) * 16;

  // Crop units (7.4.2.1.1, Table 6-1).
  const uint32_t chromaArrayType = separateColourPlane ? 0 : sps.chromaFormatIdc;
  const int64_t subWidthC = chromaArrayType == 3 ? 1 : 2;
  const int64_t subHeightC = chromaArrayType == 1 ? 2 : 1;
  const int64_t cropUnitX = chromaArrayType == 0 ? 1 : subWidthC;
  const int64_t cropUnitY = (chromaArrayType == 0 ? 1 : subHeightC) * (2 - int64_t{frameMbsOnly});
  const int64_t width = codedWidth - cropUnitX * (int64_t{cropLeft} + cropRight);
  const int64_t height = codedHeight - cropUnitY * (int64_t{cropTop} + cropBottom);
  if (width <= 0 || height <= 0) {
    return invalid(fmt::format("frame cropping {}/{}/{}/{} leaves nothing of the {}x{} coded picture",
                               cropLeft, cropRight, cropTop, cropBottom, codedWidth, codedHeight));
  }
  sps.size = hal::Size{static_cast<int>(width), static_cast<int>(height)};

  if (r.bit() != 0) {    // vui_parameters_present_flag (E.1.1)
    if (r.bit() != 0) {  // aspect_ratio_info_present_flag
      constexpr uint32_t kExtendedSar = 255;
      if (r.bits(8) == kExtendedSar) r.bits(32);  // sar_width, sar_height
    }
    if (r.bit() != 0) r.bit();       // overscan_info_present_flag, overscan_appropriate_flag
    if (r.bit() != 0) {              // video_signal_type_present_flag
      r.bits(3);                     // video_format
      sps.fullRange = r.bit() != 0;  // video_full_range_flag
      if (r.bit() != 0) r.bits(24);  // colour_primaries, transfer, matrix
    }
    if (r.bit() != 0) {  // chroma_loc_info_present_flag
      r.ue();
      r.ue();
    }
    if (r.bit() != 0) {  // timing_info_present_flag
      const uint32_t numUnitsInTick = r.bits(32);
      const uint32_t timeScale = r.bits(32);
      // A frame is two field ticks (E.2.1, fixed_frame_rate_flag semantics).
      if (!r.failed() && numUnitsInTick != 0 && timeScale != 0) {
        sps.fps = static_cast<double>(timeScale) / (2.0 * numUnitsInTick);
      }
    }
    // Later VUI fields (HRD, bitstream restriction) are not needed. A VUI cut short before the
    // timing info only loses the frame rate: the geometry above is already known.
    if (r.failed()) sps.fps.reset();
  }
  return d;
}

void appendBe16(std::vector<uint8_t>& out, size_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

}  // namespace

// A start code is 00 00 01: look for its 01 with memchr (vectorised in every libc; in coded
// slice data a 01 byte comes about once in 256), then check the two bytes before it.
size_t findStartCode(std::span<const uint8_t> stream, size_t from) {
  const uint8_t* data = stream.data();
  const size_t n = stream.size();
  for (size_t i = from + 2; i < n;) {
    const auto* one = static_cast<const uint8_t*>(std::memchr(data + i, 1, n - i));
    if (one == nullptr) break;
    const size_t j = static_cast<size_t>(one - data);
    if (data[j - 1] == 0 && data[j - 2] == 0) return j - 2;
    i = j + 1;
  }
  return n;
}

std::vector<NalUnit> splitAnnexB(std::span<const uint8_t> stream) {
  std::vector<NalUnit> units;
  size_t start = findStartCode(stream, 0);
  while (start < stream.size()) {
    const size_t payload = start + 3;
    const size_t next = findStartCode(stream, payload);
    size_t end = next;
    // Zero bytes before the next start code are the zero_byte of a 4-byte start code or
    // trailing_zero_8bits (B.1.1); a NAL unit itself never ends in 0x00.
    while (end > payload && stream[end - 1] == 0) --end;
    if (end > payload) units.push_back(NalUnit{stream.subspan(payload, end - payload)});
    start = next;
  }
  return units;
}

std::vector<NalUnit> nalUnits(const hal::Packet& accessUnit) {
  if (accessUnit.nals.empty()) return splitAnnexB(accessUnit.data);
  std::vector<NalUnit> units;
  units.reserve(accessUnit.nals.size());
  const std::span<const uint8_t> data(accessUnit.data);
  for (const hal::NalRange& r : accessUnit.nals) {
    if (r.offset > data.size() || r.size > data.size() - r.offset) return splitAnnexB(data);  // a stale index
    units.push_back(NalUnit{data.subspan(r.offset, r.size)});
  }
  return units;
}

std::vector<hal::NalRange> nalRanges(std::span<const uint8_t> data, std::span<const NalUnit> units) {
  std::vector<hal::NalRange> ranges;
  ranges.reserve(units.size());
  for (const NalUnit& u : units) {
    ranges.push_back(hal::NalRange{static_cast<uint32_t>(u.bytes.data() - data.data()),
                                   static_cast<uint32_t>(u.bytes.size())});
  }
  return ranges;
}

bool containsIdr(std::span<const NalUnit> units) {
  for (const NalUnit& nal : units) {
    if (nal.type() == kIdrSlice) return true;
  }
  return false;
}

bool containsIdr(std::span<const uint8_t> annexB) { return containsIdr(splitAnnexB(annexB)); }

std::vector<uint8_t> unescapeRbsp(std::span<const uint8_t> nal) {
  std::vector<uint8_t> out;
  out.reserve(nal.size());
  int zeros = 0;
  for (const uint8_t b : nal) {
    if (zeros >= 2 && b == 0x03) {
      zeros = 0;  // emulation_prevention_three_byte (7.4.1)
      continue;
    }
    zeros = b == 0 ? zeros + 1 : 0;
    out.push_back(b);
  }
  return out;
}

hal::Result<Sps> parseSps(std::span<const uint8_t> spsNal) {
  auto details = parseSpsDetails(spsNal);
  if (!details) return std::move(details).error();
  return details->sps;
}

std::vector<uint8_t> annexBToLengthPrefixed(std::span<const uint8_t> annexB, bool dropParameterSets) {
  return annexBToLengthPrefixed(splitAnnexB(annexB), dropParameterSets);
}

std::vector<uint8_t> annexBToLengthPrefixed(std::span<const NalUnit> units, bool dropParameterSets) {
  size_t size = 0;
  for (const NalUnit& nal : units) size += 4 + nal.bytes.size();
  std::vector<uint8_t> out;
  out.reserve(size);
  for (const NalUnit& nal : units) {
    const uint8_t type = nal.type();
    if (dropParameterSets && (type == kSps || type == kPps || type == kAud)) continue;
    const size_t n = nal.bytes.size();
    out.push_back(static_cast<uint8_t>(n >> 24));
    out.push_back(static_cast<uint8_t>(n >> 16));
    out.push_back(static_cast<uint8_t>(n >> 8));
    out.push_back(static_cast<uint8_t>(n));
    out.insert(out.end(), nal.bytes.begin(), nal.bytes.end());
  }
  return out;
}

hal::Result<std::vector<uint8_t>> lengthPrefixedToAnnexB(std::span<const uint8_t> avcc) {
  std::vector<uint8_t> out;
  out.reserve(avcc.size() + 16);
  size_t pos = 0;
  while (pos < avcc.size()) {
    if (avcc.size() - pos < 4) {
      return hal::Error{
          hal::Errc::InvalidArgument, 0,
          fmt::format("AVCC: {} stray bytes at offset {} (a length needs 4)", avcc.size() - pos, pos)};
    }
    const size_t n = (size_t{avcc[pos]} << 24) | (size_t{avcc[pos + 1]} << 16) |
                     (size_t{avcc[pos + 2]} << 8) | size_t{avcc[pos + 3]};
    pos += 4;
    if (n > avcc.size() - pos) {
      return hal::Error{hal::Errc::InvalidArgument, 0,
                        fmt::format("AVCC: NAL length {} at offset {} runs past the end ({} bytes left)", n,
                                    pos - 4, avcc.size() - pos)};
    }
    if (n == 0) continue;  // an empty unit carries nothing; Annex-B cannot express it
    static constexpr uint8_t kStartCode[] = {0, 0, 0, 1};
    out.insert(out.end(), std::begin(kStartCode), std::end(kStartCode));
    out.insert(out.end(), avcc.begin() + static_cast<std::ptrdiff_t>(pos),
               avcc.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
  }
  return out;
}

hal::Result<std::vector<uint8_t>> avcDecoderConfigurationRecord(const hal::CodecConfig& config) {
  if (config.sps.size() < 4) {
    return hal::Error{hal::Errc::InvalidArgument, 0,
                      fmt::format("avcC: SPS of {} bytes is shorter than the 4 needed", config.sps.size())};
  }
  if (config.pps.empty()) return hal::Error{hal::Errc::InvalidArgument, 0, "avcC: PPS is empty"};
  constexpr size_t kMaxLength = 0xffff;  // 16-bit length fields
  if (config.sps.size() > kMaxLength || config.pps.size() > kMaxLength) {
    return hal::Error{hal::Errc::InvalidArgument, 0,
                      fmt::format("avcC: SPS/PPS of {}/{} bytes exceed the 65535 a record can hold",
                                  config.sps.size(), config.pps.size())};
  }

  std::vector<uint8_t> out;
  out.reserve(11 + config.sps.size() + config.pps.size() + 4);
  out.push_back(1);              // configurationVersion
  out.push_back(config.sps[1]);  // AVCProfileIndication
  out.push_back(config.sps[2]);  // profile_compatibility
  out.push_back(config.sps[3]);  // AVCLevelIndication
  out.push_back(0xfc | 3);       // reserved '111111' + lengthSizeMinusOne = 3
  out.push_back(0xe0 | 1);       // reserved '111' + numOfSequenceParameterSets = 1
  appendBe16(out, config.sps.size());
  out.insert(out.end(), config.sps.begin(), config.sps.end());
  out.push_back(1);  // numOfPictureParameterSets
  appendBe16(out, config.pps.size());
  out.insert(out.end(), config.pps.begin(), config.pps.end());

  // 14496-15 5.3.3.1.2: High-family profiles append chroma format and bit depths.
  const uint8_t profile = config.sps[1];
  if (profile == 100 || profile == 110 || profile == 122 || profile == 144) {
    auto details = parseSpsDetails(config.sps);
    if (!details) return std::move(details).error();
    out.push_back(static_cast<uint8_t>(0xfc | details->sps.chromaFormatIdc));
    out.push_back(static_cast<uint8_t>(0xf8 | details->bitDepthLumaMinus8));
    out.push_back(static_cast<uint8_t>(0xf8 | details->bitDepthChromaMinus8));
    out.push_back(0);  // numOfSequenceParameterSetExt
  }
  return out;
}

std::optional<hal::CodecConfig> extractCodecConfig(std::span<const uint8_t> annexB) {
  return extractCodecConfig(splitAnnexB(annexB));
}

std::optional<hal::CodecConfig> extractCodecConfig(std::span<const NalUnit> units) {
  hal::CodecConfig config;
  bool haveSps = false;
  bool havePps = false;
  for (const NalUnit& nal : units) {
    if (nal.type() == kSps && !haveSps) {
      config.sps.assign(nal.bytes.begin(), nal.bytes.end());
      haveSps = true;
    } else if (nal.type() == kPps && !havePps) {
      config.pps.assign(nal.bytes.begin(), nal.bytes.end());
      havePps = true;
    }
  }
  if (!haveSps || !havePps) return std::nullopt;
  return config;
}

}  // namespace printcast::codecs::h264
