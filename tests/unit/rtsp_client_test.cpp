// SPDX-License-Identifier: MIT
// RTSP pull: the message reader (any split, interleaved data, limits), Session and control URL
// rules, and the capture against a scripted RTSP server on loopback (a syscall-level peer: the
// real client code, real sockets) for what a real server in the integration tests cannot be made
// to do on demand: a short session timeout, a lost session, a server request, credentials.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "printcast/transport/rtsp_client.h"

namespace printcast::transport {
namespace {

using Bytes = std::vector<uint8_t>;
using namespace std::chrono_literals;

std::span<const uint8_t> bytesOf(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// ----------------------------------------------------------------------------- reader

TEST(RtspReader, ReadsResponsesAndInterleavedDataAtAnySplit) {
  const std::string sdp = "v=0\r\nm=video 0 RTP/AVP 96\r\n";
  std::string wire = "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: " +
                     std::to_string(sdp.size()) + "\r\n\r\n" + sdp;
  wire += std::string("$\x00\x00\x03", 4) + "abc";
  wire += "RTSP/1.0 454 Session Not Found\nCSeq: 3\n\n";  // LF-only line ends
  wire += std::string("$\x01\x00\x00", 4);                // an empty RTCP packet
  for (size_t split = 1; split < wire.size(); ++split) {
    RtspReader reader;
    ASSERT_TRUE(reader.feed(bytesOf(std::string_view(wire).substr(0, split))).ok()) << split;
    ASSERT_TRUE(reader.feed(bytesOf(std::string_view(wire).substr(split))).ok()) << split;
    RtspReader::Item item;
    ASSERT_TRUE(reader.pop(item));
    EXPECT_EQ(item.kind, RtspReader::Item::Kind::Message);
    EXPECT_EQ(item.message.status, 200);
    EXPECT_EQ(item.message.reason, "OK");
    EXPECT_EQ(item.message.cseq(), 2);
    EXPECT_EQ(item.message.body, sdp);
    ASSERT_NE(item.message.field("content-type"), nullptr);
    EXPECT_EQ(*item.message.field("content-type"), "application/sdp");
    ASSERT_TRUE(reader.pop(item));
    EXPECT_EQ(item.kind, RtspReader::Item::Kind::Data);
    EXPECT_EQ(item.channel, 0);
    EXPECT_EQ(item.data, (Bytes{'a', 'b', 'c'}));
    ASSERT_TRUE(reader.pop(item));
    EXPECT_EQ(item.message.status, 454);
    EXPECT_EQ(item.message.cseq(), 3);
    ASSERT_TRUE(reader.pop(item));
    EXPECT_EQ(item.channel, 1);
    EXPECT_TRUE(item.data.empty());
    EXPECT_FALSE(reader.pop(item));
  }
}

TEST(RtspReader, HandsInterleavedDataToASinkAtAnySplit) {
  std::string wire = std::string("$\x00\x00\x03", 4) + "abc";
  wire += "RTSP/1.0 200 OK\r\nCSeq: 4\r\n\r\n";
  wire += std::string("$\x01\x00\x02", 4) + "de";
  for (size_t split = 1; split < wire.size(); ++split) {
    RtspReader reader;
    std::vector<std::pair<int, std::string>> packets;
    reader.setDataSink([&](uint8_t channel, std::span<const uint8_t> packet) {
      packets.emplace_back(channel, std::string(packet.begin(), packet.end()));
    });
    ASSERT_TRUE(reader.feed(bytesOf(std::string_view(wire).substr(0, split))).ok()) << split;
    ASSERT_TRUE(reader.feed(bytesOf(std::string_view(wire).substr(split))).ok()) << split;
    EXPECT_EQ(packets, (std::vector<std::pair<int, std::string>>{{0, "abc"}, {1, "de"}})) << split;
    RtspReader::Item item;
    ASSERT_TRUE(reader.pop(item));  // only the message is an item
    EXPECT_EQ(item.message.cseq(), 4);
    EXPECT_FALSE(reader.pop(item));
  }
}

TEST(RtspReader, ReadsARequestFromTheServer) {
  RtspReader reader;
  ASSERT_TRUE(reader.feed(bytesOf("OPTIONS * RTSP/1.0\r\nCSeq: 7\r\n\r\n")).ok());
  RtspReader::Item item;
  ASSERT_TRUE(reader.pop(item));
  EXPECT_EQ(item.message.status, 0);
  EXPECT_EQ(item.message.method, "OPTIONS");
  EXPECT_EQ(item.message.cseq(), 7);
}

TEST(RtspReader, RefusesWhatIsNotRtspWithAReason) {
  RtspReader garbage;
  auto st = garbage.feed(bytesOf("HTTP/1.1 200 OK\r\n\r\n"));
  EXPECT_EQ(st.code(), hal::Errc::InvalidArgument);
  EXPECT_NE(st.error().message.find("neither a status line"), std::string::npos) << st.error().message;
  EXPECT_FALSE(garbage.feed(bytesOf("RTSP/1.0 200 OK\r\n\r\n")).ok());  // stays failed

  RtspReader::Limits limits;
  limits.maxHeadBytes = 64;
  RtspReader big(limits);
  EXPECT_FALSE(big.feed(bytesOf("RTSP/1.0 200 OK\r\nX: " + std::string(100, 'a'))).ok());

  limits = {};
  limits.maxBodyBytes = 10;
  RtspReader bigBody(limits);
  EXPECT_FALSE(bigBody.feed(bytesOf("RTSP/1.0 200 OK\r\nContent-Length: 11\r\n\r\n")).ok());
  RtspReader badLength;
  EXPECT_FALSE(badLength.feed(bytesOf("RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n")).ok());
  RtspReader badField;
  EXPECT_FALSE(badField.feed(bytesOf("RTSP/1.0 200 OK\r\nno colon here\r\n\r\n")).ok());
}

TEST(RtspSessionField, IdAndTimeout) {
  auto s = parseRtspSession("47112344;timeout=30");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->id, "47112344");
  EXPECT_EQ(s->timeoutSeconds, 30);
  auto plain = parseRtspSession(" abc ");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->id, "abc");
  EXPECT_EQ(plain->timeoutSeconds, 60);  // RFC 2326 12.37's default
  EXPECT_FALSE(parseRtspSession(";timeout=5"));
}

TEST(RtspControl, ResolvesAgainstTheBase) {
  EXPECT_EQ(resolveRtspControl("rtsp://cam/live/", "trackID=1"), "rtsp://cam/live/trackID=1");
  EXPECT_EQ(resolveRtspControl("rtsp://cam/live", "trackID=1"), "rtsp://cam/live/trackID=1");
  EXPECT_EQ(resolveRtspControl("rtsp://cam/live", "*"), "rtsp://cam/live");
  EXPECT_EQ(resolveRtspControl("rtsp://cam/live", ""), "rtsp://cam/live");
  EXPECT_EQ(resolveRtspControl("rtsp://cam/live", "RTSP://other/x"), "RTSP://other/x");
}

// ----------------------------------------------------------------------------- scripted server

// A 320x240 constrained-baseline SPS and its PPS (x264), as a camera's SDP carries them.
const Bytes kSps = {0x67, 0x42, 0xc0, 0x0b, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00,
                    0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x01, 0x40, 0xf1, 0x42, 0xa4, 0x80};
const Bytes kPps = {0x68, 0xcb, 0x83, 0xcb, 0x20};
constexpr const char* kSdp =
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=test\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    "a=fmtp:96 "
    "packetization-mode=1;profile-level-id=42c00b;sprop-parameter-sets=Z0LAC9kBQfsBEAAAAwAQAAADAUDxQqSA,"
    "aMuDyyA=\r\na=control:track1\r\n";

// One RTP packet of a single NAL unit, framed for the interleaved channel 0.
std::string interleavedRtp(uint16_t seq, uint32_t ts, const Bytes& nal) {
  Bytes b = {0x80,
             static_cast<uint8_t>(0x80 | 96),
             static_cast<uint8_t>(seq >> 8),
             static_cast<uint8_t>(seq),
             static_cast<uint8_t>(ts >> 24),
             static_cast<uint8_t>(ts >> 16),
             static_cast<uint8_t>(ts >> 8),
             static_cast<uint8_t>(ts),
             0,
             0,
             0,
             1};
  b.insert(b.end(), nal.begin(), nal.end());
  std::string out = {'$', '\0', static_cast<char>(b.size() >> 8), static_cast<char>(b.size() & 0xff)};
  out.append(b.begin(), b.end());
  return out;
}

// A one-connection RTSP server on 127.0.0.1 whose answers come from `answer` (request head in,
// response out: "" sends nothing). It records every request head; `push` sends bytes on the
// connection from the test.
class ScriptedServer {
 public:
  using Answer = std::function<std::string(const std::string& request)>;
  explicit ScriptedServer(Answer answer) : answer_(std::move(answer)) {
    listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    EXPECT_EQ(::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(listen_, 4), 0);
    ::getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    thread_.join();
    ::close(listen_);
    if (conn_ >= 0) ::close(conn_);
  }
  uint16_t port() const { return port_; }
  std::vector<std::string> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  bool sawRequest(std::string_view method) {
    for (const auto& r : requests()) {
      if (r.rfind(std::string(method) + " ", 0) == 0) return true;
    }
    return false;
  }
  void push(const std::string& bytes) {
    std::lock_guard lock(mutex_);
    if (conn_ >= 0) (void)!::send(conn_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  }

 private:
  void run() {
    pollfd p{listen_, POLLIN, 0};
    while (!stop_ && ::poll(&p, 1, 50) <= 0) {
    }
    if (stop_) return;
    {
      std::lock_guard lock(mutex_);
      conn_ = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
    }
    std::string in;
    char buf[4096];
    while (!stop_) {
      pollfd c{conn_, POLLIN, 0};
      if (::poll(&c, 1, 50) <= 0) continue;
      const ssize_t n = ::recv(conn_, buf, sizeof buf, 0);
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
      for (size_t end; (end = in.find("\r\n\r\n")) != std::string::npos;) {
        const std::string head = in.substr(0, end + 4);
        in.erase(0, end + 4);
        {
          std::lock_guard lock(mutex_);
          requests_.push_back(head);
        }
        const std::string reply = answer_(head);
        if (!reply.empty()) push(reply);
      }
    }
  }

  Answer answer_;
  int listen_ = -1;
  int conn_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::string> requests_;
};

std::string cseqOf(const std::string& request) {
  const size_t at = request.find("CSeq: ");
  return request.substr(at + 6, request.find("\r\n", at) - at - 6);
}

std::string ok(const std::string& request, const std::string& fields = {}, const std::string& body = {}) {
  std::string r = "RTSP/1.0 200 OK\r\nCSeq: " + cseqOf(request) + "\r\n" + fields;
  if (!body.empty()) r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return r + "\r\n" + body;
}

// A camera: GET_PARAMETER in Public, the SDP above, a 2 s session timeout.
std::string camera(const std::string& req) {
  if (req.rfind("OPTIONS", 0) == 0)
    return ok(req, "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n");
  if (req.rfind("DESCRIBE", 0) == 0) {
    return ok(req, "Content-Base: rtsp://127.0.0.1/live/\r\nContent-Type: application/sdp\r\n", kSdp);
  }
  if (req.rfind("SETUP", 0) == 0) {
    return ok(req, "Session: 1234ABCD;timeout=2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n");
  }
  return ok(req);
}

TEST(RtspPull, PlaysKeepsAliveAndStopsWithTeardown) {
  ScriptedServer server(camera);
  auto cam = createRtspPullCapture("rtsp://127.0.0.1:" + std::to_string(server.port()) + "/live");
  ASSERT_TRUE(cam) << cam.error().describe();
  // The size is the SDP's SPS, known before any frame.
  hal::CaptureConfig config;
  config.format = hal::fourcc::kH264;
  config.size = {640, 480};
  EXPECT_EQ((*cam)->validate(config), hal::Negotiation::Adjusted);
  EXPECT_EQ(config.size, (hal::Size{320, 240}));
  ASSERT_TRUE((*cam)->start(config).ok());

  const auto reqs = server.requests();
  ASSERT_GE(reqs.size(), 4u);
  EXPECT_EQ(reqs[0].rfind("OPTIONS rtsp://127.0.0.1:", 0), 0u) << reqs[0];
  EXPECT_NE(reqs[0].find("User-Agent: printcast"), std::string::npos);
  EXPECT_NE(reqs[1].find("Accept: application/sdp"), std::string::npos);
  EXPECT_EQ(reqs[2].rfind("SETUP rtsp://127.0.0.1/live/track1 RTSP/1.0", 0), 0u) << reqs[2];  // Content-Base
  EXPECT_NE(reqs[2].find("interleaved=0-1"), std::string::npos);
  EXPECT_EQ(reqs[3].rfind("PLAY rtsp://127.0.0.1/live/ RTSP/1.0", 0), 0u) << reqs[3];
  EXPECT_NE(reqs[3].find("Session: 1234ABCD"), std::string::npos);

  // A P slice before any IDR is not handed out; the IDR comes with the SDP's SPS/PPS in front.
  server.push(interleavedRtp(1, 9000, {0x41, 0x9a, 0x01}));
  server.push(interleavedRtp(2, 12000, {0x65, 0x88, 0x84, 0x00}));
  server.push(interleavedRtp(3, 15000, {0x41, 0x9a, 0x02}));
  std::vector<hal::Frame> got;
  for (auto end = std::chrono::steady_clock::now() + 5s;
       got.size() < 2 && std::chrono::steady_clock::now() < end;) {
    pollfd p{(*cam)->pollFd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    auto f = (*cam)->dequeue();
    if (f) {
      got.push_back(std::move(*f));
    } else {
      ASSERT_EQ(f.code(), hal::Errc::Again) << f.error().describe();
    }
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].format(), hal::fourcc::kH264);
  EXPECT_EQ(got[0].size(), (hal::Size{320, 240}));
  const Bytes first(got[0].plane(0).data, got[0].plane(0).data + got[0].bytesUsed());
  Bytes expected = {0, 0, 0, 1};
  expected.insert(expected.end(), kSps.begin(), kSps.end());
  expected.insert(expected.end(), {0, 0, 0, 1});
  expected.insert(expected.end(), kPps.begin(), kPps.end());
  expected.insert(expected.end(), {0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00});
  EXPECT_EQ(first, expected);
  // 3000 ticks of 90 kHz apart: 33.3 ms on the capture clock, less at most an eighth (the two came
  // at once: MediaClock slews toward their arrival).
  const auto gap =
      std::chrono::duration_cast<std::chrono::microseconds>(got[1].timestamp() - got[0].timestamp());
  EXPECT_GE(gap.count(), 33333 * 7 / 8 - 10);
  EXPECT_LE(gap.count(), 33334);

  // Keepalive: GET_PARAMETER (listed in Public) with the session, at half the 2 s timeout. The
  // session runs on the thread that drives the capture: it keeps polling and dequeuing, as the
  // camera thread does.
  for (auto end = std::chrono::steady_clock::now() + 4s;
       !server.sawRequest("GET_PARAMETER") && std::chrono::steady_clock::now() < end;) {
    pollfd p{(*cam)->pollFd(), POLLIN, 0};
    ::poll(&p, 1, 50);
    auto f = (*cam)->dequeue();
    ASSERT_TRUE(f || f.code() == hal::Errc::Again) << f.error().describe();
  }
  ASSERT_TRUE(server.sawRequest("GET_PARAMETER"));
  for (const auto& r : server.requests()) {
    if (r.rfind("GET_PARAMETER", 0) == 0) {
      EXPECT_NE(r.find("Session: 1234ABCD"), std::string::npos) << r;
    }
  }
  (*cam)->stop();  // sends TEARDOWN without waiting: the server thread records it a little later
  for (auto end = std::chrono::steady_clock::now() + 3s;
       !server.sawRequest("TEARDOWN") && std::chrono::steady_clock::now() < end;) {
    std::this_thread::sleep_for(10ms);
  }
  const auto last = server.requests().back();
  EXPECT_EQ(last.rfind("TEARDOWN rtsp://127.0.0.1/live/ RTSP/1.0", 0), 0u) << last;
  EXPECT_NE(last.find("Session: 1234ABCD"), std::string::npos) << last;
}

TEST(RtspPull, ALostSessionOrSilenceIsReportedNotHung) {
  // The camera forgets the session: its answer to the keepalive is 454.
  ScriptedServer server([](const std::string& req) {
    if (req.rfind("GET_PARAMETER", 0) == 0)
      return "RTSP/1.0 454 Session Not Found\r\nCSeq: " + cseqOf(req) + "\r\n\r\n";
    return camera(req);
  });
  RtspPullOptions options;
  options.noDataTimeout = 4000ms;
  auto cam = createRtspPullCapture("rtsp://127.0.0.1:" + std::to_string(server.port()) + "/live", options);
  ASSERT_TRUE(cam) << cam.error().describe();
  hal::Result<hal::Frame> f(hal::Errc::Again, "");
  for (auto end = std::chrono::steady_clock::now() + 6s; std::chrono::steady_clock::now() < end;) {
    pollfd p{(*cam)->pollFd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    f = (*cam)->dequeue();
    if (!f && f.code() != hal::Errc::Again) break;
  }
  ASSERT_FALSE(f);
  EXPECT_EQ(f.code(), hal::Errc::Disconnected);
  EXPECT_NE(f.error().message.find("454"), std::string::npos) << f.error().message;

  // A camera that answers but sends no RTP: the watchdog, not a stuck capture.
  ScriptedServer silent(camera);
  options.noDataTimeout = 1500ms;
  auto quiet = createRtspPullCapture("rtsp://127.0.0.1:" + std::to_string(silent.port()) + "/live", options);
  ASSERT_TRUE(quiet) << quiet.error().describe();
  for (auto end = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < end;) {
    pollfd p{(*quiet)->pollFd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    f = (*quiet)->dequeue();
    if (!f && f.code() != hal::Errc::Again) break;
  }
  ASSERT_FALSE(f);
  EXPECT_EQ(f.code(), hal::Errc::NoSignal) << f.error().describe();
  // Either watchdog may say it first: the session's ("no RTP for N s") or the frame queue's ("no
  // picture for N s"); both run in dequeue().
  const std::string& why = f.error().message;
  EXPECT_TRUE(why.find("no RTP") != std::string::npos || why.find("no picture") != std::string::npos) << why;
}

TEST(RtspPull, AnswersBasicChallengesAndReportsRefusals) {
  // Basic only, for user "u" password "p" (base64 "dTpw").
  ScriptedServer server([](const std::string& req) {
    if (req.find("Authorization: Basic dTpw\r\n") == std::string::npos)
      return "RTSP/1.0 401 Unauthorized\r\nCSeq: " + cseqOf(req) +
             "\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\r\n";
    return camera(req);
  });
  const std::string where = "127.0.0.1:" + std::to_string(server.port()) + "/live";
  auto cam = createRtspPullCapture("rtsp://u:p@" + where);
  ASSERT_TRUE(cam) << cam.error().describe();
  EXPECT_EQ((*cam)->info().name, "rtsp://" + where);  // never the credentials
  (*cam)->stop();

  ScriptedServer wrong([](const std::string& req) {
    return "RTSP/1.0 401 Unauthorized\r\nCSeq: " + cseqOf(req) +
           "\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\r\n";
  });
  auto refused = createRtspPullCapture("rtsp://u:bad@127.0.0.1:" + std::to_string(wrong.port()) + "/live");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.code(), hal::Errc::PermissionDenied);
  EXPECT_NE(refused.error().message.find("refused these credentials"), std::string::npos)
      << refused.error().message;
  ScriptedServer challenging([](const std::string& req) {
    return "RTSP/1.0 401 Unauthorized\r\nCSeq: " + cseqOf(req) +
           "\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\r\n";
  });
  auto none = createRtspPullCapture("rtsp://127.0.0.1:" + std::to_string(challenging.port()) + "/live");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("wants credentials"), std::string::npos) << none.error().message;
}

TEST(RtspPull, RefusesWhatItCannotPlayWithAReason) {
  ScriptedServer notFound([](const std::string& req) {
    if (req.rfind("DESCRIBE", 0) == 0)
      return "RTSP/1.0 404 Stream Not Found\r\nCSeq: " + cseqOf(req) + "\r\n\r\n";
    return camera(req);
  });
  auto missing = createRtspPullCapture("rtsp://127.0.0.1:" + std::to_string(notFound.port()) + "/nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.code(), hal::Errc::NoDevice);
  EXPECT_NE(missing.error().message.find("DESCRIBE: 404"), std::string::npos) << missing.error().message;

  ScriptedServer audioOnly([](const std::string& req) {
    if (req.rfind("DESCRIBE", 0) == 0)
      return ok(req, "Content-Type: application/sdp\r\n", "v=0\r\nm=audio 0 RTP/AVP 0\r\n");
    return camera(req);
  });
  auto noVideo = createRtspPullCapture("rtsp://127.0.0.1:" + std::to_string(audioOnly.port()) + "/a");
  ASSERT_FALSE(noVideo);
  EXPECT_NE(noVideo.error().message.find("SDP"), std::string::npos) << noVideo.error().message;

  EXPECT_EQ(createRtspPullCapture("rtsps://cam/x").code(), hal::Errc::Unsupported);
  EXPECT_EQ(createRtspPullCapture("rtsp://:554/x").code(), hal::Errc::InvalidArgument);
}

}  // namespace
}  // namespace printcast::transport
