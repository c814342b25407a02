// SPDX-License-Identifier: MIT
// RTSP server (see rtsp_server.h): the stream's packetizing fan-out and the server's poll loop.
#include "printcast/transport/rtsp_server.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nettle/base64.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "printcast/hal/thread_name.h"
#include "printcast/transport/rtsp_client.h"
#include "text.h"
#include "udp_pair.h"

namespace printcast::transport {

using hal::Errc;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint8_t kPayloadType = 96;

std::string base64(const std::vector<uint8_t>& bytes) {
  std::string out(BASE64_ENCODE_RAW_LENGTH(bytes.size()), '\0');
  base64_encode_raw(reinterpret_cast<char*>(out.data()), bytes.size(), bytes.data());
  return out;
}

uint32_t randomU32() {
  static thread_local std::mt19937 rng{std::random_device{}()};
  return rng();
}

}  // namespace

// ----------------------------------------------------------------------------- stream

RtspStream::RtspStream(size_t maxPayload)
    : packetizer_(kPayloadType, randomU32(), static_cast<uint16_t>(randomU32()), maxPayload),
      timestampOffset_(randomU32()) {}

std::shared_ptr<ClientQueue> RtspStream::subscribe(QueueLimits limits) {
  return addClient(DropPolicy::UntilKeyframe, limits);
}

void RtspStream::publish(const hal::PacketPtr& accessUnit) {
  {
    // With no session nothing is packetized: the SDP's parameter sets still follow the stream,
    // and the first packet a new session gets simply continues the sequence numbers.
    std::lock_guard lock(mutex_);
    if (accessUnit->keyframe && accessUnit->config) config_ = accessUnit->config;
    if (clients_.empty()) return;
  }
  const auto ticks =
      std::chrono::duration_cast<std::chrono::microseconds>(accessUnit->pts.time_since_epoch()).count();
  const auto timestamp = static_cast<uint32_t>(static_cast<uint64_t>(ticks) * 9 / 100) + timestampOffset_;
  std::vector<std::vector<uint8_t>> packets;
  packetizer_.packetize(accessUnit->data, timestamp, packets);
  if (packets.empty()) return;
  // Interleaved framing (RFC 2326 10.12): '$', channel, length, the packet. Built once. An RTCP
  // sender report (channel 1) goes in front about every second.
  size_t total = 0;
  for (const auto& p : packets) {
    total += 4 + p.size();
    ++packetCount_;
    octetCount_ += static_cast<uint32_t>(p.size() - 12);
  }
  auto wire = std::make_shared<std::vector<uint8_t>>();
  wire->reserve(total + 64);
  if (lastReport_ == hal::Timestamp{} || accessUnit->pts - lastReport_ >= std::chrono::seconds(1)) {
    lastReport_ = accessUnit->pts;
    const auto report = senderReport(accessUnit->pts, timestamp);
    wire->insert(wire->end(),
                 {'$', 1, static_cast<uint8_t>(report.size() >> 8), static_cast<uint8_t>(report.size())});
    wire->insert(wire->end(), report.begin(), report.end());
  }
  for (const auto& p : packets) {
    wire->insert(wire->end(), {'$', 0, static_cast<uint8_t>(p.size() >> 8), static_cast<uint8_t>(p.size())});
    wire->insert(wire->end(), p.begin(), p.end());
  }
  const WireChunk chunk{wire, {wire->data(), wire->size()}};

  std::lock_guard lock(mutex_);
  for (auto& c : clients_) {
    if (!c.started) {
      if (!accessUnit->keyframe) continue;  // every client starts at an IDR
      c.started = true;
    }
    WireUnit unit;
    unit.keyframe = accessUnit->keyframe;
    unit.chunks.push_back(chunk);
    c.queue->push(std::move(unit));
  }
}

std::vector<uint8_t> RtspStream::senderReport(hal::Timestamp pts, uint32_t rtpTimestamp) const {
  // The capture time on the wall clock (NTP: seconds since 1900, RFC 3550 4), so a receiver can
  // line the stream up with real time.
  const auto wall = std::chrono::system_clock::now() -
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(hal::Clock::now() - pts);
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(wall.time_since_epoch()).count();
  const uint64_t seconds = static_cast<uint64_t>(micros / 1000000) + 2208988800ULL;
  const uint64_t fraction = (static_cast<uint64_t>(micros % 1000000) << 32) / 1000000;
  std::vector<uint8_t> out;
  auto u32 = [&out](uint64_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
  };
  const uint32_t ssrc = packetizer_.ssrc();
  // SR (RFC 3550 6.4.1): V=2, no report blocks, PT 200, length 6 (32-bit words minus one).
  out.insert(out.end(), {0x80, 200, 0, 6});
  u32(ssrc);
  u32(seconds);
  u32(fraction);
  u32(rtpTimestamp);
  u32(packetCount_);
  u32(octetCount_);
  // SDES with the CNAME every compound RTCP packet carries (6.5): "printcast", END, padding.
  constexpr std::string_view kCname = "printcast";
  out.insert(out.end(), {0x81, 202, 0, 4});
  u32(ssrc);
  out.insert(out.end(), {1, static_cast<uint8_t>(kCname.size())});
  out.insert(out.end(), kCname.begin(), kCname.end());
  out.push_back(0);  // END: the chunk is 4 + 2 + 9 + 1 = 16 bytes, already 32-bit aligned
  return out;
}

bool RtspStream::hasParameterSets() const {
  std::lock_guard lock(mutex_);
  return config_ != nullptr;
}

std::string RtspStream::describe(const std::string& serverAddress) const {
  std::shared_ptr<const hal::CodecConfig> config;
  {
    std::lock_guard lock(mutex_);
    config = config_;
  }
  const bool v6 = serverAddress.find(':') != std::string::npos;
  std::string sdp = fmt::format(
      "v=0\r\no=- {} 1 IN {} {}\r\ns=printcast\r\nc=IN {} {}\r\nt=0 0\r\na=tool:printcast\r\n"
      "a=range:npt=now-\r\na=control:*\r\nm=video 0 RTP/AVP {}\r\na=rtpmap:{} H264/90000\r\n",
      randomU32(), v6 ? "IP6" : "IP4", serverAddress, v6 ? "IP6" : "IP4", v6 ? "::" : "0.0.0.0", kPayloadType,
      kPayloadType);
  std::string fmtp = fmt::format("a=fmtp:{} packetization-mode=1", kPayloadType);
  if (config && config->sps.size() >= 4 && !config->pps.empty()) {
    fmtp += fmt::format(";profile-level-id={:02x}{:02x}{:02x};sprop-parameter-sets={},{}", config->sps[1],
                        config->sps[2], config->sps[3], base64(config->sps), base64(config->pps));
  }
  return sdp + fmtp + "\r\na=control:trackID=0\r\n";
}

// ----------------------------------------------------------------------------- server

namespace {

struct TransportChoice {
  bool udp = false;
  uint16_t clientPort = 0;  // udp: the client's RTP port
};

// The first offer of a SETUP's Transport field (RFC 2326 12.39: offers separated by ',') that
// the server takes: RTP/AVP/TCP (interleaved), or RTP/AVP[/UDP] unicast with a client_port.
std::optional<TransportChoice> chooseTransport(std::string_view field) {
  while (!field.empty()) {
    const size_t comma = field.find(',');
    const std::string offer = text::lower(text::trim(field.substr(0, comma)));
    field = comma == std::string_view::npos ? std::string_view{} : field.substr(comma + 1);
    if (offer.rfind("rtp/avp/tcp", 0) == 0) return TransportChoice{};
    if (offer.rfind("rtp/avp", 0) != 0 || offer.find("multicast") != std::string::npos) continue;
    const size_t at = offer.find("client_port=");
    if (at == std::string::npos) continue;
    unsigned port = 0;
    const char* begin = offer.data() + at + 12;
    auto [end, ec] = std::from_chars(begin, offer.data() + offer.size(), port);
    if (ec != std::errc() || port == 0 || port > 65534) continue;
    return TransportChoice{true, static_cast<uint16_t>(port)};
  }
  return std::nullopt;
}

// An address as the dual-stack UDP socket wants it: IPv4 as v4-mapped IPv6.
sockaddr_in6 asIpv6(const sockaddr_storage& a) {
  sockaddr_in6 out{};
  out.sin6_family = AF_INET6;
  if (a.ss_family == AF_INET6) {
    out.sin6_addr = reinterpret_cast<const sockaddr_in6*>(&a)->sin6_addr;
  } else {
    out.sin6_addr.s6_addr[10] = 0xff;
    out.sin6_addr.s6_addr[11] = 0xff;
    std::memcpy(&out.sin6_addr.s6_addr[12], &reinterpret_cast<const sockaddr_in*>(&a)->sin_addr, 4);
  }
  return out;
}

}  // namespace

struct RtspServer::Impl {
  static constexpr size_t kRtpBuffer = size_t{64} * 1024;

  struct Connection {
    int fd = -1;
    std::string peer;  // the address, for the per-address limit
    RtspReader reader;
    std::string out;  // responses not yet sent
    // RTP bytes taken from the queue: rtp[rtpSent, rtpLength) are not sent yet. Allocated once
    // (a resize per read would zero-fill 64 KiB per access unit and client).
    std::unique_ptr<uint8_t[]> rtp = std::make_unique<uint8_t[]>(kRtpBuffer);
    size_t rtpLength = 0;
    size_t rtpSent = 0;
    RtspStream* stream = nullptr;
    std::string session;
    std::shared_ptr<ClientQueue> queue;
    Clock::time_point lastSeen;
    bool hadRequest = false;
    bool closeAfterFlush = false;
    // RTP/AVP over UDP: datagrams to the client's RTP port from the server's pair; `pending`
    // holds queue bytes (interleaved framing, as for TCP) not yet cut into datagrams.
    bool udp = false;
    sockaddr_in6 rtpTo{};
    std::vector<uint8_t> pending;
  };

  RtspServerConfig config;
  // The paths. Changed by setStream() from other threads, under streamsMutex; a stream taken away
  // goes to `retired` until the server thread has closed the connections that use it.
  std::mutex streamsMutex;
  std::condition_variable retiredWake;
  std::vector<std::pair<std::string, RtspStream*>> streams;  // streamsMutex
  std::vector<RtspStream*> retired;                          // streamsMutex
  std::map<std::string, std::string> refusals;               // streamsMutex: path -> why no stream
  uint64_t retireAsked = 0;                                  // streamsMutex
  uint64_t retireDone = 0;                                   // streamsMutex
  int listenFd = -1;
  int wake = -1;
  UdpPair udp;  // the server's RTP/RTCP ports for every UDP client
  uint16_t port = 0;
  std::atomic<bool> stopping{false};
  std::thread thread;
  std::map<int, std::unique_ptr<Connection>> connections;  // server thread
  mutable std::mutex statsMutex;
  RtspServerStats stats;

  ~Impl() {
    {
      std::lock_guard lock(streamsMutex);  // a setStream() waiting now returns
      stopping = true;
    }
    retiredWake.notify_all();
    const uint64_t one = 1;
    if (wake >= 0) (void)!::write(wake, &one, sizeof one);
    if (thread.joinable()) thread.join();
    for (auto& [fd, c] : connections) closeConnection(*c, false);
    connections.clear();
    if (listenFd >= 0) ::close(listenFd);
    if (wake >= 0) ::close(wake);
  }

  hal::Status listen() {
    wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake < 0) return hal::errnoError("RTSP server: eventfd");
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    addrinfo* res = nullptr;
    const std::string service = std::to_string(config.port);
    const char* node = config.bindAddress.empty() ? nullptr : config.bindAddress.c_str();
    if (int rc = ::getaddrinfo(node, service.c_str(), &hints, &res); rc != 0) {
      return {Errc::InvalidArgument,
              fmt::format("RTSP server: address '{}': {}", config.bindAddress, gai_strerror(rc))};
    }
    // Every interface: prefer the IPv6 wildcard (dual-stack), else what resolved first.
    addrinfo* pick = res;
    for (addrinfo* a = res; a != nullptr && node == nullptr; a = a->ai_next) {
      if (a->ai_family == AF_INET6) pick = a;
    }
    listenFd = ::socket(pick->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int on = 1;
    int off = 0;
    if (listenFd >= 0) {
      (void)::setsockopt(listenFd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
      if (pick->ai_family == AF_INET6)
        (void)::setsockopt(listenFd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    }
    const bool ok = listenFd >= 0 && ::bind(listenFd, pick->ai_addr, pick->ai_addrlen) == 0 &&
                    ::listen(listenFd, 64) == 0;
    ::freeaddrinfo(res);
    if (!ok) {
      return hal::errnoError(fmt::format("RTSP server: listen on {}:{}",
                                         config.bindAddress.empty() ? "*" : config.bindAddress, config.port));
    }
    if (auto st = bindUdpPair(udp); !st) return st;
    int big = 1 << 20;  // a 1080p IDR leaves as a burst of datagrams
    (void)::setsockopt(udp.rtp, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    ::getsockname(listenFd, reinterpret_cast<sockaddr*>(&bound), &len);
    port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    return {};
  }

  void count(uint64_t RtspServerStats::*field) {
    std::lock_guard lock(statsMutex);
    ++(stats.*field);
  }

  static std::string addressOf(const sockaddr_storage& a) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a);
      if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
        ::inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], text, sizeof text);
      } else {
        ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
      }
    } else {
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&a)->sin_addr, text, sizeof text);
    }
    return text;
  }

  void accept() {
    for (;;) {
      sockaddr_storage a{};
      socklen_t len = sizeof a;
      const int fd = ::accept4(listenFd, reinterpret_cast<sockaddr*>(&a), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) return;
      const std::string peer = addressOf(a);
      const size_t fromPeer = static_cast<size_t>(std::count_if(
          connections.begin(), connections.end(), [&](const auto& c) { return c.second->peer == peer; }));
      if (connections.size() >= config.maxConnections || fromPeer >= config.maxPerAddress) {
        count(&RtspServerStats::refused);  // before the peer can see the close
        ::close(fd);
        continue;
      }
      int on = 1;
      (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
      auto c = std::make_unique<Connection>();
      c->fd = fd;
      c->peer = peer;
      c->lastSeen = Clock::now();
      connections.emplace(fd, std::move(c));
      count(&RtspServerStats::accepted);
    }
  }

  void closeConnection(Connection& c, bool timedOut) {
    if (c.queue && c.stream != nullptr) c.stream->unsubscribe(c.queue);
    c.queue.reset();
    if (timedOut) count(&RtspServerStats::timedOut);  // before the peer can see the close
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
  }

  static std::string pathOf(std::string_view url) {
    // rtsp://host[:port]/path -> /path; "*" has none.
    if (const size_t scheme = url.find("://"); scheme != std::string_view::npos) {
      const size_t slash = url.find('/', scheme + 3);
      url = slash == std::string_view::npos ? std::string_view("/") : url.substr(slash);
    }
    if (const size_t q = url.find('?'); q != std::string_view::npos) url = url.substr(0, q);
    std::string p(url);
    if (p.size() > 10 && p.compare(p.size() - 10, 10, "/trackID=0") == 0) p.resize(p.size() - 10);
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    return p;
  }

  RtspStream* streamFor(std::string_view url) {
    const std::string p = pathOf(url);
    std::lock_guard lock(streamsMutex);
    for (const auto& [name, stream] : streams) {
      if (name == p) return stream;
    }
    return nullptr;
  }

  // 404 for a path without a stream, with setRefusal()'s reason when it has one: in the status
  // line (what ffmpeg and VLC print: "method DESCRIBE failed: 404 Not Found (...)") and as a
  // text body.
  void notFound(Connection& c, const RtspMessage& req) {
    std::string why;
    {
      std::lock_guard lock(streamsMutex);
      if (auto it = refusals.find(pathOf(req.url)); it != refusals.end()) why = it->second;
    }
    if (why.empty()) return respond(c, req, 404, "Not Found");
    respond(c, req, 404, "Not Found (" + why + ")", "Content-Type: text/plain; charset=utf-8\r\n",
            why + "\n");
  }

  void respond(Connection& c, const RtspMessage& req, int status, std::string_view reason,
               std::string fields = {}, const std::string& body = {}) {
    c.out += fmt::format("RTSP/1.0 {} {}\r\nCSeq: {}\r\nServer: printcast\r\n", status, reason,
                         std::max(0L, req.cseq()));
    c.out += fields;
    if (!body.empty()) c.out += fmt::format("Content-Length: {}\r\n", body.size());
    c.out += "\r\n";
    c.out += body;
  }

  std::string localAddress(int fd) const {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "0.0.0.0";
    return addressOf(a);
  }

  void handle(Connection& c, const RtspMessage& req) {
    c.hadRequest = true;
    const std::string url = req.url;
    RtspStream* stream = streamFor(url);
    const std::string sessionField = fmt::format("Session: {};timeout={}\r\n", c.session,
                                                 static_cast<long>(config.sessionTimeout.count()));
    if (config.authorize && req.method != "OPTIONS") {
      const std::string* authorization = req.field("Authorization");
      std::string token;
      if (const size_t q = url.find("?token="); q != std::string::npos) {
        token = url.substr(
            q + 7, url.find('&', q) == std::string::npos ? std::string::npos : url.find('&', q) - q - 7);
      }
      if (!config.authorize(authorization == nullptr ? std::string_view{} : std::string_view(*authorization),
                            token)) {
        count(&RtspServerStats::unauthorized);
        return respond(c, req, 401, "Unauthorized", "WWW-Authenticate: Basic realm=\"printcast\"\r\n");
      }
    }
    if (req.method == "OPTIONS") {
      respond(c, req, 200, "OK",
              "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER\r\n");
      return;
    }
    if (req.method == "GET_PARAMETER" || req.method == "SET_PARAMETER") {
      respond(c, req, 200, "OK", c.session.empty() ? std::string() : sessionField);
      return;
    }
    if (req.method == "DESCRIBE") {
      if (stream == nullptr) return notFound(c, req);
      std::string base = url;
      while (!base.empty() && base.back() == '/') base.pop_back();
      respond(c, req, 200, "OK", fmt::format("Content-Base: {}/\r\nContent-Type: application/sdp\r\n", base),
              stream->describe(localAddress(c.fd)));
      return;
    }
    if (req.method == "SETUP") {
      if (stream == nullptr) return notFound(c, req);
      const std::string* transport = req.field("Transport");
      const auto choice =
          transport == nullptr ? std::optional<TransportChoice>() : chooseTransport(*transport);
      if (!choice) return respond(c, req, 461, "Unsupported Transport");
      if (c.stream != nullptr && c.stream != stream)
        return respond(c, req, 459, "Aggregate Operation Not Allowed");
      if (c.queue) return respond(c, req, 455, "Method Not Valid in This State");  // already playing
      c.stream = stream;
      if (c.session.empty()) c.session = fmt::format("{:08X}{:08X}", randomU32(), randomU32());
      std::string reply;
      c.udp = choice->udp;
      if (c.udp) {
        // To the address the RTSP connection comes from: a client cannot send our RTP elsewhere.
        sockaddr_storage peer{};
        socklen_t len = sizeof peer;
        ::getpeername(c.fd, reinterpret_cast<sockaddr*>(&peer), &len);
        c.rtpTo = asIpv6(peer);
        c.rtpTo.sin6_port = htons(choice->clientPort);
        reply = fmt::format("RTP/AVP;unicast;client_port={}-{};server_port={}-{}", choice->clientPort,
                            choice->clientPort + 1, udp.port, udp.port + 1);
      } else {
        reply = "RTP/AVP/TCP;unicast;interleaved=0-1";
      }
      respond(c, req, 200, "OK",
              fmt::format("Transport: {}\r\nSession: {};timeout={}\r\n", reply, c.session,
                          static_cast<long>(config.sessionTimeout.count())));
      return;
    }
    if (req.method == "PLAY" || req.method == "TEARDOWN") {
      const std::string* session = req.field("Session");
      if (c.session.empty() || session == nullptr ||
          text::trim(session->substr(0, session->find(';'))) != c.session) {
        return respond(c, req, 454, "Session Not Found");
      }
      if (req.method == "TEARDOWN") {
        respond(c, req, 200, "OK", sessionField);
        if (c.queue) c.stream->unsubscribe(c.queue);
        c.queue.reset();
        c.session.clear();
        c.stream = nullptr;
        c.closeAfterFlush = true;
        return;
      }
      respond(c, req, 200, "OK", sessionField + "Range: npt=now-\r\n");
      if (!c.queue) {
        c.queue = c.stream->subscribe();
        const int wakeFd = wake;
        c.queue->setWakeup([wakeFd] {
          const uint64_t one = 1;
          (void)!::write(wakeFd, &one, sizeof one);
        });
      }
      return;
    }
    respond(c, req, 405, "Method Not Allowed",
            "Allow: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER\r\n");
  }

  // Read what came; false when the connection is to be closed.
  bool readFrom(Connection& c) {
    uint8_t buf[16384];
    for (;;) {
      const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n == 0) return false;
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      c.lastSeen = Clock::now();
      if (auto st = c.reader.feed({buf, static_cast<size_t>(n)}); !st) {
        count(&RtspServerStats::badRequests);
        return false;
      }
      RtspReader::Item item;
      while (c.reader.pop(item)) {
        if (item.kind == RtspReader::Item::Kind::Data) continue;  // RTCP receiver reports: alive
        if (item.message.method.empty()) continue;                // a response: nothing asked it
        handle(c, item.message);
      }
      if (static_cast<size_t>(n) < sizeof buf) return true;
    }
  }

  // Send responses, then RTP; false when the connection is to be closed.
  bool flush(Connection& c) {
    while (!c.out.empty()) {
      const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      c.out.erase(0, static_cast<size_t>(n));
    }
    if (c.closeAfterFlush) return false;
    if (c.udp) return flushUdp(c);
    while (c.queue) {
      if (c.rtpSent == c.rtpLength) {
        const size_t got = c.queue->read(c.rtp.get(), kRtpBuffer, [] {});
        if (got == ClientQueue::kEnd) return false;
        c.rtpLength = got;
        c.rtpSent = 0;
        if (got == 0) return true;  // parked: the next push wakes the loop
      }
      const ssize_t n = ::send(c.fd, c.rtp.get() + c.rtpSent, c.rtpLength - c.rtpSent, MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      c.rtpSent += static_cast<size_t>(n);
    }
    return true;
  }

  // RTP to a UDP client: the queue's interleaved frames cut into datagrams. A datagram the socket
  // cannot take now is dropped (counted): UDP clients never hold anything up.
  bool flushUdp(Connection& c) {
    uint8_t buf[65536];
    while (c.queue) {
      const size_t got = c.queue->read(buf, sizeof buf, [] {});
      if (got == ClientQueue::kEnd) return false;
      if (got == 0) return true;  // parked: the next push wakes the loop
      c.pending.insert(c.pending.end(), buf, buf + got);
      size_t at = 0;
      while (c.pending.size() - at >= 4) {
        const size_t length = (size_t{c.pending[at + 2]} << 8) | c.pending[at + 3];
        if (c.pending.size() - at < 4 + length) break;
        // Channel 0 RTP to the client's RTP port, channel 1 RTCP to the next one.
        sockaddr_in6 to = c.rtpTo;
        const bool rtcp = c.pending[at + 1] == 1;
        if (rtcp) to.sin6_port = htons(static_cast<uint16_t>(ntohs(to.sin6_port) + 1));
        if (::sendto(rtcp ? udp.rtcp : udp.rtp, c.pending.data() + at + 4, length,
                     MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&to), sizeof to) < 0) {
          count(&RtspServerStats::udpDropped);
        }
        at += 4 + length;
      }
      c.pending.erase(c.pending.begin(), c.pending.begin() + static_cast<std::ptrdiff_t>(at));
    }
    return true;
  }

  // RTCP receiver reports (and anything else) from UDP clients: their session is alive.
  void readRtcp(int fd) {
    uint8_t buf[2048];
    for (int i = 0; i < 64; ++i) {
      sockaddr_storage from{};
      socklen_t len = sizeof from;
      if (::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len) < 0) return;
      const sockaddr_in6 a = asIpv6(from);
      for (auto& [cfd, c] : connections) {
        if (c->udp && std::memcmp(&c->rtpTo.sin6_addr, &a.sin6_addr, sizeof a.sin6_addr) == 0) {
          c->lastSeen = Clock::now();
        }
      }
    }
  }

  // Close every connection set up on a stream setStream() took away, then tell the waiting callers.
  void closeRetired() {
    std::vector<RtspStream*> gone;
    uint64_t asked = 0;
    {
      std::lock_guard lock(streamsMutex);
      if (retireAsked == retireDone) return;
      gone.swap(retired);
      asked = retireAsked;
    }
    for (auto it = connections.begin(); it != connections.end();) {
      Connection& c = *it->second;
      if (c.stream != nullptr && std::find(gone.begin(), gone.end(), c.stream) != gone.end()) {
        closeConnection(c, false);
        it = connections.erase(it);
      } else {
        ++it;
      }
    }
    {
      std::lock_guard lock(streamsMutex);
      retireDone = asked;
    }
    retiredWake.notify_all();
  }

  static constexpr size_t kFixedFds = 4;  // listen, wake, UDP RTP, UDP RTCP; then connections

  void run() {
    std::vector<pollfd> fds;
    std::vector<int> order;
    while (!stopping) {
      fds.clear();
      order.clear();
      fds.push_back({listenFd, POLLIN, 0});
      fds.push_back({wake, POLLIN, 0});
      fds.push_back({udp.rtp, POLLIN, 0});
      fds.push_back({udp.rtcp, POLLIN, 0});
      for (auto& [fd, c] : connections) {
        short events = POLLIN;
        if (!c->out.empty() || c->rtpSent < c->rtpLength) events |= POLLOUT;
        fds.push_back({fd, events, 0});
        order.push_back(fd);
      }
      (void)::poll(fds.data(), fds.size(), 1000);
      if (stopping) break;
      if ((fds[1].revents & POLLIN) != 0) {
        uint64_t v = 0;
        (void)!::read(wake, &v, sizeof v);
      }
      if ((fds[2].revents & POLLIN) != 0) readRtcp(udp.rtp);  // NAT keepalives to the RTP port
      if ((fds[3].revents & POLLIN) != 0) readRtcp(udp.rtcp);
      std::vector<int> dead;
      const auto now = Clock::now();
      for (size_t i = 0; i < order.size(); ++i) {
        Connection& c = *connections.at(order[i]);
        bool alive = true;
        if ((fds[i + kFixedFds].revents & (POLLIN | POLLHUP | POLLERR)) != 0) alive = readFrom(c);
        if (alive) alive = flush(c);  // responses, and RTP the queue has (woken or writable)
        bool timedOut = false;
        if (alive && !c.session.empty() && now - c.lastSeen > config.sessionTimeout) timedOut = true;
        if (alive && !c.hadRequest && now - c.lastSeen > config.headTimeout) timedOut = true;
        if (!alive || timedOut) {
          closeConnection(c, timedOut);
          dead.push_back(order[i]);
        }
      }
      for (int fd : dead) connections.erase(fd);
      closeRetired();
      if ((fds[0].revents & POLLIN) != 0) accept();
      {
        std::lock_guard lock(statsMutex);
        stats.connections = connections.size();
        stats.playing =
            static_cast<uint64_t>(std::count_if(connections.begin(), connections.end(),
                                                [](const auto& c) { return c.second->queue != nullptr; }));
      }
    }
  }
};

RtspServer::RtspServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RtspServer::~RtspServer() = default;

hal::Result<std::unique_ptr<RtspServer>> RtspServer::start(
    RtspServerConfig config, std::vector<std::pair<std::string, RtspStream*>> streams) {
  auto impl = std::make_unique<Impl>();
  impl->config = std::move(config);
  impl->streams = std::move(streams);
  if (auto st = impl->listen(); !st) return st.error();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] {
    hal::nameThisThread("rtsp server");
    raw->run();
  });
  return std::unique_ptr<RtspServer>(new RtspServer(std::move(impl)));
}

uint16_t RtspServer::port() const { return impl_->port; }

void RtspServer::setStream(const std::string& path, RtspStream* stream) {
  Impl& s = *impl_;
  std::unique_lock lock(s.streamsMutex);
  auto it = std::find_if(s.streams.begin(), s.streams.end(), [&](const auto& p) { return p.first == path; });
  RtspStream* previous = it == s.streams.end() ? nullptr : it->second;
  if (stream == nullptr) {
    if (it != s.streams.end()) s.streams.erase(it);
  } else if (it != s.streams.end()) {
    it->second = stream;
  } else {
    s.streams.emplace_back(path, stream);
  }
  if (previous == nullptr || previous == stream) return;
  s.retired.push_back(previous);
  const uint64_t ticket = ++s.retireAsked;
  const uint64_t one = 1;
  (void)!::write(s.wake, &one, sizeof one);
  s.retiredWake.wait(lock, [&] { return s.retireDone >= ticket || s.stopping.load(); });
}

void RtspServer::setRefusal(const std::string& path, std::string reason) {
  // One line of text: it goes into the status line.
  std::replace_if(
      reason.begin(), reason.end(), [](char ch) { return ch == '\r' || ch == '\n'; }, ' ');
  std::lock_guard lock(impl_->streamsMutex);
  if (reason.empty()) {
    impl_->refusals.erase(path);
  } else {
    impl_->refusals[path] = std::move(reason);
  }
}

RtspServerStats RtspServer::stats() const {
  std::lock_guard lock(impl_->statsMutex);
  return impl_->stats;
}

}  // namespace printcast::transport
