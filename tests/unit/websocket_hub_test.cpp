// SPDX-License-Identifier: MIT
// WebSocketHub over a socketpair (no HTTP server): control frames only between data frames,
// bytes that came with the upgrade, protocol errors closing with their code, Close 1001 on stop.
#include "printcast/transport/websocket_hub.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <thread>

#include "printcast/transport/websocket.h"

namespace ws = printcast::transport::ws;
using printcast::transport::ClientQueue;
using printcast::transport::DropPolicy;
using printcast::transport::ownedChunk;
using printcast::transport::UpgradedConnection;
using printcast::transport::WebSocketHub;
using printcast::transport::WireUnit;
using Bytes = std::vector<uint8_t>;
using namespace std::chrono_literals;

namespace {

// The client end of a socketpair whose other end the hub serves.
struct Pair {
  int client = -1;
  std::unique_ptr<UpgradedConnection> server;
  std::shared_ptr<bool> serverClosed = std::make_shared<bool>(false);
  Pair(Bytes initial = {}, int clientReceiveBuffer = 0) {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds), 0);
    client = fds[1];
    // The client end blocks (with poll timeouts below); the server end stays non-blocking.
    ::fcntl(client, F_SETFL, 0);
    if (clientReceiveBuffer > 0) {
      ::setsockopt(client, SOL_SOCKET, SO_RCVBUF, &clientReceiveBuffer, sizeof clientReceiveBuffer);
      ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &clientReceiveBuffer, sizeof clientReceiveBuffer);
    }
    server = std::make_unique<UpgradedConnection>(fds[0], std::move(initial),
                                                  [fd = fds[0], closed = serverClosed] {
                                                    *closed = true;
                                                    ::close(fd);
                                                  });
  }
  ~Pair() { ::close(client); }
  void send(const Bytes& bytes) const {
    ASSERT_EQ(::write(client, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
};

// Reads events until `until` returns true for one, the socket closes or 5 s pass.
struct Reader {
  ws::FrameParser parser{ws::FrameParser::Role::Client, 64u << 20};
  bool tcpClosed = false;
  std::vector<ws::Event> events;
  bool readUntil(int fd, const std::function<bool(const ws::Event&)>& until) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    uint8_t buf[8192];
    while (std::chrono::steady_clock::now() < deadline) {
      while (auto e = parser.next()) {
        events.push_back(std::move(*e));
        if (until(events.back())) return true;
      }
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) {
        tcpClosed = true;
        return false;
      }
      parser.feed({buf, static_cast<size_t>(n)});
    }
    return false;
  }
};

WireUnit binaryMessage(const Bytes& payload) {
  WireUnit unit;
  unit.keyframe = true;
  unit.chunks.push_back(ownedChunk(ws::frameHeader(ws::Opcode::Binary, payload.size())));
  unit.chunks.push_back(ownedChunk(payload));
  return unit;
}

Bytes maskedFrame(ws::Opcode op, const Bytes& payload) { return ws::maskedFrame(op, payload, 0x01020304); }

}  // namespace

TEST(WebSocketHub, PongGoesBetweenFramesOfALargeMessage) {
  auto hub = WebSocketHub::start({});
  ASSERT_TRUE(hub);
  Pair pair({}, 16 * 1024);
  auto queue = std::make_shared<ClientQueue>(DropPolicy::UntilKeyframe,
                                             printcast::transport::QueueLimits{8, 64u << 20});
  Bytes big(3u << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 13 + i / 4096);
  queue->push(binaryMessage(big));
  queue->push(binaryMessage({1, 2, 3}));
  bool closed = false;
  (*hub)->add(std::move(pair.server), queue, [&closed] { closed = true; });
  pair.send(maskedFrame(ws::Opcode::Ping, {'p'}));  // while the 3 MiB frame is being written
  Reader reader;
  int messages = 0;
  bool pong = false;
  ASSERT_TRUE(reader.readUntil(pair.client, [&](const ws::Event& e) {
    if (e.kind == ws::Event::Kind::Pong) pong = true;
    if (e.kind == ws::Event::Kind::Message) ++messages;
    EXPECT_NE(e.kind, ws::Event::Kind::Error) << e.reason;
    return pong && messages == 2;
  }));
  // Whole and uncorrupted: the Pong did not land inside the big frame.
  ASSERT_EQ(reader.events.size(), 3u);
  for (const auto& e : reader.events) {
    if (e.kind == ws::Event::Kind::Message && e.payload.size() > 3) {
      EXPECT_TRUE(e.payload == big);
    }
    if (e.kind == ws::Event::Kind::Pong) {
      EXPECT_EQ(e.payload, Bytes{'p'});
    }
  }
  EXPECT_EQ((*hub)->stats().pings, 1u);
  (*hub)->stop();
  EXPECT_TRUE(closed);
  EXPECT_TRUE(*pair.serverClosed);
}

TEST(WebSocketHub, BytesThatCameWithTheUpgradeAreParsed) {
  auto hub = WebSocketHub::start({});
  ASSERT_TRUE(hub);
  Pair pair(maskedFrame(ws::Opcode::Ping, {'e', 'a', 'r', 'l', 'y'}));
  auto queue = std::make_shared<ClientQueue>(DropPolicy::UntilKeyframe, printcast::transport::QueueLimits{});
  (*hub)->add(std::move(pair.server), queue, [] {});
  Reader reader;
  ASSERT_TRUE(
      reader.readUntil(pair.client, [](const ws::Event& e) { return e.kind == ws::Event::Kind::Pong; }));
  EXPECT_EQ(reader.events.back().payload, (Bytes{'e', 'a', 'r', 'l', 'y'}));
}

TEST(WebSocketHub, ProtocolErrorsCloseWithTheirCodeThenTheSocket) {
  struct Case {
    Bytes bytes;
    uint16_t code;
  };
  Bytes tooBig = maskedFrame(ws::Opcode::Binary, Bytes(200, 1));
  const std::vector<Case> cases{
      {ws::frame(ws::Opcode::Binary, Bytes{1}), ws::close_code::kProtocolError},  // unmasked
      {maskedFrame(ws::Opcode::Text, {0xC0, 0x80}), ws::close_code::kInvalidPayload},
      {tooBig, ws::close_code::kMessageTooBig},
  };
  printcast::transport::WebSocketHubConfig config;
  config.maxClientMessageBytes = 100;
  auto hub = WebSocketHub::start(config);
  ASSERT_TRUE(hub);
  for (const auto& c : cases) {
    Pair pair;
    auto queue =
        std::make_shared<ClientQueue>(DropPolicy::UntilKeyframe, printcast::transport::QueueLimits{});
    // The hub calls onClose from its thread, after closing the socket: it may run after this
    // iteration has read the close, so the flag outlives the iteration.
    auto ended = std::make_shared<std::atomic<bool>>(false);
    (*hub)->add(std::move(pair.server), queue, [ended] { *ended = true; });
    pair.send(c.bytes);
    Reader reader;
    ASSERT_TRUE(
        reader.readUntil(pair.client, [](const ws::Event& e) { return e.kind == ws::Event::Kind::Close; }));
    EXPECT_EQ(reader.events.back().closeCode, c.code);
    // The hub does not wait for our Close: the socket closes at once (RFC 6455 7.1.7).
    reader.readUntil(pair.client, [](const ws::Event&) { return false; });
    EXPECT_TRUE(reader.tcpClosed);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!*ended && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    EXPECT_TRUE(*ended) << "onClose was not called";
  }
  EXPECT_EQ((*hub)->stats().protocolErrors, 3u);
}

TEST(WebSocketHub, StopSendsGoingAwayAndClosedQueueEndsTheStream) {
  auto hub = WebSocketHub::start({});
  ASSERT_TRUE(hub);
  Pair a;
  Pair b;
  auto qa = std::make_shared<ClientQueue>(DropPolicy::UntilKeyframe, printcast::transport::QueueLimits{});
  auto qb = std::make_shared<ClientQueue>(DropPolicy::UntilKeyframe, printcast::transport::QueueLimits{});
  (*hub)->add(std::move(a.server), qa, [] {});
  (*hub)->add(std::move(b.server), qb, [] {});
  qa->close();  // the stream ended: Close 1001 "stream ended"
  Reader ra;
  ASSERT_TRUE(ra.readUntil(a.client, [](const ws::Event& e) { return e.kind == ws::Event::Kind::Close; }));
  EXPECT_EQ(ra.events.back().closeCode, ws::close_code::kGoingAway);
  a.send(maskedFrame(ws::Opcode::Close, {0x03, 0xE9}));  // our answer completes the handshake
  (*hub)->stop();
  Reader rb;
  ASSERT_TRUE(rb.readUntil(b.client, [](const ws::Event& e) { return e.kind == ws::Event::Kind::Close; }));
  EXPECT_EQ(rb.events.back().closeCode, ws::close_code::kGoingAway);
  EXPECT_TRUE(*a.serverClosed);
  EXPECT_TRUE(*b.serverClosed);
  EXPECT_EQ((*hub)->stats().connections, 0u);
}
