// SPDX-License-Identifier: MIT
// H.264 SPS/PPS writer for encoders that take their parameter sets from us (VA-API packed headers).
// Syntax: ITU-T H.264 7.3.2.1.1 (SPS), 7.3.2.2 (PPS), E.1.1 (VUI), 7.4.1 (emulation prevention),
// A.3.1 and Table A-1 (levels). Private to codecs/ (encoder_vaapi.cpp and its unit test).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "printcast/hal/geometry.h"

namespace printcast::codecs::h264 {

// Big-endian bit writer of an RBSP (no emulation prevention: see nalUnit()).
class BitWriter {
 public:
  void bits(uint32_t value, int count) {  // count 0..32, the low `count` bits of value, MSB first
    for (int i = count - 1; i >= 0; --i) bit((value >> i) & 1u);
  }
  void bit(uint32_t b) {
    current_ = static_cast<uint8_t>((current_ << 1) | (b & 1u));
    if (++used_ == 8) {
      bytes_.push_back(current_);
      current_ = 0;
      used_ = 0;
    }
  }
  void ue(uint32_t value) {  // Exp-Golomb, 9.1
    const uint64_t v = uint64_t{value} + 1;
    int length = 0;
    while ((v >> length) > 1) ++length;
    bits(0, length);
    for (int i = length; i >= 0; --i) bit(static_cast<uint32_t>((v >> i) & 1u));
  }
  void se(int32_t value) {  // 9.1.1: k > 0 -> 2k - 1, k <= 0 -> -2k
    ue(value > 0 ? static_cast<uint32_t>(2 * int64_t{value} - 1)
                 : static_cast<uint32_t>(-2 * int64_t{value}));
  }
  void alignZero() {
    while (used_ != 0) bit(0);
  }
  void trailingBits() {  // rbsp_trailing_bits(): the stop bit, then zeros to the byte boundary
    bit(1);
    alignZero();
  }
  bool aligned() const { return used_ == 0; }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
  uint8_t current_ = 0;
  int used_ = 0;
};

// A NAL unit (header byte, then the RBSP with emulation prevention bytes: 00 00 0x -> 00 00 03 0x
// for x <= 3, 7.4.1), without start code: the form hal::CodecConfig holds.
inline std::vector<uint8_t> nalUnit(uint8_t nalRefIdc, uint8_t nalUnitType, std::span<const uint8_t> rbsp) {
  std::vector<uint8_t> out;
  out.reserve(rbsp.size() + rbsp.size() / 64 + 2);
  out.push_back(static_cast<uint8_t>((nalRefIdc & 3u) << 5 | (nalUnitType & 0x1fu)));
  int zeros = 0;
  for (uint8_t byte : rbsp) {
    if (zeros == 2 && byte <= 3) {
      out.push_back(3);
      zeros = 0;
    }
    out.push_back(byte);
    zeros = byte == 0 ? zeros + 1 : 0;
  }
  return out;
}

inline constexpr uint8_t kProfileBaseline = 66;  // with constraint_set0+1: Constrained Baseline
inline constexpr uint8_t kProfileMain = 77;
inline constexpr uint8_t kProfileHigh = 100;

struct SpsFields {
  uint8_t profileIdc = kProfileBaseline;
  // constraint_set0..5_flag as the byte after profile_idc (bit 7 = set0): 0xc0 for Constrained
  // Baseline (A.2.1.1), 0x40 for Main (A.2.2), 0 for High.
  uint8_t constraintFlags = 0xc0;
  uint8_t levelIdc = 31;  // level x 10 (Table A-1)
  hal::Size size;         // display size; coded in 16x16 macroblocks, the rest cropped right/bottom
  int log2MaxFrameNum = 16;
  int log2MaxPocLsb = 12;  // pic_order_cnt_type 0
  int maxNumRefFrames = 1;
  int fps = 30;            // VUI timing: num_units_in_tick 1, time_scale 2 * fps (E.2.1), not a fixed rate
  bool fullRange = false;  // VUI video_full_range_flag with BT.601 matrix (matrix_coefficients 6)
};

struct PpsFields {
  bool cabac = false;         // entropy_coding_mode_flag (Constrained Baseline: CAVLC)
  int picInitQp = 26;         // pic_init_qp_minus26 + 26
  bool highProfile = false;   // writes the High fields (transform_8x8_mode_flag ..., 7.3.2.2)
  bool transform8x8 = false;  // High only
};

inline int macroblocks(int pixels) { return (pixels + 15) / 16; }

// seq_parameter_set_rbsp() in a NAL unit (nal_ref_idc 3, type 7).
inline std::vector<uint8_t> writeSps(const SpsFields& f) {
  BitWriter w;
  w.bits(f.profileIdc, 8);
  w.bits(f.constraintFlags, 8);  // constraint_set0..5_flag, reserved_zero_2bits
  w.bits(f.levelIdc, 8);
  w.ue(0);  // seq_parameter_set_id
  if (f.profileIdc == kProfileHigh) {
    w.ue(1);   // chroma_format_idc: 4:2:0
    w.ue(0);   // bit_depth_luma_minus8
    w.ue(0);   // bit_depth_chroma_minus8
    w.bit(0);  // qpprime_y_zero_transform_bypass_flag
    w.bit(0);  // seq_scaling_matrix_present_flag
  }
  w.ue(static_cast<uint32_t>(f.log2MaxFrameNum - 4));
  w.ue(0);  // pic_order_cnt_type
  w.ue(static_cast<uint32_t>(f.log2MaxPocLsb - 4));
  w.ue(static_cast<uint32_t>(f.maxNumRefFrames));
  w.bit(0);  // gaps_in_frame_num_value_allowed_flag
  const int widthMbs = macroblocks(f.size.width);
  const int heightMbs = macroblocks(f.size.height);
  w.ue(static_cast<uint32_t>(widthMbs - 1));   // pic_width_in_mbs_minus1
  w.ue(static_cast<uint32_t>(heightMbs - 1));  // pic_height_in_map_units_minus1
  w.bit(1);                                    // frame_mbs_only_flag
  w.bit(1);                                    // direct_8x8_inference_flag
  // Cropping in 4:2:0 frame units of 2 samples (Table 6-1, 7.4.2.1.1).
  const int cropRight = (widthMbs * 16 - f.size.width) / 2;
  const int cropBottom = (heightMbs * 16 - f.size.height) / 2;
  const bool cropping = cropRight != 0 || cropBottom != 0;
  w.bit(cropping ? 1 : 0);
  if (cropping) {
    w.ue(0);
    w.ue(static_cast<uint32_t>(cropRight));
    w.ue(0);
    w.ue(static_cast<uint32_t>(cropBottom));
  }
  w.bit(1);                    // vui_parameters_present_flag (E.1.1)
  w.bit(0);                    // aspect_ratio_info_present_flag
  w.bit(0);                    // overscan_info_present_flag
  w.bit(f.fullRange ? 1 : 0);  // video_signal_type_present_flag
  if (f.fullRange) {
    w.bits(5, 3);  // video_format: unspecified
    w.bit(1);      // video_full_range_flag
    w.bit(1);      // colour_description_present_flag
    w.bits(2, 8);  // colour_primaries: unspecified
    w.bits(2, 8);  // transfer_characteristics: unspecified
    w.bits(6, 8);  // matrix_coefficients: BT.601 (SMPTE 170M), JFIF's (Table E-5)
  }
  w.bit(0);                                      // chroma_loc_info_present_flag
  w.bit(1);                                      // timing_info_present_flag
  w.bits(1, 32);                                 // num_units_in_tick
  w.bits(static_cast<uint32_t>(2 * f.fps), 32);  // time_scale: a frame is two ticks
  w.bit(0);  // fixed_frame_rate_flag: pts are capture times, frames may be dropped
  w.bit(0);  // nal_hrd_parameters_present_flag
  w.bit(0);  // vcl_hrd_parameters_present_flag
  w.bit(0);  // pic_struct_present_flag
  // bitstream_restriction: no reordering, so decoders output each picture at once (low delay).
  w.bit(1);
  w.bit(1);                                        // motion_vectors_over_pic_boundaries_flag
  w.ue(2);                                         // max_bytes_per_pic_denom (the default)
  w.ue(1);                                         // max_bits_per_mb_denom (the default)
  w.ue(16);                                        // log2_max_mv_length_horizontal (the default)
  w.ue(16);                                        // log2_max_mv_length_vertical
  w.ue(0);                                         // max_num_reorder_frames
  w.ue(static_cast<uint32_t>(f.maxNumRefFrames));  // max_dec_frame_buffering
  w.trailingBits();
  return nalUnit(3, 7, w.bytes());
}

// pic_parameter_set_rbsp() in a NAL unit (nal_ref_idc 3, type 8): one reference, no weighted
// prediction, deblocking control in the slice headers.
inline std::vector<uint8_t> writePps(const PpsFields& f) {
  BitWriter w;
  w.ue(0);  // pic_parameter_set_id
  w.ue(0);  // seq_parameter_set_id
  w.bit(f.cabac ? 1 : 0);
  w.bit(0);      // bottom_field_pic_order_in_frame_present_flag
  w.ue(0);       // num_slice_groups_minus1
  w.ue(0);       // num_ref_idx_l0_default_active_minus1
  w.ue(0);       // num_ref_idx_l1_default_active_minus1
  w.bit(0);      // weighted_pred_flag
  w.bits(0, 2);  // weighted_bipred_idc
  w.se(f.picInitQp - 26);
  w.se(0);              // pic_init_qs_minus26
  w.se(0);              // chroma_qp_index_offset
  w.bit(1);             // deblocking_filter_control_present_flag
  w.bit(0);             // constrained_intra_pred_flag
  w.bit(0);             // redundant_pic_cnt_present_flag
  if (f.highProfile) {  // absent in Baseline and Main (A.2.1, A.2.2)
    w.bit(f.transform8x8 ? 1 : 0);
    w.bit(0);  // pic_scaling_matrix_present_flag
    w.se(0);   // second_chroma_qp_index_offset
  }
  w.trailingBits();
  return nalUnit(3, 8, w.bytes());
}

// The lowest level (level_idc) whose Table A-1 limits take this size, rate and bitrate: MaxFS,
// MaxMBPS, MaxBR (x 1.25 for High, A.3.3 cpbBrNalFactor ratio), and each side within
// sqrt(8 * MaxFS) macroblocks (A.3.1 f, g). 0 when even level 6.2 does not.
inline uint8_t levelFor(hal::Size size, int fps, int bitrateKbps, bool high) {
  struct Level {
    uint8_t idc;
    uint32_t maxMbps, maxFs, maxBrKbps;
  };
  static constexpr std::array<Level, 19> kLevels{{
      {10, 1485, 99, 64},
      {11, 3000, 396, 192},
      {12, 6000, 396, 384},
      {13, 11880, 396, 768},
      {20, 11880, 396, 2000},
      {21, 19800, 792, 4000},
      {22, 20250, 1620, 4000},
      {30, 40500, 1620, 10000},
      {31, 108000, 3600, 14000},
      {32, 216000, 5120, 20000},
      {40, 245760, 8192, 20000},
      {41, 245760, 8192, 50000},
      {42, 522240, 8704, 50000},
      {50, 589824, 22080, 135000},
      {51, 983040, 36864, 240000},
      {52, 2073600, 36864, 240000},
      {60, 4177920, 139264, 240000},
      {61, 8355840, 139264, 480000},
      {62, 16711680, 139264, 800000},
  }};
  const uint64_t widthMbs = static_cast<uint64_t>(macroblocks(size.width));
  const uint64_t heightMbs = static_cast<uint64_t>(macroblocks(size.height));
  const uint64_t frameMbs = widthMbs * heightMbs;
  const uint64_t mbps = frameMbs * static_cast<uint64_t>(fps);
  const uint64_t brKbps = static_cast<uint64_t>(bitrateKbps);
  for (const Level& l : kLevels) {
    const uint64_t maxBr = high ? uint64_t{l.maxBrKbps} * 5 / 4 : l.maxBrKbps;
    const auto maxSide = static_cast<uint64_t>(std::sqrt(8.0 * l.maxFs));
    if (frameMbs <= l.maxFs && mbps <= l.maxMbps && brKbps <= maxBr && widthMbs <= maxSide &&
        heightMbs <= maxSide) {
      return l.idc;
    }
  }
  return 0;
}

}  // namespace printcast::codecs::h264
