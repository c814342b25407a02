// SPDX-License-Identifier: MIT
// RTP for H.264: header parsing, the RFC 6184 depacketizer against each packet type and the
// camera habits of protocols.md, and SDP as cameras write it.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "printcast/codecs/h264.h"
#include "printcast/transport/rtp_h264.h"

namespace printcast::transport::rtp {
namespace {

using Bytes = std::vector<uint8_t>;

// NAL units of recognisable content (header byte first).
const Bytes kSps = {0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00};
const Bytes kPps = {0x68, 0xce, 0x3c, 0x80};
Bytes idr(size_t size) {
  Bytes b(size, 0x11);
  b[0] = 0x65;
  return b;
}
Bytes slice(size_t size) {
  Bytes b(size, 0x22);
  b[0] = 0x41;
  return b;
}

Bytes rtpBytes(uint16_t seq, uint32_t ts, bool marker, const Bytes& payload) {
  Bytes b = {0x80,
             static_cast<uint8_t>((marker ? 0x80 : 0) | 96),
             static_cast<uint8_t>(seq >> 8),
             static_cast<uint8_t>(seq),
             static_cast<uint8_t>(ts >> 24),
             static_cast<uint8_t>(ts >> 16),
             static_cast<uint8_t>(ts >> 8),
             static_cast<uint8_t>(ts),
             1,
             2,
             3,
             4};
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

// Feeds packets; each one is copied so the Packet's payload span stays valid during push().
struct Feeder {
  H264Depacketizer d;
  uint16_t seq = 1000;
  void send(uint32_t ts, bool marker, const Bytes& payload) {
    const Bytes bytes = rtpBytes(seq++, ts, marker, payload);
    auto p = parse(bytes);
    ASSERT_TRUE(p) << p.error().describe();
    d.push(*p);
  }
  // One NAL unit as FU-A fragments of at most `chunk` payload bytes.
  void sendFuA(uint32_t ts, bool markerAtEnd, const Bytes& nal, size_t chunk) {
    for (size_t at = 1; at < nal.size(); at += chunk) {
      const bool start = at == 1;
      const bool end = at + chunk >= nal.size();
      Bytes payload = {static_cast<uint8_t>((nal[0] & 0xe0) | 28),
                       static_cast<uint8_t>((start ? 0x80 : 0) | (end ? 0x40 : 0) | (nal[0] & 0x1f))};
      payload.insert(payload.end(), nal.begin() + static_cast<long>(at),
                     nal.begin() + static_cast<long>(std::min(nal.size(), at + chunk)));
      send(ts, end && markerAtEnd, payload);
    }
  }
  std::vector<AccessUnit> take() {
    std::vector<AccessUnit> out;
    AccessUnit au;
    while (d.pop(au)) out.push_back(std::move(au));
    return out;
  }
};

Bytes stapA(const std::vector<Bytes>& nals) {
  Bytes b = {24};
  for (const auto& n : nals) {
    b.push_back(static_cast<uint8_t>(n.size() >> 8));
    b.push_back(static_cast<uint8_t>(n.size()));
    b.insert(b.end(), n.begin(), n.end());
  }
  return b;
}

std::vector<uint8_t> nalTypes(const AccessUnit& au) {
  std::vector<uint8_t> types;
  for (const auto& n : codecs::h264::splitAnnexB(au.annexB)) types.push_back(n.bytes[0] & 0x1f);
  return types;
}

TEST(Rtp, ParsesTheHeaderWithCsrcsExtensionAndPadding) {
  Bytes b = {0xb1, 0xe0, 0x12, 0x34, 0, 0, 0x0e, 0x10, 0xde, 0xad, 0xbe, 0xef};  // P, X, CC=1, M, PT 96
  b.insert(b.end(), {9, 9, 9, 9});                                               // CSRC
  b.insert(b.end(), {0xbe, 0xde, 0, 1, 7, 7, 7, 7});                             // extension, 1 word
  b.insert(b.end(), {0x41, 0xaa, 0xbb});                                         // payload
  b.insert(b.end(), {0, 0, 3});                                                  // 3 padding bytes
  auto p = parse(b);
  ASSERT_TRUE(p) << p.error().describe();
  EXPECT_TRUE(p->marker);
  EXPECT_EQ(p->payloadType, 96);
  EXPECT_EQ(p->sequence, 0x1234);
  EXPECT_EQ(p->timestamp, 3600u);
  EXPECT_EQ(p->ssrc, 0xdeadbeefu);
  EXPECT_EQ(Bytes(p->payload.begin(), p->payload.end()), (Bytes{0x41, 0xaa, 0xbb}));

  EXPECT_FALSE(parse(Bytes(11, 0x80)));
  EXPECT_FALSE(parse(Bytes{0x40, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));              // version 1
  EXPECT_FALSE(parse(Bytes{0xa0, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x41, 5}));     // padding > payload
  EXPECT_FALSE(parse(Bytes{0x90, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9}));  // extension cut off
}

TEST(H264Depacketizer, RebuildsAccessUnitsFromStapAFuAAndSingleNalPackets) {
  Feeder f;
  const Bytes bigIdr = idr(3000);
  f.send(0, false, stapA({kSps, kPps}));
  f.sendFuA(0, true, bigIdr, 1000);
  f.send(3000, true, slice(200));
  const auto aus = f.take();
  ASSERT_EQ(aus.size(), 2u);
  EXPECT_TRUE(aus[0].idr);
  EXPECT_EQ(nalTypes(aus[0]), (std::vector<uint8_t>{7, 8, 5}));
  const auto units = codecs::h264::splitAnnexB(aus[0].annexB);
  ASSERT_EQ(units.size(), 3u);
  EXPECT_EQ(Bytes(units[2].bytes.begin(), units[2].bytes.end()), bigIdr);
  EXPECT_FALSE(aus[1].idr);
  EXPECT_EQ(aus[1].rtpTimestamp, 3000u);
  EXPECT_EQ(f.d.stats().droppedAccessUnits, 0u);
}

// SPS/PPS only in the SDP (config-interval=0): every IDR gets them in front.
TEST(H264Depacketizer, PutsTheSdpParameterSetsInFrontOfEveryIdrWithout) {
  Feeder f;
  f.d.setParameterSets(kSps, kPps);
  f.send(0, true, idr(100));
  f.send(3000, true, slice(50));
  f.send(6000, true, idr(100));
  const auto aus = f.take();
  ASSERT_EQ(aus.size(), 3u);
  EXPECT_EQ(nalTypes(aus[0]), (std::vector<uint8_t>{7, 8, 5}));
  EXPECT_EQ(nalTypes(aus[1]), (std::vector<uint8_t>{1}));
  EXPECT_EQ(nalTypes(aus[2]), (std::vector<uint8_t>{7, 8, 5}));
  EXPECT_EQ(f.d.stats().insertedParameterSets, 2u);
}

// Cameras that set the marker after SPS/PPS, that never set it, or pack SPS+PPS+IDR in one NAL.
TEST(H264Depacketizer, CopesWithCameraHabits) {
  {
    Feeder f;
    f.send(0, true, kSps);
    f.send(0, true, kPps);
    f.send(0, true, idr(80));
    const auto aus = f.take();
    ASSERT_EQ(aus.size(), 1u);
    EXPECT_EQ(nalTypes(aus[0]), (std::vector<uint8_t>{7, 8, 5}));
  }
  {
    Feeder f;  // no marker bits at all: a new timestamp ends the access unit
    f.send(0, false, stapA({kSps, kPps, idr(60)}));
    f.send(3000, false, slice(40));
    f.send(6000, false, slice(40));
    EXPECT_EQ(f.take().size(), 2u);
  }
  {
    Feeder f;
    Bytes packed = kSps;
    for (const Bytes& nal : {kPps, idr(50)}) {
      packed.insert(packed.end(), {0, 0, 0, 1});
      packed.insert(packed.end(), nal.begin(), nal.end());
    }
    f.send(0, true, packed);
    const auto aus = f.take();
    ASSERT_EQ(aus.size(), 1u);
    EXPECT_EQ(nalTypes(aus[0]), (std::vector<uint8_t>{7, 8, 5}));
  }
}

// A lost packet: the damaged access unit and everything up to the next IDR are dropped; a
// receiver that joins mid-GOP starts at the first IDR.
TEST(H264Depacketizer, DropsFromALossToTheNextIdr) {
  Feeder f;
  f.send(0, true, slice(40));  // joined mid-GOP
  f.send(3000, false, stapA({kSps, kPps}));
  f.sendFuA(3000, true, idr(2000), 500);
  f.sendFuA(6000, true, slice(1500), 500);
  ++f.seq;  // a lost packet
  f.sendFuA(9000, true, slice(1500), 500);
  f.send(12000, true, slice(40));
  f.send(15000, false, stapA({kSps, kPps}));
  f.send(15000, true, idr(90));
  const auto aus = f.take();
  ASSERT_EQ(aus.size(), 3u);
  EXPECT_TRUE(aus[0].idr);
  EXPECT_FALSE(aus[1].idr);
  EXPECT_TRUE(aus[2].idr);
  EXPECT_EQ(aus[2].rtpTimestamp, 15000u);
  EXPECT_EQ(f.d.stats().lostPackets, 1u);
  EXPECT_GE(f.d.stats().droppedAccessUnits, 3u);  // the first slice, the damaged one, the next
}

TEST(H264Depacketizer, BoundsAnAccessUnitAndCountsWhatItCannotRead) {
  Feeder f;
  f.d = H264Depacketizer(4096);
  f.send(0, false, stapA({kSps, kPps}));
  f.sendFuA(0, true, idr(10000), 1000);      // above the bound
  f.send(3000, true, Bytes{0x5a, 1, 2, 3});  // FU-B (type 29)
  f.send(6000, true, stapA({kSps, kPps, idr(100)}));
  const auto aus = f.take();
  ASSERT_EQ(aus.size(), 1u);
  EXPECT_EQ(aus[0].rtpTimestamp, 6000u);
  EXPECT_EQ(f.d.stats().oversizedAccessUnits, 1u);
  EXPECT_EQ(f.d.stats().unsupportedPackets, 1u);
}

TEST(Sdp, ReadsTheH264MediaOfACameraDescription) {
  const std::string sdp =
      "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=Camera\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\n"
      "m=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:trackID=2\r\n"
      "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
      "a=fmtp:96 packetization-mode=1; profile-level-id=42C01E; sprop-parameter-sets=Z0LAHtkA,aM48gA==\r\n"
      "a=control:trackID=1\r\n";
  auto v = parseSdpH264(sdp);
  ASSERT_TRUE(v) << v.error().describe();
  EXPECT_EQ(v->payloadType, 96);
  EXPECT_EQ(v->clockRate, 90000u);
  EXPECT_EQ(v->control, "trackID=1");
  EXPECT_EQ(v->packetizationMode, 1);
  EXPECT_EQ(v->profileLevelId, "42C01E");
  EXPECT_EQ(v->sps, kSps);
  EXPECT_EQ(v->pps, kPps);

  EXPECT_EQ(parseSdpH264("v=0\r\nm=audio 0 RTP/AVP 0\r\n").code(), hal::Errc::InvalidArgument);
  EXPECT_EQ(parseSdpH264("m=video 0 RTP/AVP 97\na=rtpmap:97 H265/90000\n").code(),
            hal::Errc::InvalidArgument);
  EXPECT_EQ(
      parseSdpH264("m=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\na=fmtp:96 packetization-mode=2\n").code(),
      hal::Errc::Unsupported);
  auto noSprop =
      parseSdpH264("m=video 0 RTP/AVP 96\na=rtpmap:96 h264/90000\na=fmtp:96 sprop-parameter-sets=!!\n");
  ASSERT_TRUE(noSprop);
  EXPECT_TRUE(noSprop->sps.empty());
}

// The packetizer against the depacketizer (RFC 6184 both ways): an IDR access unit with SPS and
// PPS (one STAP-A), a slice too big for one packet (FU-A), a small P slice (single NAL unit).
TEST(H264Packetizer, MakesStapAFuAAndSingleNalPacketsTheDepacketizerRebuilds) {
  auto annexB = [](std::initializer_list<Bytes> nals) {
    Bytes out;
    for (const auto& n : nals) {
      out.insert(out.end(), {0, 0, 0, 1});
      out.insert(out.end(), n.begin(), n.end());
    }
    return out;
  };
  H264Packetizer packetizer(96, 0x11223344, 65530, 500);
  std::vector<Bytes> packets;
  const Bytes aud = {0x09, 0xf0};
  const Bytes sps = {0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x80};  // ends in its stop bit, as a real one
  const Bytes key = annexB({aud, sps, kPps, idr(1800)});
  packetizer.packetize(key, 3000, packets);
  // STAP-A (SPS+PPS), then 1799 bytes of IDR after its header in 498-byte FU-A pieces: 4 packets.
  ASSERT_EQ(packets.size(), 5u);
  auto first = parse(packets[0]);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->payload[0] & 0x1f, 24);
  EXPECT_EQ(first->sequence, 65530);
  EXPECT_EQ(first->ssrc, 0x11223344u);
  EXPECT_FALSE(first->marker);
  for (size_t i = 1; i < packets.size(); ++i) {
    auto p = parse(packets[i]);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->payload[0] & 0x1f, 28) << i;
    EXPECT_LE(p->payload.size(), 500u);
    EXPECT_EQ(p->marker, i + 1 == packets.size()) << i;
    EXPECT_EQ(p->timestamp, 3000u);
  }
  const Bytes delta = annexB({slice(300)});
  packetizer.packetize(delta, 6000, packets);
  ASSERT_EQ(packets.size(), 6u);
  EXPECT_EQ(packetizer.nextSequence(), 0u);  // 65530 + 6, wrapped

  H264Depacketizer depacketizer;
  for (const auto& b : packets) {
    auto p = parse(b);
    ASSERT_TRUE(p);
    depacketizer.push(*p);
  }
  AccessUnit au;
  ASSERT_TRUE(depacketizer.pop(au));
  EXPECT_TRUE(au.idr);
  EXPECT_EQ(au.annexB, annexB({sps, kPps, idr(1800)})) << "the same NAL units, without the AUD";
  EXPECT_EQ(au.rtpTimestamp, 3000u);
  ASSERT_TRUE(depacketizer.pop(au));
  EXPECT_EQ(au.annexB, delta);
  EXPECT_EQ(depacketizer.stats().lostPackets, 0u);
}

}  // namespace
}  // namespace printcast::transport::rtp
