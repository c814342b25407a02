// SPDX-License-Identifier: MIT
// RTMP: the chunk reader against the chunk header types a server sends (5.3.1: type 0-3, 2- and
// 3-byte chunk stream ids, extended timestamps, a peer's Set Chunk Size), at every split, and the
// AMF0 decoder against a real _result/onStatus (bytes as ffmpeg's RTMP server writes them).
// ffmpeg -listen 1 receiving what the publisher sends is in the integration tests.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "printcast/transport/rtmp_publish.h"

namespace printcast::transport::rtmp {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes header0(uint8_t csid, uint32_t ts, uint32_t length, uint8_t type, uint32_t streamId) {
  return {csid,
          static_cast<uint8_t>(ts >> 16),
          static_cast<uint8_t>(ts >> 8),
          static_cast<uint8_t>(ts),
          static_cast<uint8_t>(length >> 16),
          static_cast<uint8_t>(length >> 8),
          static_cast<uint8_t>(length),
          type,
          static_cast<uint8_t>(streamId),
          static_cast<uint8_t>(streamId >> 8),
          static_cast<uint8_t>(streamId >> 16),
          static_cast<uint8_t>(streamId >> 24)};
}

void append(Bytes& to, const Bytes& b) { to.insert(to.end(), b.begin(), b.end()); }

TEST(RtmpChunkReader, ReadsEveryHeaderTypeAtAnySplit) {
  Bytes wire;
  // A 300-byte message in 128-byte chunks: type 0, then two type 3 continuations.
  Bytes big(300);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i);
  append(wire, header0(3, 1000, 300, 20, 0));
  wire.insert(wire.end(), big.begin(), big.begin() + 128);
  wire.push_back(0xc3);
  wire.insert(wire.end(), big.begin() + 128, big.begin() + 256);
  wire.push_back(0xc3);
  wire.insert(wire.end(), big.begin() + 256, big.end());
  // Type 1 (same stream id, new length/type, delta 40) and type 2 (delta 33) messages.
  append(wire, {0x43, 0, 0, 40, 0, 0, 2, 9, 0xaa, 0xbb});
  append(wire, {0x83, 0, 0, 33, 0xcc, 0xdd});
  // Set Chunk Size 4096 on chunk stream 2, then a 200-byte message in one chunk, on a 2-byte
  // chunk stream id (csid 64 + 6 = 70) with an extended timestamp.
  append(wire, header0(2, 0, 4, 1, 0));
  append(wire, {0, 0, 0x10, 0});
  Bytes ext = {0x00, 6, 0xff, 0xff, 0xff, 0, 0, 200, 9, 1, 0, 0, 0, 0x01, 0x00, 0x00, 0x00};
  append(wire, ext);
  wire.insert(wire.end(), 200, 0x55);

  for (size_t split = 0; split <= wire.size(); ++split) {
    ChunkReader reader;
    ASSERT_TRUE(reader.feed({wire.data(), split}).ok()) << split;
    ASSERT_TRUE(reader.feed({wire.data() + split, wire.size() - split}).ok()) << split;
    Message m;
    ASSERT_TRUE(reader.pop(m)) << split;
    EXPECT_EQ(m.type, 20);
    EXPECT_EQ(m.timestamp, 1000u);
    EXPECT_EQ(m.payload, big);
    ASSERT_TRUE(reader.pop(m));
    EXPECT_EQ(m.type, 9);
    EXPECT_EQ(m.timestamp, 1040u);
    EXPECT_EQ(m.payload, (Bytes{0xaa, 0xbb}));
    ASSERT_TRUE(reader.pop(m));
    EXPECT_EQ(m.timestamp, 1073u);
    EXPECT_EQ(m.payload, (Bytes{0xcc, 0xdd}));
    ASSERT_TRUE(reader.pop(m));
    EXPECT_EQ(m.type, 1);
    ASSERT_TRUE(reader.pop(m));
    EXPECT_EQ(m.timestamp, 0x01000000u) << "extended timestamp";
    EXPECT_EQ(m.streamId, 1u);
    EXPECT_EQ(m.payload.size(), 200u) << "one chunk: the peer's chunk size 4096 applies";
    EXPECT_FALSE(reader.pop(m));
  }
}

TEST(RtmpChunkReader, RefusesWhatCannotBeAChunkStream) {
  ChunkReader continuation;
  EXPECT_FALSE(continuation.feed(Bytes{0xc5, 1, 2, 3}).ok()) << "type 3 on a chunk stream never started";
  ChunkReader big(1000);
  EXPECT_FALSE(big.feed(header0(3, 0, 5000, 9, 1)).ok()) << "above the message limit";
  ChunkReader zero;
  Bytes w = header0(2, 0, 4, 1, 0);
  append(w, {0, 0, 0, 0});
  EXPECT_FALSE(zero.feed(w).ok()) << "chunk size 0";
}

TEST(Amf0, DecodesACommandReply) {
  // "_result", 4, null, 1 (createStream's answer); then onStatus with an info object.
  Bytes result = {0x02, 0, 7, '_', 'r',  'e',  's',  'u',  'l', 't', 0x00, 0x40, 0x10, 0, 0,
                  0,    0, 0, 0,   0x05, 0x00, 0x3f, 0xf0, 0,   0,   0,    0,    0,    0};
  auto v = decodeAmf0(result);
  ASSERT_TRUE(v) << v.error().describe();
  ASSERT_EQ(v->size(), 4u);
  EXPECT_EQ((*v)[0].string, "_result");
  EXPECT_EQ((*v)[1].number, 4.0);
  EXPECT_EQ((*v)[2].kind, Amf0Value::Kind::Null);
  EXPECT_EQ((*v)[3].number, 1.0);

  Bytes status = {0x02, 0,   8,   'o', 'n', 'S',  't',  'a', 't', 'u', 's', 0x00, 0,   0,   0,
                  0,    0,   0,   0,   0,   0x05, 0x03, 0,   5,   'l', 'e', 'v',  'e', 'l', 0x02,
                  0,    5,   'e', 'r', 'r', 'o',  'r',  0,   11,  'd', 'e', 's',  'c', 'r', 'i',
                  'p',  't', 'i', 'o', 'n', 0x02, 0,    3,   'b', 'a', 'd', 0,    0,   0x09};
  auto s = decodeAmf0(status);
  ASSERT_TRUE(s) << s.error().describe();
  ASSERT_EQ(s->size(), 4u);
  ASSERT_NE((*s)[3].get("level"), nullptr);
  EXPECT_EQ((*s)[3].get("level")->string, "error");
  EXPECT_EQ((*s)[3].get("description")->string, "bad");

  EXPECT_FALSE(decodeAmf0(Bytes{0x02, 0, 9, 'x'})) << "cut off";
  EXPECT_FALSE(decodeAmf0(Bytes{0x11})) << "an AMF3 switch is not read";
  Bytes deep;
  for (int i = 0; i < 12; ++i) append(deep, {0x03, 0, 1, 'a'});
  EXPECT_FALSE(decodeAmf0(deep)) << "nesting";
}

TEST(RtmpPublisher, RefusesUrlsItCannotPublishTo) {
  FlvStream flv(15);
  if (rtmpsSupported()) {
    auto secure = parseRtmpUrl("RTMPS://ingest.example/live2/key");
    ASSERT_TRUE(secure) << secure.error().describe();
    EXPECT_EQ(secure->url.port, 443);
    EXPECT_EQ(secure->tcUrl, "rtmps://ingest.example/live2");
    EXPECT_EQ(secure->shown(), "rtmps://ingest.example/live2/***");
  } else {
    EXPECT_EQ(RtmpPublisher::start("rtmps://x/live/key", flv).code(), hal::Errc::Unsupported);
  }
  EXPECT_TRUE(isRtmpUrl("rtmp://x/a/b"));
  EXPECT_TRUE(isRtmpUrl("RTMPS://x/a/b"));
  EXPECT_FALSE(isRtmpUrl("rtsp://x/a"));
  EXPECT_FALSE(isRtmpUrl("rtmp:/x"));
  EXPECT_EQ(RtmpPublisher::start("rtmp://x/keyonly", flv).code(), hal::Errc::InvalidArgument);
  EXPECT_EQ(RtmpPublisher::start("rtmp://x/", flv).code(), hal::Errc::InvalidArgument);
  auto keyOnly = parseRtmpUrl("rtmp://x/supersecretkey");
  ASSERT_FALSE(keyOnly);
  EXPECT_EQ(keyOnly.error().message.find("supersecretkey"), std::string::npos) << "a key is never echoed";
  auto target = parseRtmpUrl("rtmp://ingest.example:1936/live2/app/key?pw=1");
  ASSERT_TRUE(target) << target.error().describe();
  EXPECT_EQ(target->app, "live2/app");
  EXPECT_EQ(target->key, "key?pw=1");
  EXPECT_EQ(target->tcUrl, "rtmp://ingest.example:1936/live2/app");
  auto ok = RtmpPublisher::start("rtmp://127.0.0.1:1/live/secret", flv);
  ASSERT_TRUE(ok) << ok.error().describe();
  EXPECT_EQ((*ok)->status().url, "rtmp://127.0.0.1:1/live/***") << "the key is a secret";
}

}  // namespace
}  // namespace printcast::transport::rtmp
