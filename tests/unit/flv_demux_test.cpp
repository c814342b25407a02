// SPDX-License-Identifier: MIT
// FlvDemuxer against our own muxer (flv.h) carrying x264's access units, at every split point;
// sequence headers, NAL length sizes, timestamps, refusals with their reasons; and the HTTP-FLV
// response reader (flv_pull.h).
#include "printcast/transport/flv_demux.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "printcast/codecs/h264.h"
#include "printcast/codecs/x264_encoder.h"
#include "printcast/transport/flv.h"
#include "printcast/transport/flv_pull.h"

namespace flv = printcast::transport::flv;
namespace h264 = printcast::codecs::h264;
namespace fourcc = printcast::hal::fourcc;
using printcast::hal::Errc;
using printcast::hal::FramePool;
using printcast::hal::PacketPtr;
using printcast::hal::Size;
using Bytes = std::vector<uint8_t>;

namespace {

void append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

// `count` access units of a moving picture from x264 (baseline, an IDR every `gop`).
std::vector<PacketPtr> encode(Size size, int count, int gop) {
  auto encoder = printcast::codecs::createX264Encoder();
  printcast::hal::EncoderConfig config;
  config.size = size;
  config.fps = 15;
  config.bitrateKbps = 300;
  config.gopFrames = gop;
  EXPECT_TRUE(encoder->configure(config).ok());
  auto pool = FramePool::create(fourcc::kI420, size, 2);
  EXPECT_TRUE(pool.ok());
  std::vector<PacketPtr> packets;
  for (int n = 0; n < count; ++n) {
    auto w = (*pool)->acquire();
    EXPECT_TRUE(w.ok());
    for (int p = 0; p < 3; ++p) {
      const int h = p == 0 ? size.height : size.height / 2;
      const int wd = p == 0 ? size.width : size.width / 2;
      for (int y = 0; y < h; ++y) {
        uint8_t* row = w->data(p) + static_cast<std::ptrdiff_t>(y) * w->stride(p);
        for (int x = 0; x < wd; ++x) row[x] = static_cast<uint8_t>(p == 0 ? (x + y + 5 * n) * 3 : 128 + n);
      }
    }
    const printcast::hal::Timestamp ts(std::chrono::milliseconds(1000 + n * 66));
    auto packet = encoder->encode(std::move(*w).publish(ts, static_cast<uint64_t>(n)));
    EXPECT_TRUE(packet.ok());
    if (packet.ok()) packets.push_back(*packet);
  }
  return packets;
}

// A complete tag of any type, as the spec lays it out (E.4.1), with its PreviousTagSize.
Bytes tag(uint8_t type, uint32_t timestampMs, const Bytes& body) {
  Bytes out{type,
            static_cast<uint8_t>(body.size() >> 16),
            static_cast<uint8_t>(body.size() >> 8),
            static_cast<uint8_t>(body.size()),
            static_cast<uint8_t>(timestampMs >> 16),
            static_cast<uint8_t>(timestampMs >> 8),
            static_cast<uint8_t>(timestampMs),
            static_cast<uint8_t>(timestampMs >> 24),
            0,
            0,
            0};
  append(out, body);
  const uint32_t previous = static_cast<uint32_t>(11 + body.size());
  append(out, {static_cast<uint8_t>(previous >> 24), static_cast<uint8_t>(previous >> 16),
               static_cast<uint8_t>(previous >> 8), static_cast<uint8_t>(previous)});
  return out;
}

// A NALU tag through the muxer's framing, with the access unit in 4-byte length-prefixed form
// without its parameter sets (they travel in the sequence header), as the streamer's /flv sends.
Bytes naluTag(const Bytes& annexB, uint32_t timestampMs, bool keyframe) {
  const Bytes payload = h264::annexBToLengthPrefixed(annexB, true);
  const flv::TagFraming framing = flv::avcNaluTagFraming(payload.size(), timestampMs, keyframe);
  Bytes out(framing.prefix.begin(), framing.prefix.end());
  append(out, payload);
  out.insert(out.end(), framing.suffix.begin(), framing.suffix.end());
  return out;
}

Bytes avcC(const PacketPtr& packet) {
  auto record = h264::avcDecoderConfigurationRecord(*packet->config);
  EXPECT_TRUE(record.ok());
  return record.ok() ? *record : Bytes{};
}

struct Stream {
  Bytes bytes;
  std::vector<PacketPtr> packets;
  std::vector<uint32_t> timestamps;
};

// Header, onMetaData, an audio tag, the sequence header, then each access unit at 66 ms steps.
Stream makeStream(int count, int gop) {
  Stream s;
  s.packets = encode({160, 120}, count, gop);
  s.bytes = flv::fileHeader();
  append(s.bytes, flv::metadataTag({160, 120}, 15.0));
  append(s.bytes, tag(8, 0, {0xAF, 0x00, 0x12, 0x10}));  // AAC sequence header: skipped
  append(s.bytes, flv::avcSequenceHeaderTag(avcC(s.packets.front()), 0));
  for (size_t i = 0; i < s.packets.size(); ++i) {
    s.timestamps.push_back(static_cast<uint32_t>(i * 66));
    append(s.bytes, naluTag(s.packets[i]->data, s.timestamps.back(), s.packets[i]->keyframe));
  }
  return s;
}

std::vector<Bytes> nals(const Bytes& annexB) {
  std::vector<Bytes> out;
  for (const auto& nal : h264::splitAnnexB(annexB)) out.emplace_back(nal.bytes.begin(), nal.bytes.end());
  return out;
}

std::vector<flv::AccessUnit> drain(flv::FlvDemuxer& demuxer) {
  std::vector<flv::AccessUnit> out;
  flv::AccessUnit au;
  while (demuxer.pop(au)) out.push_back(std::move(au));
  return out;
}

// The access units of `s` equal x264's: the same NAL units (SPS/PPS back in front of each IDR),
// keyframe flags, timestamps, and the encoder's parameter sets.
void expectSameAccessUnits(const Stream& s, const std::vector<flv::AccessUnit>& units) {
  ASSERT_EQ(units.size(), s.packets.size());
  for (size_t i = 0; i < units.size(); ++i) {
    EXPECT_EQ(nals(units[i].annexB), nals(s.packets[i]->data)) << "access unit " << i;
    EXPECT_EQ(units[i].keyframe, s.packets[i]->keyframe) << i;
    EXPECT_EQ(units[i].idr, h264::containsIdr(s.packets[i]->data)) << i;
    EXPECT_EQ(units[i].dtsMs, s.timestamps[i]) << i;
    EXPECT_EQ(units[i].ptsMs, s.timestamps[i]) << i;
    ASSERT_NE(units[i].config, nullptr) << i;
    EXPECT_EQ(*units[i].config, *s.packets[i]->config) << i;
  }
}

}  // namespace

TEST(FlvDemuxer, GivesBackX264sAccessUnitsFromOurMuxer) {
  const Stream s = makeStream(12, 5);
  flv::FlvDemuxer demuxer;
  ASSERT_TRUE(demuxer.feed(s.bytes).ok());
  expectSameAccessUnits(s, drain(demuxer));
  EXPECT_EQ(demuxer.skippedTags(), 2u) << "onMetaData and the audio tag";
  EXPECT_EQ(demuxer.videoTags(), 13u) << "the sequence header and 12 access units";
}

TEST(FlvDemuxer, EverySplitPointAndByteByByteGiveTheSameAccessUnits) {
  const Stream s = makeStream(4, 2);
  ASSERT_LT(s.bytes.size(), 20000u) << "keeps the split loop quick";
  for (size_t split = 0; split <= s.bytes.size(); ++split) {
    flv::FlvDemuxer demuxer;
    ASSERT_TRUE(demuxer.feed({s.bytes.data(), split}).ok()) << split;
    ASSERT_TRUE(demuxer.feed({s.bytes.data() + split, s.bytes.size() - split}).ok()) << split;
    const auto units = drain(demuxer);
    ASSERT_EQ(units.size(), s.packets.size()) << split;
    for (size_t i = 0; i < units.size(); ++i)
      ASSERT_EQ(nals(units[i].annexB), nals(s.packets[i]->data)) << split;
  }
  flv::FlvDemuxer demuxer;
  for (uint8_t b : s.bytes) ASSERT_TRUE(demuxer.feed({&b, 1}).ok());
  expectSameAccessUnits(s, drain(demuxer));
}

// Our muxer leaves SPS/PPS out of the NALU tags: every IDR gets the sequence header's in front,
// after an access unit delimiter when the access unit starts with one; other access units get none.
TEST(FlvDemuxer, AnIdrWithoutParameterSetsGetsThoseOfTheSequenceHeader) {
  const auto packets = encode({160, 120}, 3, 2);
  const auto& config = *packets.front()->config;
  Bytes idr;  // AUD, the IDR slices of packet 0 (no SPS/PPS)
  append(idr, {0, 0, 0, 1, 0x09, 0xF0});
  for (const auto& nal : h264::splitAnnexB(packets[0]->data)) {
    if (nal.type() != h264::kIdrSlice) continue;
    append(idr, {0, 0, 0, 1});
    idr.insert(idr.end(), nal.bytes.begin(), nal.bytes.end());
  }
  Bytes stream = flv::fileHeader();
  append(stream, flv::avcSequenceHeaderTag(avcC(packets[0]), 0));
  const Bytes aud = h264::annexBToLengthPrefixed(idr, false);
  append(stream, tag(9, 0, [&] {
           Bytes body{0x17, 0x01, 0, 0, 0};
           append(body, aud);
           return body;
         }()));
  append(stream, naluTag(packets[1]->data, 66, false));
  flv::FlvDemuxer demuxer;
  ASSERT_TRUE(demuxer.feed(stream).ok());
  const auto units = drain(demuxer);
  ASSERT_EQ(units.size(), 2u);
  const auto first = nals(units[0].annexB);
  ASSERT_GE(first.size(), 4u);
  EXPECT_EQ(first[0], (Bytes{0x09, 0xF0})) << "the delimiter stays first";
  EXPECT_EQ(first[1], config.sps);
  EXPECT_EQ(first[2], config.pps);
  for (size_t i = 3; i < first.size(); ++i)
    EXPECT_EQ(first[i].at(0) & 0x1F, h264::kIdrSlice) << "x264's slices";
  EXPECT_TRUE(units[0].idr);
  for (const auto& nal : nals(units[1].annexB)) EXPECT_NE(nal.at(0) & 0x1F, h264::kSps);
  EXPECT_FALSE(units[1].idr);
}

// A new sequence header (the camera changed size) replaces the parameter sets from there on; an
// end-of-sequence tag is ignored; a record with 2-byte NAL lengths is read with them.
TEST(FlvDemuxer, ASequenceHeaderReplacesTheParameterSetsAndItsNalLengthSize) {
  const auto small = encode({160, 120}, 2, 2);
  const auto large = encode({320, 240}, 2, 2);
  Bytes stream = flv::fileHeader();
  append(stream, flv::avcSequenceHeaderTag(avcC(small[0]), 0));
  append(stream, naluTag(small[0]->data, 0, true));
  append(stream, tag(9, 66, {0x17, 0x02, 0, 0, 0}));  // AVC end of sequence
  // lengthSizeMinusOne 1: NAL lengths of 2 bytes.
  Bytes record = avcC(large[0]);
  record[4] = 0xFC | 1;
  append(stream, flv::avcSequenceHeaderTag(record, 100));
  Bytes body{0x17, 0x01, 0, 0, 0};
  for (const auto& nal : h264::splitAnnexB(large[0]->data)) {
    append(body, {static_cast<uint8_t>(nal.bytes.size() >> 8), static_cast<uint8_t>(nal.bytes.size())});
    body.insert(body.end(), nal.bytes.begin(), nal.bytes.end());
  }
  append(stream, tag(9, 100, body));
  flv::FlvDemuxer demuxer;
  ASSERT_TRUE(demuxer.feed(stream).ok());
  const auto units = drain(demuxer);
  ASSERT_EQ(units.size(), 2u);
  EXPECT_EQ(*units[0].config, *small[0]->config);
  EXPECT_EQ(*units[1].config, *large[0]->config);
  EXPECT_EQ(nals(units[1].annexB), nals(large[0]->data));
  auto sps = h264::parseSps(units[1].config->sps);
  ASSERT_TRUE(sps.ok());
  EXPECT_EQ(sps->size, (Size{320, 240}));
}

// PTS = tag timestamp + CompositionTime (SI24, negative too); the 32-bit tag clock is unwrapped.
TEST(FlvDemuxer, TimestampsAddTheCompositionTimeAndUnwrap) {
  const auto packets = encode({160, 120}, 3, 3);
  Bytes stream = flv::fileHeader();
  append(stream, flv::avcSequenceHeaderTag(avcC(packets[0]), 0xFFFFFF00));
  auto withCts = [&](const PacketPtr& p, uint32_t ts, int32_t cts) {
    Bytes body{static_cast<uint8_t>(p->keyframe ? 0x17 : 0x27), 0x01, static_cast<uint8_t>(cts >> 16),
               static_cast<uint8_t>(cts >> 8), static_cast<uint8_t>(cts)};
    append(body, h264::annexBToLengthPrefixed(p->data, false));
    return tag(9, ts, body);
  };
  append(stream, withCts(packets[0], 0xFFFFFF00, 80));
  append(stream, withCts(packets[1], 0x00000010, -16));  // 0x110 ms later, across the wrap
  append(stream, withCts(packets[2], 0x00000052, 0));
  flv::FlvDemuxer demuxer;
  ASSERT_TRUE(demuxer.feed(stream).ok());
  const auto units = drain(demuxer);
  ASSERT_EQ(units.size(), 3u);
  const int64_t base = 0xFFFFFF00;
  EXPECT_EQ(units[0].ptsMs, base + 80);
  EXPECT_EQ(units[1].dtsMs, base + 0x110);
  EXPECT_EQ(units[1].ptsMs, base + 0x110 - 16);
  EXPECT_EQ(units[2].ptsMs, base + 0x152);
}

namespace {

// The demuxer's error for `bytes`: its code and message.
printcast::hal::Status refusal(const Bytes& bytes, flv::FlvDemuxer::Limits limits = {}) {
  flv::FlvDemuxer demuxer(limits);
  auto st = demuxer.feed(bytes);
  if (st.ok()) return st;
  EXPECT_FALSE(demuxer.feed(Bytes{0}).ok()) << "the error sticks";
  return st;
}

std::string message(const printcast::hal::Status& st) { return st.ok() ? "ok" : st.error().message; }

}  // namespace

TEST(FlvDemuxer, RefusesWhatIsNotAnH264FlvStreamSayingWhy) {
  auto st = refusal({'<', 'h', 't', 'm', 'l'});
  EXPECT_EQ(st.code(), Errc::InvalidArgument);
  EXPECT_NE(message(st).find("not FLV"), std::string::npos) << message(st);
  EXPECT_NE(message(refusal({'F', 'L', 'V', 2})).find("version 2"), std::string::npos);

  const Bytes audioOnly{'F', 'L', 'V', 1, 0x04, 0, 0, 0, 9, 0, 0, 0, 0};
  EXPECT_NE(message(refusal(audioOnly)).find("no video"), std::string::npos) << message(refusal(audioOnly));

  Bytes sorenson = flv::fileHeader();
  append(sorenson, tag(9, 0, {0x12, 0x00, 0x00}));  // keyframe, CodecID 2 (Sorenson H.263)
  EXPECT_NE(message(refusal(sorenson)).find("codec id 2 is not H.264 (7)"), std::string::npos)
      << message(refusal(sorenson));

  Bytes hevc = flv::fileHeader();
  append(hevc, tag(9, 0, {0x90, 'h', 'v', 'c', '1', 0, 0}));  // enhanced FLV, keyframe, hvc1
  EXPECT_NE(message(refusal(hevc)).find("'hvc1'"), std::string::npos) << message(refusal(hevc));

  Bytes large = flv::fileHeader();
  append(large, tag(9, 0, Bytes(2000, 0)));
  EXPECT_NE(message(refusal(large, {1000})).find("a tag of 2000 bytes (type 9) is above the 1000 byte limit"),
            std::string::npos)
      << message(refusal(large, {1000}));

  Bytes pastEnd = flv::fileHeader();
  append(pastEnd, tag(9, 0, {0x27, 0x01, 0, 0, 0, 0, 0, 0, 9, 0x41}));
  EXPECT_NE(message(refusal(pastEnd)).find("runs past the tag's end"), std::string::npos)
      << message(refusal(pastEnd));

  Bytes badRecord = flv::fileHeader();
  append(badRecord, tag(9, 0, {0x17, 0x00, 0, 0, 0, 0x01, 0x42, 0xC0, 0x1E, 0xFF, 0xE0, 0x00}));
  EXPECT_NE(message(refusal(badRecord)).find("no SPS"), std::string::npos) << message(refusal(badRecord));
}

// ----------------------------------------------------------------------------- HTTP-FLV response

namespace {

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

}  // namespace

TEST(FlvResponseReader, ReadsAChunkedVideoXFlvResponse) {
  const Stream s = makeStream(3, 3);
  Bytes response = text("HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (size_t at = 0; at < s.bytes.size(); at += 700) {
    const size_t n = std::min<size_t>(700, s.bytes.size() - at);
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", n);
    append(response, text(size));
    response.insert(response.end(), s.bytes.begin() + static_cast<std::ptrdiff_t>(at),
                    s.bytes.begin() + static_cast<std::ptrdiff_t>(at + n));
    append(response, text("\r\n"));
  }
  printcast::transport::FlvResponseReader reader;
  for (size_t at = 0; at < response.size(); at += 333) {
    ASSERT_TRUE(reader.feed({response.data() + at, std::min<size_t>(333, response.size() - at)}).ok());
  }
  std::vector<flv::AccessUnit> units;
  flv::AccessUnit au;
  while (reader.pop(au)) units.push_back(std::move(au));
  expectSameAccessUnits(s, units);
}

TEST(FlvResponseReader, AcceptsOctetStreamOnlyWhenTheBodyIsFlvAndRefusesOtherTypes) {
  const Stream s = makeStream(1, 1);
  {
    printcast::transport::FlvResponseReader reader;
    Bytes response = text("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n");
    append(response, s.bytes);
    ASSERT_TRUE(reader.feed(response).ok());
    EXPECT_EQ(reader.pending(), 1u);
  }
  {
    printcast::transport::FlvResponseReader reader;
    auto st =
        reader.feed(text("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n--frame\r\n"));
    EXPECT_EQ(st.code(), Errc::Unsupported);
    EXPECT_NE(message(st).find("does not start with \"FLV\""), std::string::npos) << message(st);
  }
  {
    printcast::transport::FlvResponseReader reader;
    auto st =
        reader.feed(text("HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=x\r\n\r\n"));
    EXPECT_EQ(st.code(), Errc::Unsupported);
    EXPECT_NE(message(st).find("is not an FLV stream (video/x-flv)"), std::string::npos) << message(st);
  }
  {
    printcast::transport::FlvResponseReader reader;
    auto st = reader.feed(text("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
    EXPECT_EQ(st.code(), Errc::Unsupported);
    EXPECT_EQ(message(st), "HTTP 404 Not Found");
  }
}

TEST(FlvPull, HttpUrlsEndingInFlvAreFlvSources) {
  using printcast::transport::isHttpFlvUrl;
  EXPECT_TRUE(isHttpFlvUrl("http://127.0.0.1:18088/flv"));
  EXPECT_TRUE(isHttpFlvUrl("http://cam/live.flv"));
  EXPECT_TRUE(isHttpFlvUrl("http://user:pw@cam:8080/live.FLV?token=1"));
  EXPECT_FALSE(isHttpFlvUrl("http://cam:8080/stream"));
  EXPECT_FALSE(isHttpFlvUrl("http://cam:8080/?action=stream&f=flv"));
  EXPECT_FALSE(isHttpFlvUrl("rtsp://cam/live.flv"));
  EXPECT_FALSE(isHttpFlvUrl("https://cam/live.flv"));
}
