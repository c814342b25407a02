// SPDX-License-Identifier: MIT
// httpPost (see http_post.h).
#include "http_post.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "printcast/transport/http_response.h"
#include "printcast/transport/tcp_connect.h"

namespace printcast::transport {

using hal::Errc;
using Clock = std::chrono::steady_clock;

namespace {

// The whole body of any status, up to a bound.
class WholeResponse final : public HttpResponseReader {
 public:
  explicit WholeResponse(size_t maxBodyBytes)
      : HttpResponseReader(size_t{16} * 1024, maxBodyBytes), maxBodyBytes_(maxBodyBytes) {}
  std::string body;

 protected:
  bool readsStatus(int) const override { return true; }
  hal::Status onHead() override {
    if (contentLength() > static_cast<long long>(maxBodyBytes_)) return tooLarge();
    if (contentLength() == 0) setComplete();
    return {};
  }
  hal::Status onBody(const uint8_t* data, size_t size) override {
    if (body.size() + size > maxBodyBytes_) return tooLarge();
    body.append(reinterpret_cast<const char*>(data), size);
    if (!chunked() && contentLength() >= 0 && body.size() >= static_cast<size_t>(contentLength())) {
      body.resize(static_cast<size_t>(contentLength()));
      setComplete();
    }
    return {};
  }
  hal::Status onLastChunk() override {
    setComplete();
    return {};
  }
  hal::Status onClose() override {
    if (chunked() || contentLength() >= 0) {
      return fail(Errc::Disconnected,
                  fmt::format("the connection closed after {} bytes of the answer", body.size()));
    }
    setComplete();  // no length: the body ends with the connection
    return {};
  }

 private:
  hal::Status tooLarge() {
    return fail(Errc::InvalidArgument, fmt::format("an answer above {} bytes", maxBodyBytes_));
  }
  size_t maxBodyBytes_;
};

std::chrono::milliseconds left(Clock::time_point deadline) {
  return std::max(std::chrono::milliseconds(0),
                  std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
}

}  // namespace

hal::Result<HttpPostReply> httpPost(const Url& url, std::string_view contentType, std::string_view body,
                                    const std::vector<std::pair<std::string, std::string>>& headers,
                                    std::chrono::milliseconds timeout, int wakeFd, size_t maxBodyBytes) {
  const auto deadline = Clock::now() + timeout;
  const std::string where = url.host + ":" + std::to_string(url.port);
  const hal::Error timedOut{Errc::Timeout, 0, fmt::format("no answer within {} ms", timeout.count())};
  auto fd = connectTcp(url.host, url.port, timeout, wakeFd);
  if (!fd) return fd.error();
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{*fd};
  std::string req = fmt::format(
      "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
      url.target, url.hostField(80), contentType, body.size());
  for (const auto& [name, value] : headers) req += name + ": " + value + "\r\n";
  req += "\r\n";
  req += body;
  if (auto st = sendAll(*fd, req.data(), req.size(), left(deadline)); !st) {
    if (st.code() == Errc::Timeout) return timedOut;
    return st.error();
  }
  WholeResponse reader(maxBodyBytes);
  std::vector<uint8_t> buf(size_t{16} * 1024);
  while (!reader.complete()) {
    pollfd p[2] = {{*fd, POLLIN, 0}, {wakeFd, POLLIN, 0}};
    const auto wait = left(deadline);
    if (wait.count() == 0) return timedOut;
    const int ready = ::poll(p, wakeFd >= 0 ? 2 : 1, static_cast<int>(wait.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return hal::errnoError(where + ": poll");
    if (ready == 0) return timedOut;
    if (wakeFd >= 0 && (p[1].revents & POLLIN) != 0) return hal::Error{Errc::Timeout, 0, "cancelled"};
    const ssize_t n = ::recv(*fd, buf.data(), buf.size(), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n < 0) return hal::errnoError(where + ": recv");
    if (n == 0 && !reader.headComplete()) {
      return hal::Error{Errc::Disconnected, 0, "the connection closed before an answer"};
    }
    auto st = n == 0 ? reader.finish() : reader.feed({buf.data(), static_cast<size_t>(n)});
    if (!st) return st.error();
    if (n == 0) break;
  }
  return HttpPostReply{reader.status(), reader.contentType(), std::move(reader.body),
                       reader.wwwAuthenticate()};
}

}  // namespace printcast::transport
