// SPDX-License-Identifier: MIT
// Network cameras as sources (issue 10): the streamer pulling HTTP MJPEG from another printcast
// and from ffmpeg's mpjpeg server (a third-party server from Debian), served to real clients
// (ffprobe) and our own parsers; the camera going away and coming back under connected viewers.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <memory>
#include <thread>

#include "printcast/codecs/h264.h"
#include "printcast/codecs/jpeg.h"
#include "printcast/transport/mjpeg.h"
#include "printcast/transport/rtp_h264.h"
#include "test_client.h"
#include "ws_client.h"

extern char** environ;

using namespace std::chrono_literals;
using printcast::testing::CommandResult;
using printcast::testing::ffmpegDecode;
using printcast::testing::httpRequest;
using printcast::testing::runCommand;
using printcast::testing::StreamConnection;
using printcast::testing::StreamerProcess;
using printcast::testing::WsClient;

namespace {

using Clock = std::chrono::steady_clock;

uint16_t freePort() { return printcast::testing::freeTcpPort(); }

// A program running in the background for the length of a test (killed when destroyed).
class Background {
 public:
  explicit Background(std::vector<std::string> argv) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Background() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool ok() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
};

nlohmann::json cameraStatus(uint16_t controlPort) {
  const auto r = httpRequest(controlPort, "GET", "/status");
  if (r.status != 200) return {};
  return nlohmann::json::parse(r.body, nullptr, false).value("camera", nlohmann::json::object());
}

// Polls /status until the camera's signal is `signal` (true: streaming); false after `timeout`.
bool waitForSignal(uint16_t controlPort, bool signal, std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  while (Clock::now() < end) {
    const auto camera = cameraStatus(controlPort);
    if (camera.is_object() && camera.value("signal", !signal) == signal) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

std::string url(uint16_t port, const std::string& path) {
  return "http://127.0.0.1:" + std::to_string(port) + path;
}

CommandResult probeFlv(uint16_t port) {
  return runCommand(
      {"ffprobe", "-v", "error", "-analyzeduration", "1000000", "-probesize", "100000", "-select_streams",
       "v:0", "-show_entries", "stream=codec_name,width,height", "-of", "default=nw=1", url(port, "/flv")},
      30s);
}

// MJPEG parts a viewer of `c` receives in `duration`; -1 when the stream broke or ended.
long partsWithin(StreamConnection& c, printcast::transport::mjpeg::Parser& parser,
                 std::chrono::milliseconds duration, std::vector<std::vector<uint8_t>>* keep = nullptr) {
  long parts = 0;
  const auto end = Clock::now() + duration;
  while (Clock::now() < end) {
    const std::string chunk = c.read(1 << 20, 200ms);
    if (!parser.feed({reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size()})) return -1;
    for (auto& p : parser.takeParts()) {
      ++parts;
      if (keep != nullptr) keep->push_back(std::move(p));
    }
  }
  return parts;
}

std::vector<std::string> cameraArgs(uint16_t port) {
  return {"--board",      "virtual",       "--port", std::to_string(port), "--resolution",
          "640x480",      "--desired-fps", "15",     "--mjpeg-fps",        "15",
          "--no-display", "--flv-port",    "-1",     "--ws-port",          "-1",
          "--no-ring"};
}

// The pulling streamer: another size than the camera's, to see the camera's size win.
std::vector<std::string> pullArgs(const std::string& source) {
  return {"--board",       "virtual", "--source",    source, "--resolution", "1280x720",
          "--desired-fps", "30",      "--mjpeg-fps", "30",   "--no-display", "--no-ring"};
}

TEST(MjpegPullSource, ServesAnotherStreamersMjpegToEveryOutputWithoutReencoding) {
  const uint16_t cameraPort = freePort();
  StreamerProcess camera(PRINTCAST_STREAMER_BIN, cameraArgs(cameraPort));
  ASSERT_TRUE(camera.ok()) << camera.log();
  StreamerProcess puller(PRINTCAST_STREAMER_BIN, pullArgs(url(cameraPort, "/stream")));
  ASSERT_TRUE(puller.ok()) << puller.log();
  ASSERT_TRUE(waitForSignal(puller.controlPort(), true, 10s)) << puller.log();

  const auto status = cameraStatus(puller.controlPort());
  EXPECT_EQ(status.value("name", ""), "http://127.0.0.1:" + std::to_string(cameraPort) + "/stream");
  EXPECT_EQ(status.value("width", 0), 640);  // the camera's size, not --resolution
  EXPECT_EQ(status.value("height", 0), 480);

  // MJPEG viewers get the camera's JPEGs as they are: each one byte-identical to one the camera
  // itself served (the puller inserts nothing, since printcast's JPEGs carry their tables).
  StreamConnection upstream(cameraPort, "/stream");
  StreamConnection viewer(puller.streamPort(), "/stream");
  ASSERT_TRUE(upstream.ok() && viewer.ok());
  printcast::transport::mjpeg::Parser upParser, viewParser;
  std::vector<std::vector<uint8_t>> upParts, viewParts;
  std::thread reader([&] { (void)partsWithin(upstream, upParser, 3s, &upParts); });
  const long parts = partsWithin(viewer, viewParser, 3s, &viewParts);
  reader.join();
  EXPECT_GE(parts, 20) << "15 fps for 3 s";
  ASSERT_GE(viewParts.size(), 10u);
  size_t identical = 0;
  for (const auto& v : viewParts) identical += std::find(upParts.begin(), upParts.end(), v) != upParts.end();
  EXPECT_GE(identical, viewParts.size() / 2) << "the puller's JPEGs are the camera's";

  auto snapshot = httpRequest(puller.streamPort(), "GET", "/snapshot");
  ASSERT_EQ(snapshot.status, 200);
  auto info = printcast::codecs::inspectJpeg(
      {reinterpret_cast<const uint8_t*>(snapshot.body.data()), snapshot.body.size()});
  ASSERT_TRUE(info) << info.error().describe();
  EXPECT_EQ(info->size.width, 640);

  // H.264 is encoded from the decoded JPEGs while someone watches: ffprobe reads /flv.
  const CommandResult r = probeFlv(puller.streamPort());
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("codec_name=h264"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("width=640"), std::string::npos) << r.out;
}

// ffmpeg's own multipart server (boundary "ffmpeg", "Content-type"/"Content-length" headers):
// the command the issue names, serving 320x240.
TEST(MjpegPullSource, PullsFfmpegsMpjpegServer) {
  const uint16_t port = freePort();
  Background ffmpeg({"ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
                     "testsrc=size=320x240:rate=15", "-c:v", "mjpeg", "-q:v", "5", "-f", "mpjpeg", "-listen",
                     "1", url(port, "/")});
  ASSERT_TRUE(ffmpeg.ok());
  StreamerProcess puller(PRINTCAST_STREAMER_BIN, pullArgs(url(port, "/")));
  ASSERT_TRUE(puller.ok()) << puller.log();
  ASSERT_TRUE(waitForSignal(puller.controlPort(), true, 20s)) << puller.log();
  EXPECT_EQ(cameraStatus(puller.controlPort()).value("width", 0), 320);

  StreamConnection viewer(puller.streamPort(), "/stream");
  ASSERT_TRUE(viewer.ok());
  printcast::transport::mjpeg::Parser parser;
  std::vector<std::vector<uint8_t>> parts;
  EXPECT_GE(partsWithin(viewer, parser, 2s, &parts), 15) << "15 fps for 2 s";
  ASSERT_FALSE(parts.empty());
  auto info = printcast::codecs::inspectJpeg(parts.back());
  ASSERT_TRUE(info) << info.error().describe();
  EXPECT_EQ(info->size.height, 240);

  const CommandResult r = probeFlv(puller.streamPort());
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("width=320"), std::string::npos) << r.out;
}

// The camera goes away (killed) and comes back on the same port: the puller's viewers keep their
// connection throughout (NO SIGNAL frames meanwhile) and get pictures again without reconnecting.
TEST(MjpegPullSource, RecoversWhenTheCameraComesBackWhileViewersStayConnected) {
  const uint16_t cameraPort = freePort();
  auto camera = std::make_unique<StreamerProcess>(PRINTCAST_STREAMER_BIN, cameraArgs(cameraPort));
  ASSERT_TRUE(camera->ok()) << camera->log();
  StreamerProcess puller(PRINTCAST_STREAMER_BIN, pullArgs(url(cameraPort, "/stream")));
  ASSERT_TRUE(puller.ok()) << puller.log();
  ASSERT_TRUE(waitForSignal(puller.controlPort(), true, 10s)) << puller.log();

  StreamConnection viewer(puller.streamPort(), "/stream");
  ASSERT_TRUE(viewer.ok());
  printcast::transport::mjpeg::Parser parser;
  EXPECT_GE(partsWithin(viewer, parser, 1s, nullptr), 8);

  EXPECT_EQ(camera->terminate(10s), 0);
  camera.reset();
  ASSERT_TRUE(waitForSignal(puller.controlPort(), false, 10s)) << puller.log();
  const auto lost = cameraStatus(puller.controlPort());
  EXPECT_NE(lost.value("state", "").find("no-signal"), std::string::npos) << lost.dump();
  // NO SIGNAL pictures at about 1 fps on the same connection.
  EXPECT_GE(partsWithin(viewer, parser, 2500ms, nullptr), 1);

  camera = std::make_unique<StreamerProcess>(PRINTCAST_STREAMER_BIN, cameraArgs(cameraPort));
  ASSERT_TRUE(camera->ok()) << camera->log();
  ASSERT_TRUE(waitForSignal(puller.controlPort(), true, 15s)) << puller.log();
  EXPECT_GE(cameraStatus(puller.controlPort()).value("reconnects", 0), 1);
  EXPECT_GE(partsWithin(viewer, parser, 1s, nullptr), 8) << "the same viewer, pictures again";
}

// A snapshot URL (image/jpeg with Content-Length: printcast's own /snapshot) is polled at the
// puller's frame rate, one request per frame.
TEST(MjpegPullSource, PollsASnapshotUrlAtTheFrameRate) {
  const uint16_t cameraPort = freePort();
  StreamerProcess camera(PRINTCAST_STREAMER_BIN, cameraArgs(cameraPort));
  ASSERT_TRUE(camera.ok()) << camera.log();
  StreamerProcess puller(PRINTCAST_STREAMER_BIN,
                         {"--board", "virtual", "--source", url(cameraPort, "/snapshot"), "--desired-fps",
                          "5", "--mjpeg-fps", "5", "--no-display", "--no-ring"});
  ASSERT_TRUE(puller.ok()) << puller.log();
  ASSERT_TRUE(waitForSignal(puller.controlPort(), true, 10s)) << puller.log();
  StreamConnection viewer(puller.streamPort(), "/stream");
  ASSERT_TRUE(viewer.ok());
  printcast::transport::mjpeg::Parser parser;
  const long parts = partsWithin(viewer, parser, 3s, nullptr);
  EXPECT_GE(parts, 8) << "about 5 polls per second";
  EXPECT_LE(parts, 25) << "polled at the frame rate, not as fast as the camera answers (15 fps)";
}

// A camera behind HTTP Digest (and one behind Basic): the URL's credentials answer its
// challenge; wrong ones are reported, not retried forever. The camera is Python's http.server
// checking the answers with hashlib (tests/integration/auth_mjpeg_server.py).
TEST(MjpegPullSource, AnswersDigestAndBasicChallengesWithTheUrlsCredentials) {
  const std::string jpeg = ::testing::TempDir() + "/auth_camera.jpg";
  ASSERT_EQ(runCommand({"ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        "testsrc=size=320x240", "-frames:v", "1", jpeg},
                       30s)
                .exitCode,
            0);
  for (const std::string mode : {"digest", "basic"}) {
    const uint16_t port = freePort();
    Background camera({PRINTCAST_AUTH_MJPEG_SERVER, std::to_string(port), "admin", "s3cret:pw", jpeg, mode});
    ASSERT_TRUE(camera.ok());
    // The password holds a ':' (percent-encoded in the URL's userinfo).
    StreamerProcess puller(PRINTCAST_STREAMER_BIN,
                           pullArgs("http://admin:s3cret%3Apw@127.0.0.1:" + std::to_string(port) + "/video"));
    ASSERT_TRUE(puller.ok()) << puller.log();
    ASSERT_TRUE(waitForSignal(puller.controlPort(), true, 15s)) << mode << ": " << puller.log();
    StreamConnection viewer(puller.streamPort(), "/stream");
    printcast::transport::mjpeg::Parser parser;
    EXPECT_GE(partsWithin(viewer, parser, 1s, nullptr), 8) << mode;

    StreamerProcess wrong(PRINTCAST_STREAMER_BIN,
                          pullArgs("http://admin:guess@127.0.0.1:" + std::to_string(port) + "/video"));
    ASSERT_TRUE(wrong.ok()) << wrong.log();
    const auto end = Clock::now() + 10s;
    std::string state;
    while (Clock::now() < end && state.find("refused these credentials") == std::string::npos) {
      state = cameraStatus(wrong.controlPort()).value("state", "");
      std::this_thread::sleep_for(100ms);
    }
    EXPECT_NE(state.find("refused these credentials"), std::string::npos) << mode << ": " << state;
  }
}

// A URL that answers something else than MJPEG: the camera state names the reason (and the
// streamer keeps serving NO SIGNAL rather than exiting).
TEST(MjpegPullSource, ANonMjpegUrlIsReportedWithTheReason) {
  StreamerProcess other(PRINTCAST_STREAMER_BIN, {"--board", "virtual", "--no-display", "--no-ring"});
  ASSERT_TRUE(other.ok()) << other.log();
  StreamerProcess puller(PRINTCAST_STREAMER_BIN, pullArgs(url(other.streamPort(), "/no-such-page")));
  ASSERT_TRUE(puller.ok()) << puller.log();
  const auto end = Clock::now() + 10s;
  std::string state;
  while (Clock::now() < end && state.find("HTTP 404") == std::string::npos) {
    state = cameraStatus(puller.controlPort()).value("state", "");
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_NE(state.find("HTTP 404"), std::string::npos) << state;
  EXPECT_EQ(httpRequest(puller.streamPort(), "GET", "/snapshot").status, 200) << "NO SIGNAL picture";
}

// --- ws-push: cameras that push JPEGs over a WebSocket (tools/mock-camera.py, Python websockets) --

std::vector<std::string> pushArgs() {
  return {"--board",     "virtual", "--source",     "ws-push",   "--desired-fps",           "30",
          "--mjpeg-fps", "30",      "--no-display", "--no-ring", "--ingest-max-message-kb", "1024"};
}

std::vector<std::string> mockCamera(uint16_t port, std::vector<std::string> options) {
  std::vector<std::string> argv = {PRINTCAST_MOCK_CAMERA,
                                   "ws://127.0.0.1:" + std::to_string(port) + "/ingest"};
  argv.insert(argv.end(), options.begin(), options.end());
  return argv;
}

// What an ESP-IDF camera sends (1024-byte continuation frames, an id before each JPEG), with
// every 5th message broken (half a JPEG, or text): viewers get only whole pictures, ffprobe reads
// the H.264 made from them, and the broken ones are counted.
TEST(WsPushSource, ServesAPushingCameraThroughFragmentsIdsAndBrokenMessages) {
  StreamerProcess streamer(PRINTCAST_STREAMER_BIN, pushArgs());
  ASSERT_TRUE(streamer.ok()) << streamer.log();
  Background camera(mockCamera(streamer.streamPort(), {"--fps", "15", "--seconds", "30", "--fragment", "1024",
                                                       "--prefix", "CAM2", "--bad-every", "5"}));
  ASSERT_TRUE(camera.ok());
  ASSERT_TRUE(waitForSignal(streamer.controlPort(), true, 15s)) << streamer.log();

  StreamConnection viewer(streamer.streamPort(), "/stream");
  ASSERT_TRUE(viewer.ok());
  printcast::transport::mjpeg::Parser parser;
  std::vector<std::vector<uint8_t>> parts;
  EXPECT_GE(partsWithin(viewer, parser, 2s, &parts), 15) << "12 good pictures a second";
  for (const auto& part : parts) {
    auto info = printcast::codecs::inspectJpeg(part);
    ASSERT_TRUE(info) << info.error().describe();
    EXPECT_EQ(info->size.width, 640);
    EXPECT_EQ(part.back(), 0xD9) << "no truncated picture reaches a viewer";
  }
  const CommandResult r = probeFlv(streamer.streamPort());
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("codec_name=h264"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("width=640"), std::string::npos) << r.out;

  const auto ingest = cameraStatus(streamer.controlPort()).value("ingest", nlohmann::json::object());
  EXPECT_EQ(ingest.value("camera_clients", 0), 1) << ingest.dump();
  EXPECT_GE(ingest.value("dropped", 0), 3) << ingest.dump();
  EXPECT_GT(ingest.value("frames", 0), ingest.value("dropped", 0)) << ingest.dump();

  // The same counters for Prometheus, in a form promtool accepts (Debian's prometheus package).
  const auto metrics = httpRequest(streamer.streamPort(), "GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("printcast_ingest_cameras 1"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("# TYPE printcast_ingest_dropped_total counter"), std::string::npos)
      << metrics.body;
  const std::string path = ::testing::TempDir() + "/ingest-metrics.txt";
  std::ofstream(path) << metrics.body;
  const CommandResult check = runCommand({"sh", "-c", "promtool check metrics < " + path}, 30s);
  EXPECT_EQ(check.exitCode, 0) << check.out << check.err;
  EXPECT_EQ(check.out + check.err, "") << "promtool lint findings";
}

// A 50 MB message (1 MiB allowed here) is refused with close code 1009 (message too big); the
// same camera reconnecting with sane pictures streams.
TEST(WsPushSource, RefusesAMessageAboveTheLimitWith1009) {
  StreamerProcess streamer(PRINTCAST_STREAMER_BIN, pushArgs());
  ASSERT_TRUE(streamer.ok()) << streamer.log();
  const CommandResult r = runCommand(
      mockCamera(streamer.streamPort(), {"--big-message-mb", "50", "--fps", "15", "--seconds", "3"}), 60s);
  ASSERT_EQ(r.exitCode, 0) << r.err;
  const auto result = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(result.is_object()) << r.out << r.err;
  EXPECT_EQ(result.value("big_close_code", 0), 1009) << r.out;
  const auto ingest = cameraStatus(streamer.controlPort()).value("ingest", nlohmann::json::object());
  EXPECT_GE(ingest.value("refused", 0), 1) << ingest.dump();
  EXPECT_GE(ingest.value("frames", 0), 10) << ingest.dump();
}

// An Arduino-style camera reconnecting every 500 ms: each new connection takes over at once, the
// viewer's stream never stops; when the camera stops for good, NO SIGNAL after the 10 s watchdog.
TEST(WsPushSource, ACameraReconnectingEvery500msKeepsTheViewerStreamingAndItsLossIsReported) {
  StreamerProcess streamer(PRINTCAST_STREAMER_BIN, pushArgs());
  ASSERT_TRUE(streamer.ok()) << streamer.log();
  {
    Background camera(
        mockCamera(streamer.streamPort(), {"--fps", "15", "--seconds", "30", "--reconnect-ms", "500"}));
    ASSERT_TRUE(camera.ok());
    ASSERT_TRUE(waitForSignal(streamer.controlPort(), true, 15s)) << streamer.log();
    StreamConnection viewer(streamer.streamPort(), "/stream");
    ASSERT_TRUE(viewer.ok());
    printcast::transport::mjpeg::Parser parser;
    EXPECT_GE(partsWithin(viewer, parser, 3s, nullptr), 25) << "15 fps, less the reconnections";
    const auto status = cameraStatus(streamer.controlPort());
    EXPECT_GE(status["ingest"].value("takeovers", 0), 3) << status.dump();
    EXPECT_EQ(status.value("reconnects", -1), 0) << "the streamer never lost the camera: " << status.dump();
  }
  ASSERT_TRUE(waitForSignal(streamer.controlPort(), false, 15s)) << streamer.log();
  EXPECT_NE(cameraStatus(streamer.controlPort()).value("state", "").find("no picture for 10 s"),
            std::string::npos)
      << cameraStatus(streamer.controlPort()).dump();
}

// --- RTP H.264 (the RTSP camera source's depacketizer) against ffmpeg's RTP muxer --------------

// ffmpeg packetizes x264 into RTP (single NAL units and FU-A, RFC 6184) and writes the SDP; the
// SDP parser and the depacketizer rebuild the stream, and ffprobe decodes every frame of it.
TEST(RtpH264, RebuildsFfmpegsRtpStreamIntoAStreamFfprobeDecodes) {
  const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(sock, 0);
  const int rcvbuf = 8 << 20;
  (void)::setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string dir = ::testing::TempDir();
  const std::string sdpFile = dir + "/rtp_h264_test.sdp";
  const std::string h264File = dir + "/rtp_h264_test.h264";

  std::vector<std::vector<uint8_t>> packets;
  std::thread receiver([&] {
    std::vector<uint8_t> buf(65536);
    pollfd p{sock, POLLIN, 0};
    while (::poll(&p, 1, 3000) > 0) {
      const ssize_t n = ::recv(sock, buf.data(), buf.size(), 0);
      if (n > 0) packets.emplace_back(buf.begin(), buf.begin() + n);
    }
  });
  const CommandResult ff =
      runCommand({"ffmpeg",    "-nostdin",    "-loglevel",
                  "error",     "-re",         "-f",
                  "lavfi",     "-i",          "testsrc=size=320x240:rate=15",
                  "-t",        "3",           "-c:v",
                  "libx264",   "-preset",     "ultrafast",
                  "-tune",     "zerolatency", "-g",
                  "15",        "-f",          "rtp",
                  "-sdp_file", sdpFile,       "rtp://127.0.0.1:" + std::to_string(ntohs(addr.sin_port))},
                 60s);
  receiver.join();
  ::close(sock);
  ASSERT_EQ(ff.exitCode, 0) << ff.err;

  std::ifstream sdpIn(sdpFile);
  const std::string sdp((std::istreambuf_iterator<char>(sdpIn)), std::istreambuf_iterator<char>());
  auto video = printcast::transport::rtp::parseSdpH264(sdp);
  ASSERT_TRUE(video) << video.error().describe() << "\n" << sdp;
  EXPECT_EQ(video->clockRate, 90000u);
  EXPECT_EQ(video->packetizationMode, 1) << sdp;

  printcast::transport::rtp::H264Depacketizer depacketizer;
  depacketizer.setParameterSets(video->sps, video->pps);
  std::ofstream out(h264File, std::ios::binary);
  size_t accessUnits = 0, idrs = 0;
  for (const auto& bytes : packets) {
    auto packet = printcast::transport::rtp::parse(bytes);
    ASSERT_TRUE(packet) << packet.error().describe();
    ASSERT_EQ(packet->payloadType, video->payloadType);
    depacketizer.push(*packet);
    printcast::transport::rtp::AccessUnit au;
    while (depacketizer.pop(au)) {
      ++accessUnits;
      idrs += au.idr ? 1 : 0;
      out.write(reinterpret_cast<const char*>(au.annexB.data()),
                static_cast<std::streamsize>(au.annexB.size()));
    }
  }
  out.close();
  EXPECT_EQ(depacketizer.stats().lostPackets, 0u);
  EXPECT_GE(accessUnits, 40u) << "3 s at 15 fps (the last one waits for a successor)";
  EXPECT_GE(idrs, 3u) << "-g 15: an IDR a second";

  const CommandResult probe =
      runCommand({"ffprobe", "-v", "error", "-f", "h264", "-count_frames", "-show_entries",
                  "stream=codec_name,width,height,nb_read_frames", "-of", "default=nw=1", h264File},
                 30s);
  ASSERT_EQ(probe.exitCode, 0) << probe.err;
  EXPECT_EQ(probe.err, "") << "decoded without an error";
  EXPECT_NE(probe.out.find("width=320"), std::string::npos) << probe.out;
  EXPECT_NE(probe.out.find("nb_read_frames=" + std::to_string(accessUnits)), std::string::npos) << probe.out;
}

// The ESP32 relay's layout (--profile esp32-relay): cameras push to the ingest port at "/",
// viewers get plain Annex-B H.264 messages on the WebSocket port, the pages and the relay's
// /status fields are on the stream port.
TEST(Esp32RelayProfile, CamerasPushToTheIngestPortAndViewersGetTheRelaysLayout) {
  StreamerProcess relay(PRINTCAST_STREAMER_BIN, {"--board", "virtual", "--profile", "esp32-relay",
                                                 "--ingest-port", "0", "--no-display", "--no-ring"});
  ASSERT_TRUE(relay.ok()) << relay.log();
  ASSERT_NE(relay.ingestPort(), 0) << relay.log();
  ASSERT_NE(relay.wsPort(), 0) << relay.log();
  Background camera({PRINTCAST_MOCK_CAMERA, "ws://127.0.0.1:" + std::to_string(relay.ingestPort()) + "/",
                     "--fps", "15", "--seconds", "30"});
  ASSERT_TRUE(camera.ok());
  ASSERT_TRUE(waitForSignal(relay.controlPort(), true, 15s)) << relay.log();

  WsClient viewer(relay.wsPort(), "/");
  ASSERT_TRUE(viewer.ok()) << viewer.error();
  for (int i = 0; i < 5; ++i) {
    auto e = viewer.nextMessage(5s);
    ASSERT_TRUE(e && e->kind == printcast::transport::ws::Event::Kind::Message) << "message " << i;
    ASSERT_GT(e->payload.size(), 12u);
    EXPECT_EQ(std::vector<uint8_t>(e->payload.begin(), e->payload.begin() + 4),
              (std::vector<uint8_t>{0, 0, 0, 1}));
    if (i == 0) {
      EXPECT_TRUE(printcast::codecs::h264::containsIdr(e->payload)) << "a viewer starts on an IDR";
    }
    // No reCamera trailer: the last 8 bytes are slice data, not a millisecond wall-clock time.
    uint64_t tail = 0;
    for (int b = 0; b < 8; ++b)
      tail |= static_cast<uint64_t>(e->payload[e->payload.size() - 8 + b]) << (8 * b);
    const auto nowMs = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 std::chrono::system_clock::now().time_since_epoch())
                                                 .count());
    EXPECT_FALSE(tail > nowMs - 60000 && tail < nowMs + 60000)
        << "message " << i << " carries a timestamp trailer";
  }

  const auto status =
      nlohmann::json::parse(httpRequest(relay.streamPort(), "GET", "/status").body, nullptr, false);
  EXPECT_EQ(status.value("camera_clients", -1), 1) << status.dump();
  EXPECT_GE(status.value("viewer_clients", -1), 1) << status.dump();
  EXPECT_EQ(status.value("streaming", false), true) << status.dump();
  const auto page = httpRequest(relay.streamPort(), "GET", "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("<video src=/stream.mp4"), std::string::npos) << page.body;
  const auto mjpegPage = httpRequest(relay.streamPort(), "GET", "/mjpeg");
  EXPECT_EQ(mjpegPage.status, 200);
  EXPECT_NE(mjpegPage.body.find("<img src=/stream"), std::string::npos) << mjpegPage.body;
}

// ----------------------------------------------------------------------------- RTSP pull

// GStreamer's gst-rtsp-server (tests/integration/rtsp_server.py: x264, rtph264pay) on `port`,
// ready once it accepts connections.
std::unique_ptr<Background> rtspServer(uint16_t port, std::vector<std::string> options) {
  std::vector<std::string> argv = {PRINTCAST_RTSP_SERVER, "--port", std::to_string(port)};
  argv.insert(argv.end(), options.begin(), options.end());
  auto server = std::make_unique<Background>(argv);
  for (const auto end = Clock::now() + 10s; Clock::now() < end; std::this_thread::sleep_for(50ms)) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    const bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (up) return server;
  }
  return nullptr;
}

std::string rtspUrl(uint16_t port, const std::string& credentials = "") {
  return "rtsp://" + credentials + "127.0.0.1:" + std::to_string(port) + "/stream";
}

// ffmpeg decodes `seconds` of /flv: exit 0 and nothing on stderr (-v error) is a clean decode.
CommandResult decodeFlv(uint16_t port, int seconds) { return ffmpegDecode(url(port, "/flv"), seconds); }

// The camera's SPS/PPS only in the SDP (config-interval=0, as many IP cameras): the access
// units go to /flv as they are, each IDR with the parameter sets put back in front; ffmpeg
// decodes it cleanly and the size is the camera's, not the asked one.
TEST(RtspSource, PassesACamerasH264ThroughWithParameterSetsOnlyInTheSdp) {
  const uint16_t port = freePort();
  auto server = rtspServer(port, {"--size", "640x360", "--fps", "15", "--config-interval", "0"});
  ASSERT_TRUE(server);
  StreamerProcess puller(PRINTCAST_STREAMER_BIN, pullArgs(rtspUrl(port)));
  ASSERT_TRUE(puller.ok()) << puller.log();
  ASSERT_TRUE(waitForSignal(puller.controlPort(), true, 20s)) << puller.log();
  const auto camera = cameraStatus(puller.controlPort());
  EXPECT_EQ(camera.value("width", 0), 640) << camera.dump();
  EXPECT_EQ(camera.value("height", 0), 360) << camera.dump();
  EXPECT_EQ(camera.value("name", ""), rtspUrl(port)) << camera.dump();
  EXPECT_EQ(camera.value("format", ""), "H264") << camera.dump();
  // The GOP is the camera's (the server's x264: an IDR a second), measured and shown.
  const auto h264 = camera.value("h264", nlohmann::json::object());
  EXPECT_EQ(h264.value("passthrough", false), true) << camera.dump();
  int64_t gopMs = 0;
  for (const auto end = Clock::now() + 5s; Clock::now() < end && gopMs == 0;
       std::this_thread::sleep_for(100ms)) {
    gopMs = cameraStatus(puller.controlPort())
                .value("h264", nlohmann::json::object())
                .value("gop_ms", int64_t{0});
  }
  EXPECT_NEAR(static_cast<double>(gopMs), 1000.0, 150.0);

  const CommandResult probe = probeFlv(puller.streamPort());
  ASSERT_EQ(probe.exitCode, 0) << probe.err;
  EXPECT_NE(probe.out.find("width=640"), std::string::npos) << probe.out;
  const CommandResult decode = decodeFlv(puller.streamPort(), 3);
  EXPECT_EQ(decode.exitCode, 0) << decode.err;
  EXPECT_EQ(decode.err, "") << "3 s decoded without an error";
}

// Digest (gst-rtsp-server's GstRTSPAuth): the URL's credentials answer the challenge; wrong ones
// are reported with the reason, and never shown in /status.
TEST(RtspSource, AnswersADigestChallengeWithTheUrlsCredentials) {
  const uint16_t port = freePort();
  auto server = rtspServer(port, {"--user", "admin", "--password", "s3cret", "--auth", "digest"});
  ASSERT_TRUE(server);
  StreamerProcess puller(PRINTCAST_STREAMER_BIN, pullArgs(rtspUrl(port, "admin:s3cret@")));
  ASSERT_TRUE(puller.ok()) << puller.log();
  ASSERT_TRUE(waitForSignal(puller.controlPort(), true, 20s)) << puller.log();
  EXPECT_EQ(cameraStatus(puller.controlPort()).dump().find("s3cret"), std::string::npos);

  StreamerProcess wrong(PRINTCAST_STREAMER_BIN, pullArgs(rtspUrl(port, "admin:wrong@")));
  ASSERT_TRUE(wrong.ok()) << wrong.log();
  std::string state;
  for (const auto end = Clock::now() + 15s; Clock::now() < end; std::this_thread::sleep_for(100ms)) {
    state = cameraStatus(wrong.controlPort()).dump();
    if (state.find("refused these credentials") != std::string::npos) break;
  }
  EXPECT_NE(state.find("refused these credentials"), std::string::npos) << state;
}

// The RTSP server is killed mid-stream and started again on the same port: the puller reports
// the loss, reconnects by itself (no restart of printcast), and the /flv viewer that stayed
// connected throughout gets the camera's pictures again.
TEST(RtspSource, RecoversWhenTheServerRestartsWhileViewersStayConnected) {
  const uint16_t port = freePort();
  auto server = rtspServer(port, {"--fps", "15"});
  ASSERT_TRUE(server);
  StreamerProcess puller(PRINTCAST_STREAMER_BIN, pullArgs(rtspUrl(port)));
  ASSERT_TRUE(puller.ok()) << puller.log();
  ASSERT_TRUE(waitForSignal(puller.controlPort(), true, 20s)) << puller.log();
  StreamConnection viewer(puller.streamPort(), "/flv");
  ASSERT_TRUE(viewer.ok());
  EXPECT_FALSE(viewer.read(1 << 20, 3s).empty());

  server.reset();  // SIGKILL: no TEARDOWN, the connection just closes
  ASSERT_TRUE(waitForSignal(puller.controlPort(), false, 15s)) << puller.log();
  server = rtspServer(port, {"--fps", "15"});
  ASSERT_TRUE(server);
  ASSERT_TRUE(waitForSignal(puller.controlPort(), true, 20s)) << puller.log();
  EXPECT_GE(cameraStatus(puller.controlPort()).value("reconnects", 0), 1);
  size_t bytes = 0;
  for (const auto end = Clock::now() + 3s; Clock::now() < end;) bytes += viewer.read(1 << 20, 200ms).size();
  EXPECT_GT(bytes, 10000u) << "the same viewer, pictures again";
}

// RTP over UDP unicast (--rtsp-transport udp) from a server that offers only UDP.
TEST(RtspSource, ReceivesRtpOverUdp) {
  const uint16_t port = freePort();
  auto server = rtspServer(port, {"--protocols", "udp", "--size", "320x240"});
  ASSERT_TRUE(server);
  auto args = pullArgs(rtspUrl(port));
  args.insert(args.end(), {"--rtsp-transport", "udp"});
  StreamerProcess puller(PRINTCAST_STREAMER_BIN, args);
  ASSERT_TRUE(puller.ok()) << puller.log();
  ASSERT_TRUE(waitForSignal(puller.controlPort(), true, 20s)) << puller.log();
  const CommandResult decode = decodeFlv(puller.streamPort(), 2);
  EXPECT_EQ(decode.exitCode, 0) << decode.err;
  EXPECT_EQ(decode.err, "") << "decoded without an error";
}

// ----------------------------------------------------------------------------- HTTP-FLV pull

// The snapshot a puller of an H.264 camera serves: a JPEG of `size` (decoded on demand), or, in a
// build without libavcodec, a 503 naming it.
void expectSnapshotOf(uint16_t streamPort, printcast::hal::Size size) {
  const auto snapshot = httpRequest(streamPort, "GET", "/snapshot");
  if (snapshot.status == 503 && snapshot.body.find("libavcodec") != std::string::npos) return;
  ASSERT_EQ(snapshot.status, 200) << snapshot.body;
  EXPECT_EQ(snapshot.headers.at("content-type"), "image/jpeg");
  auto info = printcast::codecs::inspectJpeg(
      {reinterpret_cast<const uint8_t*>(snapshot.body.data()), snapshot.body.size()});
  ASSERT_TRUE(info.ok()) << info.error().describe();
  EXPECT_EQ(info->size, size);
}

// Another printcast's /flv as the camera (what gkcam's :18088/flv is to a Kobra): its H.264
// goes to the puller's H.264 outputs as it comes (passthrough, the camera's size, not the asked
// 1280x720), ffmpeg decodes the puller's /flv cleanly, and /snapshot is decoded from it.
TEST(FlvPullSource, PassesAnotherStreamersFlvThrough) {
  const uint16_t cameraPort = freePort();
  StreamerProcess camera(PRINTCAST_STREAMER_BIN, cameraArgs(cameraPort));
  ASSERT_TRUE(camera.ok()) << camera.log();
  StreamerProcess puller(PRINTCAST_STREAMER_BIN, pullArgs(url(cameraPort, "/flv")));
  ASSERT_TRUE(puller.ok()) << puller.log();
  ASSERT_TRUE(waitForSignal(puller.controlPort(), true, 20s)) << puller.log();
  const auto status = cameraStatus(puller.controlPort());
  EXPECT_EQ(status.value("name", ""), url(cameraPort, "/flv")) << status.dump();
  EXPECT_EQ(status.value("format", ""), "H264") << status.dump();
  EXPECT_EQ(status.value("width", 0), 640) << status.dump();
  EXPECT_EQ(status.value("height", 0), 480) << status.dump();
  EXPECT_EQ(status.value("h264", nlohmann::json::object()).value("passthrough", false), true)
      << status.dump();

  const CommandResult decode = decodeFlv(puller.streamPort(), 3);
  EXPECT_EQ(decode.exitCode, 0) << decode.err;
  EXPECT_EQ(decode.err, "") << "3 s decoded without an error";
  expectSnapshotOf(puller.streamPort(), {640, 480});
}

// ffmpeg's own HTTP server (-f flv -listen 1: application/octet-stream, an FLV with audio and
// video flags and an onMetaData of its own) at a path ending in ".flv".
TEST(FlvPullSource, PullsFfmpegsFlvServer) {
  const uint16_t port = freePort();
  Background ffmpeg({"ffmpeg",
                     "-nostdin",
                     "-loglevel",
                     "error",
                     "-re",
                     "-f",
                     "lavfi",
                     "-i",
                     "testsrc2=size=320x240:rate=15",
                     "-c:v",
                     "libx264",
                     "-g",
                     "15",
                     "-bf",
                     "0",
                     "-pix_fmt",
                     "yuv420p",
                     "-f",
                     "flv",
                     "-listen",
                     "1",
                     url(port, "/live.flv")});
  ASSERT_TRUE(ffmpeg.ok());
  StreamerProcess puller(PRINTCAST_STREAMER_BIN, pullArgs(url(port, "/live.flv")));
  ASSERT_TRUE(puller.ok()) << puller.log();
  ASSERT_TRUE(waitForSignal(puller.controlPort(), true, 20s)) << puller.log();
  const auto status = cameraStatus(puller.controlPort());
  EXPECT_EQ(status.value("format", ""), "H264") << status.dump();
  EXPECT_EQ(status.value("width", 0), 320) << status.dump();
  const CommandResult decode = decodeFlv(puller.streamPort(), 2);
  EXPECT_EQ(decode.exitCode, 0) << decode.err;
  EXPECT_EQ(decode.err, "") << "decoded without an error";
  expectSnapshotOf(puller.streamPort(), {320, 240});
}

// ----------------------------------------------------------------------------- H.264 cameras: JPEGs

nlohmann::json decoderStats(uint16_t controlPort) {
  const auto r = httpRequest(controlPort, "GET", "/api/stats");
  if (r.status != 200) return nlohmann::json::object();
  return nlohmann::json::parse(r.body, nullptr, false).value("h264_decoder", nlohmann::json::object());
}

// An H.264-only camera (RTSP) still serves /snapshot and /stream: its pictures are decoded
// (libavcodec) only while a JPEG client asks. Nothing is decoded before the first request; a
// snapshot in the middle of the camera's 10 s GOP is answered at once from the kept access
// units (waiting for the next IDR would take seconds); the MJPEG client gets 640x360 JPEGs; when
// it leaves, decoding stops. In a build without libavcodec the snapshot fails at once, saying so.
TEST(RtspSource, SnapshotsAndMjpegFromAnH264OnlyCameraAreDecodedOnDemand) {
  const uint16_t port = freePort();
  auto server = rtspServer(port, {"--size", "640x360", "--fps", "15", "--gop", "150"});
  ASSERT_TRUE(server);
  StreamerProcess puller(PRINTCAST_STREAMER_BIN, pullArgs(rtspUrl(port)));
  ASSERT_TRUE(puller.ok()) << puller.log();
  ASSERT_TRUE(waitForSignal(puller.controlPort(), true, 20s)) << puller.log();
  std::this_thread::sleep_for(3s);  // ~45 access units into the camera's first GOP

  const auto idle = decoderStats(puller.controlPort());
  const auto start = Clock::now();
  const auto snapshot = httpRequest(puller.streamPort(), "GET", "/snapshot");
  const auto took = Clock::now() - start;
  if (idle.value("backend", "") == "not-built") {
    EXPECT_EQ(snapshot.status, 503) << snapshot.body;
    EXPECT_NE(snapshot.body.find("libavcodec"), std::string::npos) << snapshot.body;
    EXPECT_LT(took, 2s) << "the reason at once, not after the 3 s snapshot timeout";
    return;
  }
  // libavcodec is loaded by the first decoder, not at start (h264_decoder.h).
  EXPECT_EQ(idle.value("backend", ""), "libavcodec (loaded at first use)") << idle.dump();
  EXPECT_EQ(idle.value("pictures", -1), 0) << idle.dump();
  EXPECT_FALSE(idle.value("decoding", true)) << idle.dump();
  EXPECT_GE(idle.value("kept_access_units", 0), 20) << idle.dump();

  ASSERT_EQ(snapshot.status, 200) << snapshot.body;
  EXPECT_EQ(snapshot.headers.at("content-type"), "image/jpeg");
  auto info = printcast::codecs::inspectJpeg(
      {reinterpret_cast<const uint8_t*>(snapshot.body.data()), snapshot.body.size()});
  ASSERT_TRUE(info.ok()) << info.error().describe();
  EXPECT_EQ(info->size, (printcast::hal::Size{640, 360}));
  EXPECT_LT(took, 2s) << "answered from the kept GOP, not at the camera's next IDR";
  const auto caughtUp = decoderStats(puller.controlPort());
  EXPECT_GE(caughtUp.value("catch_ups", 0), 1) << caughtUp.dump();
  EXPECT_GE(caughtUp.value("catch_up_access_units", 0), 20) << caughtUp.dump();
  EXPECT_EQ(caughtUp.value("errors", -1), 0) << caughtUp.dump();
  EXPECT_EQ(caughtUp.value("backend", "").rfind("libavcodec ", 0), 0u) << caughtUp.dump();
  EXPECT_NE(caughtUp.value("backend", ""), "libavcodec (loaded at first use)") << caughtUp.dump();

  {
    StreamConnection viewer(puller.streamPort(), "/stream");
    ASSERT_TRUE(viewer.ok());
    printcast::transport::mjpeg::Parser parser;
    std::vector<std::vector<uint8_t>> parts;
    const long count = partsWithin(viewer, parser, 3s, &parts);
    EXPECT_GE(count, 15) << "the camera's 15 fps, decoded and JPEG-encoded: " << count << " in 3 s";
    ASSERT_FALSE(parts.empty());
    auto part = printcast::codecs::inspectJpeg(parts.back());
    ASSERT_TRUE(part.ok()) << part.error().describe();
    EXPECT_EQ(part->size, (printcast::hal::Size{640, 360}));
  }
  // Nobody asks any more: the decoder goes idle and decodes nothing (the GOP is still kept).
  std::this_thread::sleep_for(1500ms);
  const auto after = decoderStats(puller.controlPort());
  std::this_thread::sleep_for(1s);
  const auto later = decoderStats(puller.controlPort());
  EXPECT_FALSE(later.value("decoding", true)) << later.dump();
  EXPECT_EQ(later.value("pictures", -1), after.value("pictures", -2)) << later.dump();
  EXPECT_GE(later.value("kept_access_units", 0), 1) << later.dump();
}

}  // namespace
