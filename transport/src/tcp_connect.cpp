// SPDX-License-Identifier: MIT
// TCP client connections with a deadline (see tcp_connect.h).
#include "printcast/transport/tcp_connect.h"

#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace printcast::transport {

namespace {

using Clock = std::chrono::steady_clock;

int msLeft(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(left);
}

}  // namespace

hal::Result<int> connectTcp(const std::string& host, uint16_t port, std::chrono::milliseconds timeout,
                            int wakeFd) {
  const std::string where = host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port)
                                                                : fmt::format("{}:{}", host, port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0) {
    return hal::Error{hal::Errc::NoDevice, 0, fmt::format("resolve {}: {}", host, ::gai_strerror(rc))};
  }
  hal::Error last{hal::Errc::NoDevice, 0, "no address for " + host};
  int fd = -1;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      last = hal::errnoError("socket for " + where);
      continue;
    }
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    int err = errno;
    if (rc != 0 && err == EINPROGRESS) {
      const auto deadline = Clock::now() + timeout;
      pollfd p[2] = {{fd, POLLOUT, 0}, {wakeFd, POLLIN, 0}};
      int ready;
      do {
        ready = ::poll(p, wakeFd >= 0 ? 2 : 1, msLeft(deadline));
      } while (ready < 0 && errno == EINTR);
      if (ready > 0 && (p[1].revents & POLLIN) != 0) {
        ::close(fd);
        ::freeaddrinfo(res);
        return hal::Error{hal::Errc::Timeout, 0, "connect " + where + ": cancelled"};
      }
      if (ready > 0) {
        int soError = 0;
        socklen_t len = sizeof soError;
        rc = ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len) == 0 && soError == 0 ? 0 : -1;
        err = soError;
      } else {
        rc = -1;
        err = ETIMEDOUT;
      }
    }
    if (rc == 0) break;
    last = err == ETIMEDOUT
               ? hal::Error{hal::Errc::Timeout, 0,
                            fmt::format("connect {}: no answer within {} ms", where, timeout.count())}
               : hal::errnoError("connect " + where, err);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) return last;
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

hal::Status sendAll(int fd, const void* data, size_t size, std::chrono::milliseconds timeout) {
  return sendAll(fd, data, size, timeout,
                 [fd](const uint8_t* p, size_t n) { return ::send(fd, p, n, MSG_NOSIGNAL); });
}

hal::Status sendAll(int fd, const void* data, size_t size, std::chrono::milliseconds timeout,
                    const SocketWrite& write) {
  const auto deadline = Clock::now() + timeout;
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = write(p, size);
    if (n > 0) {
      p += n;
      size -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd pfd{fd, POLLOUT, 0};
      const int left = msLeft(deadline);
      if (left == 0 || ::poll(&pfd, 1, left) == 0)
        return hal::Error{hal::Errc::Timeout, 0, "send: peer not reading"};
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
      return hal::Error{hal::Errc::Disconnected, 0, "send: connection closed"};
    return hal::errnoError("send");
  }
  return {};
}

}  // namespace printcast::transport
