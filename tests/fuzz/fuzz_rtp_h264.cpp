// SPDX-License-Identifier: MIT
// libFuzzer target: what an RTSP camera sends (transport/rtp_h264.h). Input: the first byte picks
// SDP (odd) or RTP (even). SDP: the rest is a session description for parseSdpH264. RTP: the rest
// is a sequence of packets, each a 2-byte big-endian length then its bytes, pushed through the
// depacketizer (bound 64 KiB). Oracles: a parsed SDP has a payload type and is not packetization
// mode 2, and any SPS/PPS it returns are of those NAL types; every access unit is Annex-B that
// starts with a start code, fits the bound plus the parameter sets put in front, and is marked
// IDR exactly when it holds an IDR slice; packetized again (200-byte payloads), each packet
// parses, fits and only the last carries the marker.
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "printcast/codecs/h264.h"
#include "printcast/transport/rtp_h264.h"

namespace rtp = printcast::transport::rtp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool sdp = (data[0] & 1) != 0;
  ++data;
  --size;
  if (sdp) {
    auto v = rtp::parseSdpH264({reinterpret_cast<const char*>(data), size});
    if (v) {
      assert(v->payloadType >= 0);
      assert(v->packetizationMode != 2);  // interleaved mode is refused
      assert(v->sps.empty() || (v->sps[0] & 0x1f) == 7);
      assert(v->pps.empty() || (v->pps[0] & 0x1f) == 8);
    }
    return 0;
  }
  constexpr size_t kBound = 64 * 1024;
  rtp::H264Depacketizer d(kBound);
  constexpr size_t kMaxPayload = 200;
  rtp::H264Packetizer packetizer(96, 1, 0, kMaxPayload);
  std::vector<std::vector<uint8_t>> packets;
  size_t at = 0;
  while (at + 2 <= size) {
    const size_t n = static_cast<size_t>(data[at] << 8 | data[at + 1]);
    at += 2;
    if (n > size - at) break;
    auto packet = rtp::parse({data + at, n});
    at += n;
    if (!packet) continue;
    d.push(*packet);
    rtp::AccessUnit au;
    while (d.pop(au)) {
      assert(au.annexB.size() >= 5);
      assert(au.annexB[0] == 0 && au.annexB[1] == 0 && au.annexB[2] == 0 && au.annexB[3] == 1);
      assert(au.annexB.size() <= kBound + d.sps().size() + d.pps().size() + 8);
      assert(au.idr == printcast::codecs::h264::containsIdr(au.annexB));
      // The access unit back into packets (the RTSP server's path): each parses, fits, and only
      // the last has the marker bit.
      packets.clear();
      packetizer.packetize(au.annexB, au.rtpTimestamp, packets);
      for (size_t i = 0; i < packets.size(); ++i) {
        auto p = rtp::parse(packets[i]);
        assert(p && p->payload.size() <= kMaxPayload && p->timestamp == au.rtpTimestamp);
        assert(p->marker == (i + 1 == packets.size()));
      }
    }
  }
  return 0;
}
