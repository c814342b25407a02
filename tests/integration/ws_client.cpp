// SPDX-License-Identifier: MIT
// Blocking WebSocket test client (RFC 6455 4.1 handshake, masked client frames).
#include "ws_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <random>

namespace printcast::testing {
namespace {

using Clock = std::chrono::steady_clock;

int remainingMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::max<int64_t>(0, left));
}

std::string base64Of16Random() {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::random_device rd;
  std::string key;
  for (int i = 0; i < 21; ++i) key += kAlphabet[rd() % 64];
  key += kAlphabet[(rd() % 4) * 16];  // the last 4 bits of 16 bytes are padding: zero
  return key + "==";
}

}  // namespace

WsClient::WsClient(uint16_t port, const std::string& target, std::chrono::milliseconds timeout,
                   int receiveBufferBytes) {
  const auto deadline = Clock::now() + timeout;
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    error_ = "socket failed";
    return;
  }
  if (receiveBufferBytes > 0) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receiveBufferBytes, sizeof receiveBufferBytes);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    error_ = std::string("connect: ") + std::strerror(errno);
    return;
  }
  const std::string key = base64Of16Random();
  const std::string request = "GET " + target +
                              " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: " +
                              key + "\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1\r\n\r\n";
  if (!sendRaw({request.begin(), request.end()})) {
    error_ = "sending the handshake failed";
    return;
  }
  std::string in;
  char buf[4096];
  while (in.find("\r\n\r\n") == std::string::npos) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, remainingMs(deadline)) <= 0) {
      error_ = "timeout waiting for the handshake response";
      return;
    }
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      error_ = "connection closed during the handshake: " + in;
      break;
    }
    in.append(buf, static_cast<size_t>(n));
  }
  const size_t end = in.find("\r\n\r\n");
  rawHeaders_ = in.substr(0, end == std::string::npos ? in.size() : end);
  if (rawHeaders_.size() > 12 && rawHeaders_.compare(0, 5, "HTTP/") == 0)
    status_ = std::atoi(rawHeaders_.c_str() + 9);
  if (!error_.empty()) return;
  if (status_ != 101) {
    error_ = "status " + std::to_string(status_) + ": " + in;
    return;
  }
  std::string lower = rawHeaders_;
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const std::string accept = transport::ws::acceptKey(key);
  const size_t at = lower.find("\r\nsec-websocket-accept:");
  std::string got;
  if (at != std::string::npos) {
    const size_t from = rawHeaders_.find_first_not_of(' ', at + 23);
    got = rawHeaders_.substr(from, rawHeaders_.find("\r\n", from) - from);
  }
  if (got != accept) {
    error_ = "wrong or missing Sec-WebSocket-Accept (want " + accept + "): " + rawHeaders_;
    return;
  }
  if (lower.find("upgrade: websocket") == std::string::npos) {
    error_ = "no 'Upgrade: websocket' in the 101: " + rawHeaders_;
    return;
  }
  const std::string rest = in.substr(end + 4);
  parser_.feed({reinterpret_cast<const uint8_t*>(rest.data()), rest.size()});
}

WsClient::~WsClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool WsClient::readSome(std::chrono::milliseconds timeout) {
  if (tcpClosed_ || fd_ < 0) return false;
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  uint8_t buf[64 * 1024];
  const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  if (n <= 0) {
    tcpClosed_ = true;
    return false;
  }
  parser_.feed({buf, static_cast<size_t>(n)});
  return true;
}

std::optional<transport::ws::Event> WsClient::next(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (auto e = parser_.next()) return e;
    if (parser_.stopped()) return std::nullopt;
    const int left = remainingMs(deadline);
    if (left <= 0 || !readSome(std::chrono::milliseconds(left))) {
      if (auto e = parser_.next()) return e;
      return std::nullopt;
    }
  }
}

std::optional<transport::ws::Event> WsClient::nextMessage(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (auto e = next(std::chrono::milliseconds(std::max(1, remainingMs(deadline))))) {
    if (e->kind == transport::ws::Event::Kind::Message || e->kind == transport::ws::Event::Kind::Close ||
        e->kind == transport::ws::Event::Kind::Error) {
      return e;
    }
    if (Clock::now() >= deadline) break;
  }
  return std::nullopt;
}

bool WsClient::send(transport::ws::Opcode opcode, const std::vector<uint8_t>& payload) {
  static thread_local std::mt19937 rng(std::random_device{}());
  return sendRaw(transport::ws::maskedFrame(opcode, payload, static_cast<uint32_t>(rng())));
}

bool WsClient::sendRaw(const std::vector<uint8_t>& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

bool WsClient::waitForTcpClose(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!tcpClosed_ && remainingMs(deadline) > 0) {
    if (!readSome(std::chrono::milliseconds(remainingMs(deadline)))) {
      if (tcpClosed_) break;
    }
    while (parser_.next()) {
    }
  }
  return tcpClosed_;
}

}  // namespace printcast::testing
