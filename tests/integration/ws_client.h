// SPDX-License-Identifier: MIT
// A small blocking WebSocket client (RFC 6455) for tests and benchmarks: handshake, read
// messages, send masked frames (or deliberately broken ones). Framing via transport's ws::.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "printcast/transport/websocket.h"

namespace printcast::testing {

class WsClient {
 public:
  // Connects to 127.0.0.1:port and performs the opening handshake for `target` ("/ws?ts=1"),
  // checking the 101 and Sec-WebSocket-Accept. `receiveBufferBytes` > 0 sets SO_RCVBUF (a small
  // value makes a client that does not read stall quickly). On failure ok() is false and error()
  // says why; status() is the HTTP status seen (0 when none).
  WsClient(uint16_t port, const std::string& target,
           std::chrono::milliseconds timeout = std::chrono::seconds(5), int receiveBufferBytes = 0);
  ~WsClient();
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  bool ok() const { return fd_ >= 0 && status_ == 101 && error_.empty(); }
  int status() const { return status_; }
  const std::string& error() const { return error_; }
  const std::string& rawHeaders() const { return rawHeaders_; }

  // The next message or control frame from the server, waiting at most `timeout`; nullopt on
  // timeout, TCP close or after the parser stopped (Close or a framing error, which it returns once).
  std::optional<transport::ws::Event> next(std::chrono::milliseconds timeout);
  // The next data message (control frames before it are skipped; a Close or Error ends the wait).
  std::optional<transport::ws::Event> nextMessage(std::chrono::milliseconds timeout);

  // Send a masked frame as a client must.
  bool send(transport::ws::Opcode opcode, const std::vector<uint8_t>& payload);
  // Send raw bytes (for broken frames).
  bool sendRaw(const std::vector<uint8_t>& bytes);
  // True once the server closed the TCP connection (read returned 0), waiting at most `timeout`.
  bool waitForTcpClose(std::chrono::milliseconds timeout);

  int fd() const { return fd_; }

 private:
  bool readSome(std::chrono::milliseconds timeout);  // false on timeout or close
  int fd_ = -1;
  int status_ = 0;
  bool tcpClosed_ = false;
  std::string error_;
  std::string rawHeaders_;
  transport::ws::FrameParser parser_{transport::ws::FrameParser::Role::Client, 64u << 20};
};

}  // namespace printcast::testing
