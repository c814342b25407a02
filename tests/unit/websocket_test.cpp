// SPDX-License-Identifier: MIT
// WebSocket framing and handshake against RFC 6455 (section 5.7 examples, 4.2.2 accept key,
// every close-code path of the parser), and WsStream's messages (shared payload, SPS/PPS, trailer).
#include "printcast/transport/websocket.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "printcast/transport/ws_stream.h"

namespace ws = printcast::transport::ws;
using Bytes = std::vector<uint8_t>;
using Kind = ws::Event::Kind;

namespace {

Bytes bytesOf(const std::string& s) { return {s.begin(), s.end()}; }

// Feed everything, return every event (stops after an Error/Close like the parser).
std::vector<ws::Event> parseAll(ws::FrameParser& parser, const Bytes& input) {
  parser.feed(input);
  std::vector<ws::Event> events;
  while (auto e = parser.next()) events.push_back(std::move(*e));
  return events;
}

std::vector<ws::Event> parseServer(const Bytes& input, size_t maxMessage = 1u << 20) {
  ws::FrameParser parser(ws::FrameParser::Role::Server, maxMessage);
  return parseAll(parser, input);
}

// The error a server-side parser reports for `input` (0 when none).
uint16_t errorCode(const Bytes& input, size_t maxMessage = 1u << 20) {
  for (const auto& e : parseServer(input, maxMessage)) {
    if (e.kind == Kind::Error) return e.closeCode;
  }
  return 0;
}

constexpr uint32_t kMask = 0x37fa213d;  // RFC 6455 5.7's masking key

Bytes masked(ws::Opcode op, const Bytes& payload, bool fin = true) {
  return ws::maskedFrame(op, payload, kMask, fin);
}

void append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

}  // namespace

TEST(WebSocketHandshake, AcceptKeyOfTheRfcExample) {
  // RFC 6455 1.3 / 4.2.2.
  EXPECT_EQ(ws::acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketHandshake, ValidRequestGivesTheAcceptValue) {
  std::map<std::string, std::string> h{{"upgrade", "WebSocket"},
                                       {"connection", "keep-alive, Upgrade"},
                                       {"sec-websocket-version", "13"},
                                       {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="}};
  auto r = ws::checkHandshake("GET", h);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketHandshake, EachBadFieldIsNamed) {
  const std::map<std::string, std::string> good{{"upgrade", "websocket"},
                                                {"connection", "Upgrade"},
                                                {"sec-websocket-version", "13"},
                                                {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="}};
  auto with = [&](const std::string& key, const std::string& value) {
    auto h = good;
    if (value.empty()) {
      h.erase(key);
    } else {
      h[key] = value;
    }
    return ws::checkHandshake("GET", h);
  };
  // Not a WebSocket request at all: 426.
  auto plain = ws::checkHandshake("GET", {});
  ASSERT_FALSE(plain);
  EXPECT_EQ(plain.code(), printcast::hal::Errc::Unsupported);
  EXPECT_EQ(with("upgrade", "h2c").code(), printcast::hal::Errc::Unsupported);
  // Another version: 426 too (RFC 6455 4.4).
  EXPECT_EQ(with("sec-websocket-version", "8").code(), printcast::hal::Errc::Unsupported);
  // Malformed: 400, with the field in the reason.
  auto post = ws::checkHandshake("POST", good);
  ASSERT_FALSE(post);
  EXPECT_EQ(post.code(), printcast::hal::Errc::InvalidArgument);
  for (const auto& [key, value, word] :
       {std::tuple{"connection", "", "Connection"},
        {"connection", "keep-alive", "Connection"},
        {"sec-websocket-version", "", "Version"},
        {"sec-websocket-key", "", "Key"},
        {"sec-websocket-key", "abc", "16 bytes"},
        {"sec-websocket-key", "dGhlIHNhbXBsZSBub25j", "16 bytes"},      // 15 bytes, unpadded
        {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZS==", "16 bytes"},  // non-zero padding bits
        {"sec-websocket-key", "dGhl!HNhbXBsZSBub25jZQ==", "16 bytes"}}) {
    auto r = with(key, value);
    ASSERT_FALSE(r) << key << "=" << value;
    EXPECT_EQ(r.code(), printcast::hal::Errc::InvalidArgument) << key << "=" << value;
    EXPECT_NE(r.error().message.find(word), std::string::npos) << r.error().message;
  }
}

// --- RFC 6455 5.7 examples ---------------------------------------------------------------------

TEST(WebSocketFrames, Rfc5_7SingleFrameUnmaskedText) {
  const Bytes wire{0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  EXPECT_EQ(ws::frame(ws::Opcode::Text, bytesOf("Hello")), wire);
  ws::FrameParser client(ws::FrameParser::Role::Client);
  auto events = parseAll(client, wire);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::Message);
  EXPECT_EQ(events[0].opcode, ws::Opcode::Text);
  EXPECT_EQ(events[0].payload, bytesOf("Hello"));
}

TEST(WebSocketFrames, Rfc5_7SingleFrameMaskedText) {
  const Bytes wire{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  EXPECT_EQ(masked(ws::Opcode::Text, bytesOf("Hello")), wire);
  auto events = parseServer(wire);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].payload, bytesOf("Hello"));
}

TEST(WebSocketFrames, Rfc5_7FragmentedUnmaskedText) {
  const Bytes wire{0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
  ws::FrameParser client(ws::FrameParser::Role::Client);
  auto events = parseAll(client, wire);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::Message);
  EXPECT_EQ(events[0].payload, bytesOf("Hello"));
}

TEST(WebSocketFrames, Rfc5_7PingAndMaskedPong) {
  const Bytes ping{0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  EXPECT_EQ(ws::frame(ws::Opcode::Ping, bytesOf("Hello")), ping);
  const Bytes pong{0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  EXPECT_EQ(masked(ws::Opcode::Pong, bytesOf("Hello")), pong);
  auto events = parseServer(pong);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::Pong);
  EXPECT_EQ(events[0].payload, bytesOf("Hello"));
}

TEST(WebSocketFrames, Rfc5_7ExtendedLengths) {
  EXPECT_EQ(ws::frameHeader(ws::Opcode::Binary, 256), (Bytes{0x82, 0x7E, 0x01, 0x00}));
  EXPECT_EQ(ws::frameHeader(ws::Opcode::Binary, 65536),
            (Bytes{0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}));
  EXPECT_EQ(ws::frameHeader(ws::Opcode::Binary, 125), (Bytes{0x82, 125}));
  EXPECT_EQ(ws::frameHeader(ws::Opcode::Binary, 65535), (Bytes{0x82, 0x7E, 0xFF, 0xFF}));
  // And the parser reads them back, split at every byte.
  for (size_t size : {0u, 125u, 126u, 256u, 65535u, 65536u, 70000u}) {
    Bytes payload(size);
    for (size_t i = 0; i < size; ++i) payload[i] = static_cast<uint8_t>(i * 7);
    const Bytes wire = masked(ws::Opcode::Binary, payload);
    ws::FrameParser parser;
    std::vector<ws::Event> events;
    for (uint8_t b : wire) {
      parser.feed(Bytes{b});
      while (auto e = parser.next()) events.push_back(std::move(*e));
    }
    ASSERT_EQ(events.size(), 1u) << size;
    EXPECT_EQ(events[0].payload, payload) << size;
  }
}

TEST(WebSocketFrames, FragmentsWithControlFramesInBetween) {
  Bytes wire = masked(ws::Opcode::Binary, {1, 2}, false);
  append(wire, masked(ws::Opcode::Ping, bytesOf("p")));
  append(wire, masked(ws::Opcode::Continuation, {3}, false));
  append(wire, masked(ws::Opcode::Continuation, {4, 5}, true));
  auto events = parseServer(wire);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, Kind::Ping);
  EXPECT_EQ(events[1].kind, Kind::Message);
  EXPECT_EQ(events[1].opcode, ws::Opcode::Binary);
  EXPECT_EQ(events[1].payload, (Bytes{1, 2, 3, 4, 5}));
}

// --- every close-code path ---------------------------------------------------------------------

TEST(WebSocketFrames, UnmaskedClientFrameIs1002) {
  EXPECT_EQ(errorCode(ws::frame(ws::Opcode::Binary, Bytes{1, 2, 3})), ws::close_code::kProtocolError);
  // And a masked frame from a server, for a client.
  ws::FrameParser client(ws::FrameParser::Role::Client);
  auto events = parseAll(client, masked(ws::Opcode::Binary, {1}));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].closeCode, ws::close_code::kProtocolError);
}

TEST(WebSocketFrames, ReservedBitsAre1002) {
  for (uint8_t rsv : {0x40, 0x20, 0x10}) {
    Bytes wire = masked(ws::Opcode::Binary, {1});
    wire[0] |= rsv;
    EXPECT_EQ(errorCode(wire), ws::close_code::kProtocolError) << int(rsv);
  }
}

TEST(WebSocketFrames, UnknownOpcodesAre1002) {
  for (uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    Bytes wire = masked(ws::Opcode::Binary, {});
    wire[0] = static_cast<uint8_t>(0x80 | op);
    EXPECT_EQ(errorCode(wire), ws::close_code::kProtocolError) << int(op);
  }
}

TEST(WebSocketFrames, ControlFrameRulesAre1002) {
  // 126 bytes of Ping payload (the writer refuses to build it: set the length by hand).
  Bytes big = masked(ws::Opcode::Binary, Bytes(126, 'x'));
  big[0] = 0x89;
  EXPECT_EQ(errorCode(big), ws::close_code::kProtocolError);
  EXPECT_EQ(errorCode(masked(ws::Opcode::Ping, {1}, /*fin=*/false)), ws::close_code::kProtocolError);
  // 125 is fine.
  EXPECT_EQ(errorCode(masked(ws::Opcode::Ping, Bytes(125, 'x'))), 0);
}

TEST(WebSocketFrames, ContinuationRulesAre1002) {
  EXPECT_EQ(errorCode(masked(ws::Opcode::Continuation, {1})), ws::close_code::kProtocolError);
  Bytes twoStarts = masked(ws::Opcode::Binary, {1}, false);
  append(twoStarts, masked(ws::Opcode::Text, bytesOf("a")));
  EXPECT_EQ(errorCode(twoStarts), ws::close_code::kProtocolError);
}

TEST(WebSocketFrames, TooLargeMessageIs1009BeforeItsPayloadArrives) {
  // Only the 10-byte header + mask of a 1 GiB frame: the limit triggers without buffering it.
  Bytes header = ws::frameHeader(ws::Opcode::Binary, 1u << 30);
  header[1] |= 0x80;
  append(header, {1, 2, 3, 4});
  EXPECT_EQ(errorCode(header, 1000), ws::close_code::kMessageTooBig);
  // A fragmented message over the limit in total.
  Bytes parts = masked(ws::Opcode::Binary, Bytes(600, 1), false);
  append(parts, masked(ws::Opcode::Continuation, Bytes(600, 2), true));
  EXPECT_EQ(errorCode(parts, 1000), ws::close_code::kMessageTooBig);
  EXPECT_EQ(errorCode(parts, 1200), 0);
  // A 64-bit length with the top bit set.
  Bytes huge{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
  EXPECT_EQ(errorCode(huge), ws::close_code::kProtocolError);
}

TEST(WebSocketFrames, InvalidUtf8Is1007) {
  EXPECT_EQ(errorCode(masked(ws::Opcode::Text, {0xC0, 0x80})), ws::close_code::kInvalidPayload);  // overlong
  EXPECT_EQ(errorCode(masked(ws::Opcode::Text, {0xED, 0xA0, 0x80})),
            ws::close_code::kInvalidPayload);  // surrogate
  EXPECT_EQ(errorCode(masked(ws::Opcode::Text, {0xF4, 0x90, 0x80, 0x80})), ws::close_code::kInvalidPayload);
  EXPECT_EQ(errorCode(masked(ws::Opcode::Text, {0xE2, 0x82})), ws::close_code::kInvalidPayload);  // truncated
  // A character split across fragments is fine.
  Bytes split = masked(ws::Opcode::Text, {0xE2, 0x82}, false);
  append(split, masked(ws::Opcode::Continuation, {0xAC}));
  EXPECT_EQ(errorCode(split), 0);
  // Binary is not checked.
  EXPECT_EQ(errorCode(masked(ws::Opcode::Binary, {0xC0, 0x80})), 0);
  // Close reason.
  EXPECT_EQ(errorCode(masked(ws::Opcode::Close, {0x03, 0xE8, 0xFF})), ws::close_code::kInvalidPayload);
}

TEST(WebSocketFrames, ClosePayloadRules) {
  EXPECT_EQ(errorCode(masked(ws::Opcode::Close, {0x03})), ws::close_code::kProtocolError);  // 1 byte
  for (uint16_t bad : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000}) {
    EXPECT_EQ(
        errorCode(masked(ws::Opcode::Close, {static_cast<uint8_t>(bad >> 8), static_cast<uint8_t>(bad)})),
        ws::close_code::kProtocolError)
        << bad;
  }
  auto events = parseServer(masked(ws::Opcode::Close, {}));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::Close);
  EXPECT_EQ(events[0].closeCode, ws::close_code::kNoStatus);
  events = parseServer(masked(ws::Opcode::Close, {0x0F, 0xA0, 'b', 'y', 'e'}));  // 4000 "bye"
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].closeCode, 4000);
  EXPECT_EQ(events[0].reason, "bye");
}

TEST(WebSocketFrames, ParserStopsAfterCloseOrError) {
  Bytes wire = masked(ws::Opcode::Close, {0x03, 0xE8});
  append(wire, masked(ws::Opcode::Ping, {}));
  auto events = parseServer(wire);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::Close);
}

TEST(WebSocketFrames, CloseFrameWriterTruncatesAtACharacterBoundary) {
  EXPECT_EQ(ws::closeFrame(1001, "bye"), (Bytes{0x88, 0x05, 0x03, 0xE9, 'b', 'y', 'e'}));
  EXPECT_EQ(ws::closeFrame(ws::close_code::kNoStatus), (Bytes{0x88, 0x00}));
  std::string reason;
  for (int i = 0; i < 100; ++i) reason += "\xC3\xA9";  // 200 bytes of "é"
  const Bytes f = ws::closeFrame(1000, reason);
  ASSERT_LE(f.size(), 2u + 125u);
  EXPECT_TRUE(ws::isValidUtf8({f.data() + 4, f.size() - 4}));
  EXPECT_EQ(f.size() - 4, 122u);  // 61 whole characters
}

TEST(WebSocketFrames, RandomSplitsGiveTheSameEvents) {
  Bytes wire;
  append(wire, masked(ws::Opcode::Text, bytesOf("héllo")));
  append(wire, masked(ws::Opcode::Ping, bytesOf("x")));
  append(wire, masked(ws::Opcode::Binary, Bytes(300, 9), false));
  append(wire, masked(ws::Opcode::Continuation, Bytes(70000, 8)));
  append(wire, masked(ws::Opcode::Close, {0x03, 0xE8}));
  const auto whole = parseServer(wire);
  ASSERT_EQ(whole.size(), 4u);
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    ws::FrameParser parser;
    std::vector<ws::Event> events;
    size_t pos = 0;
    while (pos < wire.size()) {
      const size_t n = std::min(wire.size() - pos, static_cast<size_t>(rng() % 5000 + 1));
      parser.feed({wire.data() + pos, n});
      pos += n;
      while (auto e = parser.next()) events.push_back(std::move(*e));
    }
    ASSERT_EQ(events.size(), whole.size());
    for (size_t i = 0; i < events.size(); ++i) {
      EXPECT_EQ(events[i].kind, whole[i].kind);
      EXPECT_EQ(events[i].payload, whole[i].payload);
    }
  }
}

// --- WsStream ----------------------------------------------------------------------------------

namespace {

using printcast::hal::CodecConfig;
using printcast::hal::Packet;
using printcast::hal::PacketPtr;
using printcast::transport::ClientQueue;
using printcast::transport::WsStream;

const Bytes kSps{0x67, 0x42, 0xC0, 0x1E, 0xDA};
const Bytes kPps{0x68, 0xCE, 0x3C, 0x80};

PacketPtr accessUnit(bool idr, bool withParameterSets, std::chrono::steady_clock::time_point pts) {
  auto p = std::make_shared<Packet>();
  p->codec = printcast::hal::fourcc::kH264;
  p->keyframe = idr;
  p->pts = pts;
  p->config = std::make_shared<const CodecConfig>(CodecConfig{kSps, kPps});
  if (idr && withParameterSets) {
    append(p->data, {0, 0, 0, 1});
    append(p->data, kSps);
    append(p->data, {0, 0, 0, 1});
    append(p->data, kPps);
  }
  append(p->data, {0, 0, 0, 1, static_cast<uint8_t>(idr ? 0x65 : 0x41), 0x88, 0x84, 0x21});
  append(p->data, {0, 0, 1, static_cast<uint8_t>(idr ? 0x65 : 0x41), 0x11, 0x22});  // second slice
  return p;
}

Bytes drain(ClientQueue& q) {
  Bytes out;
  uint8_t buf[4096];
  while (true) {
    const size_t n = q.read(buf, sizeof buf, {});
    if (n == 0 || n == ClientQueue::kEnd) break;
    out.insert(out.end(), buf, buf + n);
  }
  return out;
}

std::vector<ws::Event> messages(const Bytes& wire) {
  ws::FrameParser client(ws::FrameParser::Role::Client, 64u << 20);
  return parseAll(client, wire);
}

}  // namespace

TEST(WsStream, OneBinaryMessagePerAccessUnitStartingOnAnIdr) {
  WsStream stream;
  auto q = stream.subscribe(false);
  const auto t0 = std::chrono::steady_clock::now();
  const auto inter = accessUnit(false, false, t0);
  const auto idr = accessUnit(true, true, t0);
  stream.publish(inter);  // dropped: not an IDR
  stream.publish(idr);
  stream.publish(inter);
  const auto events = messages(drain(*q));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].opcode, ws::Opcode::Binary);
  EXPECT_EQ(events[0].payload, idr->data);  // exactly the access unit: what jmuxer wants
  EXPECT_EQ(events[1].payload, inter->data);
}

TEST(WsStream, ParameterSetsAreInsertedInFrontOfAnIdrWithoutThem) {
  WsStream stream;
  auto q = stream.subscribe(false);
  const auto idr = accessUnit(true, false, std::chrono::steady_clock::now());
  stream.publish(idr);
  const auto events = messages(drain(*q));
  ASSERT_EQ(events.size(), 1u);
  Bytes expected{0, 0, 0, 1};
  append(expected, kSps);
  append(expected, {0, 0, 0, 1});
  append(expected, kPps);
  append(expected, idr->data);
  EXPECT_EQ(events[0].payload, expected);
}

TEST(WsStream, TrailerIsLittleEndianWallClockMillisecondsOfTheCapture) {
  WsStream stream;
  auto plain = stream.subscribe(false);
  auto stamped = stream.subscribe(true);
  const auto captured = std::chrono::steady_clock::now() - std::chrono::milliseconds(500);
  const auto idr = accessUnit(true, true, captured);
  const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  stream.publish(idr);
  const auto plainEvents = messages(drain(*plain));
  const auto stampedEvents = messages(drain(*stamped));
  ASSERT_EQ(plainEvents.size(), 1u);
  ASSERT_EQ(stampedEvents.size(), 1u);
  EXPECT_EQ(plainEvents[0].payload, idr->data);
  const Bytes& m = stampedEvents[0].payload;
  ASSERT_EQ(m.size(), idr->data.size() + 8);
  EXPECT_TRUE(std::equal(idr->data.begin(), idr->data.end(), m.begin()));
  uint64_t ms = 0;
  for (size_t i = 0; i < 8; ++i) ms |= static_cast<uint64_t>(m[idr->data.size() + i]) << (8 * i);
  // Capture was 500 ms before `before`.
  EXPECT_NEAR(static_cast<double>(ms), static_cast<double>(before - 500), 50.0);
}

TEST(WsStream, PayloadIsSharedNotCopiedPerClient) {
  const auto idr = accessUnit(true, true, std::chrono::steady_clock::now());
  // The unit references the packet's own bytes.
  const auto unit = WsStream::message(idr, 1234);
  bool found = false;
  for (const auto& c : unit.chunks) {
    if (c.bytes.data() == idr->data.data()) {
      found = true;
      EXPECT_EQ(c.bytes.size(), idr->data.size());
      EXPECT_EQ(c.owner.get(), static_cast<const void*>(idr.get()));
    }
  }
  EXPECT_TRUE(found);
  // And every client's queue holds a reference to the packet, not a copy.
  WsStream stream;
  std::vector<std::shared_ptr<ClientQueue>> queues;
  for (int i = 0; i < 10; ++i) queues.push_back(stream.subscribe(i % 2 == 0));
  const long before = idr.use_count();
  stream.publish(idr);
  EXPECT_EQ(idr.use_count(), before + 10);
  for (auto& q : queues) {
    EXPECT_FALSE(messages(drain(*q)).empty());
  }
  EXPECT_EQ(idr.use_count(), before);
}

TEST(WsStream, SlowClientLosesWholeMessagesAndResumesOnAnIdr) {
  WsStream stream;
  auto q = stream.subscribe(false, {4, 1u << 20});
  const auto t = std::chrono::steady_clock::now();
  stream.publish(accessUnit(true, true, t));
  for (int i = 0; i < 10; ++i) stream.publish(accessUnit(false, false, t));
  stream.publish(accessUnit(true, true, t));
  stream.publish(accessUnit(false, false, t));
  const auto events = messages(drain(*q));
  ASSERT_FALSE(events.empty());
  for (const auto& e : events) EXPECT_EQ(e.kind, Kind::Message);  // every frame whole
  EXPECT_GT(q->stats().unitsDropped, 0u);
  // The last two are the IDR and its inter frame.
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[events.size() - 2].payload[4] & 0x1F, 7);  // SPS first
}
