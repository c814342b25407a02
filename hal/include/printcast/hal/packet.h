// SPDX-License-Identifier: MIT
// Packet: one encoded frame (an H.264 access unit or a JPEG), immutable and shared without copying.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "printcast/hal/frame.h"
#include "printcast/hal/pixel_format.h"

namespace printcast::hal {

// H.264 parameter sets, each one NAL unit without start code (ITU-T H.264 7.3.2.1 / 7.3.2.2).
struct CodecConfig {
  std::vector<uint8_t> sps;
  std::vector<uint8_t> pps;
  bool operator==(const CodecConfig&) const = default;
};

// Where one NAL unit lies in an H.264 packet's `data`: its header byte's offset and its size in
// bytes (no start code, trailing zero bytes excluded), as codecs::h264::splitAnnexB() finds it.
struct NalRange {
  uint32_t offset = 0;
  uint32_t size = 0;
};

// An encoded frame.
//  - codec fourcc::kH264: `data` is one complete access unit in Annex-B (start codes), all slices;
//    a keyframe is an IDR access unit and carries SPS and PPS in front of it.
//  - codec fourcc::kMJPEG: `data` is one complete JPEG (SOI..EOI) with Huffman tables.
// `pts` is the capture time of the source frame (monotonic); there are no B-frames, so dts == pts.
struct Packet {
  FourCC codec;
  std::vector<uint8_t> data;
  bool keyframe = false;
  Timestamp pts{};
  uint64_t sequence = 0;                      // sequence of the source frame
  Size size;                                  // coded picture size
  std::shared_ptr<const CodecConfig> config;  // H.264: the SPS/PPS in force; null for JPEG
  // H.264: the NAL units of `data` in order, when the producer split it already (the camera
  // pipeline does, once per access unit, for every muxer after it); empty: not known, and
  // codecs::h264::nalUnits() splits `data`. Must match `data` when set.
  std::vector<NalRange> nals;
};

// Packets are handed out as shared immutable objects: any number of clients hold the same bytes.
using PacketPtr = std::shared_ptr<const Packet>;

}  // namespace printcast::hal
