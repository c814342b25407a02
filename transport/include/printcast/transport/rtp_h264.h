// SPDX-License-Identifier: MIT
// RTP for H.264: the RTP fixed header (RFC 3550 5.1), the H.264 payload format's depacketizer
// (RFC 6184: single NAL unit packets, STAP-A 5.7.1, FU-A 5.8) and the SDP a camera describes its
// H.264 stream with (RFC 4566; RFC 6184 8.1 fmtp: packetization-mode, profile-level-id,
// sprop-parameter-sets). The RTSP camera source and the RTSP server share these.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "printcast/hal/result.h"

namespace printcast::transport::rtp {

inline constexpr uint32_t kH264ClockRate = 90000;  // RFC 6184 8.2.1: 90 kHz

// One RTP packet (RFC 3550 5.1), `payload` pointing into the parsed bytes (CSRCs, the header
// extension and padding removed).
struct Packet {
  uint8_t payloadType = 0;
  bool marker = false;
  uint16_t sequence = 0;
  uint32_t timestamp = 0;
  uint32_t ssrc = 0;
  std::span<const uint8_t> payload;
};

// Errors: InvalidArgument (shorter than its header, version not 2, padding or extension longer
// than the packet), each saying which.
hal::Result<Packet> parse(std::span<const uint8_t> bytes);

// One access unit rebuilt from RTP packets: Annex-B (4-byte start codes), all its NAL units.
struct AccessUnit {
  std::vector<uint8_t> annexB;
  uint32_t rtpTimestamp = 0;
  bool idr = false;
};

struct DepacketizerStats {
  uint64_t packets = 0;
  uint64_t lostPackets = 0;         // sequence-number gaps
  uint64_t droppedAccessUnits = 0;  // damaged by a loss or an unfinished FU-A, or until the next IDR
  uint64_t unsupportedPackets = 0;  // STAP-B, MTAP, FU-B, reserved types (RFC 6184 Table 1)
  uint64_t oversizedAccessUnits = 0;
  uint64_t insertedParameterSets = 0;  // IDRs that got SPS/PPS in front (they came without)
};

// RFC 6184 depacketizer, packetization modes 0 and 1. Push packets in arrival order (one SSRC);
// pop access units. An access unit ends at a packet with the marker bit, or when a packet of a
// newer timestamp arrives (cameras that never set the marker). Parameter sets or SEI that end
// without a slice (a marker set after SPS/PPS) go in front of the next access unit; a NAL unit
// holding Annex-B start codes (SPS+PPS+IDR packed into one) is split. Each IDR access unit that lacks
// an SPS or PPS gets the newest ones in front (from the SDP's sprop-parameter-sets or seen in
// band), so every IDR can start a decoder. A sequence-number gap damages the access unit being
// built: it is dropped, and so is everything until the next IDR (a decoder must not see a
// reference gap); counted. An access unit above maxAccessUnitBytes is dropped the same way.
// Threading: one thread at a time. Memory: the access unit being built (bounded) plus those not
// yet popped.
class H264Depacketizer {
 public:
  explicit H264Depacketizer(size_t maxAccessUnitBytes = size_t{4} << 20);

  // Parameter sets known out of band (SDP), NAL units without start codes.
  void setParameterSets(std::vector<uint8_t> sps, std::vector<uint8_t> pps);
  void push(const Packet& packet);
  // The oldest complete access unit; false when there is none.
  bool pop(AccessUnit& out);
  size_t pending() const { return ready_.size(); }
  const DepacketizerStats& stats() const { return stats_; }
  // The newest SPS and PPS (SDP or in band); empty until known.
  const std::vector<uint8_t>& sps() const { return sps_; }
  const std::vector<uint8_t>& pps() const { return pps_; }

 private:
  void addNal(std::span<const uint8_t> nal);
  void finish();
  void damage();

  size_t maxBytes_;
  std::vector<uint8_t> sps_, pps_;
  bool haveSequence_ = false;
  uint16_t nextSequence_ = 0;
  // the access unit being built
  bool building_ = false;
  uint32_t timestamp_ = 0;
  std::vector<std::vector<uint8_t>> nals_;
  std::vector<std::vector<uint8_t>> carry_;  // parameter sets / SEI that ended without a slice
  size_t bytes_ = 0;
  bool damaged_ = false;
  // FU-A reassembly
  bool inFragment_ = false;
  std::vector<uint8_t> fragment_;
  bool waitForIdr_ = true;  // a receiver starts at an IDR, and again after damage
  std::deque<AccessUnit> ready_;
  DepacketizerStats stats_;
};

// RFC 6184 packetizer, packetization mode 1 (non-interleaved), for the RTSP server and publisher.
// Each access unit (Annex-B) becomes RTP packets of at most maxPayload payload bytes (plus the
// 12-byte header): SPS and PPS (and any other NAL units before the first slice that fit together)
// aggregated into one STAP-A (5.7.1), every other NAL unit a single NAL unit packet (5.6) when it
// fits, else FU-A fragments (5.8). Access unit delimiters are left out (RFC 6184 allows them; no
// receiver needs them). All packets of an access unit carry its timestamp; the last has the marker
// bit (5.1). The sequence number counts on from `firstSequence` across access units.
// Threading: one thread at a time.
class H264Packetizer {
 public:
  // maxPayload is clamped to 64..65000 bytes (1400 suits a 1500-byte Ethernet MTU with IP, UDP
  // and RTP headers; over TCP interleaved it only bounds packet size).
  H264Packetizer(uint8_t payloadType, uint32_t ssrc, uint16_t firstSequence, size_t maxPayload = 1400);

  // Appends the access unit's packets to `out` (each a whole RTP packet). An input without start
  // codes or NAL units appends nothing.
  void packetize(std::span<const uint8_t> annexB, uint32_t rtpTimestamp,
                 std::vector<std::vector<uint8_t>>& out);
  uint16_t nextSequence() const { return sequence_; }
  uint32_t ssrc() const { return ssrc_; }

 private:
  void emit(std::vector<std::vector<uint8_t>>& out, uint32_t timestamp, bool marker,
            std::span<const uint8_t> prefix, std::span<const uint8_t> payload);

  uint8_t payloadType_;
  uint32_t ssrc_;
  uint16_t sequence_;
  size_t maxPayload_;
};

// The H.264 video of an SDP session description (RFC 4566), as a camera's DESCRIBE answers it.
struct SdpH264 {
  int payloadType = -1;                 // from m=video ... RTP/AVP <pt>
  uint32_t clockRate = kH264ClockRate;  // a=rtpmap:<pt> H264/<rate>
  std::string control;                  // a=control of the video media ("" = the session's URL)
  int packetizationMode = 0;            // fmtp packetization-mode (0 or 1; 2 is refused)
  std::string profileLevelId;           // fmtp profile-level-id, 6 hex digits ("" when absent)
  std::vector<uint8_t> sps, pps;        // fmtp sprop-parameter-sets, base64-decoded (may be empty)
};

// The first m=video media whose rtpmap says H264. Errors: InvalidArgument (no H.264 video
// media, malformed lines), Unsupported (packetization-mode 2: interleaved). Bad base64 in
// sprop-parameter-sets is ignored (the parameter sets then come in band).
hal::Result<SdpH264> parseSdpH264(std::string_view sdp);

}  // namespace printcast::transport::rtp
