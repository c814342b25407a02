// SPDX-License-Identifier: MIT
// MPEG-2 transport stream (MPEG-TS) muxer for one H.264 video elementary stream, as HLS carries
// it in .ts segments.
//
// Specs: ISO/IEC 13818-1 (TS packets 2.4.3.2, adaptation field and PCR 2.4.3.4, PES packets
// 2.4.3.6, PAT 2.4.4.3, PMT 2.4.4.8, CRC-32 Annex A), ITU-T H.264 Annex B (byte stream) and
// ISO/IEC 13818-1 2.14 (AVC in TS: every access unit starts with an access unit delimiter),
// RFC 8216 3.2 (a TS segment holds one program; PAT and PMT at its start).
//
// Shapes:
//  - every packet is 188 bytes, sync byte 0x47; PAT on PID 0, PMT on PID kPmtPid (program 1),
//    the video on PID kVideoPid (stream_type 0x1B), which also carries the PCR;
//  - one PES packet per access unit (stream_id 0xE0, PES_packet_length 0 = unbounded, as 2.4.3.7
//    allows for video), data_alignment_indicator set, PTS only (no B-frames: DTS == PTS);
//  - the PES payload is the access unit in Annex-B with an AUD first (one is inserted when the
//    access unit has none) and, on IDRs, SPS and PPS before the first slice (inserted from the
//    packet's CodecConfig when the encoder did not put them there);
//  - the first TS packet of each access unit carries an adaptation field with the PCR (every
//    access unit: far more often than the 100 ms 2.7.2 asks) and, on IDRs,
//    random_access_indicator; the last packet is padded with adaptation-field stuffing;
//  - timestamps are 90 kHz: PTS = t + kPtsDelay and PCR = t (27 MHz: t * 300), t the caller's
//    decode time, so the PCR runs kPtsDelay ahead of presentation (the T-STD buffer's slack, as
//    ffmpeg's 0.7 s muxdelay); both wrap at 33 bits as the fields do;
//  - continuity counters count per PID across every call of one Muxer (segments cut from one
//    Muxer join without a continuity error).
//
// Threading: a Muxer belongs to one thread. The free functions are pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "printcast/hal/packet.h"

namespace printcast::transport::mpegts {

constexpr size_t kPacketSize = 188;
constexpr uint16_t kPmtPid = 0x1000;
constexpr uint16_t kVideoPid = 0x100;
constexpr uint8_t kStreamTypeH264 = 0x1B;
constexpr uint64_t kPtsDelay = 63000;  // 0.7 s in 90 kHz ticks

class Muxer {
 public:
  // PAT then PMT: two packets (376 bytes). Put them at the start of every segment.
  std::vector<uint8_t> programTables();
  // One H.264 access unit (Annex-B as hal::Packet holds it) with decode time `ticks90k` as PES
  // packets in whole TS packets, appended to `out`.
  void writeAccessUnit(const hal::Packet& accessUnit, uint64_t ticks90k, std::vector<uint8_t>& out);

 private:
  uint8_t patCc_ = 0;
  uint8_t pmtCc_ = 0;
  uint8_t videoCc_ = 0;
};

// The elementary stream bytes a Muxer puts in a PES packet for `accessUnit`: AUD first, SPS/PPS
// before the first slice of an IDR (see above), then the access unit's other NAL units.
std::vector<uint8_t> accessUnitPayload(const hal::Packet& accessUnit);

// CRC-32/MPEG-2 (polynomial 0x04C11DB7, initial 0xFFFFFFFF, no reflection, no final xor) as PSI
// sections end with (Annex A).
uint32_t crc32(std::span<const uint8_t> bytes);

// ---- reading back (tests and tools) ----

struct PesPacket {
  uint16_t pid = 0;
  uint8_t streamId = 0;
  bool randomAccess = false;  // random_access_indicator of its first TS packet
  bool hasPcr = false;
  uint64_t pcr27MHz = 0;  // PCR of its first TS packet (base * 300 + extension)
  bool hasPts = false;
  uint64_t pts = 0;  // 90 kHz
  bool hasDts = false;
  uint64_t dts = 0;
  std::vector<uint8_t> payload;  // the elementary stream bytes
};

struct ParsedStream {
  size_t packets = 0;
  bool syncOk = true;           // every packet starts with 0x47 and the length is a multiple
  size_t continuityErrors = 0;  // a payload packet whose counter is not the last + 1 (mod 16)
  bool havePat = false, havePmt = false;
  uint16_t pmtPid = 0;         // from the PAT
  uint16_t videoPid = 0;       // from the PMT (stream_type 0x1B)
  uint16_t pcrPid = 0;         // from the PMT
  bool psiCrcOk = true;        // every PAT/PMT section's CRC matched
  std::vector<PesPacket> pes;  // complete PES packets of the video PID, in order
};
// Parse a whole stream (a segment, or several concatenated).
ParsedStream parse(std::span<const uint8_t> bytes);

}  // namespace printcast::transport::mpegts
