// SPDX-License-Identifier: MIT
// RTSP publish (see rtsp_publish.h).
#include "printcast/transport/rtsp_publish.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <optional>
#include <thread>

#include "printcast/transport/http_digest.h"
#include "printcast/transport/rtsp_client.h"
#include "printcast/transport/tcp_connect.h"
#include "printcast/transport/url.h"
#include "publisher_loop.h"

namespace printcast::transport {

using hal::Errc;
using Clock = std::chrono::steady_clock;

struct RtspPublisher::Impl final : PublisherLoop {
  Impl(Url u, RtspStream& s, RtspPublishOptions o)
      : PublisherLoop(u.withoutCredentials(), u.host, u.port, o.connectTimeout, o.firstRetry, o.maxRetry),
        url(std::move(u)),
        requestUrl(shownUrl_),
        stream(&s),
        options(std::move(o)) {}
  ~Impl() override { stopThread(); }

  const Url url;
  const std::string requestUrl;  // without credentials
  RtspStream* const stream;
  const RtspPublishOptions options;

  // One session (I/O thread)
  int fd = -1;
  RtspReader reader;
  long cseq = 0;
  std::string sessionId;
  std::optional<ClientAuth> auth;

  hal::Error fail(Errc code, std::string_view step, std::string message) const {
    return hal::Error{code, 0, fmt::format("{}: {}: {}", requestUrl, step, message)};
  }

  // Read what the server sent (non-blocking); errors end the session.
  hal::Status readIncoming() {
    uint8_t buf[8192];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 0) return fail(Errc::Disconnected, "connection", "the server closed the connection");
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return {};
        return hal::errnoError(requestUrl + ": recv");
      }
      if (auto st = reader.feed({buf, static_cast<size_t>(n)}); !st)
        return fail(st.code(), "connection", st.error().message);
      if (static_cast<size_t>(n) < sizeof buf) return {};
    }
  }

  // A request and its response (CSeq); a 401 is answered (twice at most: a stale nonce).
  hal::Result<RtspMessage> request(std::string_view method, const std::string& target, std::string extra = {},
                                   const std::string& body = {}) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      const long n = ++cseq;
      std::string req = fmt::format("{} {} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: {}\r\n", method, target, n,
                                    options.userAgent);
      if (!sessionId.empty()) req += "Session: " + sessionId + "\r\n";
      if (auto a = auth->authorization(method, target); !a.empty()) req += "Authorization: " + a + "\r\n";
      req += extra;
      if (!body.empty()) req += fmt::format("Content-Length: {}\r\n", body.size());
      req += "\r\n" + body;
      if (auto st = sendAll(fd, req.data(), req.size(), options.responseTimeout); !st)
        return fail(st.code(), method, st.error().message);
      const auto deadline = Clock::now() + options.responseTimeout;
      std::optional<RtspMessage> response;
      while (!response) {
        RtspReader::Item item;
        while (!response && reader.pop(item)) {
          if (item.kind == RtspReader::Item::Kind::Message && item.message.status != 0 &&
              item.message.cseq() == n)
            response = std::move(item.message);
        }
        if (response) break;
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0)
          return fail(Errc::Timeout, method,
                      fmt::format("no response within {} ms", options.responseTimeout.count()));
        pollfd p[2] = {{fd, POLLIN, 0}, {wake_, POLLIN, 0}};
        (void)::poll(p, 2, static_cast<int>(left));
        if (stopping_) return fail(Errc::Timeout, method, "stopped");
        if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
          if (auto st = readIncoming(); !st) return st.error();
        }
      }
      if (response->status != 401) return std::move(*response);
      if (auto st = auth->onChallenge(response->fieldValues("WWW-Authenticate")); !st)
        return fail(Errc::PermissionDenied, method, "401: " + st.error().message);
    }
    return fail(Errc::PermissionDenied, method, "401: the server refused these credentials");
  }

  hal::Error refused(std::string_view step, const RtspMessage& m) const {
    const Errc code = m.status == 401 || m.status == 403 ? Errc::PermissionDenied
                      : m.status == 404                  ? Errc::NoDevice
                                                         : Errc::Unsupported;
    return fail(code, step, fmt::format("{} {}", m.status, m.reason));
  }

  // One session: connect, ANNOUNCE, SETUP, RECORD, stream until an error. Always an error back.
  hal::Status session(int connection) override {
    fd = connection;
    reader = RtspReader{};
    cseq = 0;  // CSeq counts per connection (ffmpeg's listener wants 1 first)
    sessionId.clear();
    auth.emplace(url.user, url.password);

    // Subscribe first: the stream is watched from now on (an H.264 encoder starts, an IDR comes),
    // so the SDP can carry the parameter sets and RTP starts at an IDR.
    const auto queue = watch(*stream, stream->subscribe());
    for (auto until = Clock::now() + options.parameterSetWait;
         !stream->hasParameterSets() && Clock::now() < until;) {
      pollfd p{wake_, POLLIN, 0};
      (void)::poll(&p, 1, 50);
      if (stopping_) return {Errc::Timeout, "stopped"};
    }

    const std::string sdp = stream->describe("0.0.0.0");
    auto announce = request("ANNOUNCE", requestUrl, "Content-Type: application/sdp\r\n", sdp);
    if (!announce) return announce.error();
    if (announce->status / 100 != 2) return refused("ANNOUNCE", *announce);
    auto setup = request("SETUP", requestUrl + "/trackID=0",
                         "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n");
    if (!setup) return setup.error();
    if (setup->status / 100 != 2) return refused("SETUP", *setup);
    if (const std::string* s = setup->field("Session")) {
      if (auto parsed = parseRtspSession(*s)) sessionId = parsed->id;
    }
    auto record = request("RECORD", requestUrl, "Range: npt=0.000-\r\n");
    if (!record) return record.error();
    if (record->status / 100 != 2) return refused("RECORD", *record);
    publishing();

    // Streaming: the queue's interleaved RTP/RTCP to the socket; what the server sends is read.
    std::vector<uint8_t> out;
    size_t done = 0;  // bytes of `out` already sent
    Clock::time_point blockedSince{};
    for (;;) {
      RtspReader::Item item;
      while (reader.pop(item)) {
        if (item.kind == RtspReader::Item::Kind::Message && !item.message.method.empty()) {
          const std::string reply = fmt::format("RTSP/1.0 501 Not Implemented\r\nCSeq: {}\r\n\r\n",
                                                std::max(0L, item.message.cseq()));
          (void)sendAll(fd, reply.data(), reply.size(), options.responseTimeout);
        }
      }
      if (done == out.size()) {
        out.resize(size_t{64} * 1024);
        const size_t got = queue->read(out.data(), out.size(), [] {});
        if (got == ClientQueue::kEnd) return fail(Errc::Disconnected, "stream", "the stream ended");
        out.resize(got);
        done = 0;
      }
      if (done < out.size()) {
        const ssize_t n = ::send(fd, out.data() + done, out.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          done += static_cast<size_t>(n);
          blockedSince = {};
          sent(static_cast<size_t>(n));
          continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          return hal::errnoError(requestUrl + ": send");
        if (blockedSince == Clock::time_point{}) blockedSince = Clock::now();
        if (Clock::now() - blockedSince > options.responseTimeout)
          return fail(Errc::Timeout, "stream", "the server takes no data");
      }
      pollfd p[3] = {{fd, static_cast<short>(POLLIN | (done < out.size() ? POLLOUT : 0)), 0},
                     {wake_, POLLIN, 0},
                     {data_, POLLIN, 0}};
      (void)::poll(p, 3, 1000);
      if (stopping_) break;
      if ((p[2].revents & POLLIN) != 0) drainData();
      if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        if (auto st = readIncoming(); !st) return st;
      }
    }
    // Stopping: TEARDOWN, not awaited.
    const std::string bye =
        fmt::format("TEARDOWN {} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: {}\r\nSession: {}\r\n\r\n", requestUrl,
                    ++cseq, options.userAgent, sessionId);
    (void)sendAll(fd, bye.data(), bye.size(), std::chrono::milliseconds(200));
    return {Errc::Timeout, "stopped"};
  }
};

RtspPublisher::RtspPublisher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RtspPublisher::~RtspPublisher() = default;

hal::Result<std::unique_ptr<RtspPublisher>> RtspPublisher::start(const std::string& url, RtspStream& stream,
                                                                 RtspPublishOptions options) {
  auto parsed = parseUrl(url, "rtsp", 554);
  if (!parsed) return parsed.error();
  auto impl = std::make_unique<Impl>(std::move(*parsed), stream, std::move(options));
  if (auto st = impl->startThread(); !st) return st.error();
  return std::unique_ptr<RtspPublisher>(new RtspPublisher(std::move(impl)));
}

PublishStatus RtspPublisher::status() const { return impl_->status(); }

}  // namespace printcast::transport
