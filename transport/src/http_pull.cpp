// SPDX-License-Identifier: MIT
// HttpPullCapture (see http_pull.h).
#include "http_pull.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "printcast/transport/tcp_connect.h"

namespace printcast::transport {

using hal::Errc;
using Clock = std::chrono::steady_clock;

HttpPullCapture::HttpPullCapture(Url url, std::string driver, hal::FourCC format, Request request)
    : NetworkCapture("http://" + url.display(), std::move(driver), format, request.noDataTimeout),
      url_(std::move(url)),
      request_(std::move(request)),
      auth_(url_.user, url_.password) {}

hal::Status HttpPullCapture::request() {
  auto fd = connectTcp(url_.host, url_.port, request_.connectTimeout, wake_);
  if (!fd) return fd.error();
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{*fd};
  std::string req =
      fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept: {}\r\nConnection: close\r\n",
                  url_.target, url_.hostField(80), request_.userAgent, request_.accept);
  // Credentials only in answer to a challenge (the first request goes without), then with every
  // request in the scheme the camera asked for.
  if (auto a = auth_.authorization("GET", url_.target); !a.empty()) req += "Authorization: " + a + "\r\n";
  req += "\r\n";
  if (auto st = sendAll(*fd, req.data(), req.size(), request_.connectTimeout); !st) return st;

  HttpResponseReader& reader = newResponse();
  std::vector<uint8_t> buf(size_t{64} * 1024);
  for (;;) {
    pollfd p[2] = {{*fd, POLLIN, 0}, {wake_, POLLIN, 0}};
    const int ready = ::poll(p, 2, static_cast<int>(request_.noDataTimeout.count()));
    if (stopping_) return {Errc::Timeout, "stopped"};
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      return {Errc::NoSignal,
              fmt::format("{}: no data for {} s", label_,
                          std::chrono::duration_cast<std::chrono::seconds>(request_.noDataTimeout).count())};
    }
    const ssize_t n = ::recv(*fd, buf.data(), buf.size(), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n < 0) return hal::errnoError(label_ + ": recv");
    auto st = n == 0 ? reader.finish() : reader.feed({buf.data(), static_cast<size_t>(n)});
    if (!st && reader.status() == 401) return answerChallenge(reader);
    if (!st) {
      hal::Error e = std::move(st).error();
      e.message = label_ + ": " + e.message;
      return e;
    }
    if (auto delivered = deliver(); !delivered) return delivered;
    if (reader.complete() && answered()) return {};
    if (reader.complete() || n == 0) {
      return {Errc::Disconnected,
              fmt::format("{}: the camera ended the {}", label_,
                          reader.headComplete() ? "stream" : "connection before answering")};
    }
  }
}

hal::Status HttpPullCapture::answerChallenge(const HttpResponseReader& reader) {
  const std::string where = label_ + ": HTTP 401: ";
  if (auto st = auth_.onChallenge(reader.wwwAuthenticate()); !st)
    return {st.code(), where + st.error().message};
  retryNow_ = true;
  return {Errc::PermissionDenied, where + "answering the challenge"};
}

void HttpPullCapture::run() {
  int authRetries = 0;
  while (!stopping_) {
    const auto started = Clock::now();
    auto st = request();
    if (stopping_) return;
    if (!st && retryNow_ && authRetries < 2) {  // answer the challenge at once
      retryNow_ = false;
      ++authRetries;
      continue;
    }
    if (st) authRetries = 0;
    if (!st) {
      frames_.fail(std::move(st).error());
      return;
    }
    // A snapshot URL: ask again at the frame rate.
    pollfd p{wake_, POLLIN, 0};
    const auto next = started + pollInterval_.load();
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()).count();
    if (wait > 0) (void)::poll(&p, 1, static_cast<int>(wait));
  }
}

}  // namespace printcast::transport
