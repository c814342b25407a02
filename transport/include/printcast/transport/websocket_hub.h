// SPDX-License-Identifier: MIT
// WebSocketHub: the server side of WebSocket connections (RFC 6455) upgraded by HttpServer.
//
// One I/O thread serves every connection over non-blocking sockets (poll(), an eventfd for
// wake-ups), so the HTTP server thread never blocks on a WebSocket. Per connection it:
//  - sends the bytes of the connection's ClientQueue, which holds complete server frames
//    (e.g. WsStream's binary messages); control frames (Pong, Close) go out between frames;
//  - reads client frames with ws::FrameParser: Ping -> Pong, Close -> Close echoed then the
//    socket closed, a protocol violation -> Close with its code (1002, 1007, 1009) then closed;
//    client data messages go to the connection's MessageHandler when it has one (a camera
//    pushing JPEGs), else they are read and ignored;
//  - ends when the client closes or fails, or when its queue is closed (Close 1001).
// stop() sends Close 1001 to every client, waits for their Close (at most closeTimeout), then
// closes every socket.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "printcast/hal/result.h"
#include "printcast/transport/fanout.h"
#include "printcast/transport/http_server.h"
#include "printcast/transport/websocket.h"

namespace printcast::transport {

struct WebSocketHubConfig {
  std::string name = "ws";                       // for logs
  size_t maxClientMessageBytes = 64 * 1024;      // larger client messages: Close 1009
  std::chrono::milliseconds closeTimeout{1000};  // wait for the peer's Close after ours
  size_t writeChunkBytes = 64 * 1024;            // bytes taken from a queue per send()
};

struct WebSocketHubStats {
  size_t connections = 0;
  uint64_t pings = 0;           // answered with a Pong
  uint64_t protocolErrors = 0;  // connections closed with 1002/1007/1009
};

// The answer to a request ws::checkHandshake() refused: 426 Upgrade Required (with Upgrade and
// Sec-WebSocket-Version: 13) for a plain GET, 400 for a malformed handshake; the body says why,
// after `context` when given.
HttpResponse handshakeRefusal(const hal::Error& error, std::string_view context = {});

class WebSocketHub {
 public:
  // Starts the I/O thread. Errors: Io (eventfd, thread creation).
  static hal::Result<std::unique_ptr<WebSocketHub>> start(WebSocketHubConfig config = {});
  ~WebSocketHub();  // stop()
  WebSocketHub(const WebSocketHub&) = delete;
  WebSocketHub& operator=(const WebSocketHub&) = delete;

  // The HttpResponse that completes a validated handshake: 101 with Upgrade: websocket and
  // Sec-WebSocket-Accept `acceptValue` (from ws::checkHandshake()). Once upgraded, the
  // connection is served with `queue`'s bytes (complete WebSocket frames) until it ends; then
  // `onClose` runs (on the I/O thread; unsubscribe there). `onClose` also runs when the client
  // goes away before the upgrade. Thread-safe.
  // `onMessage`, when set, gets each whole client data message (fragments joined, at most
  // maxClientMessageBytes) on the I/O thread: keep it short and never block.
  using MessageHandler = std::function<void(ws::Opcode opcode, std::vector<uint8_t>&& payload)>;
  HttpResponse upgradeResponse(const std::string& acceptValue, std::shared_ptr<ClientQueue> queue,
                               std::function<void()> onClose, MessageHandler onMessage = {});

  // Serve an already upgraded connection (what upgradeResponse's handler does). Thread-safe.
  // After stop() the connection is closed at once and `onClose` runs.
  void add(std::unique_ptr<UpgradedConnection> connection, std::shared_ptr<ClientQueue> queue,
           std::function<void()> onClose, MessageHandler onMessage = {});

  WebSocketHubStats stats() const;

  // Close 1001 to everyone, bounded wait, join the thread. Idempotent; any thread but the I/O
  // thread (so not from an onClose callback).
  void stop();

  struct Impl;

 private:
  explicit WebSocketHub(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace printcast::transport
