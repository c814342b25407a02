// SPDX-License-Identifier: MIT
// RTMP publish (see rtmp_publish.h): the chunk reader, AMF0, and the publisher's session.
#include "printcast/transport/rtmp_publish.h"

#include <fmt/format.h>
#include <poll.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "printcast/transport/tcp_connect.h"
#include "printcast/transport/url.h"
#include "publisher_loop.h"
#include "tls_client.h"

namespace printcast::transport {

using hal::Errc;
using Clock = std::chrono::steady_clock;

namespace rtmp {

namespace {

uint32_t be(const uint8_t* p, int n) {
  uint32_t v = 0;
  for (int i = 0; i < n; ++i) v = v << 8 | p[i];
  return v;
}

}  // namespace

// ----------------------------------------------------------------------------- chunk reader

hal::Status ChunkReader::feed(std::span<const uint8_t> bytes) {
  if (!failed_.ok()) return failed_;
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
  failed_ = parse();
  return failed_;
}

hal::Status ChunkReader::parse() {
  size_t at = 0;
  auto fail = [](std::string m) { return hal::Status(Errc::InvalidArgument, "RTMP: " + std::move(m)); };
  for (;;) {
    const uint8_t* p = buffer_.data() + at;
    const size_t have = buffer_.size() - at;
    if (have < 1) break;
    const int fmt = p[0] >> 6;
    uint32_t csid = p[0] & 0x3f;
    size_t h = 1;
    if (csid == 0) {
      if (have < 2) break;
      csid = 64 + p[1];
      h = 2;
    } else if (csid == 1) {
      if (have < 3) break;
      csid = 64 + p[1] + 256u * p[2];
      h = 3;
    }
    static constexpr size_t kHeader[4] = {11, 7, 3, 0};
    if (have < h + kHeader[fmt]) break;
    auto found = streams_.find(csid);
    if (found == streams_.end()) {
      if (fmt != 0)
        return fail(fmt::format("a type {} chunk header on chunk stream {} never started", fmt, csid));
      if (streams_.size() >= 64) return fail("more than 64 chunk streams");
      found = streams_.emplace(csid, Stream{}).first;
    }
    Stream s = found->second;  // committed only once the whole chunk is here
    const uint8_t* m = p + h;
    const bool newMessage = s.body.empty();
    if (fmt <= 2) {
      const uint32_t t = be(m, 3);
      s.extended = t == 0xffffff;
      if (!s.extended) {
        if (fmt == 0) s.header.timestamp = t;
        s.delta = t;
      }
    }
    if (fmt <= 1) {
      s.length = be(m + 3, 3);
      s.header.type = m[6];
      if (s.length > maxMessageBytes_) return fail(fmt::format("a message of {} bytes", s.length));
    }
    if (fmt == 0) s.header.streamId = m[7] | m[8] << 8 | m[9] << 16 | static_cast<uint32_t>(m[10]) << 24;
    size_t used = h + kHeader[fmt];
    if (s.extended) {
      if (have < used + 4) break;
      const uint32_t t = be(p + used, 4);
      if (fmt == 0) s.header.timestamp = t;
      if (fmt != 0 || newMessage) s.delta = t;
      used += 4;
    }
    if (!s.started && fmt != 0) return fail(fmt::format("chunk stream {} has no message header yet", csid));
    s.started = true;
    if (newMessage && fmt != 0) s.header.timestamp += s.delta;
    const size_t want = std::min<size_t>(chunkSize_, s.length - s.body.size());
    if (have < used + want) break;
    s.body.insert(s.body.end(), p + used, p + used + want);
    at += used + want;
    if (s.body.size() == s.length) {
      Message out = s.header;
      out.payload = std::move(s.body);
      s.body.clear();
      if (out.type == 1 && out.payload.size() >= 4) {  // Set Chunk Size (5.4.1)
        const uint32_t size = be(out.payload.data(), 4) & 0x7fffffff;
        if (size == 0) return fail("a chunk size of 0");
        chunkSize_ = size;
      }
      ready_.push_back(std::move(out));
    }
    found->second = std::move(s);
  }
  buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(at));
  return {};
}

bool ChunkReader::pop(Message& out) {
  if (ready_.empty()) return false;
  out = std::move(ready_.front());
  ready_.pop_front();
  return true;
}

// ----------------------------------------------------------------------------- AMF0

const Amf0Value* Amf0Value::get(std::string_view key) const {
  for (const auto& [k, v] : object) {
    if (k == key) return &v;
  }
  return nullptr;
}

namespace {

struct Amf0Reader {
  std::span<const uint8_t> b;
  size_t at = 0;
  bool need(size_t n) const { return b.size() - at >= n; }
  hal::Status bad(std::string_view what) const {
    return {Errc::InvalidArgument, fmt::format("AMF0: {} at byte {}", what, at)};
  }
  hal::Result<std::string> key() {
    if (!need(2)) return bad("a cut-off string length").error();
    const size_t n = be(b.data() + at, 2);
    at += 2;
    if (!need(n)) return bad("a cut-off string").error();
    std::string s(reinterpret_cast<const char*>(b.data() + at), n);
    at += n;
    return s;
  }
  hal::Status value(Amf0Value& v, int depth) {
    if (depth > 8) return bad("nesting deeper than 8");
    if (!need(1)) return bad("a cut-off value");
    const uint8_t marker = b[at++];
    switch (marker) {
      case 0x00: {  // number
        if (!need(8)) return bad("a cut-off number");
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = bits << 8 | b[at + static_cast<size_t>(i)];
        std::memcpy(&v.number, &bits, 8);
        at += 8;
        v.kind = Amf0Value::Kind::Number;
        return {};
      }
      case 0x01:  // boolean
        if (!need(1)) return bad("a cut-off boolean");
        v.kind = Amf0Value::Kind::Boolean;
        v.boolean = b[at++] != 0;
        return {};
      case 0x02: {  // string
        auto s = key();
        if (!s) return s.error();
        v.kind = Amf0Value::Kind::String;
        v.string = std::move(*s);
        return {};
      }
      case 0x08:  // ECMA array: a count, then like an object
        if (!need(4)) return bad("a cut-off array count");
        at += 4;
        [[fallthrough]];
      case 0x03: {  // object: key/value pairs up to an empty key and the end marker 0x09
        v.kind = Amf0Value::Kind::Object;
        for (;;) {
          auto k = key();
          if (!k) return k.error();
          if (k->empty()) {
            if (!need(1) || b[at] != 0x09) return bad("an object without its end marker");
            ++at;
            return {};
          }
          Amf0Value child;
          if (auto st = value(child, depth + 1); !st) return st;
          v.object.push_back(Amf0Property{std::move(*k), std::move(child)});
        }
      }
      case 0x05: v.kind = Amf0Value::Kind::Null; return {};
      case 0x06: v.kind = Amf0Value::Kind::Undefined; return {};
      default: return bad(fmt::format("marker 0x{:02x}", marker));
    }
  }
};

}  // namespace

hal::Result<std::vector<Amf0Value>> decodeAmf0(std::span<const uint8_t> bytes) {
  Amf0Reader r{bytes};
  std::vector<Amf0Value> out;
  while (r.at < bytes.size()) {
    Amf0Value v;
    if (auto st = r.value(v, 0); !st) return st.error();
    out.push_back(std::move(v));
  }
  return out;
}

namespace {

// AMF0 encoding of what a publisher sends.
struct Amf0Writer {
  std::vector<uint8_t> out;
  void number(double d) {
    out.push_back(0x00);
    uint64_t bits = 0;
    std::memcpy(&bits, &d, 8);
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(bits >> shift));
  }
  void rawString(std::string_view s) {
    out.push_back(static_cast<uint8_t>(s.size() >> 8));
    out.push_back(static_cast<uint8_t>(s.size()));
    out.insert(out.end(), s.begin(), s.end());
  }
  void string(std::string_view s) {
    out.push_back(0x02);
    rawString(s);
  }
  void null() { out.push_back(0x05); }
  void object(const std::vector<std::pair<std::string, std::string>>& properties) {
    out.push_back(0x03);
    for (const auto& [k, v] : properties) {
      rawString(k);
      string(v);
    }
    out.insert(out.end(), {0, 0, 0x09});
  }
};

}  // namespace

}  // namespace rtmp

// ----------------------------------------------------------------------------- publisher

struct RtmpPublisher::Impl final : PublisherLoop {
  Impl(Url u, std::string appName, std::string streamKey, std::string tc, std::string shown, FlvStream& s,
       RtmpPublishOptions o)
      : PublisherLoop(std::move(shown), u.host, u.port, o.connectTimeout, o.firstRetry, o.maxRetry),
        url(std::move(u)),
        app(std::move(appName)),
        key(std::move(streamKey)),
        tcUrl(std::move(tc)),
        stream(&s),
        options(o) {}
  ~Impl() override { stopThread(); }

  const Url url;
  const std::string app, key, tcUrl;
  FlvStream* const stream;
  const RtmpPublishOptions options;
  // I/O thread
  int fd = -1;
  std::unique_ptr<TlsClient> tls;  // rtmps://: the session's TLS, on `fd`
  rtmp::ChunkReader reader;

  hal::Error fail(Errc code, std::string_view step, std::string message) const {
    return hal::Error{code, 0, fmt::format("{}: {}: {}", shownUrl_, step, message)};
  }

  hal::Status send(const std::vector<uint8_t>& bytes) {
    const auto st = tls ? sendAll(fd, bytes.data(), bytes.size(), options.responseTimeout,
                                  [this](const uint8_t* p, size_t n) { return tls->send(p, n); })
                        : sendAll(fd, bytes.data(), bytes.size(), options.responseTimeout);
    if (!st) return st;
    sent(bytes.size());
    return {};
  }

  // recv(2) on the connection, through TLS for rtmps://.
  ssize_t receive(uint8_t* buf, size_t size) { return tls ? tls->recv(buf, size) : ::recv(fd, buf, size, 0); }
  // Bytes TLS has decrypted already: read them before polling the socket.
  bool buffered() const { return tls && tls->pending(); }

  // One message as chunks of options.chunkSize (5.3.1: a type 0 header, then type 3 headers).
  std::vector<uint8_t> chunks(uint8_t csid, const rtmp::Message& m) const {
    std::vector<uint8_t> out;
    const bool extended = m.timestamp >= 0xffffff;
    const uint32_t ts = extended ? 0xffffff : m.timestamp;
    out.push_back(csid);  // fmt 0, csid 2..63
    out.insert(out.end(),
               {static_cast<uint8_t>(ts >> 16), static_cast<uint8_t>(ts >> 8), static_cast<uint8_t>(ts)});
    const auto n = static_cast<uint32_t>(m.payload.size());
    out.insert(out.end(),
               {static_cast<uint8_t>(n >> 16), static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)});
    out.push_back(m.type);
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(m.streamId >> (8 * i)));  // little-endian
    auto extendedTs = [&] {
      if (extended) {
        for (int shift = 24; shift >= 0; shift -= 8)
          out.push_back(static_cast<uint8_t>(m.timestamp >> shift));
      }
    };
    extendedTs();
    for (size_t at = 0; at < m.payload.size(); at += options.chunkSize) {
      if (at > 0) {
        out.push_back(static_cast<uint8_t>(0xc0 | csid));  // fmt 3
        extendedTs();
      }
      const size_t len = std::min<size_t>(options.chunkSize, m.payload.size() - at);
      out.insert(out.end(), m.payload.begin() + static_cast<std::ptrdiff_t>(at),
                 m.payload.begin() + static_cast<std::ptrdiff_t>(at + len));
    }
    return out;
  }

  hal::Status command(uint32_t streamId, const rtmp::Amf0Writer& w, uint8_t csid = 3) {
    rtmp::Message m;
    m.type = 20;
    m.streamId = streamId;
    m.payload = w.out;
    return send(chunks(csid, m));
  }

  // Read until a command reply for transaction `txn` (_result / _error), or an onStatus when txn
  // is 0. Other messages are taken in passing.
  hal::Result<std::vector<rtmp::Amf0Value>> await(double txn, std::string_view step) {
    const auto deadline = Clock::now() + options.responseTimeout;
    uint8_t buf[16384];
    for (;;) {
      rtmp::Message m;
      while (reader.pop(m)) {
        if (m.type != 20) continue;
        auto values = rtmp::decodeAmf0(m.payload);
        if (!values || values->empty() || (*values)[0].kind != rtmp::Amf0Value::Kind::String) continue;
        const std::string& name = (*values)[0].string;
        if (name == "onStatus" && txn == 0) return values;
        if ((name == "_result" || name == "_error") && values->size() >= 2 && (*values)[1].number == txn) {
          if (name == "_error") {
            std::string why = "_error";
            for (const auto& v : *values) {
              if (const auto* d = v.get("description")) why = d->string;
            }
            return fail(Errc::PermissionDenied, step, why);
          }
          return values;
        }
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return fail(Errc::Timeout, step, "no answer");
      if (!buffered()) {
        pollfd p[2] = {{fd, POLLIN, 0}, {wake_, POLLIN, 0}};
        (void)::poll(p, 2, static_cast<int>(left));
        if (stopping_) return fail(Errc::Timeout, step, "stopped");
        if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      }
      const ssize_t n = receive(buf, sizeof buf);
      if (n == 0) return fail(Errc::Disconnected, step, "the server closed the connection");
      if (n < 0 && errno != EAGAIN && errno != EINTR) return hal::errnoError(shownUrl_ + ": recv");
      if (n > 0) {
        if (auto st = reader.feed({buf, static_cast<size_t>(n)}); !st)
          return fail(st.code(), step, st.error().message);
      }
    }
  }

  hal::Status readExact(uint8_t* dst, size_t n) {
    const auto deadline = Clock::now() + options.responseTimeout;
    size_t got = 0;
    while (got < n) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return fail(Errc::Timeout, "handshake", "no answer");
      if (!buffered()) {
        pollfd p[2] = {{fd, POLLIN, 0}, {wake_, POLLIN, 0}};
        (void)::poll(p, 2, static_cast<int>(left));
      }
      if (stopping_) return fail(Errc::Timeout, "handshake", "stopped");
      const ssize_t r = receive(dst + got, n - got);
      if (r == 0) return fail(Errc::Disconnected, "handshake", "the server closed the connection");
      if (r < 0 && errno != EAGAIN && errno != EINTR) return hal::errnoError(shownUrl_ + ": recv");
      if (r > 0) got += static_cast<size_t>(r);
    }
    return {};
  }

  hal::Status session(int connection) override {
    fd = connection;
    if (url.scheme == "rtmps") {
      auto started = startTlsClient(fd, url.host, options.connectTimeout, wake_);
      if (!started) return started.error();
      tls = std::move(*started);
    }
    auto st = publish();
    tls.reset();  // close_notify while the socket is still ours (the loop closes it next)
    return st;
  }

  // The RTMP session on the connection: handshake, commands, then the stream until an error.
  hal::Status publish() {
    reader = rtmp::ChunkReader{};

    // Handshake (5.2): C0 (version 3) + C1 (time, zero, 1528 random bytes); S0 S1 S2; C2 = S1.
    std::vector<uint8_t> c01(1 + 1536, 0);
    c01[0] = 3;
    std::mt19937 rng{std::random_device{}()};
    for (size_t i = 9; i < c01.size(); ++i) c01[i] = static_cast<uint8_t>(rng());
    if (auto st = send(c01); !st) return fail(st.code(), "handshake", st.error().message);
    std::vector<uint8_t> s012(1 + 1536 + 1536);
    if (auto st = readExact(s012.data(), s012.size()); !st) return st;
    if (s012[0] != 3) return fail(Errc::Unsupported, "handshake", fmt::format("RTMP version {}", s012[0]));
    if (auto st = send(std::vector<uint8_t>(s012.begin() + 1, s012.begin() + 1 + 1536)); !st) return st;

    // Our chunk size (5.4.1), then the FMLE command sequence (7.2.1.1, 7.2.2.6).
    rtmp::Message setChunk;
    setChunk.type = 1;
    setChunk.payload = {
        static_cast<uint8_t>(options.chunkSize >> 24), static_cast<uint8_t>(options.chunkSize >> 16),
        static_cast<uint8_t>(options.chunkSize >> 8), static_cast<uint8_t>(options.chunkSize)};
    if (auto st = send(chunks(2, setChunk)); !st) return st;
    rtmp::Amf0Writer connect;
    connect.string("connect");
    connect.number(1);
    connect.object({{"app", app},
                    {"type", "nonprivate"},
                    {"flashVer", "FMLE/3.0 (compatible; printcast)"},
                    {"tcUrl", tcUrl}});
    if (auto st = command(0, connect); !st) return st;
    if (auto r = await(1, "connect"); !r) return r.error();
    for (const auto& [name, txn] : {std::pair{"releaseStream", 2.0}, std::pair{"FCPublish", 3.0}}) {
      rtmp::Amf0Writer w;
      w.string(name);
      w.number(txn);
      w.null();
      w.string(key);
      if (auto st = command(0, w); !st) return st;
    }
    rtmp::Amf0Writer create;
    create.string("createStream");
    create.number(4);
    create.null();
    if (auto st = command(0, create); !st) return st;
    auto created = await(4, "createStream");
    if (!created) return created.error();
    uint32_t streamId = 1;
    if (created->size() >= 4 && (*created)[3].kind == rtmp::Amf0Value::Kind::Number)
      streamId = static_cast<uint32_t>((*created)[3].number);
    rtmp::Amf0Writer publish;
    publish.string("publish");
    publish.number(5);
    publish.null();
    publish.string(key);
    publish.string("live");
    if (auto st = command(streamId, publish, 4); !st) return st;
    auto started = await(0, "publish");
    if (!started) return started.error();
    for (const auto& v : *started) {
      const auto* level = v.get("level");
      if (level != nullptr && level->string == "error") {
        const auto* d = v.get("description");
        return fail(Errc::PermissionDenied, "publish", d != nullptr ? d->string : "refused");
      }
    }
    publishing();

    // Streaming: our FLV subscription's tags as RTMP messages on the created stream.
    const auto queue = watch(*stream, stream->subscribe());
    std::vector<uint8_t> flv;
    bool headerSkipped = false;
    uint8_t buf[65536];
    while (!stopping_) {
      const size_t got = queue->read(buf, sizeof buf, [] {});
      if (got == ClientQueue::kEnd) return fail(Errc::Disconnected, "stream", "the stream ended");
      flv.insert(flv.end(), buf, buf + got);
      size_t at = 0;
      if (!headerSkipped && flv.size() >= 13) {  // FLV header (9) + PreviousTagSize0 (4)
        at = 13;
        headerSkipped = true;
      }
      while (headerSkipped && flv.size() - at >= 11) {
        const uint8_t type = flv[at];
        const size_t size = rtmp::be(flv.data() + at + 1, 3);
        if (flv.size() - at < 11 + size + 4) break;
        rtmp::Message m;
        m.type = type;
        m.streamId = streamId;
        m.timestamp = rtmp::be(flv.data() + at + 4, 3) | static_cast<uint32_t>(flv[at + 7]) << 24;
        m.payload.assign(flv.begin() + static_cast<std::ptrdiff_t>(at + 11),
                         flv.begin() + static_cast<std::ptrdiff_t>(at + 11 + size));
        at += 11 + size + 4;
        if (type == 9) {
          if (auto st = send(chunks(6, m)); !st) return fail(st.code(), "stream", st.error().message);
        }
      }
      flv.erase(flv.begin(), flv.begin() + static_cast<std::ptrdiff_t>(at));
      if (got > 0) continue;
      pollfd p[3] = {{fd, POLLIN, 0}, {wake_, POLLIN, 0}, {data_, POLLIN, 0}};
      (void)::poll(p, 3, buffered() ? 0 : 1000);
      if ((p[2].revents & POLLIN) != 0) drainData();
      if (buffered() || (p[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        const ssize_t n = receive(buf, sizeof buf);
        if (n == 0) return fail(Errc::Disconnected, "stream", "the server closed the connection");
        if (n < 0 && errno != EAGAIN && errno != EINTR) return hal::errnoError(shownUrl_ + ": recv");
        if (n > 0) {
          if (auto st = reader.feed({buf, static_cast<size_t>(n)}); !st)
            return fail(st.code(), "stream", st.error().message);
          rtmp::Message m;
          while (reader.pop(m)) {
          }
        }
      }
    }
    return {Errc::Timeout, "stopped"};
  }
};

RtmpPublisher::RtmpPublisher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RtmpPublisher::~RtmpPublisher() = default;

namespace {
bool hasScheme(std::string_view url, std::string_view prefix) {  // "rtmp://", any case
  return url.size() >= prefix.size() && strncasecmp(url.data(), prefix.data(), prefix.size()) == 0;
}
}  // namespace

bool isRtmpUrl(std::string_view url) { return hasScheme(url, "rtmp://") || hasScheme(url, "rtmps://"); }

bool rtmpsSupported() { return tlsClientAvailable(); }

hal::Result<RtmpTarget> parseRtmpUrl(std::string_view url) {
  const bool secure = hasScheme(url, "rtmps://");
  if (secure && !rtmpsSupported()) {
    return hal::Error{Errc::Unsupported, 0,
                      "rtmps://: this build has no TLS client (GnuTLS, PRINTCAST_WITH_GNUTLS)"};
  }
  const uint16_t defaultPort = secure ? 443 : 1935;
  auto parsed = parseUrl(url, secure ? "rtmps" : "rtmp", defaultPort);
  if (!parsed) return parsed.error();
  // /app[/instance]/key: the key is the last segment (a query belongs to it: ?secret=...).
  const std::string path = parsed->target.substr(1);
  const size_t slash = path.rfind('/', path.find('?'));
  if (slash == std::string::npos || slash == 0 || slash + 1 >= path.size()) {
    // Not the path itself in the message: it may be a stream key.
    return hal::Error{Errc::InvalidArgument, 0,
                      fmt::format("{}://{}/...: an RTMP URL is {}://host[:port]/app/streamkey",
                                  parsed->scheme, parsed->hostField(defaultPort), parsed->scheme)};
  }
  RtmpTarget t;
  t.app = path.substr(0, slash);
  t.key = path.substr(slash + 1);
  t.tcUrl = fmt::format("{}://{}/{}", parsed->scheme, parsed->hostField(defaultPort), t.app);
  t.url = std::move(*parsed);
  return t;
}

hal::Result<std::unique_ptr<RtmpPublisher>> RtmpPublisher::start(const std::string& url, FlvStream& stream,
                                                                 RtmpPublishOptions options) {
  auto target = parseRtmpUrl(url);
  if (!target) return target.error();
  options.chunkSize = std::clamp<uint32_t>(options.chunkSize, 128, 65536);
  auto impl = std::make_unique<Impl>(target->url, target->app, target->key, target->tcUrl, target->shown(),
                                     stream, options);
  if (auto st = impl->startThread(); !st) return st.error();
  return std::unique_ptr<RtmpPublisher>(new RtmpPublisher(std::move(impl)));
}

PublishStatus RtmpPublisher::status() const { return impl_->status(); }

}  // namespace printcast::transport
