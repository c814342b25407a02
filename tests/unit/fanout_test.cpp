// SPDX-License-Identifier: MIT
// Fan-out: per-client queue bounds and drop policies, MJPEG and FLV per-client framing.
#include "printcast/transport/fanout.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "printcast/transport/flv.h"
#include "printcast/transport/mjpeg.h"

using namespace printcast;
using transport::ClientQueue;
using transport::DropPolicy;
using transport::WireUnit;

namespace {

WireUnit unitOf(const std::string& text, bool keyframe = false) {
  WireUnit u;
  u.keyframe = keyframe;
  u.chunks.push_back(transport::ownedChunk(text));
  return u;
}

std::string drain(ClientQueue& q) {
  std::string out;
  uint8_t buf[3];  // tiny reads: units and chunks are crossed mid-way
  while (true) {
    const size_t n = q.read(buf, sizeof buf, {});
    if (n == 0 || n == ClientQueue::kEnd) break;
    out.append(reinterpret_cast<const char*>(buf), n);
  }
  return out;
}

// An H.264 access unit as the encoder would hand it out (start code + NAL header + payload).
hal::PacketPtr accessUnit(bool idr, std::chrono::microseconds pts, uint64_t seq, uint8_t level = 0x1E) {
  auto p = std::make_shared<hal::Packet>();
  p->codec = hal::fourcc::kH264;
  p->keyframe = idr;
  p->pts = hal::Timestamp(pts);
  p->sequence = seq;
  p->size = {64, 48};
  auto config = std::make_shared<hal::CodecConfig>();
  config->sps = {0x67, 0x42, 0xC0, level, 0xDA, 0x02};
  config->pps = {0x68, 0xCE, 0x3C, 0x80};
  p->config = config;
  if (idr) {
    p->data = {0, 0,    0,    1,    0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0,    0,    0,
               1, 0x68, 0xCE, 0x3C, 0x80, 0,    0,    0,    1,    0x65, 0x88, 0x84, 0x21};
  } else {
    p->data = {0, 0, 0, 1, 0x41, 0x9A, 0x02, 0x03};
  }
  return p;
}

}  // namespace

TEST(ClientQueue, DeliversBytesInOrderAcrossChunksAndUnits) {
  ClientQueue q(DropPolicy::Oldest, {8, 1024});
  WireUnit u;
  u.chunks.push_back(transport::ownedChunk(std::string("ab")));
  u.chunks.push_back(transport::ownedChunk(std::string("cde")));
  q.push(std::move(u));
  q.push(unitOf("fghij"));
  EXPECT_EQ(drain(q), "abcdefghij");
  EXPECT_EQ(q.pendingBytes(), 0u);
  EXPECT_EQ(q.stats().bytesSent, 10u);
}

TEST(ClientQueue, ParksWhenEmptyAndWakesOnceOnPush) {
  ClientQueue q(DropPolicy::Oldest, {8, 1024});
  int parks = 0;
  int wakes = 0;
  q.setWakeup([&] { ++wakes; });
  uint8_t buf[16];
  EXPECT_EQ(q.read(buf, sizeof buf, [&] { ++parks; }), 0u);
  EXPECT_EQ(parks, 1);
  q.push(unitOf("x"));
  q.push(unitOf("y"));
  EXPECT_EQ(wakes, 1) << "only a parked reader is woken, once";
  EXPECT_EQ(q.read(buf, sizeof buf, [&] { ++parks; }), 2u);
  q.close();
  EXPECT_EQ(q.read(buf, sizeof buf, [&] { ++parks; }), ClientQueue::kEnd);
}

// A socket pair standing for a suspended HTTP connection: `server` is what the queue writes to,
// `client` the viewer's end.
struct SocketPair {
  int server = -1;
  int client = -1;
  SocketPair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0) {
      server = fds[0];
      client = fds[1];
      ::fcntl(server, F_SETFL,
              ::fcntl(server, F_GETFL) | O_NONBLOCK);  // NOLINT(cppcoreguidelines-pro-type-vararg)
      ::fcntl(client, F_SETFL,
              ::fcntl(client, F_GETFL) | O_NONBLOCK);  // NOLINT(cppcoreguidelines-pro-type-vararg)
    }
  }
  ~SocketPair() {
    ::close(server);
    ::close(client);
  }
  std::string received() const {
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = ::recv(client, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }
};

TEST(ClientQueue, AParkedReadersSocketIsWrittenByThePushItself) {
  SocketPair pair;
  ASSERT_GE(pair.server, 0);
  ClientQueue q(DropPolicy::Oldest, {8, 1u << 20});
  int wakes = 0;
  int parks = 0;
  q.setWakeup([&] { ++wakes; });
  q.setDirectSocket(pair.server);
  uint8_t buf[64];
  // Before the reader has sent anything (its server may not have sent the headers yet) a push
  // wakes it as always.
  EXPECT_EQ(q.read(buf, sizeof buf, [&] { ++parks; }), 0u);
  WireUnit preamble = unitOf("HEAD");
  q.push(std::move(preamble));
  EXPECT_EQ(wakes, 1);
  EXPECT_EQ(q.read(buf, sizeof buf, [&] { ++parks; }), 4u);
  EXPECT_EQ(pair.received(), "") << "the reader's bytes are the reader's to send";
  // Parked after sending: pushes go straight to the socket, in order, whole, without a wake-up.
  EXPECT_EQ(q.read(buf, sizeof buf, [&] { ++parks; }), 0u);
  EXPECT_EQ(parks, 2);
  WireUnit frame;
  frame.chunks.push_back(transport::ownedChunk(std::string("ab")));
  frame.chunks.push_back(transport::ownedChunk(std::string("")));
  frame.chunks.push_back(transport::ownedChunk(std::string("cde")));
  q.push(std::move(frame));
  q.push(unitOf("f"));
  EXPECT_EQ(pair.received(), "abcdef");
  EXPECT_EQ(wakes, 1);
  EXPECT_EQ(q.pendingBytes(), 0u);
  EXPECT_EQ(q.stats().bytesSent, 4u + 6u);
  EXPECT_EQ(q.stats().unitsQueued, 3u);
  // Still parked: close() wakes the reader, which ends.
  q.close();
  EXPECT_EQ(wakes, 2);
  EXPECT_EQ(q.read(buf, sizeof buf, {}), ClientQueue::kEnd);
}

TEST(ClientQueue, WhatTheSocketDoesNotTakeIsLeftToTheReader) {
  SocketPair pair;
  ASSERT_GE(pair.server, 0);
  const int small = 4096;
  ::setsockopt(pair.server, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  ClientQueue q(DropPolicy::Oldest, {8, 16u << 20});
  int wakes = 0;
  q.setWakeup([&] { ++wakes; });
  q.setDirectSocket(pair.server);
  uint8_t buf[64];
  q.push(unitOf("H"));
  EXPECT_EQ(q.read(buf, sizeof buf, {}), 1u);
  EXPECT_EQ(q.read(buf, sizeof buf, {}), 0u);  // parked
  const std::string big(4u << 20, 'x');        // more than any socket buffer takes at once
  q.push(unitOf(big + "END"));
  EXPECT_EQ(wakes, 1) << "a partial send wakes the reader for the rest";
  const size_t direct = pair.received().size();
  EXPECT_LT(direct, big.size());
  EXPECT_EQ(q.pendingBytes(), big.size() + 3 - direct);
  // The reader sends the rest, from where the socket stopped.
  std::string rest;
  std::vector<uint8_t> chunk(1u << 20);
  while (true) {
    const size_t n = q.read(chunk.data(), chunk.size(), {});
    if (n == 0 || n == ClientQueue::kEnd) break;
    rest.append(reinterpret_cast<const char*>(chunk.data()), n);
  }
  EXPECT_EQ(direct + rest.size(), big.size() + 3);
  EXPECT_EQ(rest.substr(rest.size() - 3), "END");
  // Parked again (the read above found nothing): the next push goes straight out again.
  q.push(unitOf("next"));
  EXPECT_EQ(wakes, 1);
  EXPECT_EQ(pair.received(), "next");
}

TEST(ClientQueue, CloseWakesAParkedReader) {
  ClientQueue q(DropPolicy::Oldest, {8, 1024});
  int wakes = 0;
  q.setWakeup([&] { ++wakes; });
  uint8_t buf[4];
  EXPECT_EQ(q.read(buf, sizeof buf, [] {}), 0u);
  q.close();
  EXPECT_EQ(wakes, 1);
  EXPECT_EQ(q.read(buf, sizeof buf, [] {}), ClientQueue::kEnd);
}

TEST(ClientQueue, OldestPolicyKeepsTheNewestFramesAndCountsDrops) {
  ClientQueue q(DropPolicy::Oldest, {3, 1024});
  for (char c = 'a'; c <= 'f'; ++c) q.push(unitOf(std::string(1, c)));
  EXPECT_EQ(drain(q), "def");
  EXPECT_EQ(q.stats().unitsDropped, 3u);
}

TEST(ClientQueue, APartlySentFrameIsNeverCut) {
  ClientQueue q(DropPolicy::Oldest, {2, 1024});
  q.push(unitOf("AAAA"));
  uint8_t buf[2];
  ASSERT_EQ(q.read(buf, 2, {}), 2u);  // "AA" of the first frame is on the wire
  for (char c = 'b'; c <= 'e'; ++c) q.push(unitOf(std::string(1, c)));
  EXPECT_EQ(drain(q), "AAe") << "the started frame completes; the newest waits";
}

TEST(ClientQueue, ByteLimitBoundsMemory) {
  ClientQueue q(DropPolicy::Oldest, {100, 10});
  for (int i = 0; i < 50; ++i) q.push(unitOf("0123"));
  EXPECT_LE(q.pendingBytes(), 10u);
}

TEST(ClientQueue, UntilKeyframePolicyResumesOnlyAtAKeyframe) {
  ClientQueue q(DropPolicy::UntilKeyframe, {3, 1024});
  q.push(unitOf("K1", true));
  q.push(unitOf("p2"));
  q.push(unitOf("p3"));
  q.push(unitOf("p4"));  // full: everything unsent goes, and p4 too (no reference left)
  q.push(unitOf("p5"));
  q.push(unitOf("K6", true));
  q.push(unitOf("p7"));
  EXPECT_EQ(drain(q), "K6p7");
  EXPECT_EQ(q.stats().unitsDropped, 5u);
}

TEST(ClientQueue, EssentialUnitsAreNeverDropped) {
  ClientQueue q(DropPolicy::UntilKeyframe, {2, 1024});
  WireUnit head = unitOf("HEAD");
  head.essential = true;
  q.push(std::move(head));
  for (int i = 0; i < 5; ++i) q.push(unitOf("p"));
  q.push(unitOf("K", true));
  EXPECT_EQ(drain(q), "HEADK");
}

TEST(MjpegStream, EveryClientGetsPreambleThenWholeParts) {
  transport::MjpegStream stream;
  auto a = stream.subscribe();
  auto jpeg = std::make_shared<hal::Packet>();
  jpeg->codec = hal::fourcc::kMJPEG;
  jpeg->data = {0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9};
  jpeg->pts = hal::Timestamp(std::chrono::milliseconds(1500));
  stream.publish(jpeg);
  auto b = stream.subscribe();
  stream.publish(jpeg);
  EXPECT_EQ(stream.clientCount(), 2u);

  const std::string part = transport::mjpeg::partHeader(7, jpeg->pts) +
                           std::string(jpeg->data.begin(), jpeg->data.end()) +
                           transport::mjpeg::partTrailer();
  EXPECT_EQ(drain(*a), transport::mjpeg::preamble() + part + part);
  EXPECT_EQ(drain(*b), transport::mjpeg::preamble() + part);
  stream.unsubscribe(a);
  EXPECT_EQ(stream.clientCount(), 1u);
}

TEST(MjpegStream, AdvanceHeadersClientsGetTheNextPartsHeadersRightAfterEachJpeg) {
  namespace mjpeg = transport::mjpeg;
  transport::MjpegStream stream;
  auto browser = stream.subscribe(mjpeg::Framing::AdvanceHeaders);
  auto program = stream.subscribe();
  auto jpeg = std::make_shared<hal::Packet>();
  jpeg->codec = hal::fourcc::kMJPEG;
  jpeg->data = {0xFF, 0xD8, 1, 2, 3, 0xFF, 0xD9};
  jpeg->pts = hal::Timestamp(std::chrono::milliseconds(1500));
  stream.publish(jpeg);
  stream.publish(jpeg);

  const std::string body(jpeg->data.begin(), jpeg->data.end());
  // The browser's stream ends with the headers of a part whose JPEG does not exist yet: Chromium
  // paints each picture as soon as it has parsed them.
  const std::string ahead = mjpeg::partTrailer() + mjpeg::advancePartHeader();
  const std::string browserBytes = drain(*browser);
  EXPECT_EQ(browserBytes, mjpeg::preamble() + mjpeg::advancePartHeader() + body + ahead + body + ahead);
  // Every other client keeps Content-Length and X-Timestamp on each part.
  const std::string part = mjpeg::partHeader(7, jpeg->pts) + body + mjpeg::partTrailer();
  EXPECT_EQ(drain(*program), mjpeg::preamble() + part + part);

  mjpeg::Parser parser;
  ASSERT_TRUE(parser.feed({reinterpret_cast<const uint8_t*>(browserBytes.data()), browserBytes.size()}))
      << parser.error();
  EXPECT_EQ(parser.takeParts(), (std::vector<std::vector<uint8_t>>{jpeg->data, jpeg->data}));
}

TEST(FlvStream, ClientsStartOnAnIdrWithTheirOwnHeaderAndZeroBasedTimestamps) {
  transport::FlvStream stream(30.0);
  int subscribes = 0;
  stream.setOnSubscribe([&] { ++subscribes; });
  auto early = stream.subscribe();
  EXPECT_EQ(subscribes, 1) << "a joining client asks for a keyframe";
  stream.publish(accessUnit(false, std::chrono::milliseconds(900), 1));  // before any IDR: not sent
  stream.publish(accessUnit(true, std::chrono::milliseconds(1000), 2));
  stream.publish(accessUnit(false, std::chrono::milliseconds(1040), 3));
  auto late = stream.subscribe();
  stream.publish(accessUnit(false, std::chrono::milliseconds(1080), 4));  // late waits for an IDR
  stream.publish(accessUnit(true, std::chrono::milliseconds(2000), 5));
  stream.publish(accessUnit(false, std::chrono::milliseconds(2033), 6));

  for (auto& [queue, expected] : {std::pair{early, std::vector<uint32_t>{0, 40, 80, 1000, 1033}},
                                  std::pair{late, std::vector<uint32_t>{0, 33}}}) {
    const std::string bytes = drain(*queue);
    const auto parsed =
        transport::flv::parseStream({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
    ASSERT_EQ(parsed.consumed, bytes.size());
    EXPECT_TRUE(parsed.previousTagSizesValid);
    ASSERT_EQ(parsed.tags.size(), 2 + expected.size());
    EXPECT_EQ(parsed.tags[0].type, 18);
    EXPECT_EQ(parsed.tags[1].data[1], 0) << "AVC sequence header";
    EXPECT_EQ(parsed.tags[2].data[0], 0x17) << "first frame is a keyframe";
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(parsed.tags[2 + i].timestampMs, expected[i]);
    // Parameter sets travel in the sequence header, not in the frames: 4-byte length + IDR NAL.
    EXPECT_EQ(parsed.tags[2].data.size(), 5u + 4u + 4u);
  }
}

TEST(FlvStream, TimestampsStrictlyIncreaseWhenCapturesAreUnderAMillisecondApart) {
  // A late frame followed at once by the next (a loaded machine): 0.4 ms apart would round to the
  // same millisecond, which ffmpeg rejects as a non-monotonic dts.
  transport::FlvStream stream(30.0);
  auto client = stream.subscribe();
  using std::chrono::microseconds;
  stream.publish(accessUnit(true, microseconds(1000000), 1));
  stream.publish(accessUnit(false, microseconds(1023000), 2));
  stream.publish(accessUnit(false, microseconds(1023400), 3));
  stream.publish(accessUnit(false, microseconds(1024100), 4));
  stream.publish(accessUnit(false, microseconds(1066000), 5));
  const std::string bytes = drain(*client);
  const auto parsed =
      transport::flv::parseStream({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  ASSERT_EQ(parsed.tags.size(), 2u + 5u);
  const std::vector<uint32_t> expected{0, 23, 24, 25, 66};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(parsed.tags[2 + i].timestampMs, expected[i]) << i;
}

TEST(FlvStream, NewParameterSetsGoOutBeforeTheNextKeyframe) {
  transport::FlvStream stream(30.0);
  auto q = stream.subscribe();
  stream.publish(accessUnit(true, std::chrono::milliseconds(0), 1));
  stream.publish(accessUnit(false, std::chrono::milliseconds(40), 2));
  stream.publish(accessUnit(true, std::chrono::milliseconds(80), 3));         // same SPS: no header
  stream.publish(accessUnit(true, std::chrono::milliseconds(120), 4, 0x28));  // new SPS (level 4.0)
  const std::string bytes = drain(*q);
  const auto parsed =
      transport::flv::parseStream({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  ASSERT_EQ(parsed.consumed, bytes.size());
  // metadata, seq header, K, P, K, seq header (new), K
  ASSERT_EQ(parsed.tags.size(), 7u);
  EXPECT_EQ(parsed.tags[4].data[1], 1);
  EXPECT_EQ(parsed.tags[5].data[1], 0) << "a new AVC sequence header";
  EXPECT_EQ(parsed.tags[5].data[5 + 3], 0x28) << "carries the new level";
  EXPECT_EQ(parsed.tags[5].timestampMs, 120u);
  EXPECT_EQ(parsed.tags[6].data[0], 0x17);
}
