// SPDX-License-Identifier: MIT
// RTSP server: its SDP, its answers to each request (raw requests over a socket, as a client
// sends them), and printcast's own RTSP client playing it (each side checked by the other; ffmpeg
// and GStreamer read it in the integration tests). Limits: per-address connections, multicast
// refused with 461, a silent connection closed.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "printcast/transport/rtp_h264.h"
#include "printcast/transport/rtsp_client.h"
#include "printcast/transport/rtsp_server.h"

namespace printcast::transport {
namespace {

using Bytes = std::vector<uint8_t>;
using namespace std::chrono_literals;

// A 320x240 constrained-baseline SPS and its PPS (x264).
const Bytes kSps = {0x67, 0x42, 0xc0, 0x0b, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00,
                    0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x01, 0x40, 0xf1, 0x42, 0xa4, 0x80};
const Bytes kPps = {0x68, 0xcb, 0x83, 0xcb, 0x20};

hal::PacketPtr accessUnit(bool idr, uint64_t sequence, size_t sliceBytes = 3000) {
  auto p = std::make_shared<hal::Packet>();
  p->codec = hal::fourcc::kH264;
  auto add = [&](const Bytes& nal) {
    p->data.insert(p->data.end(), {0, 0, 0, 1});
    p->data.insert(p->data.end(), nal.begin(), nal.end());
  };
  Bytes slice(sliceBytes, static_cast<uint8_t>(sequence));
  slice[0] = idr ? 0x65 : 0x41;
  if (idr) {
    add(kSps);
    add(kPps);
    p->config = std::make_shared<const hal::CodecConfig>(hal::CodecConfig{kSps, kPps});
  }
  add(slice);
  p->keyframe = idr;
  p->sequence = sequence;
  p->size = {320, 240};
  p->pts = hal::Clock::now();
  return p;
}

// Publishes a 30 fps stream with an IDR every 10 access units until destroyed.
class Producer {
 public:
  explicit Producer(RtspStream& stream)
      : thread_([this, &stream] {
          for (uint64_t i = 0; !stop_; ++i) {
            stream.publish(accessUnit(i % 10 == 0, i));
            std::this_thread::sleep_for(33ms);
          }
        }) {}
  ~Producer() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

int connectTo(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends `request` and returns what came back within `wait` (up to the first response's end).
std::string converse(int fd, const std::string& request, std::chrono::milliseconds wait = 2000ms) {
  (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string in;
  const auto end = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
    const size_t head = in.find("\r\n\r\n");
    if (head == std::string::npos) continue;
    const size_t cl = in.find("Content-Length: ");
    const size_t body = cl == std::string::npos ? 0 : std::stoul(in.substr(cl + 16));
    if (in.size() >= head + 4 + body) break;
  }
  return in;
}

TEST(RtspServer, AnswersEachRequestAsAClientExpects) {
  RtspStream stream;
  stream.publish(accessUnit(true, 0));  // the SDP gets the parameter sets
  RtspServerConfig config;
  config.port = 0;
  config.bindAddress = "127.0.0.1";
  auto server = RtspServer::start(config, {{"/stream", &stream}});
  ASSERT_TRUE(server) << server.error().describe();
  const int fd = connectTo((*server)->port());
  ASSERT_GE(fd, 0);
  const std::string base = "rtsp://127.0.0.1:" + std::to_string((*server)->port()) + "/stream";

  auto r = converse(fd, "OPTIONS " + base + " RTSP/1.0\r\nCSeq: 1\r\n\r\n");
  EXPECT_EQ(r.rfind("RTSP/1.0 200 OK\r\nCSeq: 1\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("GET_PARAMETER"), std::string::npos) << r;

  r = converse(fd, "DESCRIBE " + base + " RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n");
  EXPECT_NE(r.find("Content-Base: " + base + "/\r\n"), std::string::npos) << r;
  auto sdp = rtp::parseSdpH264(r.substr(r.find("\r\n\r\n") + 4));
  ASSERT_TRUE(sdp) << sdp.error().describe() << r;
  EXPECT_EQ(sdp->payloadType, 96);
  EXPECT_EQ(sdp->packetizationMode, 1);
  EXPECT_EQ(sdp->profileLevelId, "42c00b");
  EXPECT_EQ(sdp->sps, kSps);
  EXPECT_EQ(sdp->pps, kPps);
  EXPECT_EQ(sdp->control, "trackID=0");
  EXPECT_NE(r.find("a=range:npt=now-"), std::string::npos);

  r = converse(fd, "DESCRIBE rtsp://127.0.0.1/nope RTSP/1.0\r\nCSeq: 3\r\n\r\n");
  EXPECT_EQ(r.rfind("RTSP/1.0 404", 0), 0u) << r;
  r = converse(fd,
               "SETUP " + base + "/trackID=0 RTSP/1.0\r\nCSeq: 4\r\nTransport: RTP/AVP;multicast\r\n\r\n");
  EXPECT_EQ(r.rfind("RTSP/1.0 461", 0), 0u) << "no multicast: " << r;
  r = converse(fd, "PLAY " + base + " RTSP/1.0\r\nCSeq: 5\r\nSession: nope\r\n\r\n");
  EXPECT_EQ(r.rfind("RTSP/1.0 454", 0), 0u) << r;
  r = converse(
      fd, "SETUP " + base +
              "/trackID=0 RTSP/1.0\r\nCSeq: 6\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n");
  EXPECT_EQ(r.rfind("RTSP/1.0 200", 0), 0u) << r;
  EXPECT_NE(r.find("Transport: RTP/AVP/TCP;unicast;interleaved=0-1"), std::string::npos) << r;
  const size_t at = r.find("Session: ");
  ASSERT_NE(at, std::string::npos) << r;
  auto session = parseRtspSession(r.substr(at + 9, r.find("\r\n", at) - at - 9));
  ASSERT_TRUE(session);
  EXPECT_EQ(session->timeoutSeconds, 60);
  r = converse(fd, "GET_PARAMETER " + base + " RTSP/1.0\r\nCSeq: 7\r\nSession: " + session->id + "\r\n\r\n");
  EXPECT_EQ(r.rfind("RTSP/1.0 200 OK\r\nCSeq: 7", 0), 0u) << r;
  r = converse(fd, "RECORD " + base + " RTSP/1.0\r\nCSeq: 8\r\n\r\n");
  EXPECT_EQ(r.rfind("RTSP/1.0 405", 0), 0u) << r;
  r = converse(fd, "TEARDOWN " + base + " RTSP/1.0\r\nCSeq: 9\r\nSession: " + session->id + "\r\n\r\n");
  EXPECT_EQ(r.rfind("RTSP/1.0 200", 0), 0u) << r;
  ::close(fd);
}

// printcast's RTSP client plays printcast's RTSP server, over TCP interleaved and over UDP: an
// IDR first with the SPS/PPS, the size from the SPS, every access unit whole, in order.
class RtspServerPlay : public ::testing::TestWithParam<RtspPullOptions::Transport> {};

TEST_P(RtspServerPlay, OurClientPlaysIt) {
  RtspStream stream;
  RtspServerConfig config;
  config.port = 0;
  auto server = RtspServer::start(config, {{"/stream", &stream}});
  ASSERT_TRUE(server) << server.error().describe();
  Producer producer(stream);
  RtspPullOptions options;
  options.transport = GetParam();
  auto cam =
      createRtspPullCapture("rtsp://127.0.0.1:" + std::to_string((*server)->port()) + "/stream", options);
  ASSERT_TRUE(cam) << cam.error().describe();
  hal::CaptureConfig c;
  c.format = hal::fourcc::kH264;
  (*cam)->validate(c);
  EXPECT_EQ(c.size, (hal::Size{320, 240}));
  ASSERT_TRUE((*cam)->start(c).ok());
  std::vector<hal::Frame> got;
  for (auto end = std::chrono::steady_clock::now() + 5s;
       got.size() < 25 && std::chrono::steady_clock::now() < end;) {
    pollfd p{(*cam)->pollFd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    auto f = (*cam)->dequeue();
    if (f) {
      got.push_back(std::move(*f));
    } else {
      ASSERT_EQ(f.code(), hal::Errc::Again) << f.error().describe();
    }
  }
  ASSERT_GE(got.size(), 25u);
  const Bytes first(got[0].plane(0).data, got[0].plane(0).data + got[0].bytesUsed());
  ASSERT_GT(first.size(), 4 + kSps.size());
  EXPECT_EQ(Bytes(first.begin() + 4, first.begin() + 4 + static_cast<long>(kSps.size())), kSps)
      << "an IDR first";
  for (size_t i = 1; i < got.size(); ++i) {
    EXPECT_EQ(got[i].sequence(), got[i - 1].sequence() + 1) << "no access unit lost";
    EXPECT_GT(got[i].timestamp(), got[i - 1].timestamp());
    EXPECT_GE(got[i].bytesUsed(), 3000u + 4) << "whole (FU-A reassembled)";
  }
  EXPECT_EQ((*server)->stats().playing, 1u);
  EXPECT_EQ((*server)->stats().udpDropped, 0u);
  (*cam)->stop();
}

INSTANTIATE_TEST_SUITE_P(Transports, RtspServerPlay,
                         ::testing::Values(RtspPullOptions::Transport::Tcp, RtspPullOptions::Transport::Udp),
                         [](const auto& param) {
                           return param.param == RtspPullOptions::Transport::Tcp ? std::string("Tcp")
                                                                                 : std::string("Udp");
                         });

// Paths added, replaced and taken away while the server runs (cameras added, reopened and removed
// at run time): a new path answers DESCRIBE at once; a client playing a stream that is replaced or
// taken away sees its connection closed before setStream() returns (the stream may go then), and
// a path taken away answers 404.
TEST(RtspServer, PathsChangeWhileItRunsAndAGoneStreamsClientsAreClosed) {
  RtspStream first;
  RtspServerConfig config;
  config.port = 0;
  config.bindAddress = "127.0.0.1";
  auto server = RtspServer::start(config, {{"/stream", &first}});
  ASSERT_TRUE(server) << server.error().describe();
  const std::string base = "rtsp://127.0.0.1:" + std::to_string((*server)->port());
  auto describe = [&](const std::string& path) {
    const int fd = connectTo((*server)->port());
    const std::string r = converse(fd, "DESCRIBE " + base + path + " RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    ::close(fd);
    return r.substr(0, 12);
  };
  EXPECT_EQ(describe("/cam/yard"), "RTSP/1.0 404");
  auto added = std::make_unique<RtspStream>();
  (*server)->setStream("/cam/yard", added.get());
  EXPECT_EQ(describe("/cam/yard"), "RTSP/1.0 200");
  EXPECT_EQ(describe("/stream"), "RTSP/1.0 200") << "the other path is untouched";

  // A client plays /cam/yard.
  const int fd = connectTo((*server)->port());
  ASSERT_GE(fd, 0);
  std::string r = converse(fd, "SETUP " + base +
                                   "/cam/yard/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: "
                                   "RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n");
  ASSERT_EQ(r.rfind("RTSP/1.0 200", 0), 0u) << r;
  const size_t at = r.find("Session: ");
  const std::string session = r.substr(at + 9, r.find(';', at) - at - 9);
  r = converse(fd, "PLAY " + base + "/cam/yard RTSP/1.0\r\nCSeq: 2\r\nSession: " + session + "\r\n\r\n");
  ASSERT_EQ(r.rfind("RTSP/1.0 200", 0), 0u) << r;
  for (auto end = std::chrono::steady_clock::now() + 2s;
       added->clientCount() == 0 && std::chrono::steady_clock::now() < end;)
    std::this_thread::sleep_for(5ms);
  ASSERT_EQ(added->clientCount(), 1u);

  // Replaced by a new stream: the client of the old one is closed before setStream() returns.
  auto replacement = std::make_unique<RtspStream>();
  (*server)->setStream("/cam/yard", replacement.get());
  EXPECT_EQ(added->clientCount(), 0u) << "unsubscribed before setStream() returned";
  added.reset();  // may go now
  char buf[256];
  ssize_t n = 0;
  for (auto end = std::chrono::steady_clock::now() + 2s; std::chrono::steady_clock::now() < end;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
  }
  EXPECT_EQ(n, 0) << "the connection was closed";
  ::close(fd);
  EXPECT_EQ(describe("/cam/yard"), "RTSP/1.0 200") << "the path serves the replacement";

  (*server)->setStream("/cam/yard", nullptr);
  EXPECT_EQ(describe("/cam/yard"), "RTSP/1.0 404");
  EXPECT_EQ(describe("/stream"), "RTSP/1.0 200");

  // A path without a stream for a reason: its 404 says why, in the status line (what ffmpeg and
  // VLC print) and as the body; SETUP the same; forgotten with "".
  (*server)->setRefusal("/cam/yard", "camera 'yard' has no H.264\r\noutputs");
  int rf = connectTo((*server)->port());
  r = converse(rf, "DESCRIBE " + base + "/cam/yard/ RTSP/1.0\r\nCSeq: 3\r\n\r\n");
  EXPECT_EQ(r.rfind("RTSP/1.0 404 Not Found (camera 'yard' has no H.264  outputs)\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("Content-Type: text/plain"), std::string::npos) << r;
  EXPECT_NE(r.find("\r\n\r\ncamera 'yard' has no H.264  outputs\n"), std::string::npos) << r;
  r = converse(
      rf, "SETUP " + base +
              "/cam/yard/trackID=0 RTSP/1.0\r\nCSeq: 4\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n\r\n");
  EXPECT_EQ(r.rfind("RTSP/1.0 404 Not Found (camera", 0), 0u) << r;
  ::close(rf);
  (*server)->setRefusal("/cam/yard", "");
  rf = connectTo((*server)->port());
  r = converse(rf, "DESCRIBE " + base + "/cam/yard RTSP/1.0\r\nCSeq: 5\r\n\r\n");
  EXPECT_EQ(r.rfind("RTSP/1.0 404 Not Found\r\n", 0), 0u) << r;
  ::close(rf);
}

// RTCP over the interleaved channel 1: a sender report (RFC 3550 6.4.1) with the stream's SSRC,
// the capture time as NTP time and counts, then an SDES with a CNAME; RTP on channel 0.
TEST(RtspServer, SendsSenderReportsWithTheCaptureTimeAsNtp) {
  RtspStream stream;
  RtspServerConfig config;
  config.port = 0;
  auto server = RtspServer::start(config, {{"/stream", &stream}});
  ASSERT_TRUE(server) << server.error().describe();
  Producer producer(stream);
  const int fd = connectTo((*server)->port());
  ASSERT_GE(fd, 0);
  const std::string base = "rtsp://127.0.0.1:" + std::to_string((*server)->port()) + "/stream";
  auto r =
      converse(fd, "SETUP " + base +
                       "/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n\r\n");
  const size_t at = r.find("Session: ");
  ASSERT_NE(at, std::string::npos) << r;
  const std::string session = r.substr(at + 9, r.find(';', at) - at - 9);
  r = converse(fd, "PLAY " + base + " RTSP/1.0\r\nCSeq: 2\r\nSession: " + session + "\r\n\r\n", 200ms);
  ASSERT_EQ(r.rfind("RTSP/1.0 200", 0), 0u) << r;
  std::string in = r.substr(r.find("\r\n\r\n") + 4);
  RtspReader reader;
  ASSERT_TRUE(reader.feed({reinterpret_cast<const uint8_t*>(in.data()), in.size()}).ok());
  std::vector<uint8_t> report;
  uint32_t rtpSsrc = 0;
  for (auto end = std::chrono::steady_clock::now() + 3s; report.empty() || rtpSsrc == 0;) {
    ASSERT_LT(std::chrono::steady_clock::now(), end) << "no sender report";
    RtspReader::Item item;
    while (reader.pop(item)) {
      ASSERT_EQ(item.kind, RtspReader::Item::Kind::Data);
      if (item.channel == 1 && report.empty()) report = item.data;
      if (item.channel == 0) rtpSsrc = rtp::parse(item.data)->ssrc;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    uint8_t buf[65536];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    ASSERT_TRUE(reader.feed({buf, static_cast<size_t>(n)}).ok());
  }
  ASSERT_EQ(report.size(), 48u);  // SR 28 + SDES 20
  auto u32 = [&report](size_t i) {
    return uint32_t{report[i]} << 24 | uint32_t{report[i + 1]} << 16 | uint32_t{report[i + 2]} << 8 |
           report[i + 3];
  };
  EXPECT_EQ(report[0], 0x80);
  EXPECT_EQ(report[1], 200);
  EXPECT_EQ(u32(4), rtpSsrc);
  const auto unixNow =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  EXPECT_NEAR(static_cast<double>(u32(8)) - 2208988800.0, static_cast<double>(unixNow), 3.0) << "NTP seconds";
  EXPECT_EQ(report[29], 202) << "SDES";
  EXPECT_EQ(std::string(report.begin() + 38, report.begin() + 47), "printcast") << "CNAME";
  ::close(fd);
}

// Optional credentials (the control port's token): OPTIONS stays open, everything else gets 401
// with a Basic challenge until the token comes as the Basic password or as ?token=.
TEST(RtspServer, AsksForTheTokenWhenConfigured) {
  RtspStream stream;
  RtspServerConfig config;
  config.port = 0;
  config.authorize = [](std::string_view authorization, std::string_view token) {
    return authorization == "Basic dTpzM2NyZXQ=" || token == "s3cret";  // u:s3cret
  };
  auto server = RtspServer::start(config, {{"/stream", &stream}});
  ASSERT_TRUE(server) << server.error().describe();
  Producer producer(stream);
  const std::string base = "127.0.0.1:" + std::to_string((*server)->port()) + "/stream";
  const int fd = connectTo((*server)->port());
  ASSERT_GE(fd, 0);
  auto r = converse(fd, "OPTIONS rtsp://" + base + " RTSP/1.0\r\nCSeq: 1\r\n\r\n");
  EXPECT_EQ(r.rfind("RTSP/1.0 200", 0), 0u) << r;
  r = converse(fd, "DESCRIBE rtsp://" + base + " RTSP/1.0\r\nCSeq: 2\r\n\r\n");
  EXPECT_EQ(r.rfind("RTSP/1.0 401", 0), 0u) << r;
  EXPECT_NE(r.find("WWW-Authenticate: Basic realm=\"printcast\""), std::string::npos) << r;
  r = converse(fd, "DESCRIBE rtsp://" + base + "?token=s3cret RTSP/1.0\r\nCSeq: 3\r\n\r\n");
  EXPECT_EQ(r.rfind("RTSP/1.0 200", 0), 0u) << r;
  ::close(fd);

  auto refused = createRtspPullCapture("rtsp://" + base);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.code(), hal::Errc::PermissionDenied) << refused.error().describe();
  auto cam = createRtspPullCapture("rtsp://u:s3cret@" + base);
  ASSERT_TRUE(cam) << cam.error().describe();
  EXPECT_GE((*server)->stats().unauthorized, 2u);
}

TEST(RtspServer, LimitsConnectionsPerAddressAndClosesSilentOnes) {
  RtspStream stream;
  RtspServerConfig config;
  config.port = 0;
  config.maxPerAddress = 2;
  config.headTimeout = 1s;
  auto server = RtspServer::start(config, {{"/stream", &stream}});
  ASSERT_TRUE(server) << server.error().describe();
  const int a = connectTo((*server)->port());
  const int b = connectTo((*server)->port());
  const int c = connectTo((*server)->port());
  ASSERT_TRUE(a >= 0 && b >= 0 && c >= 0);
  // The third from the same address is closed at once; the first two are closed after 1 s
  // without a request (a slowloris holds nothing).
  auto closedWithin = [](int fd, std::chrono::milliseconds wait) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return false;
    char byte;
    return ::recv(fd, &byte, 1, 0) == 0;
  };
  EXPECT_TRUE(closedWithin(c, 1000ms));
  EXPECT_TRUE(closedWithin(a, 4000ms));
  EXPECT_TRUE(closedWithin(b, 1000ms));
  EXPECT_GE((*server)->stats().refused, 1u);
  EXPECT_GE((*server)->stats().timedOut, 2u);
  ::close(a);
  ::close(b);
  ::close(c);
}

}  // namespace
}  // namespace printcast::transport
