// SPDX-License-Identifier: MIT
// RTSP pull (see rtsp_client.h): the message reader, and the capture's RTSP session.
#include "printcast/transport/rtsp_client.h"

#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

#include "network_capture.h"
#include "printcast/codecs/h264.h"
#include "printcast/transport/http_digest.h"
#include "printcast/transport/rtp_h264.h"
#include "printcast/transport/tcp_connect.h"
#include "printcast/transport/url.h"
#include "text.h"
#include "udp_pair.h"

namespace printcast::transport {

using hal::Errc;
using text::iequals;
using text::trim;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint16_t kDefaultPort = 554;  // RFC 2326 3.2

std::optional<long> parseNumber(std::string_view v) {
  long n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || n < 0) return std::nullopt;
  return n;
}

// "RTSP/1.0 200 OK" -> status and reason; "DESCRIBE rtsp://... RTSP/1.0" -> method.
bool parseStartLine(std::string_view line, RtspMessage& m) {
  if (line.rfind("RTSP/", 0) == 0) {
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return false;
    std::string_view rest = line.substr(sp + 1);
    const size_t sp2 = rest.find(' ');
    const auto code = parseNumber(rest.substr(0, sp2));
    if (!code || *code < 100 || *code > 999) return false;
    m.status = static_cast<int>(*code);
    m.reason = sp2 == std::string_view::npos ? std::string{} : std::string(trim(rest.substr(sp2 + 1)));
    return true;
  }
  const size_t sp = line.find(' ');
  if (sp == std::string_view::npos || sp == 0) return false;
  if (line.substr(line.size() - std::min<size_t>(line.size(), 9)).rfind(" RTSP/", 0) != 0) return false;
  for (char c : line.substr(0, sp)) {
    if (!((c >= 'A' && c <= 'Z') || c == '_' || c == '-')) return false;
  }
  m.method = std::string(line.substr(0, sp));
  m.url = std::string(trim(line.substr(sp + 1, line.rfind(' ') - sp - 1)));
  return true;
}

}  // namespace

// ----------------------------------------------------------------------------- messages

const std::string* RtspMessage::field(std::string_view name) const {
  for (const auto& [n, v] : fields) {
    if (iequals(n, name)) return &v;
  }
  return nullptr;
}

std::vector<std::string> RtspMessage::fieldValues(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [n, v] : fields) {
    if (iequals(n, name)) out.push_back(v);
  }
  return out;
}

long RtspMessage::cseq() const {
  const std::string* v = field("CSeq");
  if (v == nullptr) return -1;
  return parseNumber(trim(*v)).value_or(-1);
}

hal::Status RtspReader::fail(std::string message) {
  failed_ = hal::Status(Errc::InvalidArgument, "RTSP: " + std::move(message));
  return failed_;
}

hal::Status RtspReader::feed(std::span<const uint8_t> bytes) {
  if (!failed_.ok()) return failed_;
  if (start_ > 0 && start_ == buffer_.size()) {
    buffer_.clear();
    start_ = 0;
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
  auto st = parse();
  if (start_ > 0 && (start_ == buffer_.size() || start_ > size_t{64} * 1024)) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(start_));
    start_ = 0;
  }
  return st;
}

hal::Status RtspReader::parse() {
  for (;;) {
    const uint8_t* p = buffer_.data() + start_;
    const size_t have = buffer_.size() - start_;
    if (have == 0) return {};
    if (p[0] == '$') {  // interleaved binary data (10.12)
      if (have < 4) return {};
      const size_t length = (size_t{p[2]} << 8) | p[3];
      if (have < 4 + length) return {};
      if (dataSink_) {
        start_ += 4 + length;
        dataSink_(p[1], {p + 4, length});
        continue;
      }
      Item item;
      item.kind = Item::Kind::Data;
      item.channel = p[1];
      item.data.assign(p + 4, p + 4 + length);
      items_.push_back(std::move(item));
      start_ += 4 + length;
      continue;
    }
    // Stray line ends between messages (some servers send CRLF after a body).
    if (p[0] == '\r' || p[0] == '\n') {
      ++start_;
      continue;
    }
    const std::string_view text(reinterpret_cast<const char*>(p), have);
    size_t headEnd = text.find("\r\n\r\n");
    size_t bodyAt = headEnd == std::string_view::npos ? headEnd : headEnd + 4;
    if (const size_t lf = text.find("\n\n"); lf != std::string_view::npos && lf < headEnd) {
      headEnd = lf;
      bodyAt = lf + 2;
    }
    if (headEnd == std::string_view::npos) {
      // Before the head is complete: refuse what cannot become a start line, and a head above
      // the limit.
      const size_t eol = text.find('\n');
      if (eol != std::string_view::npos) {
        RtspMessage probe;
        if (!parseStartLine(trim(text.substr(0, eol)), probe))
          return fail(
              fmt::format("'{}' is neither a status line nor a request line", trim(text.substr(0, eol))));
      }
      if (have > limits_.maxHeadBytes)
        return fail(fmt::format("a message head above {} bytes", limits_.maxHeadBytes));
      return {};
    }
    if (headEnd > limits_.maxHeadBytes)
      return fail(fmt::format("a message head above {} bytes", limits_.maxHeadBytes));
    std::string_view head = text.substr(0, headEnd);
    const size_t eol = head.find('\n');
    Item item;
    RtspMessage& m = item.message;
    if (!parseStartLine(trim(head.substr(0, eol)), m))
      return fail(fmt::format("'{}' is neither a status line nor a request line", trim(head.substr(0, eol))));
    std::string_view block = eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 1);
    while (!block.empty()) {
      const size_t e = block.find('\n');
      std::string_view line = trim(block.substr(0, e));
      block = e == std::string_view::npos ? std::string_view{} : block.substr(e + 1);
      if (line.empty()) continue;
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0)
        return fail(fmt::format("'{}' is not a header field line", line));
      m.fields.emplace_back(std::string(trim(line.substr(0, colon))),
                            std::string(trim(line.substr(colon + 1))));
    }
    size_t length = 0;
    if (const std::string* cl = m.field("Content-Length")) {
      const auto n = parseNumber(trim(*cl));
      if (!n) return fail(fmt::format("Content-Length '{}' is not a number", *cl));
      if (static_cast<size_t>(*n) > limits_.maxBodyBytes)
        return fail(fmt::format("a body of {} bytes, above {}", *n, limits_.maxBodyBytes));
      length = static_cast<size_t>(*n);
    }
    if (have < bodyAt + length) return {};
    m.body.assign(text.substr(bodyAt, length));
    items_.push_back(std::move(item));
    start_ += bodyAt + length;
  }
}

bool RtspReader::pop(Item& out) {
  if (items_.empty()) return false;
  out = std::move(items_.front());
  items_.pop_front();
  return true;
}

hal::Result<RtspSession> parseRtspSession(std::string_view value) {
  RtspSession s;
  const size_t semi = value.find(';');
  s.id = std::string(trim(value.substr(0, semi)));
  if (s.id.empty()) return hal::Error{Errc::InvalidArgument, 0, "RTSP: an empty Session id"};
  std::string_view params = semi == std::string_view::npos ? std::string_view{} : value.substr(semi + 1);
  while (!params.empty()) {
    const size_t next = params.find(';');
    std::string_view p = trim(params.substr(0, next));
    params = next == std::string_view::npos ? std::string_view{} : params.substr(next + 1);
    const size_t eq = p.find('=');
    if (eq != std::string_view::npos && iequals(trim(p.substr(0, eq)), "timeout")) {
      if (auto t = parseNumber(trim(p.substr(eq + 1))); t && *t > 0)
        s.timeoutSeconds = static_cast<int>(std::min(*t, 3600L));
    }
  }
  return s;
}

std::string resolveRtspControl(std::string_view base, std::string_view control) {
  if (control.empty() || control == "*") return std::string(base);
  if (control.size() >= 7 && iequals(control.substr(0, 7), "rtsp://")) return std::string(control);
  std::string out(base);
  if (!out.empty() && out.back() != '/') out += '/';
  while (!control.empty() && control.front() == '/') control.remove_prefix(1);
  return out + std::string(control);
}

// ----------------------------------------------------------------------------- capture

namespace {

// The interleaved channels or UDP ports of a SETUP reply's Transport field (12.39).
struct TransportReply {
  int rtpChannel = 0;
  int rtcpChannel = 1;
};

TransportReply parseTransportReply(std::string_view value, TransportReply fallback) {
  TransportReply out = fallback;
  while (!value.empty()) {
    const size_t next = value.find(';');
    std::string_view p = trim(value.substr(0, next));
    value = next == std::string_view::npos ? std::string_view{} : value.substr(next + 1);
    if (p.rfind("interleaved=", 0) == 0) {
      std::string_view range = p.substr(12);
      const size_t dash = range.find('-');
      if (auto a = parseNumber(range.substr(0, dash)); a && *a < 256) {
        out.rtpChannel = static_cast<int>(*a);
        out.rtcpChannel = out.rtpChannel + 1;
        if (dash != std::string_view::npos) {
          if (auto b = parseNumber(range.substr(dash + 1)); b && *b < 256)
            out.rtcpChannel = static_cast<int>(*b);
        }
      }
    }
  }
  return out;
}

class RtspPullCapture final : public NetworkCapture {
 public:
  RtspPullCapture(Url url, RtspPullOptions options)
      : NetworkCapture(url.withoutCredentials(), "rtsp", hal::fourcc::kH264, options.noDataTimeout),
        url_(std::move(url)),
        requestUrl_(label_),
        options_(std::move(options)),
        auth_(url_.user, url_.password),
        depacketizer_(options_.maxAccessUnitBytes) {
    reader_.setDataSink([this](uint8_t channel, std::span<const uint8_t> packet) {
      if (channel == transport_.rtpChannel) onRtp(packet);
    });
  }

  ~RtspPullCapture() override { stop(); }

  // The session is set up on the calling thread (the camera thread) and streams on it: no I/O
  // thread (see network_capture.h).
  hal::Status open() {
    auto st = openInline(options_.openTimeout, "no picture size (SPS)");
    if (!st) close();
    return st;
  }

  // Says goodbye (TEARDOWN, not awaited) so the camera frees the session at once. From the
  // thread that drives the capture, as every Capture call.
  void stop() override {
    if (stopping_.exchange(true) || fd_ < 0) {
      close();
      return;
    }
    if (playing_) {
      std::string bye = fmt::format("TEARDOWN {} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: {}\r\nSession: {}\r\n",
                                    base_, ++cseq_, options_.userAgent, session_.id);
      if (auto a = auth_.authorization("TEARDOWN", base_); !a.empty()) bye += "Authorization: " + a + "\r\n";
      bye += "\r\n";
      (void)sendAll(fd_, bye.data(), bye.size(), std::chrono::milliseconds(200));
    }
    close();
  }

  hal::Status start(const hal::CaptureConfig& config) override {
    if (config.format != hal::fourcc::kH264)
      return {Errc::InvalidArgument, "an RTSP camera delivers H264 only"};
    return {};
  }

 private:
  hal::Error error(Errc code, std::string_view step, std::string message) const {
    return hal::Error{code, 0, fmt::format("{}: {}: {}", requestUrl_, step, message)};
  }

  // ---- the connection

  // Wait up to `until` for bytes on the RTSP connection (and UDP packets, once set up) and
  // handle them; messages other than the response awaited stay in the reader.
  hal::Status pump(Clock::time_point until) {
    pollfd p[3] = {{fd_, POLLIN, 0}, {wake_, POLLIN, 0}, {udp_.rtp, POLLIN, 0}};
    const nfds_t n = udp_.rtp >= 0 ? 3 : 2;
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    const int ready = ::poll(p, n, static_cast<int>(std::clamp<long long>(wait, 0, 60000)));
    if (stopping_) return {Errc::Timeout, "stopped"};
    if (ready < 0 && errno != EINTR) return hal::errnoError(requestUrl_ + ": poll");
    if (ready <= 0) return {};
    if (n == 3 && (p[2].revents & POLLIN) != 0) readUdp();
    if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) return {};
    const ssize_t got = ::recv(fd_, buffer_.data(), buffer_.size(), 0);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) return {};
    if (got < 0) return hal::errnoError(requestUrl_ + ": recv");
    if (got == 0) return error(Errc::Disconnected, "connection", "the camera closed the connection");
    if (auto st = reader_.feed({buffer_.data(), static_cast<size_t>(got)}); !st) {
      return error(Errc::InvalidArgument, "connection", st.error().message);
    }
    return {};
  }

  void readUdp() {
    for (int i = 0; i < 256; ++i) {  // what is there now; the next poll brings the rest
      const ssize_t got = ::recv(udp_.rtp, buffer_.data(), buffer_.size(), 0);
      if (got <= 0) return;
      onRtp({buffer_.data(), static_cast<size_t>(got)});
    }
  }

  // One item from the reader that is not an awaited response: RTP to the depacketizer, RTCP
  // ignored, a request from the server answered 501 (we offer nothing), a late response checked.
  hal::Status dispatch(RtspReader::Item& item) {
    if (item.kind == RtspReader::Item::Kind::Data) {
      if (item.channel == transport_.rtpChannel) onRtp(item.data);
      return {};
    }
    const RtspMessage& m = item.message;
    if (!m.method.empty()) {
      const std::string reply =
          fmt::format("RTSP/1.0 501 Not Implemented\r\nCSeq: {}\r\nUser-Agent: {}\r\n\r\n",
                      std::max(0L, m.cseq()), options_.userAgent);
      return sendAll(fd_, reply.data(), reply.size(), options_.responseTimeout);
    }
    // A keepalive's answer: only a lost session matters (the camera forgot us: start again).
    if (m.status == 454) return error(Errc::Disconnected, "keepalive", "454 Session Not Found");
    return {};
  }

  // Send one request and wait for its response (CSeq), answering a 401 challenge by sending it
  // again (twice at most: a stale nonce).
  hal::Result<RtspMessage> request(std::string_view method, const std::string& url, std::string extra = {}) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      const long cseq = ++cseq_;
      std::string req = fmt::format("{} {} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: {}\r\n", method, url, cseq,
                                    options_.userAgent);
      if (!session_.id.empty()) req += "Session: " + session_.id + "\r\n";
      if (auto a = auth_.authorization(method, url); !a.empty()) req += "Authorization: " + a + "\r\n";
      req += extra + "\r\n";
      if (auto st = sendAll(fd_, req.data(), req.size(), options_.responseTimeout); !st)
        return error(st.code(), method, st.error().message);
      const auto deadline = std::min(Clock::now() + options_.responseTimeout, openDeadline_);
      std::optional<RtspMessage> response;
      while (!response) {
        RtspReader::Item item;
        while (!response && reader_.pop(item)) {
          if (item.kind == RtspReader::Item::Kind::Message && item.message.status != 0 &&
              item.message.cseq() == cseq) {
            response = std::move(item.message);
          } else if (auto st = dispatch(item); !st) {
            return st.error();
          }
        }
        if (response) break;
        if (Clock::now() >= deadline) {
          if (deadline == openDeadline_)
            return error(
                Errc::Timeout, method,
                fmt::format("no response before the open's {} ms ran out", options_.openTimeout.count()));
          return error(Errc::Timeout, method,
                       fmt::format("no response within {} ms", options_.responseTimeout.count()));
        }
        if (auto st = pump(deadline); !st) return st.error();
      }
      if (response->status != 401) return std::move(*response);
      if (auto st = auth_.onChallenge(response->fieldValues("WWW-Authenticate")); !st) {
        return error(Errc::PermissionDenied, method, "401: " + st.error().message);
      }
    }
    return error(Errc::PermissionDenied, method, "401: the camera refused these credentials");
  }

  // A non-2xx answer to a step of the exchange, as an error.
  hal::Error refused(std::string_view step, const RtspMessage& m) const {
    const Errc code = m.status == 404                      ? Errc::NoDevice
                      : m.status == 401 || m.status == 403 ? Errc::PermissionDenied
                                                           : Errc::Unsupported;
    return error(code, step, fmt::format("{} {}", m.status, m.reason));
  }

  // ---- RTP in

  void onRtp(std::span<const uint8_t> bytes) {
    auto packet = rtp::parse(bytes);
    if (!packet || packet->payloadType != sdp_.payloadType) return;
    lastPacket_ = Clock::now();
    depacketizer_.push(*packet);
    // Access units lost to RTP loss count as the capture's drops (droppedFrames()).
    if (const uint64_t lost = depacketizer_.stats().droppedAccessUnits; lost != countedLost_) {
      frames_.countDropped(lost - countedLost_);
      countedLost_ = lost;
    }
    rtp::AccessUnit au;
    while (depacketizer_.pop(au)) deliver(au);
  }

  void deliver(rtp::AccessUnit& au) {
    const Clock::time_point arrival = Clock::now();
    // The picture size follows the newest SPS (the depacketizer keeps it).
    if (depacketizer_.sps() != sizeSps_) {
      sizeSps_ = depacketizer_.sps();
      if (auto sps = codecs::h264::parseSps(sizeSps_)) {
        size_ = sps->size;
        noteSpsFps(*sps);
      }
    }
    if (size_.empty()) return;  // no SPS yet: nothing can decode it
    // RTP time (32-bit, wrapping) unwrapped, then mapped onto the capture clock.
    if (!haveRtpBase_) {
      haveRtpBase_ = true;
      lastRtp_ = au.rtpTimestamp;
      rtpTime_ = 0;
    } else {
      rtpTime_ += static_cast<int32_t>(au.rtpTimestamp - lastRtp_);
      lastRtp_ = au.rtpTimestamp;
    }
    const auto pts = mediaClock_.map(rtpTime_, sdp_.clockRate, arrival);
    frames_.deliverH264(std::move(au.annexB), au.idr, size_, pts);
  }

  // ---- the session

  // Connect, OPTIONS, DESCRIBE, SETUP, PLAY; by `deadline`. On an error open() closes.
  hal::Status connect(Clock::time_point deadline) override {
    openDeadline_ = deadline;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    auto fd = connectTcp(url_.host, url_.port,
                         std::clamp(left, std::chrono::milliseconds(1), options_.connectTimeout), wake_);
    if (!fd) return hal::Error{fd.code(), 0, requestUrl_ + ": " + fd.error().message};
    fd_ = *fd;

    auto options = request("OPTIONS", requestUrl_);
    if (!options) return options.error();
    if (options->status / 100 != 2 && options->status != 501) return refused("OPTIONS", *options);
    if (const std::string* pub = options->field("Public")) {
      getParameter_ = text::lower(*pub).find("get_parameter") != std::string::npos;
    }

    auto describe = request("DESCRIBE", requestUrl_, "Accept: application/sdp\r\n");
    if (!describe) return describe.error();
    if (describe->status / 100 != 2) return refused("DESCRIBE", *describe);
    auto sdp = rtp::parseSdpH264(describe->body);
    if (!sdp) return error(sdp.code(), "DESCRIBE", "SDP: " + sdp.error().message);
    sdp_ = std::move(*sdp);
    if (sdp_.clockRate == 0) sdp_.clockRate = rtp::kH264ClockRate;
    hal::Size sdpSize;  // known before the first frame when the SDP carries the SPS
    if (!sdp_.sps.empty() && !sdp_.pps.empty()) {
      depacketizer_.setParameterSets(sdp_.sps, sdp_.pps);
      if (auto sps = codecs::h264::parseSps(sdp_.sps)) {
        sdpSize = sps->size;
        noteSpsFps(*sps);
      }
    }
    base_ = requestUrl_;
    if (const std::string* cb = describe->field("Content-Base")) {
      base_ = *cb;
    } else if (const std::string* cl = describe->field("Content-Location")) {
      base_ = *cl;
    }
    const std::string setupUrl = resolveRtspControl(base_, sdp_.control);

    std::string transport;
    if (options_.transport == RtspPullOptions::Transport::Udp) {
      if (auto st = bindUdpPair(udp_); !st) return st;
      transport = fmt::format("Transport: RTP/AVP;unicast;client_port={}-{}\r\n", udp_.port, udp_.port + 1);
      transport_.rtpChannel = -1;  // nothing comes interleaved
    } else {
      transport = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n";
    }
    auto setup = request("SETUP", setupUrl, transport);
    if (!setup) return setup.error();
    if (setup->status == 461)
      return error(Errc::Unsupported, "SETUP",
                   fmt::format("461 {}: the camera refuses this transport ({})", setup->reason,
                               transport.substr(11, transport.size() - 13)));
    if (setup->status / 100 != 2) return refused("SETUP", *setup);
    const std::string* sessionField = setup->field("Session");
    if (sessionField == nullptr) return error(Errc::InvalidArgument, "SETUP", "no Session in the answer");
    auto session = parseRtspSession(*sessionField);
    if (!session) return error(session.code(), "SETUP", session.error().message);
    session_ = std::move(*session);
    if (options_.transport == RtspPullOptions::Transport::Tcp) {
      if (const std::string* t = setup->field("Transport")) transport_ = parseTransportReply(*t, transport_);
    }

    auto play = request("PLAY", base_, "Range: npt=0.000-\r\n");
    if (!play) return play.error();
    if (play->status / 100 != 2) return refused("PLAY", *play);
    playing_ = true;
    frames_.announceSize(sdpSize);  // open() returns (else at the first in-band SPS)
    keepaliveEvery_ = std::chrono::milliseconds(std::max(1000, session_.timeoutSeconds * 500));
    nextKeepalive_ = Clock::now() + keepaliveEvery_;
    lastPacket_ = Clock::now();
    return {};
  }

  std::vector<int> streamFds() const override { return {fd_, udp_.rtp}; }

  // Streaming, on the camera thread at each dequeue() with no frame waiting: what the sockets
  // have (RTP to the depacketizer), the keepalive at half the session timeout, the watchdog.
  hal::Status pumpReady() override {
    if (fd_ < 0) return {Errc::Disconnected, requestUrl_ + ": closed"};
    if (udp_.rtp >= 0) readUdp();
    // Until a frame waits, the socket is drained (a read shorter than the buffer: the next poll
    // tells when more comes, no read just to hear EAGAIN), or 16 reads.
    bool drained = false;
    for (int i = 0; i < 16 && frames_.waiting() == 0; ++i) {
      RtspReader::Item item;
      while (reader_.pop(item)) {
        if (auto st = dispatch(item); !st) return st;
      }
      if (frames_.waiting() > 0 || drained) break;
      const ssize_t got = ::recv(fd_, buffer_.data(), buffer_.size(), MSG_DONTWAIT);
      drained = got >= 0 && static_cast<size_t>(got) < buffer_.size();
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return hal::errnoError(requestUrl_ + ": recv");
      if (got == 0) return error(Errc::Disconnected, "connection", "the camera closed the connection");
      if (auto st = reader_.feed({buffer_.data(), static_cast<size_t>(got)}); !st)
        return error(Errc::InvalidArgument, "connection", st.error().message);
    }
    const auto now = Clock::now();
    if (now - lastPacket_ >= options_.noDataTimeout) {
      return error(
          Errc::NoSignal, "stream",
          fmt::format("no RTP for {} s",
                      std::chrono::duration_cast<std::chrono::seconds>(options_.noDataTimeout).count()));
    }
    if (now >= nextKeepalive_) {
      // Not awaited: the answer comes interleaved with RTP and dispatch() checks it.
      const std::string_view method = getParameter_ ? "GET_PARAMETER" : "OPTIONS";
      const std::string url = getParameter_ ? base_ : requestUrl_;
      std::string req = fmt::format("{} {} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: {}\r\nSession: {}\r\n", method,
                                    url, ++cseq_, options_.userAgent, session_.id);
      if (auto a = auth_.authorization(method, url); !a.empty()) req += "Authorization: " + a + "\r\n";
      req += "\r\n";
      if (auto st = sendAll(fd_, req.data(), req.size(), options_.responseTimeout); !st)
        return error(st.code(), "keepalive", st.error().message);
      nextKeepalive_ = now + keepaliveEvery_;
    }
    return {};
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    playing_ = false;
  }

  const Url url_;
  const std::string requestUrl_;  // the URL without credentials: request lines, logs
  const RtspPullOptions options_;
  // The thread that drives the capture only
  ClientAuth auth_;
  std::string base_;  // the presentation's URL (Content-Base): PLAY, keepalive, TEARDOWN
  bool playing_ = false;
  Clock::time_point openDeadline_ = Clock::time_point::max();
  std::chrono::milliseconds keepaliveEvery_{1000};
  Clock::time_point nextKeepalive_{};
  int fd_ = -1;
  UdpPair udp_;
  RtspReader reader_;
  std::vector<uint8_t> buffer_ = std::vector<uint8_t>(size_t{64} * 1024);
  long cseq_ = 0;
  RtspSession session_;
  bool getParameter_ = false;
  TransportReply transport_;
  rtp::SdpH264 sdp_;
  rtp::H264Depacketizer depacketizer_;
  uint64_t countedLost_ = 0;
  Clock::time_point lastPacket_{};
  std::vector<uint8_t> sizeSps_;
  hal::Size size_;
  bool haveRtpBase_ = false;
  uint32_t lastRtp_ = 0;
  int64_t rtpTime_ = 0;
  MediaClock mediaClock_;
};

}  // namespace

hal::Result<std::unique_ptr<hal::Capture>> createRtspPullCapture(const std::string& url,
                                                                 RtspPullOptions options) {
  auto parsed = parseUrl(url, "rtsp", kDefaultPort);
  if (!parsed) return parsed.error();
  auto capture = std::make_unique<RtspPullCapture>(std::move(*parsed), std::move(options));
  if (auto st = capture->open(); !st) return st.error();
  return std::unique_ptr<hal::Capture>(std::move(capture));
}

}  // namespace printcast::transport
