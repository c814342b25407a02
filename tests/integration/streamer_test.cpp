// SPDX-License-Identifier: MIT
// The streamer on the virtual board, end to end: ffprobe/ffmpeg on /flv (8080 and the slicer
// port), MJPEG multipart, snapshots, touch changing the display, CORS, errors, slow readers.
#include <fcntl.h>
#include <turbojpeg.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "printcast/codecs/h264.h"
#include "printcast/codecs/jpeg.h"
#include "printcast/transport/flv.h"
#include "printcast/transport/mjpeg.h"
#include "printcast/transport/mp4.h"
#include "printcast/transport/rtmp_publish.h"
#include "test_client.h"
#include "ws_client.h"

using namespace std::chrono_literals;
using printcast::testing::CommandResult;
using printcast::testing::ffmpegDecode;
using printcast::testing::httpRequest;
using printcast::testing::runCommand;
using printcast::testing::StreamConnection;
using printcast::testing::StreamerProcess;
using printcast::testing::WsClient;
namespace ws = printcast::transport::ws;

namespace {

constexpr int kWidth = 640;
constexpr int kHeight = 480;
constexpr int kFps = 15;
constexpr int kMjpegFps = 10;

class Streamer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    process_ = std::make_unique<StreamerProcess>(
        PRINTCAST_STREAMER_BIN,
        std::vector<std::string>{"--board", "virtual", "--resolution", "640x480", "--desired-fps",
                                 std::to_string(kFps), "--mjpeg-fps", std::to_string(kMjpegFps),
                                 "--display-fps", "5", "--allow-origin", "*"});
  }
  static void TearDownTestSuite() { process_.reset(); }
  void SetUp() override { ASSERT_TRUE(process_->ok()) << process_->log(); }

  static std::string url(uint16_t port, const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(port) + path;
  }
  static std::unique_ptr<StreamerProcess> process_;
};
std::unique_ptr<StreamerProcess> Streamer::process_;

struct Rgb {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // RGB24
  const uint8_t* at(int x, int y) const { return &pixels[static_cast<size_t>((y * width + x) * 3)]; }
};

Rgb decodeJpeg(const std::string& jpeg) {
  Rgb out;
  tjhandle tj = tjInitDecompress();
  int subsampling = 0;
  int colorspace = 0;
  if (tjDecompressHeader3(tj, reinterpret_cast<const unsigned char*>(jpeg.data()), jpeg.size(), &out.width,
                          &out.height, &subsampling, &colorspace) == 0) {
    out.pixels.resize(static_cast<size_t>(out.width * out.height * 3));
    if (tjDecompress2(tj, reinterpret_cast<const unsigned char*>(jpeg.data()), jpeg.size(), out.pixels.data(),
                      out.width, 0, out.height, TJPF_RGB, 0) != 0) {
      out = Rgb{};
    }
  }
  tjDestroy(tj);
  return out;
}

// Mean absolute RGB difference over a square of radius r around (cx, cy).
double regionDiff(const Rgb& a, const Rgb& b, int cx, int cy, int r) {
  double sum = 0;
  int n = 0;
  for (int y = std::max(0, cy - r); y < std::min(a.height, cy + r); ++y) {
    for (int x = std::max(0, cx - r); x < std::min(a.width, cx + r); ++x) {
      for (int c = 0; c < 3; ++c) sum += std::abs(a.at(x, y)[c] - b.at(x, y)[c]);
      n += 3;
    }
  }
  return n == 0 ? 0 : sum / n;
}

TEST_F(Streamer, FlvOnStreamPortIsH264AtConfiguredSize) {
  const CommandResult r =
      runCommand({"ffprobe", "-v", "error", "-analyzeduration", "1000000", "-probesize", "100000",
                  "-select_streams", "v:0", "-show_entries", "stream=codec_name,width,height", "-of",
                  "default=nw=1", url(process_->streamPort(), "/flv")},
                 30s);
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("codec_name=h264"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("width=640"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("height=480"), std::string::npos) << r.out;
}

TEST_F(Streamer, FlvOnSlicerPortHasTheStockHeadersAndProbes) {
  ASSERT_NE(process_->flvPort(), 0);
  StreamConnection c(process_->flvPort(), "/flv");
  ASSERT_TRUE(c.ok());
  EXPECT_NE(c.rawHeaders().find("HTTP/1.1 200 OK\r\n"), std::string::npos) << c.rawHeaders();
  EXPECT_EQ(c.header("content-type"), "text/plain") << c.rawHeaders();
  EXPECT_EQ(c.header("access-control-allow-origin"), "*") << c.rawHeaders();
  EXPECT_EQ(c.header("content-length"), "99999999999") << c.rawHeaders();
  EXPECT_EQ(c.header("transfer-encoding"), "") << c.rawHeaders();

  const CommandResult r =
      runCommand({"ffprobe", "-v", "error", "-analyzeduration", "1000000", "-probesize", "100000",
                  "-select_streams", "v:0", "-show_entries", "stream=codec_name,width,height", "-of",
                  "default=nw=1", url(process_->flvPort(), "/flv")},
                 30s);
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("codec_name=h264"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("width=640"), std::string::npos) << r.out;
}

TEST_F(Streamer, FlvFirstPacketIsAKeyframeAndTimestampsStartNearZero) {
  for (uint16_t port : {process_->streamPort(), process_->flvPort()}) {
    const CommandResult r =
        runCommand({"ffprobe", "-v", "error", "-analyzeduration", "1000000", "-probesize", "100000",
                    "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags", "-read_intervals",
                    "%+#5", "-of", "csv=p=0", url(port, "/flv")},
                   30s);
    ASSERT_EQ(r.exitCode, 0) << r.err;
    std::istringstream lines(r.out);
    std::string first;
    std::getline(lines, first);
    ASSERT_FALSE(first.empty()) << r.out;
    EXPECT_NE(first.find('K'), std::string::npos) << "first packet not a keyframe: " << r.out;
    EXPECT_LT(std::stod(first.substr(0, first.find(','))), 0.5) << r.out;
  }
}

TEST_F(Streamer, FfmpegDecodesThreeSecondsOfFlvWithoutErrors) {
  const CommandResult r = ffmpegDecode(url(process_->streamPort(), "/flv"), 3);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.err, "");
}

TEST_F(Streamer, OurFlvParserSeesHeaderSequenceHeaderThenKeyframe) {
  StreamConnection c(process_->streamPort(), "/flv");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c.header("content-type"), "video/x-flv");
  std::string bytes;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  printcast::transport::flv::ParsedStream parsed;
  while (std::chrono::steady_clock::now() < deadline) {
    bytes += c.read(1 << 20, 1s);
    parsed = printcast::transport::flv::parseStream(
        {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
    if (parsed.tags.size() >= 8) break;
  }
  ASSERT_GE(parsed.tags.size(), 8u);
  EXPECT_EQ(parsed.flags, 0x01) << "video only";
  EXPECT_TRUE(parsed.previousTagSizesValid);
  EXPECT_EQ(parsed.tags[0].type, 18) << "onMetaData first";
  ASSERT_EQ(parsed.tags[1].type, 9);
  EXPECT_EQ(parsed.tags[1].data[0], 0x17);
  EXPECT_EQ(parsed.tags[1].data[1], 0x00) << "AVC sequence header";
  EXPECT_EQ(parsed.tags[2].data[0], 0x17) << "first frame is a keyframe";
  EXPECT_EQ(parsed.tags[2].data[1], 0x01);
  EXPECT_LT(parsed.tags[2].timestampMs, 200u);
  for (size_t i = 3; i < parsed.tags.size(); ++i) {
    EXPECT_GE(parsed.tags[i].timestampMs, parsed.tags[i - 1].timestampMs);
  }
}

// Fragmented MP4 for a plain <video>: ffprobe sees H.264 at the configured size starting on a
// keyframe with increasing timestamps; ffmpeg decodes it without a complaint.
TEST_F(Streamer, Fmp4FirstPacketIsAKeyframeAndTimestampsIncrease) {
  const CommandResult r =
      runCommand({"ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                  "stream=codec_name,width,height:packet=pts_time,flags", "-read_intervals", "%+#30", "-of",
                  "csv=p=0", url(process_->streamPort(), "/stream.mp4")},
                 30s);
  ASSERT_EQ(r.exitCode, 0) << r.err;
  std::istringstream lines(r.out);
  std::vector<std::string> packets;
  std::string line, stream;
  while (std::getline(lines, line)) {
    if (line.rfind("h264", 0) == 0)
      stream = line;
    else if (!line.empty())
      packets.push_back(line);
  }
  EXPECT_EQ(stream, "h264,640,480") << r.out;
  ASSERT_GE(packets.size(), 30u) << r.out;
  EXPECT_NE(packets[0].find('K'), std::string::npos) << "first packet not a keyframe: " << r.out;
  EXPECT_LT(std::stod(packets[0]), 0.5) << r.out;
  double previous = -1;
  for (const auto& p : packets) {
    const double t = std::stod(p);
    EXPECT_GT(t, previous) << r.out;
    previous = t;
  }
}

TEST_F(Streamer, FfmpegDecodesThreeSecondsOfFmp4WithoutErrors) {
  const CommandResult r = ffmpegDecode(url(process_->streamPort(), "/stream.mp4"), 3);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.err, "");
}

TEST_F(Streamer, OurBoxParserSeesInitSegmentThenAKeyframeFragment) {
  StreamConnection c(process_->streamPort(), "/stream.mp4");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c.header("content-type"), "video/mp4");
  EXPECT_EQ(c.header("access-control-allow-origin"), "*");
  namespace mp4 = printcast::transport::mp4;
  std::string bytes;
  std::vector<mp4::Box> boxes;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (boxes.size() < 6 && std::chrono::steady_clock::now() < deadline) {
    bytes += c.read(1 << 20, 1s);
    boxes = mp4::parseBoxes({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  }
  ASSERT_GE(boxes.size(), 6u);
  std::vector<std::string> types;
  for (const auto& b : boxes) types.push_back(b.type);
  EXPECT_EQ(std::vector<std::string>(types.begin(), types.begin() + 6),
            (std::vector<std::string>{"ftyp", "moov", "moof", "mdat", "moof", "mdat"}));
  // The first fragment's only sample is a sync sample (trun flags sample_depends_on = 2).
  const auto traf = mp4::parseBoxes(mp4::parseBoxes(boxes[2].payload)[1].payload);
  ASSERT_EQ(traf.size(), 3u);
  const auto& trun = traf[2].payload;
  ASSERT_GE(trun.size(), 24u);
  EXPECT_EQ(trun[20], 0x02) << "first sample is not a keyframe";
  // The mdat holds one access unit in length-prefixed form (x264 puts an SEI first) with an IDR
  // slice and no parameter sets (those are in avcC).
  const auto& mdat = boxes[3].payload;
  std::vector<int> nalTypes;
  for (size_t at = 0; at + 4 < mdat.size();) {
    const size_t length = (size_t{mdat[at]} << 24) | (size_t{mdat[at + 1]} << 16) |
                          (size_t{mdat[at + 2]} << 8) | size_t{mdat[at + 3]};
    ASSERT_LE(at + 4 + length, mdat.size()) << "a NAL unit length runs past the mdat";
    nalTypes.push_back(mdat[at + 4] & 0x1f);
    at += 4 + length;
  }
  EXPECT_NE(std::find(nalTypes.begin(), nalTypes.end(), 5), nalTypes.end()) << "no IDR slice";
  EXPECT_EQ(std::find(nalTypes.begin(), nalTypes.end(), 7), nalTypes.end()) << "an SPS in the sample";
}

// A client joining mid-GOP asks for a keyframe instead of waiting for the next one: with the
// GOP at 2 s and an encoder already running for another client, each of three joiners gets its
// first (IDR) fragment well within a GOP.
TEST_F(Streamer, AJoiningFmp4ClientStartsOnAFreshIdrNotTheNextGop) {
  namespace mp4 = printcast::transport::mp4;
  StreamConnection watcher(process_->streamPort(), "/stream.mp4");
  ASSERT_TRUE(watcher.ok());
  ASSERT_FALSE(watcher.read(1 << 16, 5s).empty());  // the encoder runs
  for (int joiner = 0; joiner < 3; ++joiner) {
    watcher.read(1 << 20, 700ms);  // somewhere in the GOP
    const auto start = std::chrono::steady_clock::now();
    StreamConnection c(process_->streamPort(), "/stream.mp4");
    ASSERT_TRUE(c.ok());
    std::string bytes;
    bool gotFragment = false;
    while (!gotFragment && std::chrono::steady_clock::now() - start < 5s) {
      bytes += c.read(1 << 20, 200ms);
      for (const auto& b : mp4::parseBoxes({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}))
        gotFragment = gotFragment || b.type == "mdat";
    }
    const auto waited = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(gotFragment);
    EXPECT_LT(waited, 800ms) << "joiner " << joiner << " waited "
                             << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()
                             << " ms for its first IDR (GOP is 2 s)";
  }
}

TEST_F(Streamer, MjpegStreamIsReadByFfprobeAndOurParser) {
  for (const char* path : {"/stream", "/?action=stream&timestamp=123&bypassCache=1"}) {
    const CommandResult r =
        runCommand({"ffprobe", "-v", "error", "-analyzeduration", "1000000", "-probesize", "100000", "-f",
                    "mpjpeg", "-select_streams", "v:0", "-show_entries", "stream=codec_name,width,height",
                    "-of", "default=nw=1", url(process_->streamPort(), path)},
                   30s);
    ASSERT_EQ(r.exitCode, 0) << path << ": " << r.err;
    EXPECT_NE(r.out.find("codec_name=mjpeg"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("width=640"), std::string::npos) << r.out;

    StreamConnection c(process_->streamPort(), path);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c.status(), 200);
    EXPECT_EQ(c.header("content-type"),
              "multipart/x-mixed-replace;boundary=" + std::string(printcast::transport::mjpeg::kBoundary));
    EXPECT_EQ(c.header("access-control-allow-origin"), "*");
    printcast::transport::mjpeg::Parser parser;
    std::vector<std::vector<uint8_t>> parts;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (parts.size() < 3 && std::chrono::steady_clock::now() < deadline) {
      const std::string chunk = c.read(1 << 20, 1s);
      ASSERT_TRUE(parser.feed({reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size()}))
          << parser.error();
      for (auto& p : parser.takeParts()) parts.push_back(std::move(p));
    }
    ASSERT_GE(parts.size(), 3u);
    for (const auto& p : parts) {
      auto info = printcast::codecs::inspectJpeg(p);
      ASSERT_TRUE(info.ok());
      EXPECT_EQ(info->size.width, kWidth);
      EXPECT_EQ(info->size.height, kHeight);
    }
  }
}

// A browser's <img> (Accept names image/*) gets each part's headers ahead of its JPEG, so Chromium
// paints a picture as soon as it is complete (mjpeg::Framing); programs keep Content-Length and
// X-Timestamp, and `?advance_headers=` overrides either way as with ustreamer.
TEST_F(Streamer, MjpegBrowsersGetTheNextPartsHeadersAhead) {
  namespace mjpeg = printcast::transport::mjpeg;
  const std::string chromiumImg = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
  struct Case {
    std::string target;
    std::map<std::string, std::string> headers;
    bool advance;
  };
  for (const Case& c : {Case{"/stream", {{"Accept", chromiumImg}}, true},
                        Case{"/stream", {{"Accept", "text/html,application/xhtml+xml,*/*;q=0.8"}}, true},
                        Case{"/stream?advance_headers=1", {}, true}, Case{"/stream", {}, false},
                        Case{"/stream", {{"Accept", "*/*"}}, false},
                        Case{"/stream?advance_headers=0", {{"Accept", chromiumImg}}, false},
                        Case{"/display", {{"Accept", chromiumImg}}, true}}) {
    StreamConnection s(process_->streamPort(), c.target, 0, "", c.headers);
    ASSERT_TRUE(s.ok()) << c.target;
    std::string bytes;
    mjpeg::Parser parser;
    std::vector<std::vector<uint8_t>> parts;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (parts.size() < 2 && std::chrono::steady_clock::now() < deadline) {
      const std::string chunk = s.read(1 << 20, 1s);
      bytes += chunk;
      ASSERT_TRUE(parser.feed({reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size()}))
          << parser.error();
      for (auto& p : parser.takeParts()) parts.push_back(std::move(p));
    }
    ASSERT_EQ(parts.size(), 2u) << c.target;
    const std::string start = mjpeg::preamble() + (c.advance ? mjpeg::advancePartHeader() : "Content-Type");
    EXPECT_EQ(bytes.substr(0, start.size()), start) << c.target;
    EXPECT_EQ(bytes.find("Content-Length") != std::string::npos, !c.advance) << c.target;
    if (c.advance) {
      // The first JPEG is followed at once by the boundary and the second part's headers.
      const std::string ahead = mjpeg::partTrailer() + mjpeg::advancePartHeader();
      EXPECT_EQ(bytes.substr(start.size() + parts[0].size(), ahead.size()), ahead) << c.target;
    }
  }
}

TEST_F(Streamer, SnapshotsAreJpegsOfTheRightSize) {
  struct Case {
    std::string path;
    int width, height;
  };
  for (const Case& c :
       {Case{"/snapshot", kWidth, kHeight}, Case{"/?action=snapshot&cacheBust=7", kWidth, kHeight},
        Case{"/display/snapshot", 800, 480}}) {
    const auto reply = httpRequest(process_->streamPort(), "GET", c.path);
    ASSERT_EQ(reply.status, 200) << c.path << " " << reply.error << reply.body;
    EXPECT_EQ(reply.headers.at("content-type"), "image/jpeg");
    EXPECT_EQ(reply.headers.at("access-control-allow-origin"), "*");
    const Rgb image = decodeJpeg(reply.body);
    EXPECT_EQ(image.width, c.width) << c.path;
    EXPECT_EQ(image.height, c.height) << c.path;
  }
}

TEST_F(Streamer, TouchChangesTheDisplayAtTheMappedPlace) {
  const auto before = httpRequest(process_->streamPort(), "GET", "/display/snapshot");
  ASSERT_EQ(before.status, 200);
  // A point in the upright image the user sees; the virtual board maps it through the KS1's
  // transform to the panel and the screen draws a mark there, which must come back upright here.
  const int x = 150;
  const int y = 330;
  const auto touch =
      httpRequest(process_->controlPort(), "POST", "/api/touch", R"({"x":150,"y":330,"duration":20})",
                  {{"Content-Type", "application/json"}});
  ASSERT_EQ(touch.status, 200) << touch.body;
  EXPECT_NE(touch.body.find("\"status\":\"ok\""), std::string::npos) << touch.body;
  const auto after = httpRequest(process_->streamPort(), "GET", "/display/snapshot");
  ASSERT_EQ(after.status, 200);
  const Rgb a = decodeJpeg(before.body);
  const Rgb b = decodeJpeg(after.body);
  ASSERT_EQ(a.width, 800);
  ASSERT_EQ(b.width, 800);
  EXPECT_GT(regionDiff(a, b, x, y, 6), 30.0) << "no mark where the touch landed";
  // The mirrored place (where an unmapped touch would land) stays as it was.
  EXPECT_LT(regionDiff(a, b, 800 - x, 480 - y, 6), 10.0) << "a mark at the unmapped place";

  // Form-encoded bodies work too.
  const auto form = httpRequest(process_->controlPort(), "POST", "/api/touch", "x=600&y=100&duration=10",
                                {{"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(form.status, 200) << form.body;
}

TEST_F(Streamer, BadTouchRequestsGet4xxWithAReason) {
  struct Case {
    std::string body;
    std::string reason;
  };
  for (const Case& c :
       {Case{"{not json", "not a JSON object"}, Case{R"({"x":10})", "missing 'y'"},
        Case{R"({"x":"ten","y":5})", "'x' is not a number"}, Case{R"({"x":900,"y":5})", "outside"},
        Case{R"({"x":5,"y":5,"duration":0})", "duration"}, Case{"x=1", "missing 'y'"}}) {
    const bool form = c.body.front() != '{';
    const auto r =
        httpRequest(process_->controlPort(), "POST", "/api/touch", c.body,
                    {{"Content-Type", form ? "application/x-www-form-urlencoded" : "application/json"}});
    EXPECT_EQ(r.status, 400) << c.body;
    EXPECT_NE(r.body.find(c.reason), std::string::npos) << c.body << " -> " << r.body;
    EXPECT_NE(r.body.find("\"status\":\"error\""), std::string::npos) << r.body;
  }
  EXPECT_EQ(httpRequest(process_->controlPort(), "GET", "/api/touch").status, 405);
}

// The stream port is open to every page (players on Mainsail, Fluidd, OctoPrint); the control
// port's CORS is same-origin (tests/integration/hardening_test.cpp).
TEST_F(Streamer, CorsOnEveryStreamPortResponseAndPreflightAnswered) {
  for (const char* path : {"/status", "/nope", "/snapshot"}) {
    const auto r = httpRequest(process_->streamPort(), "GET", path);
    EXPECT_EQ(r.headers.count("access-control-allow-origin"), 1u) << path;
  }
  const auto stats = httpRequest(process_->controlPort(), "GET", "/api/stats");
  EXPECT_EQ(stats.status, 200);
  EXPECT_EQ(stats.headers.count("access-control-allow-origin"), 0u) << stats.rawHeaders;
  EXPECT_NE(stats.body.find("\"fps\""), std::string::npos);
  const auto pre = httpRequest(process_->streamPort(), "OPTIONS", "/stream.mp4", "",
                               {{"Origin", "http://example.test"},
                                {"Access-Control-Request-Method", "GET"},
                                {"Access-Control-Request-Headers", "range"}});
  EXPECT_EQ(pre.status, 204);
  EXPECT_EQ(pre.headers.count("access-control-allow-origin"), 1u);
  ASSERT_EQ(pre.headers.count("access-control-allow-methods"), 1u);
  EXPECT_NE(pre.headers.at("access-control-allow-methods").find("GET"), std::string::npos);
  EXPECT_EQ(httpRequest(process_->streamPort(), "GET", "/nope").status, 404);
}

TEST_F(Streamer, StatusReportsBoardAndCamera) {
  // The camera opens on its own thread after the ports are up: wait (bounded) for it.
  printcast::testing::HttpReply r;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  do {
    r = httpRequest(process_->streamPort(), "GET", "/status");
  } while (r.body.find("\"state\":\"starting\"") != std::string::npos &&
           std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.at("content-type"), "application/json");
  EXPECT_NE(r.body.find("\"id\":\"virtual\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"state\":\"streaming\""), std::string::npos) << r.body;
}

// Reads MJPEG parts for `duration`; returns how many complete parts arrived.
size_t countParts(uint16_t port, std::chrono::seconds duration) {
  return printcast::testing::countMjpegParts(port, duration);
}

TEST_F(Streamer, ASlowReaderDoesNotSlowOthersAndMemoryStaysBounded) {
  // Two clients that never read (MJPEG and FLV) with tiny receive buffers, for 10 s.
  StreamConnection stalledMjpeg(process_->streamPort(), "/stream", 4096);
  StreamConnection stalledFlv(process_->streamPort(), "/flv", 4096);
  StreamConnection stalledMp4(process_->streamPort(), "/stream.mp4", 4096);
  ASSERT_TRUE(stalledMjpeg.ok());
  ASSERT_TRUE(stalledFlv.ok());
  ASSERT_TRUE(stalledMp4.ok());
  std::this_thread::sleep_for(2s);  // let the stalled sockets fill up (this is the scenario, not a sync)
  const long rssStart = process_->rssKiB();
  const size_t parts = countParts(process_->streamPort(), 8s);
  const long rssEnd = process_->rssKiB();
  // The healthy client keeps (nearly) the full MJPEG rate while the stalled ones sit there.
  EXPECT_GE(static_cast<double>(parts), 0.8 * kMjpegFps * 8) << "parts in 8 s: " << parts;
  EXPECT_LT(rssEnd - rssStart, 16 * 1024) << "RSS grew from " << rssStart << " to " << rssEnd << " KiB";
  // A healthy fMP4 client gets the full H.264 rate next to the stalled ones.
  StreamConnection healthy(process_->streamPort(), "/stream.mp4");
  ASSERT_TRUE(healthy.ok());
  std::string bytes = healthy.read(1 << 20, 2s);
  const auto windowStart = std::chrono::steady_clock::now();
  const size_t before = bytes.size();
  while (std::chrono::steady_clock::now() - windowStart < 4s) bytes += healthy.read(1 << 20, 200ms);
  size_t fragments = 0;
  for (const auto& b : printcast::transport::mp4::parseBoxes(
           {reinterpret_cast<const uint8_t*>(bytes.data()) + before, bytes.size() - before}))
    fragments += b.type == "mdat" ? 1 : 0;
  EXPECT_GE(static_cast<double>(fragments), 0.8 * kFps * 4) << "fMP4 fragments in 4 s: " << fragments;
  // The stalled MJPEG client (large frames) has had frames dropped for it by now.
  const auto stats = nlohmann::json::parse(httpRequest(process_->controlPort(), "GET", "/api/stats").body);
  EXPECT_GT(stats["streams"]["mjpeg"]["frames_dropped"].get<uint64_t>(), 0u) << stats.dump();
}

TEST_F(Streamer, NoEncodingWhileNobodyWatches) {
  // Wait (bounded) until earlier tests' stream clients are gone.
  auto stats = [&] {
    return nlohmann::json::parse(httpRequest(process_->controlPort(), "GET", "/api/stats").body, nullptr,
                                 false);
  };
  nlohmann::json before;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  do {
    before = stats();
    ASSERT_FALSE(before.is_discarded());
  } while ((before["streams"]["flv"]["clients"] != 0 || before["streams"]["mjpeg"]["clients"] != 0) &&
           std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(before["streams"]["flv"]["clients"], 0);
  ASSERT_EQ(before["streams"]["mjpeg"]["clients"], 0);
  // A frame that was being encoded when the last client left may still be counted: start
  // counting only after a few more camera frames.
  const uint64_t settled = before["frames"]["camera"].get<uint64_t>() + 3;
  do {
    before = stats();
  } while (before["frames"]["camera"].get<uint64_t>() < settled &&
           std::chrono::steady_clock::now() < deadline + 5s);
  // Let the camera deliver at least 10 more frames, then check nothing was encoded meanwhile.
  nlohmann::json after;
  do {
    after = stats();
  } while (after["frames"]["camera"].get<uint64_t>() < before["frames"]["camera"].get<uint64_t>() + 10 &&
           std::chrono::steady_clock::now() < deadline + 10s);
  ASSERT_GE(after["frames"]["camera"].get<uint64_t>(), before["frames"]["camera"].get<uint64_t>() + 10);
  EXPECT_EQ(after["frames"]["h264"], before["frames"]["h264"]) << "H.264 encoded with no FLV client";
  EXPECT_EQ(after["frames"]["mjpeg"], before["frames"]["mjpeg"]) << "MJPEG encoded with no MJPEG client";
}

// ----------------------------------------------------------------------------- H.264 over WebSocket

namespace {

uint64_t trailerMs(const std::vector<uint8_t>& message) {
  uint64_t ms = 0;
  for (size_t i = 0; i < 8; ++i) ms |= static_cast<uint64_t>(message[message.size() - 8 + i]) << (8 * i);
  return ms;
}

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TEST_F(Streamer, WsMessagesAreWholeAccessUnitsThatFfprobeCounts) {
  constexpr int kMessages = 60;
  WsClient c(process_->streamPort(), "/ws");
  ASSERT_TRUE(c.ok()) << c.error();
  std::vector<std::vector<uint8_t>> messages;
  while (messages.size() < kMessages) {
    auto e = c.nextMessage(5s);
    ASSERT_TRUE(e) << "message " << messages.size() << " did not arrive";
    ASSERT_EQ(e->kind, ws::Event::Kind::Message);
    ASSERT_EQ(e->opcode, ws::Opcode::Binary);
    messages.push_back(std::move(e->payload));
  }
  // The first message: SPS, PPS and an IDR.
  std::vector<uint8_t> types;
  for (const auto& nal : printcast::codecs::h264::splitAnnexB(messages[0])) types.push_back(nal.type());
  EXPECT_NE(std::find(types.begin(), types.end(), 7), types.end()) << "no SPS in the first message";
  EXPECT_NE(std::find(types.begin(), types.end(), 8), types.end()) << "no PPS in the first message";
  EXPECT_NE(std::find(types.begin(), types.end(), 5), types.end()) << "no IDR in the first message";
  // A real decoder's count of frames equals the number of messages: one access unit each.
  char path[] = "/tmp/printcast-ws-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  for (const auto& m : messages) ASSERT_EQ(write(fd, m.data(), m.size()), static_cast<ssize_t>(m.size()));
  close(fd);
  const CommandResult r =
      runCommand({"ffprobe", "-v", "error", "-f", "h264", "-count_frames", "-show_entries",
                  "stream=nb_read_frames,width,height", "-of", "default=nw=1", path},
                 30s);
  unlink(path);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("nb_read_frames=" + std::to_string(kMessages)), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.out.find("width=640"), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "");
}

TEST_F(Streamer, WsTrailerTimestampsIncreaseAndAreNearNow) {
  ASSERT_NE(process_->wsPort(), 0);
  for (const auto& [port, target] :
       {std::pair{process_->streamPort(), std::string("/ws?ts=1")}, {process_->wsPort(), std::string("/")}}) {
    WsClient c(port, target);
    ASSERT_TRUE(c.ok()) << target << ": " << c.error();
    uint64_t previous = 0;
    for (int i = 0; i < 10; ++i) {
      auto e = c.nextMessage(5s);
      ASSERT_TRUE(e && e->kind == ws::Event::Kind::Message) << target << " message " << i;
      ASSERT_GT(e->payload.size(), 12u);
      // Annex-B in front of the trailer.
      EXPECT_EQ(std::vector<uint8_t>(e->payload.begin(), e->payload.begin() + 4),
                (std::vector<uint8_t>{0, 0, 0, 1}));
      const uint64_t ms = trailerMs(e->payload);
      EXPECT_GT(ms, previous) << target << " message " << i;
      EXPECT_NEAR(static_cast<double>(ms), static_cast<double>(nowMs()), 2000.0) << target;
      previous = ms;
    }
  }
}

TEST_F(Streamer, WsPingGetsPongAndCloseIsEchoed) {
  WsClient c(process_->streamPort(), "/ws");
  ASSERT_TRUE(c.ok()) << c.error();
  ASSERT_TRUE(c.send(ws::Opcode::Ping, {'h', 'i'}));
  std::optional<ws::Event> pong;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!pong && std::chrono::steady_clock::now() < deadline) {
    auto e = c.next(1s);
    if (e && e->kind == ws::Event::Kind::Pong) pong = std::move(e);
  }
  ASSERT_TRUE(pong) << "no Pong within 5 s";
  EXPECT_EQ(pong->payload, (std::vector<uint8_t>{'h', 'i'}));
  // Our Close (1000 "bye") is answered with a Close 1000, then the server closes TCP.
  ASSERT_TRUE(c.send(ws::Opcode::Close, {0x03, 0xE8, 'b', 'y', 'e'}));
  std::optional<ws::Event> close;
  while (auto e = c.next(5s)) {
    if (e->kind == ws::Event::Kind::Close) {
      close = std::move(e);
      break;
    }
  }
  ASSERT_TRUE(close) << "no Close answer";
  EXPECT_EQ(close->closeCode, 1000);
  EXPECT_TRUE(c.waitForTcpClose(5s));
}

TEST_F(Streamer, WsUnmaskedClientFrameIsClosedWith1002) {
  WsClient c(process_->streamPort(), "/ws");
  ASSERT_TRUE(c.ok()) << c.error();
  ASSERT_TRUE(c.sendRaw(ws::frame(ws::Opcode::Binary, std::vector<uint8_t>{1, 2, 3})));
  std::optional<ws::Event> close;
  while (auto e = c.next(5s)) {
    if (e->kind == ws::Event::Kind::Close) {
      close = std::move(e);
      break;
    }
  }
  ASSERT_TRUE(close) << "no Close after an unmasked frame";
  EXPECT_EQ(close->closeCode, ws::close_code::kProtocolError);
  EXPECT_NE(close->reason.find("not masked"), std::string::npos) << close->reason;
  EXPECT_TRUE(c.waitForTcpClose(5s));  // failed at once (RFC 6455 7.1.7), no Close answer awaited
}

TEST_F(Streamer, WsClientThatDoesNotReadDoesNotStallAFastOne) {
  WsClient stalled(process_->streamPort(), "/ws", 5s, 4096);
  ASSERT_TRUE(stalled.ok()) << stalled.error();
  WsClient fast(process_->streamPort(), "/ws");
  ASSERT_TRUE(fast.ok()) << fast.error();
  std::this_thread::sleep_for(2s);  // let the stalled socket fill up (the scenario, not a sync)
  const long rssStart = process_->rssKiB();
  // Drain what the fast client got meanwhile, then count 4 s of messages.
  while (fast.nextMessage(10ms)) {
  }
  const auto end = std::chrono::steady_clock::now() + 4s;
  int count = 0;
  while (std::chrono::steady_clock::now() < end) {
    if (auto e = fast.nextMessage(500ms); e && e->kind == ws::Event::Kind::Message) ++count;
  }
  EXPECT_GE(count, static_cast<int>(0.8 * kFps * 4)) << "messages in 4 s: " << count;
  EXPECT_LT(process_->rssKiB() - rssStart, 16 * 1024);
  // The stall did happen: access units were dropped for the client that reads nothing (its
  // kernel buffers fill in seconds at this bitrate; polled, bounded), and it is still connected.
  nlohmann::json stats;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  do {
    stats = nlohmann::json::parse(httpRequest(process_->controlPort(), "GET", "/api/stats").body);
    if (stats["streams"]["ws"]["frames_dropped"].get<uint64_t>() > 0) break;
    std::this_thread::sleep_for(200ms);
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_GT(stats["streams"]["ws"]["frames_dropped"].get<uint64_t>(), 0u)
      << "the client that reads nothing never stalled: " << stats.dump();
  EXPECT_GE(stats["streams"]["ws"]["clients"].get<int>(), 2);
}

TEST_F(Streamer, WsWithoutUpgradeIs426AndABadHandshakeIs400) {
  for (const auto& [port, target] :
       {std::pair{process_->streamPort(), std::string("/ws")}, {process_->wsPort(), std::string("/")}}) {
    const auto plain = httpRequest(port, "GET", target);
    EXPECT_EQ(plain.status, 426) << target << ": " << plain.body;
    EXPECT_NE(plain.body.find("WebSocket"), std::string::npos) << plain.body;
    EXPECT_EQ(plain.headers.count("upgrade"), 1u) << plain.rawHeaders;
    const auto bad = httpRequest(port, "GET", target, "",
                                 {{"Upgrade", "websocket"},
                                  {"Connection", "Upgrade"},
                                  {"Sec-WebSocket-Version", "13"},
                                  {"Sec-WebSocket-Key", "not-a-key"}});
    EXPECT_EQ(bad.status, 400) << target << ": " << bad.body;
    EXPECT_NE(bad.body.find("Sec-WebSocket-Key"), std::string::npos) << bad.body;
  }
}

TEST_F(Streamer, RingConsumerRecordsH264FfmpegDecodes) {
  const std::string out = "/tmp/" + process_->ringName() + ".h264";
  const CommandResult r = runCommand(
      {PRINTCAST_RING_CONSUMER_BIN, "-n", "30", "-t", "30", process_->ringName() + "-h264", out}, 40s);
  ASSERT_EQ(r.exitCode, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("wrote 30 frames"), std::string::npos) << r.out;
  const CommandResult probe =
      runCommand({"ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                  "stream=codec_name,width,height,nb_read_frames", "-of", "default=nw=1", out},
                 30s);
  const CommandResult decode =
      runCommand({"ffmpeg", "-v", "error", "-f", "h264", "-i", out, "-f", "null", "-"}, 30s);
  std::remove(out.c_str());
  ASSERT_EQ(probe.exitCode, 0) << probe.err;
  EXPECT_NE(probe.out.find("codec_name=h264"), std::string::npos) << probe.out;
  EXPECT_NE(probe.out.find("width=640"), std::string::npos) << probe.out;
  EXPECT_NE(probe.out.find("nb_read_frames=30"), std::string::npos) << probe.out;
  EXPECT_EQ(decode.exitCode, 0);
  EXPECT_EQ(decode.err, "");
}

TEST_F(Streamer, RingJpegFramesAndStats) {
  const std::string out = "/tmp/" + process_->ringName() + ".mjpeg";
  const CommandResult r = runCommand(
      {PRINTCAST_RING_CONSUMER_BIN, "-n", "5", "-t", "30", process_->ringName() + "-jpeg", out}, 40s);
  ASSERT_EQ(r.exitCode, 0) << r.out << r.err;
  const CommandResult probe =
      runCommand({"ffprobe", "-v", "error", "-f", "mjpeg", "-count_frames", "-show_entries",
                  "stream=codec_name,width,nb_read_frames", "-of", "default=nw=1", out},
                 30s);
  std::remove(out.c_str());
  EXPECT_NE(probe.out.find("codec_name=mjpeg"), std::string::npos) << probe.out << probe.err;
  EXPECT_NE(probe.out.find("nb_read_frames=5"), std::string::npos) << probe.out << probe.err;
  const auto stats =
      nlohmann::json::parse(httpRequest(process_->controlPort(), "GET", "/api/stats").body, nullptr, false);
  ASSERT_FALSE(stats.is_discarded());
  EXPECT_EQ(stats["rings"]["h264"]["name"], process_->ringName() + "-h264");
  EXPECT_GE(stats["rings"]["jpeg"]["frames_published"].get<uint64_t>(), 5u);
  const auto status =
      nlohmann::json::parse(httpRequest(process_->streamPort(), "GET", "/status").body, nullptr, false);
  ASSERT_FALSE(status.is_discarded());
  EXPECT_EQ(status["rings"]["enabled"], true);
}

TEST(StreamerLifecycle, SigtermStopsCleanlyWithClientsConnected) {
  StreamerProcess p(PRINTCAST_STREAMER_BIN, {"--board", "virtual"});
  ASSERT_TRUE(p.ok()) << p.log();
  StreamConnection mjpeg(p.streamPort(), "/stream");
  StreamConnection flv(p.streamPort(), "/flv");
  ASSERT_TRUE(mjpeg.ok());
  ASSERT_TRUE(flv.ok());
  WsClient webSocket(p.streamPort(), "/ws");
  ASSERT_TRUE(webSocket.ok()) << webSocket.error();
  EXPECT_EQ(p.terminate(10s), 0) << p.log();
  // The WebSocket client was told: Close 1001 (going away).
  std::optional<ws::Event> close;
  while (auto e = webSocket.next(2s)) {
    if (e->kind == ws::Event::Kind::Close) {
      close = std::move(e);
      break;
    }
  }
  ASSERT_TRUE(close) << "no Close frame on stop";
  EXPECT_EQ(close->closeCode, ws::close_code::kGoingAway);
}

namespace {

// The bodies of the first FLV tags of one /flv connection, until `count` arrived (bounded by
// 10 s), copied out of the connection's buffer.
std::vector<std::vector<uint8_t>> flvTags(uint16_t port, size_t count) {
  StreamConnection c(port, "/flv");
  EXPECT_TRUE(c.ok());
  std::string bytes;
  printcast::transport::flv::ParsedStream parsed;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (c.ok() && std::chrono::steady_clock::now() < deadline) {
    bytes += c.read(1 << 20, 1s);
    parsed = printcast::transport::flv::parseStream(
        {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
    if (parsed.tags.size() >= count) break;
  }
  std::vector<std::vector<uint8_t>> out;
  for (const auto& tag : parsed.tags) out.emplace_back(tag.data.begin(), tag.data.end());
  return out;
}

}  // namespace

// Nobody has wanted H.264 for 10 s: the encoder gives its memory back (/api/stats says so), and
// the next viewer gets the same sequence header, a keyframe first, and a stream ffmpeg decodes.
TEST(StreamerLifecycle, AnIdleH264EncoderIsReleasedAndTheNextViewerStartsOnAnIdr) {
  StreamerProcess p(PRINTCAST_STREAMER_BIN,
                    {"--board", "virtual", "--resolution", "320x240", "--no-display"});
  ASSERT_TRUE(p.ok()) << p.log();
  const auto first = flvTags(p.streamPort(), 4);
  ASSERT_GE(first.size(), 3u);
  ASSERT_EQ(first[1].at(1), 0x00) << "AVC sequence header";
  auto encoder = [&] {
    const auto stats =
        nlohmann::json::parse(httpRequest(p.controlPort(), "GET", "/api/stats").body, nullptr, false);
    return stats.is_discarded() ? nlohmann::json() : stats["h264_encoder"];
  };
  EXPECT_EQ(encoder()["backend"], "x264");
  // The release comes 10 s after the last viewer left; poll (bounded) for it.
  nlohmann::json state;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  do {
    std::this_thread::sleep_for(200ms);
    state = encoder();
  } while (state["open"] != false && std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(state["open"], false) << state.dump();
  EXPECT_EQ(state["idle_releases"], 1);

  const auto again = flvTags(p.streamPort(), 4);
  ASSERT_GE(again.size(), 3u);
  EXPECT_EQ(again[1], first[1]) << "the reopened encoder's SPS/PPS differ";
  EXPECT_EQ(again[2].at(0), 0x17) << "first frame after the reopen is not a keyframe";
  EXPECT_EQ(again[2].at(1), 0x01);
  EXPECT_EQ(encoder()["open"], true);
  const CommandResult r = ffmpegDecode("http://127.0.0.1:" + std::to_string(p.streamPort()) + "/flv", 2);
  EXPECT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.err, "");
}

// --encoder v4l2m2m on a machine without an M2M encoder: the backend is refused with its
// reason, the board's others follow (virtual: x264), and /status, /api/stats and /metrics say
// which encodes. The stream plays.
TEST(StreamerLifecycle, ARequestedEncoderThatCannotOpenIsRefusedWithItsReasonAndX264Encodes) {
  StreamerProcess p(PRINTCAST_STREAMER_BIN, {"--board", "virtual", "--resolution", "320x240", "--no-display",
                                             "--encoder", "v4l2m2m"});
  ASSERT_TRUE(p.ok()) << p.log();
  const auto tags = flvTags(p.streamPort(), 3);
  ASSERT_GE(tags.size(), 3u);
  const auto status = nlohmann::json::parse(httpRequest(p.streamPort(), "GET", "/status").body);
  const auto& encoder = status["encoder"];
  EXPECT_EQ(encoder["h264"], "x264") << encoder.dump();
  EXPECT_EQ(encoder["order"], nlohmann::json::array({"v4l2m2m", "x264"})) << encoder.dump();
  ASSERT_EQ(encoder["refused"].size(), 1u) << encoder.dump();
  EXPECT_EQ(encoder["refused"][0]["backend"], "v4l2m2m");
  EXPECT_NE(encoder["refused"][0]["reason"].get<std::string>().find("no H264 encoder"), std::string::npos)
      << encoder.dump();
  EXPECT_EQ(encoder["fallbacks"], 0);
  const auto stats = nlohmann::json::parse(httpRequest(p.controlPort(), "GET", "/api/stats").body);
  EXPECT_EQ(stats["h264_encoder"]["backend"], "x264");
  EXPECT_EQ(stats["encoder"], encoder);
  const auto metrics = httpRequest(p.streamPort(), "GET", "/metrics").body;
  EXPECT_NE(metrics.find("printcast_h264_encoder_info{backend=\"x264\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("printcast_h264_encoder_fallbacks_total 0"), std::string::npos) << metrics;
}

// Waits (bounded) until the camera streams, so counters and health have something to say.
bool waitStreaming(uint16_t port) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (httpRequest(port, "GET", "/healthz").status == 200) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

TEST_F(Streamer, MetricsAreAcceptedByPromtool) {
  ASSERT_TRUE(waitStreaming(process_->streamPort()));
  const auto r = httpRequest(process_->streamPort(), "GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.headers.at("content-type").find("version=0.0.4"), std::string::npos);
  EXPECT_NE(r.body.find("# TYPE printcast_camera_frames_total counter"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("printcast_clients{stream=\"mjpeg\"}"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("printcast_camera_up 1"), std::string::npos) << r.body;
  char path[] = "/tmp/printcast-metrics-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, r.body.data(), r.body.size()), static_cast<ssize_t>(r.body.size()));
  close(fd);
  // Debian's prometheus package (scripts/install-deps.sh test).
  const CommandResult check = runCommand({"sh", "-c", std::string("promtool check metrics < ") + path}, 30s);
  unlink(path);
  EXPECT_EQ(check.exitCode, 0) << check.out << check.err;
  EXPECT_EQ(check.out + check.err, "") << "promtool lint findings";
}

TEST_F(Streamer, StateIsUstreamerShapedAndHealthzSaysOk) {
  ASSERT_TRUE(waitStreaming(process_->streamPort()));
  const auto r = httpRequest(process_->streamPort(), "GET", "/state");
  ASSERT_EQ(r.status, 200);
  const auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["ok"], true);
  const auto& res = j["result"];
  EXPECT_EQ(res["source"]["resolution"]["width"], kWidth);
  EXPECT_EQ(res["source"]["resolution"]["height"], kHeight);
  EXPECT_EQ(res["source"]["online"], true);
  EXPECT_EQ(res["source"]["desired_fps"], kFps);
  EXPECT_TRUE(res["source"]["captured_fps"].is_number_integer());
  EXPECT_TRUE(res["encoder"]["quality"].is_number_integer());
  EXPECT_TRUE(res["stream"]["clients_stat"].is_object());
  for (uint16_t port : {process_->streamPort(), process_->controlPort()}) {
    const auto h = httpRequest(port, "GET", "/healthz");
    EXPECT_EQ(h.status, 200);
    EXPECT_EQ(h.body, "ok\n");
  }
  const auto status = nlohmann::json::parse(httpRequest(process_->streamPort(), "GET", "/status").body);
  ASSERT_TRUE(status["outputs"].is_array());
  EXPECT_NE(status["outputs"].dump().find("\"path\":\"/flv\""), std::string::npos) << status.dump();
}

TEST(StreamerLifecycle, HealthzIs503WithTheReasonWithoutACamera) {
  StreamerProcess p(PRINTCAST_STREAMER_BIN,
                    {"--board", "virtual", "--device", "/dev/printcast-no-such-camera"});
  ASSERT_TRUE(p.ok()) << p.log();
  printcast::testing::HttpReply h;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  do {
    h = httpRequest(p.streamPort(), "GET", "/healthz");
  } while (h.body.find("no-signal") == std::string::npos && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(h.status, 503);
  EXPECT_NE(h.body.find("printcast-no-such-camera"), std::string::npos) << h.body;
}

TEST(StreamerLifecycle, SettingsApiRefusesByKeyAppliesLiveAndSavesAtomically) {
  char dirTemplate[] = "/tmp/printcast-settings-XXXXXX";
  ASSERT_NE(mkdtemp(dirTemplate), nullptr);
  const std::string dir = dirTemplate;
  const std::string file = dir + "/app.json";
  {
    const std::string json = "{\n  \"mjpeg_fps\": 10,\n  \"timelapse_mode\": \"layer\"\n}\n";
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, json.data(), json.size()), static_cast<ssize_t>(json.size()));
    close(fd);
  }
  auto readFile = [&] {
    const CommandResult c = runCommand({"cat", file}, 5s);
    return c.out;
  };
  const std::string original = readFile();
  StreamerProcess p(PRINTCAST_STREAMER_BIN, {"--board", "virtual", "--desired-fps", "15", "--config", file,
                                             "--resolution", "320x240"});
  ASSERT_TRUE(p.ok()) << p.log();
  const std::map<std::string, std::string> json{{"Content-Type", "application/json"}};

  const auto bad =
      httpRequest(p.controlPort(), "POST", "/api/settings", R"({"mjpeg_fps": 2, "jpeg_quality": 0})", json);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(nlohmann::json::parse(bad.body)["key"], "jpeg_quality") << bad.body;
  EXPECT_EQ(readFile(), original) << "nothing written on a bad value";

  // Streams open when H.264 is switched off end at once (no stalled players).
  StreamConnection flvClient(p.streamPort(), "/flv");
  ASSERT_TRUE(flvClient.ok());
  ASSERT_FALSE(flvClient.read(4096, 5s).empty());
  StreamConnection mp4Client(p.streamPort(), "/stream.mp4");
  ASSERT_TRUE(mp4Client.ok());
  ASSERT_FALSE(mp4Client.read(4096, 5s).empty());
  const auto ok = httpRequest(p.controlPort(), "POST", "/api/settings",
                              R"({"mjpeg_fps": 2, "h264_enabled": false})", json);
  ASSERT_EQ(ok.status, 200) << ok.body;
  const auto saved = nlohmann::json::parse(readFile());
  EXPECT_EQ(saved["mjpeg_fps"], 2);
  EXPECT_EQ(saved["h264_enabled"], false);
  EXPECT_EQ(saved["timelapse_mode"], "layer");
  const CommandResult ls = runCommand({"ls", "-A", dir}, 5s);
  EXPECT_EQ(ls.out, "app.json\n") << "no temp file left behind";
  const auto got = nlohmann::json::parse(httpRequest(p.controlPort(), "GET", "/api/settings").body);
  EXPECT_EQ(got["settings"]["mjpeg_fps"], 2);

  // Applied live: H.264 is off (open streams ended, new ones refused), MJPEG runs at 2 fps.
  EXPECT_TRUE(flvClient.waitForEnd(5s)) << "the /flv client's stream did not end";
  EXPECT_TRUE(mp4Client.waitForEnd(5s)) << "the /stream.mp4 client's stream did not end";
  EXPECT_EQ(httpRequest(p.streamPort(), "GET", "/flv").status, 503);
  EXPECT_EQ(httpRequest(p.streamPort(), "GET", "/stream.mp4").status, 503);
  const size_t parts = countParts(p.streamPort(), 3s);
  EXPECT_GE(parts, 4u);
  EXPECT_LE(parts, 9u) << "MJPEG still at the old rate";
  runCommand({"rm", "-rf", dir}, 5s);
}

TEST(StreamerLifecycle, BadConfigValueNamesTheKeyAndRange) {
  char path[] = "/tmp/printcast-config-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string json = "{\n  // comments are allowed\n  \"bitrate\": 50\n}\n";
  ASSERT_EQ(write(fd, json.data(), json.size()), static_cast<ssize_t>(json.size()));
  close(fd);
  const CommandResult r = runCommand({PRINTCAST_STREAMER_BIN, "--board", "virtual", "--config", path}, 20s);
  unlink(path);
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_NE((r.out + r.err).find("bitrate = 50: must be an integer in 100..20000"), std::string::npos)
      << r.out << r.err;
}

// ---- several cameras (the "cameras" list) ----

std::string writeTempFile(const std::string& json) {
  char path[] = "/tmp/printcast-config-XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, json.data(), json.size()), static_cast<ssize_t>(json.size()));
  close(fd);
  return path;
}

// Each camera of the list is a pipeline with its own paths; camera 0 (the first enabled entry)
// also keeps today's paths; a camera that cannot open is reported and leaves the others streaming;
// a disabled entry is not there.
TEST(SeveralCameras, EachHasItsOwnPathsAndOneFailingLeavesTheOthers) {
  const std::string config = writeTempFile(R"({"camera_port_base": 0, "cameras": [
      {"id": "printer", "source": "test-pattern", "resolution": "320x240"},
      {"id": "room", "name": "Room", "source": "test-pattern", "resolution": "160x120", "fps": 10},
      {"id": "gone", "source": "/dev/video-printcast-none"},
      {"id": "off", "source": "test-pattern", "enabled": false}]})");
  StreamerProcess p(PRINTCAST_STREAMER_BIN,
                    {"--board", "virtual", "--config", config, "--no-display", "--no-ring"});
  unlink(config.c_str());
  ASSERT_TRUE(p.ok()) << p.log();
  auto cameras = [&] {
    return nlohmann::json::parse(httpRequest(p.controlPort(), "GET", "/api/cameras").body);
  };
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline &&
         !(cameras()[0]["state"] == "streaming" && cameras()[1]["state"] == "streaming"))
    std::this_thread::sleep_for(50ms);
  const auto list = cameras();
  ASSERT_EQ(list.size(), 3u) << list.dump();
  EXPECT_EQ(list[0]["id"], "printer");
  EXPECT_EQ(list[0]["primary"], true);
  EXPECT_EQ(list[0]["resolution"], "320x240");
  EXPECT_EQ(list[1]["id"], "room");
  EXPECT_EQ(list[1]["name"], "Room");
  EXPECT_EQ(list[1]["state"], "streaming") << list.dump();
  EXPECT_EQ(list[1]["resolution"], "160x120");
  EXPECT_EQ(list[1]["outputs"]["flv"], "/cam/room/flv");
  EXPECT_EQ(list[2]["id"], "gone");
  EXPECT_EQ(list[2]["signal"], false);
  EXPECT_NE(list[2]["last_error"].get<std::string>().find("/dev/video-printcast-none"), std::string::npos)
      << list.dump();
  EXPECT_EQ(nlohmann::json::parse(httpRequest(p.controlPort(), "GET", "/api/cameras/room").body)["id"],
            "room");
  EXPECT_EQ(httpRequest(p.controlPort(), "GET", "/api/cameras/off").status, 404);
  EXPECT_EQ(nlohmann::json::parse(httpRequest(p.controlPort(), "GET", "/status").body)["cameras"].size(), 3u);
  // /metrics: every camera's series carry its id.
  const std::string metrics = httpRequest(p.streamPort(), "GET", "/metrics").body;
  for (const char* line :
       {"printcast_camera_up{camera=\"printer\"} 1\n", "printcast_camera_up{camera=\"room\"} 1\n",
        "printcast_camera_up{camera=\"gone\"} 0\n", "printcast_clients{camera=\"room\",stream=\"mjpeg\"} ",
        "printcast_fps{camera=\"room\",output=\"camera\"} ", "printcast_fps{output=\"display\"} "}) {
    EXPECT_NE(metrics.find(line), std::string::npos) << line << "\n" << metrics;
  }
  {
    const std::string file = writeTempFile(metrics);
    const CommandResult check = runCommand({"sh", "-c", "promtool check metrics < " + file}, 30s);
    unlink(file.c_str());
    EXPECT_EQ(check.exitCode, 0) << check.out << check.err;
    EXPECT_EQ(check.out + check.err, "") << "promtool lint findings";
  }

  // Snapshots at each camera's own size, by its path; camera 0 by both.
  for (const auto& [path, width, height] : {std::tuple{"/snapshot", 320, 240},
                                            {"/cam/printer/snapshot", 320, 240},
                                            {"/cam/room/snapshot", 160, 120}}) {
    const auto r = httpRequest(p.streamPort(), "GET", path);
    ASSERT_EQ(r.status, 200) << path << ": " << r.body;
    const Rgb picture = decodeJpeg(r.body);
    EXPECT_EQ(picture.width, width) << path;
    EXPECT_EQ(picture.height, height) << path;
  }
  // The camera that is away answers with the "no signal" picture, as camera 0 does.
  const auto away = httpRequest(p.streamPort(), "GET", "/cam/gone/snapshot");
  EXPECT_EQ(away.status, 200);
  EXPECT_GT(decodeJpeg(away.body).width, 0);
  const auto unknown = httpRequest(p.streamPort(), "GET", "/cam/nope/stream");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body.find("printer, room, gone"), std::string::npos) << unknown.body;

  // h264-streamer's port of camera 1 (8082 by default; here one the kernel picked).
  const uint16_t roomPort = list[1]["outputs"]["port"];
  ASSERT_NE(roomPort, 0);
  for (const char* path : {"/snapshot", "/?action=snapshot"}) {
    const auto r = httpRequest(roomPort, "GET", path);
    ASSERT_EQ(r.status, 200) << path << ": " << r.body;
    EXPECT_EQ(decodeJpeg(r.body).width, 160) << path;
  }
  EXPECT_EQ(httpRequest(roomPort, "GET", "/flv").status, 404);
  EXPECT_FALSE(list[0]["outputs"].contains("port"));  // camera 0 has the main port

  // The second camera's H.264 in FLV and over RTSP, read by ffprobe.
  const std::string flvUrl = "http://127.0.0.1:" + std::to_string(p.streamPort()) + "/cam/room/flv";
  auto probe = runCommand(
      {"ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", flvUrl},
      20s);
  EXPECT_EQ(probe.out, "h264,160,120\n") << probe.err;
  const std::string rtspUrl = "rtsp://127.0.0.1:" + std::to_string(p.rtspPort()) + "/cam/room";
  probe = runCommand({"ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries",
                      "stream=width,height", "-of", "csv=p=0", rtspUrl},
                     20s);
  EXPECT_EQ(probe.out, "160,120\n") << probe.err;
}

// The RTSP->HLS dashboards' layout: /hls/stream_<n>/playlist.m3u8 with MPEG-TS segments for the
// camera whose id is <n> or the n-th camera (from 0), beside each camera's fMP4 /hls/stream.m3u8.
TEST(SeveralCameras, DashboardHlsPathsServeMpegTsPerCamera) {
  const std::string config =
      writeTempFile(R"({"camera_port_base": -1, "hls_segment_seconds": 0.5, "cameras": [
      {"id": "printer", "source": "test-pattern", "resolution": "320x240", "fps": 15},
      {"id": "room", "source": "test-pattern", "resolution": "160x120", "fps": 15}]})");
  StreamerProcess p(PRINTCAST_STREAMER_BIN,
                    {"--board", "virtual", "--config", config, "--no-display", "--no-ring"});
  unlink(config.c_str());
  ASSERT_TRUE(p.ok()) << p.log();
  const std::string base = "http://127.0.0.1:" + std::to_string(p.streamPort());
  for (const auto& [path, size] : {std::pair{"/hls/stream_0/playlist.m3u8", "320,240"},
                                   {"/hls/stream_1/playlist.m3u8", "160,120"},
                                   {"/hls/stream_room/playlist.m3u8", "160,120"}}) {
    const auto r = httpRequest(p.streamPort(), "GET", path);
    ASSERT_EQ(r.status, 200) << path << ": " << r.body;
    EXPECT_EQ(r.body.find("#EXT-X-MAP"), std::string::npos) << "MPEG-TS has no init segment: " << r.body;
    EXPECT_EQ(r.body.find("#EXT-X-PART:"), std::string::npos) << "no LL-HLS parts here: " << r.body;
    EXPECT_NE(r.body.find(".ts\n"), std::string::npos) << r.body;
    const auto probe =
        runCommand({"ffprobe", "-v", "error", "-show_entries",
                    "stream=codec_name,width,height:format=format_name", "-of", "csv=p=0", base + path},
                   30s);
    // ffprobe lists the stream once per program too: the last lines are the stream and the format.
    const std::string expected = std::string("h264,") + size + "\nhls\n";
    EXPECT_TRUE(probe.out.size() >= expected.size() &&
                probe.out.compare(probe.out.size() - expected.size(), expected.size(), expected) == 0)
        << path << ": " << probe.out << probe.err;
  }
  // The camera's own fMP4 window keeps answering beside it.
  const auto fmp4 = httpRequest(p.streamPort(), "GET", "/cam/room/hls/stream.m3u8");
  ASSERT_EQ(fmp4.status, 200) << fmp4.body;
  EXPECT_NE(fmp4.body.find("#EXT-X-MAP"), std::string::npos) << fmp4.body;
  const auto cameras = nlohmann::json::parse(httpRequest(p.controlPort(), "GET", "/api/cameras").body);
  EXPECT_EQ(cameras[1]["outputs"]["hls_ts"], "/hls/stream_room/playlist.m3u8");
  const auto status = nlohmann::json::parse(httpRequest(p.controlPort(), "GET", "/status").body);
  EXPECT_TRUE(status["hls"]["ts_window"]["watched"].get<bool>()) << status["hls"].dump();
  for (const char* path :
       {"/hls/stream_2/playlist.m3u8", "/hls/stream_nope/playlist.m3u8", "/hls/stream_0"}) {
    const auto r = httpRequest(p.streamPort(), "GET", path);
    EXPECT_EQ(r.status, 404) << path;
  }
  EXPECT_EQ(httpRequest(p.streamPort(), "GET", "/hls/stream_0/../../status").status, 404);
}

// A bad entry stops the start with the camera and the key named.
TEST(SeveralCameras, ABadEntryNamesTheCameraAndTheKey) {
  for (const auto& [json, expected] :
       {std::pair{R"({"cameras": [{"id": "a", "source": "test-pattern"}, {"id": "b", "source": "test-pattern",
                     "resolution": "12"}]})",
                  "cameras[1].resolution"},
        {R"({"cameras": [{"id": "a", "source": "test-pattern"}, {"id": "a", "source": "test-pattern"}]})",
         "cameras[1].id = \"a\": is already cameras[0]'s"},
        {R"({"cameras": [{"id": "a", "source": "test-pattern", "colour": 1}]})", "cameras[0].colour"},
        {R"({"cameras": [{"id": "a", "source": "test-pattern"}, {"id": "b", "source": "ftp://x/y"}]})",
         "cameras[1] (\"b\")"},
        {R"({"cameras": [{"id": "a", "source": "test-pattern"}, {"id": "b", "source": "test-pattern",
            "format": "png"}]})",
         "cameras[1].format = \"png\": must be one of auto, mjpeg, yuyv, h264"},
        {R"({"cameras": [{"id": "a", "source": "test-pattern"}, {"id": "b", "source": "test-pattern",
            "h264": "maybe"}]})",
         "cameras[1].h264 = \"maybe\": must be true or false"},
        {R"({"cameras": [{"id": "a", "source": "test-pattern"}, {"id": "b", "source": "rtsp://cam/x",
            "format": "mjpeg"}]})",
         "cameras[1].format = \"mjpeg\": applies to V4L2 cameras only"},
        {R"({"cameras": [{"id": "a", "source": "test-pattern"}, {"id": "b", "source": "test-pattern",
            "h264": false, "publish": "rtsp://127.0.0.1:1/b"}]})",
         "cameras[1].h264 = false: the camera publishes H.264"}}) {
    const std::string config = writeTempFile(json);
    const CommandResult r =
        runCommand({PRINTCAST_STREAMER_BIN, "--board", "virtual", "--config", config}, 20s);
    unlink(config.c_str());
    EXPECT_EQ(r.exitCode, 2) << json;
    EXPECT_NE((r.out + r.err).find(expected), std::string::npos) << expected << "\n" << r.out << r.err;
  }
}

// ---- cameras added, changed and removed at run time (POST, PATCH, DELETE /api/cameras) ----

std::string readText(const std::string& path) { return runCommand({"cat", path}, 5s).out; }

// Waits (up to 15 s) until GET /api/cameras/<id> says "streaming".
bool waitCameraStreaming(uint16_t controlPort, const std::string& id) {
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto r = httpRequest(controlPort, "GET", "/api/cameras/" + id);
    if (r.status == 200 && nlohmann::json::parse(r.body)["state"] == "streaming") return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

TEST(SeveralCameras, CamerasAreAddedChangedAndRemovedAtRunTimeAndTheConfigFollows) {
  char dirTemplate[] = "/tmp/printcast-cameras-XXXXXX";
  ASSERT_NE(mkdtemp(dirTemplate), nullptr);
  const std::string dir = dirTemplate;
  const std::string file = dir + "/app.json";
  {
    std::ofstream out(file);
    out << R"({
  // a config with a cameras list
  "camera_port_base": 0,
  "a_key_printcast_does_not_know": "kept",
  "mjpeg_fps": 10,
  "cameras": [{"id": "printer", "source": "test-pattern", "resolution": "320x240"},
              {"id": "room", "source": "test-pattern", "resolution": "160x120", "fps": 10},
              {"id": "off", "source": "test-pattern", "enabled": false}]
})";
  }
  StreamerProcess p(PRINTCAST_STREAMER_BIN,
                    {"--board", "virtual", "--config", file, "--no-display", "--no-ring"});
  ASSERT_TRUE(p.ok()) << p.log();
  const uint16_t control = p.controlPort();
  const std::map<std::string, std::string> json{{"Content-Type", "application/json"}};
  auto saved = [&] { return nlohmann::json::parse(readText(file)); };
  auto ids = [](const nlohmann::json& list) {
    std::string out;
    for (const auto& c : list) out += (out.empty() ? "" : ",") + c["id"].get<std::string>();
    return out;
  };
  ASSERT_TRUE(waitCameraStreaming(control, "room"));
  StreamConnection primaryViewer(p.streamPort(), "/stream");
  ASSERT_TRUE(primaryViewer.ok());
  ASSERT_FALSE(primaryViewer.read(4096, 5s).empty());

  // Add: 201 with its /api/cameras/<id> object, streaming on its own paths, in the file.
  auto r = httpRequest(control, "POST", "/api/cameras",
                       R"({"id": "yard", "name": "Yard", "source": "test-pattern", "resolution": "192x144",
                           "fps": 10})",
                       json);
  ASSERT_EQ(r.status, 201) << r.body;
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["id"], "yard");
  EXPECT_EQ(body["name"], "Yard");
  EXPECT_EQ(body["outputs"]["flv"], "/cam/yard/flv");
  EXPECT_EQ(body["persisted"], true);
  EXPECT_EQ(r.headers["location"], "/api/cameras/yard");
  auto file1 = saved();
  EXPECT_EQ(ids(file1["cameras"]), "printer,room,off,yard");
  EXPECT_EQ(file1["cameras"][3],
            nlohmann::json::parse(R"({"id": "yard", "name": "Yard", "source": "test-pattern",
                                                           "resolution": "192x144", "fps": 10})"));
  EXPECT_EQ(file1["a_key_printcast_does_not_know"], "kept");
  EXPECT_EQ(file1["mjpeg_fps"], 10);
  EXPECT_EQ(file1["cameras"][1]["fps"], 10) << "the other entries are kept";
  const CommandResult ls = runCommand({"ls", "-A", dir}, 5s);
  EXPECT_EQ(ls.out, "app.json\n") << "no temp file left behind";
  ASSERT_TRUE(waitCameraStreaming(control, "yard"));
  const std::string base = "http://127.0.0.1:" + std::to_string(p.streamPort());
  auto probe = runCommand({"ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of",
                           "csv=p=0", base + "/cam/yard/flv"},
                          20s);
  EXPECT_EQ(probe.out, "h264,192,144\n") << probe.err;
  probe =
      runCommand({"ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries", "stream=width,height",
                  "-of", "csv=p=0", "rtsp://127.0.0.1:" + std::to_string(p.rtspPort()) + "/cam/yard"},
                 20s);
  EXPECT_EQ(probe.out, "192,144\n") << "its RTSP path was added: " << probe.err;
  auto list = nlohmann::json::parse(httpRequest(control, "GET", "/api/cameras").body);
  EXPECT_EQ(ids(list), "printer,room,yard");
  const uint16_t yardPort = list[2]["outputs"]["port"];
  ASSERT_NE(yardPort, 0) << "a free h264-streamer port: " << list.dump();
  EXPECT_EQ(decodeJpeg(httpRequest(yardPort, "GET", "/snapshot").body).width, 192);
  EXPECT_EQ(nlohmann::json::parse(httpRequest(p.streamPort(), "GET", "/status").body)["cameras"].size(), 3u);
  EXPECT_NE(
      httpRequest(p.streamPort(), "GET", "/metrics").body.find("printcast_camera_up{camera=\"yard\"} 1\n"),
      std::string::npos);

  // Refusals change nothing: a bad value names the key, a taken id is 409, other origins 403.
  const std::string before = readText(file);
  for (const auto& [request, status, key] :
       {std::tuple{R"({"id": "x", "source": "test-pattern", "fps": 500})", 400, "fps"},
        {R"({"id": "x", "source": "test-pattern", "colour": 1})", 400, "colour"},
        {R"({"id": "x", "source": "test-pattern", "resolution": "13x7"})", 400, "resolution"},
        {R"({"id": "x y", "source": "test-pattern"})", 400, "id"},
        {R"({"id": "x", "source": "ftp://h/x"})", 400, "source"},
        {R"({"id": "x"})", 400, "source"},
        {R"(not json)", 400, ""},
        {R"({"id": "room", "source": "test-pattern"})", 409, "id"}}) {
    r = httpRequest(control, "POST", "/api/cameras", request, json);
    EXPECT_EQ(r.status, status) << request << ": " << r.body;
    EXPECT_EQ(nlohmann::json::parse(r.body)["key"], key) << request;
  }
  r = httpRequest(control, "POST", "/api/cameras", R"({"id": "fps", "source": "test-pattern", "fps": 500})",
                  json);
  EXPECT_NE(nlohmann::json::parse(r.body)["error"].get<std::string>().find(
                "fps = 500: must be an integer in 1..120"),
            std::string::npos)
      << r.body;
  EXPECT_EQ(httpRequest(control, "POST", "/api/cameras", R"({"id": "x", "source": "test-pattern"})",
                        {{"Content-Type", "text/plain"}})
                .status,
            415);
  const std::map<std::string, std::string> evil{{"Content-Type", "application/json"},
                                                {"Origin", "http://evil.example"}};
  EXPECT_EQ(
      httpRequest(control, "POST", "/api/cameras", R"({"id": "x", "source": "test-pattern"})", evil).status,
      403);
  EXPECT_EQ(
      httpRequest(control, "DELETE", "/api/cameras/yard", "", {{"Origin", "http://evil.example"}}).status,
      403);
  EXPECT_EQ(httpRequest(control, "PATCH", "/api/cameras/yard", R"({"name": "evil"})", evil).status, 403);
  EXPECT_EQ(httpRequest(control, "GET", "/api/cameras/x").status, 404);
  EXPECT_EQ(readText(file), before) << "nothing written on a refusal";

  // Change: a new resolution reopens only that camera (its viewers' streams end, a new snapshot
  // has the new size); a new name applies without a reopen; camera 0 only changes its name.
  StreamConnection yardViewer(p.streamPort(), "/cam/yard/stream");
  ASSERT_TRUE(yardViewer.ok());
  ASSERT_FALSE(yardViewer.read(4096, 5s).empty());
  StreamConnection roomViewer(p.streamPort(), "/cam/room/stream");
  ASSERT_TRUE(roomViewer.ok());
  ASSERT_FALSE(roomViewer.read(4096, 5s).empty());
  r = httpRequest(control, "PATCH", "/api/cameras/yard", R"({"resolution": "320x240"})", json);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["restarted"], true);
  EXPECT_TRUE(yardViewer.waitForEnd(5s)) << "the old pipeline's viewer was not ended";
  ASSERT_TRUE(waitCameraStreaming(control, "yard"));
  const Rgb reopened = decodeJpeg(httpRequest(p.streamPort(), "GET", "/cam/yard/snapshot").body);
  EXPECT_EQ(reopened.width, 320);
  EXPECT_EQ(reopened.height, 240);
  EXPECT_EQ(saved()["cameras"][3]["resolution"], "320x240");
  EXPECT_FALSE(roomViewer.read(4096, 5s).empty()) << "the other cameras' viewers keep streaming";
  EXPECT_EQ(decodeJpeg(httpRequest(yardPort, "GET", "/snapshot").body).width, 320) << "it keeps its port";
  r = httpRequest(control, "PATCH", "/api/cameras/yard", R"({"name": "Back yard", "bitrate": 800})", json);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["restarted"], false);
  EXPECT_EQ(nlohmann::json::parse(httpRequest(control, "GET", "/api/cameras/yard").body)["name"],
            "Back yard");
  EXPECT_EQ(saved()["cameras"][3]["name"], "Back yard");
  EXPECT_EQ(saved()["cameras"][3]["bitrate"], 800);
  r = httpRequest(control, "PATCH", "/api/cameras/yard", R"({"fps": 0})", json);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(nlohmann::json::parse(r.body)["key"], "fps");
  r = httpRequest(control, "PATCH", "/api/cameras/yard", R"({"id": "other"})", json);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(nlohmann::json::parse(r.body)["key"], "id");
  EXPECT_EQ(httpRequest(control, "PATCH", "/api/cameras/nope", R"({"name": "x"})", json).status, 404);
  EXPECT_EQ(httpRequest(control, "PUT", "/api/cameras/yard", R"({"name": "x"})", json).status, 405);
  r = httpRequest(control, "PATCH", "/api/cameras/printer", R"({"resolution": "640x480"})", json);
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body.find("camera 0"), std::string::npos) << r.body;
  r = httpRequest(control, "PATCH", "/api/cameras/printer", R"({"name": "Printer"})", json);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(saved()["cameras"][0]["name"], "Printer");

  // Remove: its viewers' streams end, its paths answer 404, the others stream on; camera 0 stays.
  StreamConnection roomFlv(p.streamPort(), "/cam/room/flv");
  ASSERT_TRUE(roomFlv.ok());
  ASSERT_FALSE(roomFlv.read(4096, 5s).empty());
  r = httpRequest(control, "DELETE", "/api/cameras/room");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(roomViewer.waitForEnd(5s)) << "the MJPEG viewer's stream did not end";
  EXPECT_TRUE(roomFlv.waitForEnd(5s)) << "the FLV viewer's stream did not end";
  for (const char* path :
       {"/cam/room/stream", "/cam/room/snapshot", "/cam/room/flv", "/cam/room/hls/stream.m3u8"})
    EXPECT_EQ(httpRequest(p.streamPort(), "GET", path).status, 404) << path;
  EXPECT_EQ(httpRequest(control, "GET", "/api/cameras/room").status, 404);
  probe = runCommand({"ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries", "stream=width",
                      "-of", "csv=p=0", "rtsp://127.0.0.1:" + std::to_string(p.rtspPort()) + "/cam/room"},
                     20s);
  EXPECT_NE(probe.exitCode, 0) << "its RTSP path is gone: " << probe.out;
  EXPECT_FALSE(primaryViewer.read(4096, 5s).empty()) << "camera 0's viewer streams on";
  EXPECT_EQ(ids(saved()["cameras"]), "printer,off,yard");
  EXPECT_EQ(saved()["a_key_printcast_does_not_know"], "kept");
  EXPECT_EQ(httpRequest(p.streamPort(), "GET", "/metrics").body.find("camera=\"room\""), std::string::npos);
  r = httpRequest(control, "DELETE", "/api/cameras/printer");
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body.find("camera 0"), std::string::npos) << r.body;
  EXPECT_EQ(httpRequest(control, "DELETE", "/api/cameras/room").status, 404);

  // A disabled entry is listed with ?all=1 and started and stopped by "enabled".
  list = nlohmann::json::parse(httpRequest(control, "GET", "/api/cameras?all=1").body);
  EXPECT_EQ(ids(list), "printer,yard,off");
  EXPECT_EQ(list[2]["state"], "disabled");
  r = httpRequest(control, "PATCH", "/api/cameras/off", R"({"enabled": true})", json);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(waitCameraStreaming(control, "off"));
  EXPECT_EQ(httpRequest(p.streamPort(), "GET", "/cam/off/snapshot").status, 200);
  EXPECT_EQ(saved()["cameras"][1]["enabled"], true);
  r = httpRequest(control, "PATCH", "/api/cameras/off", R"({"enabled": false})", json);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(httpRequest(p.streamPort(), "GET", "/cam/off/snapshot").status, 404);
  EXPECT_EQ(saved()["cameras"][1]["enabled"], false);

  // A save that fails answers 500 with the reason and runs nothing new.
  {
    std::ofstream out(file);
    out << "not json";
  }
  r = httpRequest(control, "POST", "/api/cameras", R"({"id": "late", "source": "test-pattern"})", json);
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("not a JSON object"), std::string::npos) << r.body;
  EXPECT_EQ(httpRequest(control, "GET", "/api/cameras/late").status, 404);
  r = httpRequest(control, "DELETE", "/api/cameras/yard");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(httpRequest(control, "GET", "/api/cameras/yard").status, 200)
      << "still running, as the file says";
  EXPECT_EQ(readText(file), "not json");
  EXPECT_EQ(p.terminate(10s), 0);
  runCommand({"rm", "-rf", dir}, 5s);
}

// Without a cameras list (one camera from the flags) a camera added at run time runs but is not
// saved, and the answer says so; camera 0's metrics stay unlabelled.
// A camera whose entry says "h264": false has MJPEG and snapshots only: its H.264 paths answer 404
// with the reason, /api/cameras lists the outputs it has; "format" asks for that format only.
TEST(SeveralCameras, ACameraWithoutH264ServesMjpegOnlyAndAFormatIsAskedAsGiven) {
  const std::string config = writeTempFile(R"({"camera_port_base": 0, "cameras": [
      {"id": "a", "source": "test-pattern", "resolution": "320x240"},
      {"id": "b", "source": "test-pattern", "resolution": "160x120", "h264": false},
      {"id": "c", "source": "test-pattern", "format": "mjpeg"}]})");
  StreamerProcess p(PRINTCAST_STREAMER_BIN,
                    {"--board", "virtual", "--config", config, "--no-display", "--no-ring"});
  unlink(config.c_str());
  ASSERT_TRUE(p.ok()) << p.log();
  ASSERT_TRUE(waitCameraStreaming(p.controlPort(), "b")) << p.log();
  const auto b = nlohmann::json::parse(httpRequest(p.controlPort(), "GET", "/api/cameras/b").body);
  EXPECT_EQ(b["h264"], false) << b.dump();
  EXPECT_EQ(b["plan_note"], "");
  EXPECT_EQ(b["outputs"]["mjpeg"], "/cam/b/stream");
  EXPECT_EQ(b["outputs"]["snapshot"], "/cam/b/snapshot");
  for (const char* output : {"flv", "fmp4", "hls", "hls_ts", "ws", "rtsp"})
    EXPECT_FALSE(b["outputs"].contains(output)) << output << " " << b.dump();
  const auto a = nlohmann::json::parse(httpRequest(p.controlPort(), "GET", "/api/cameras/a").body);
  EXPECT_EQ(a["h264"], true);
  EXPECT_EQ(a["outputs"]["flv"], "/cam/a/flv");
  for (const char* path : {"/cam/b/flv", "/cam/b/stream.mp4", "/cam/b/hls/stream.m3u8", "/cam/b/ws",
                           "/hls/stream_b/playlist.m3u8"}) {
    const auto r = httpRequest(p.streamPort(), "GET", path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_NE(r.body.find("camera 'b' has no H.264 outputs"), std::string::npos) << path << ": " << r.body;
  }
  // RTSP: no path, and the 404's status line says why (ffprobe prints it).
  ASSERT_GT(p.rtspPort(), 0);
  const auto probe = runCommand({"ffprobe", "-v", "error", "-rtsp_transport", "tcp",
                                 "rtsp://127.0.0.1:" + std::to_string(p.rtspPort()) + "/cam/b"},
                                20s);
  EXPECT_NE(probe.exitCode, 0);
  EXPECT_NE(probe.err.find("404 Not Found (camera 'b' has no H.264 outputs"), std::string::npos) << probe.err;
  const auto snapshot = httpRequest(p.streamPort(), "GET", "/cam/b/snapshot");
  EXPECT_EQ(snapshot.status, 200);
  EXPECT_EQ(snapshot.headers.at("content-type"), "image/jpeg");
  // The test pattern offers I420 only: camera c, asked for MJPEG, stays "no signal" with the reason
  // and the others run on.
  std::string error;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline && error.empty()) {
    error = nlohmann::json::parse(httpRequest(p.controlPort(), "GET", "/api/cameras/c").body)["last_error"];
    if (error.empty()) std::this_thread::sleep_for(50ms);
  }
  EXPECT_NE(error.find("does not offer MJPG"), std::string::npos) << error;
  EXPECT_NE(error.find("\"format\" is \"mjpeg\""), std::string::npos) << error;
  const auto status = nlohmann::json::parse(httpRequest(p.streamPort(), "GET", "/status").body);
  EXPECT_EQ(status["camera_plan"]["auto_discovered"], false);
  EXPECT_EQ(status["cameras"][1]["h264"], false);
  EXPECT_TRUE(waitCameraStreaming(p.controlPort(), "a"));
}

TEST(SeveralCameras, ACameraAddedWithoutAListRunsAndTheAnswerSaysItIsNotSaved) {
  StreamerProcess p(PRINTCAST_STREAMER_BIN,
                    {"--board", "virtual", "--resolution", "320x240", "--no-display", "--no-ring"});
  ASSERT_TRUE(p.ok()) << p.log();
  const std::map<std::string, std::string> json{{"Content-Type", "application/json"}};
  auto r = httpRequest(p.controlPort(), "POST", "/api/cameras",
                       R"({"id": "extra", "source": "test-pattern", "resolution": "160x120"})", json);
  ASSERT_EQ(r.status, 201) << r.body;
  const auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["persisted"], false);
  EXPECT_NE(body["note"].get<std::string>().find("not saved"), std::string::npos) << r.body;
  ASSERT_TRUE(waitCameraStreaming(p.controlPort(), "extra"));
  EXPECT_EQ(decodeJpeg(httpRequest(p.streamPort(), "GET", "/cam/extra/snapshot").body).width, 160);
  const std::string metrics = httpRequest(p.streamPort(), "GET", "/metrics").body;
  EXPECT_NE(metrics.find("printcast_camera_up 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("printcast_camera_up{camera=\"extra\"} 1\n"), std::string::npos) << metrics;
  EXPECT_EQ(httpRequest(p.controlPort(), "DELETE", "/api/cameras/0").status, 409);
  EXPECT_EQ(httpRequest(p.controlPort(), "DELETE", "/api/cameras/extra").status, 200);
  EXPECT_EQ(httpRequest(p.streamPort(), "GET", "/cam/extra/snapshot").status, 404);
  EXPECT_EQ(p.terminate(10s), 0);
}

// ---- HLS (/hls/stream.m3u8) ----

// The value of a "#TAG:value" line, or "" when the playlist has none.
std::string tagValue(const std::string& playlist, const std::string& tag) {
  const auto at = playlist.find(tag + ":");
  if (at == std::string::npos) return "";
  const auto end = playlist.find('\n', at);
  return playlist.substr(at + tag.size() + 1, end - at - tag.size() - 1);
}

// ffmpeg decodes 3 s of the live playlist without an error; ffprobe's first packet is a keyframe
// and the timestamps of the first 30 packets increase.
void expectHlsPlaysInFfmpeg(uint16_t port) {
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/hls/stream.m3u8";
  const CommandResult decode = ffmpegDecode(url, 3);
  EXPECT_EQ(decode.exitCode, 0) << decode.err;
  EXPECT_EQ(decode.err, "");
  const CommandResult probe =
      runCommand({"ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                  "packet=pts_time,flags", "-read_intervals", "%+#30", "-of", "csv=p=0", url},
                 60s);
  ASSERT_EQ(probe.exitCode, 0) << probe.err;
  std::istringstream lines(probe.out);
  std::string line;
  double last = -1;
  int n = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    if (n == 0) {
      EXPECT_NE(line.find('K'), std::string::npos) << "first packet is not a keyframe: " << probe.out;
    }
    const double t = std::stod(line.substr(0, line.find(',')));
    EXPECT_GT(t, last) << probe.out;
    last = t;
    ++n;
  }
  EXPECT_GE(n, 20) << probe.out;
}

TEST_F(Streamer, HlsFmp4PlaylistPlaysInFfmpegWithTheRightHeaders) {
  const auto r = httpRequest(process_->streamPort(), "GET", "/hls/stream.m3u8?cacheBust=1");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers.at("content-type"), "application/vnd.apple.mpegurl");
  EXPECT_EQ(r.headers.at("cache-control"), "no-cache");
  EXPECT_EQ(r.headers.at("access-control-allow-origin"), "*");
  EXPECT_EQ(tagValue(r.body, "#EXT-X-TARGETDURATION"), "1") << r.body;
  EXPECT_NE(r.body.find("#EXT-X-MAP:URI="), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("#EXT-X-PART-INF:PART-TARGET="), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("#EXT-X-PRELOAD-HINT:TYPE=PART"), std::string::npos) << r.body;
  // A segment: video/mp4, cacheable for long (its name is never reused).
  const auto seg = r.body.find(".m4s\n");
  ASSERT_NE(seg, std::string::npos) << r.body;
  const auto start = r.body.rfind('\n', seg) + 1;
  const auto s = httpRequest(process_->streamPort(), "GET", "/hls/" + r.body.substr(start, seg + 4 - start));
  EXPECT_EQ(s.status, 200);
  EXPECT_EQ(s.headers.at("content-type"), "video/mp4");
  EXPECT_EQ(s.headers.at("cache-control"), "max-age=86400");
  EXPECT_EQ(s.body.substr(4, 4), "moof");
  expectHlsPlaysInFfmpeg(process_->streamPort());
  const auto status = nlohmann::json::parse(httpRequest(process_->streamPort(), "GET", "/status").body);
  EXPECT_TRUE(status["hls"]["watched"].get<bool>());
  bool listed = false;
  for (const auto& o : status["outputs"])
    listed = listed || (o["type"] == "hls" && o["path"] == "/hls/stream.m3u8");
  EXPECT_TRUE(listed) << status["outputs"].dump();
}

TEST(StreamerLifecycle, HlsMpegTsSegmentsPlayInFfmpeg) {
  StreamerProcess p(PRINTCAST_STREAMER_BIN,
                    {"--board", "virtual", "--resolution", "320x240", "--desired-fps", "15", "--hls-format",
                     "ts", "--hls-part-seconds", "0", "--no-display"});
  ASSERT_TRUE(p.ok()) << p.log();
  const auto r = httpRequest(p.streamPort(), "GET", "/hls/stream.m3u8");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.find("#EXT-X-PART"), std::string::npos) << "no parts with hls_part_seconds 0: " << r.body;
  EXPECT_EQ(r.body.find("#EXT-X-MAP"), std::string::npos) << r.body;
  const auto seg = r.body.find(".ts\n");
  ASSERT_NE(seg, std::string::npos) << r.body;
  const auto start = r.body.rfind('\n', seg) + 1;
  const auto s = httpRequest(p.streamPort(), "GET", "/hls/" + r.body.substr(start, seg + 3 - start));
  EXPECT_EQ(s.status, 200);
  EXPECT_EQ(s.headers.at("content-type"), "video/mp2t");
  ASSERT_GE(s.body.size(), 188u);
  EXPECT_EQ(s.body.size() % 188, 0u);
  EXPECT_EQ(s.body[0], 0x47);
  expectHlsPlaysInFfmpeg(p.streamPort());
}

TEST_F(Streamer, HlsBlockingReloadIsAnsweredWhenThePartAppears) {
  const uint16_t port = process_->streamPort();
  auto r = httpRequest(port, "GET", "/hls/stream.m3u8");
  ASSERT_EQ(r.status, 200) << r.body;
  // The preload hint names the next part: ask for the playlist that holds it.
  const std::string hint = tagValue(r.body, "#EXT-X-PRELOAD-HINT");
  const auto dash = hint.find("part-");
  ASSERT_NE(dash, std::string::npos) << r.body;
  const auto dot = hint.find('.', dash);
  const std::string msn = hint.substr(dash + 5, dot - dash - 5);
  const std::string part = hint.substr(dot + 1, hint.find('.', dot + 1) - dot - 1);
  const auto asked = std::chrono::steady_clock::now();
  const auto held = httpRequest(port, "GET", "/hls/stream.m3u8?_HLS_msn=" + msn + "&_HLS_part=" + part);
  const auto waited = std::chrono::steady_clock::now() - asked;
  ASSERT_EQ(held.status, 200) << held.body;
  EXPECT_NE(held.body.find("part-" + msn + "." + part + "."), std::string::npos) << held.body;
  EXPECT_LT(waited, 1500ms) << "answered once the part was out (parts are 0.2 s)";
  // The part itself.
  const std::string uri = hint.substr(hint.find("URI=\"") + 5, hint.rfind('"') - hint.find("URI=\"") - 5);
  const auto partReply = httpRequest(port, "GET", "/hls/" + uri);
  EXPECT_EQ(partReply.status, 200);
  EXPECT_EQ(partReply.body.substr(4, 4), "moof");

  EXPECT_EQ(httpRequest(port, "GET", "/hls/stream.m3u8?_HLS_msn=x").status, 400);
  EXPECT_EQ(httpRequest(port, "GET", "/hls/stream.m3u8?_HLS_part=1").status, 400);
  const auto tooFar =
      httpRequest(port, "GET", "/hls/stream.m3u8?_HLS_msn=" + std::to_string(std::stoull(msn) + 10));
  EXPECT_EQ(tooFar.status, 400);
  EXPECT_NE(tooFar.body.find("live edge"), std::string::npos) << tooFar.body;
}

TEST_F(Streamer, HlsSegmentsThatLeftTheWindowAre404) {
  const uint16_t port = process_->streamPort();
  auto r = httpRequest(port, "GET", "/hls/stream.m3u8");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto map = tagValue(r.body, "#EXT-X-MAP");
  const std::string token = map.substr(map.find('"') + 1, map.find('/') - map.find('"') - 1);
  // Wait (blocking reloads, a deadline) until the window has moved past at least one segment.
  uint64_t sequence = std::stoull(tagValue(r.body, "#EXT-X-MEDIA-SEQUENCE"));
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (sequence == 0 && std::chrono::steady_clock::now() < deadline) {
    const std::string last = r.body.substr(r.body.rfind("seg-") + 4);
    const uint64_t next = std::stoull(last.substr(0, last.find('.'))) + 1;
    r = httpRequest(port, "GET", "/hls/stream.m3u8?_HLS_msn=" + std::to_string(next));
    ASSERT_EQ(r.status, 200) << r.body;
    sequence = std::stoull(tagValue(r.body, "#EXT-X-MEDIA-SEQUENCE"));
  }
  ASSERT_GT(sequence, 0u) << r.body;
  const auto gone =
      httpRequest(port, "GET", "/hls/" + token + "/seg-" + std::to_string(sequence - 1) + ".m4s");
  EXPECT_EQ(gone.status, 404);
  EXPECT_NE(gone.body.find("left the live window"), std::string::npos) << gone.body;
  EXPECT_EQ(httpRequest(port, "GET", "/hls/" + token + "/seg-" + std::to_string(sequence) + ".m4s").status,
            200);
  EXPECT_EQ(httpRequest(port, "GET", "/hls/" + token + "/seg-99999.m4s").status, 404);
  EXPECT_EQ(httpRequest(port, "GET", "/hls/../status").status, 404);
}

// ----------------------------------------------------------------------------- RTSP out

std::string rtspUrl(uint16_t port) { return "rtsp://127.0.0.1:" + std::to_string(port) + "/stream"; }

// ffprobe over RTSP, TCP interleaved and UDP: H.264 at the configured size, a keyframe first,
// increasing timestamps. (ffprobe's first packet may carry no pts: its H.264 parser joins the
// first RTP packets.)
void probeRtsp(uint16_t port, const std::string& transport) {
  ASSERT_NE(port, 0);
  const CommandResult r =
      runCommand({"ffprobe", "-v", "error", "-rtsp_transport", transport, "-select_streams", "v:0",
                  "-show_entries", "stream=codec_name,width,height:packet=pts_time,flags", "-read_intervals",
                  "%+#30", "-of", "csv=p=0", rtspUrl(port)},
                 30s);
  ASSERT_EQ(r.exitCode, 0) << transport << ": " << r.err;
  std::istringstream lines(r.out);
  std::vector<std::string> packets;
  std::string line, stream;
  while (std::getline(lines, line)) {
    if (line.rfind("h264", 0) == 0)
      stream = line;
    else if (!line.empty())
      packets.push_back(line);
  }
  EXPECT_EQ(stream, "h264,640,480") << r.out;
  ASSERT_GE(packets.size(), 30u) << r.out;
  EXPECT_NE(packets[0].find('K'), std::string::npos) << "first packet not a keyframe: " << r.out;
  double previous = -1;
  for (const auto& p : packets) {
    if (p.rfind("N/A", 0) == 0) continue;
    const double t = std::stod(p);
    EXPECT_GT(t, previous) << r.out;
    previous = t;
  }
}

TEST_F(Streamer, RtspOverTcpStartsOnAKeyframeWithIncreasingTimestamps) {
  probeRtsp(process_->rtspPort(), "tcp");
}
TEST_F(Streamer, RtspOverUdpStartsOnAKeyframeWithIncreasingTimestamps) {
  probeRtsp(process_->rtspPort(), "udp");
}

// The printer's screen at rtsp://HOST:PORT/display (the virtual board's 800x480 panel): H.264,
// a keyframe first, increasing timestamps, and at least a picture a second whether or not the
// screen changes (MediaMTX drops a source after 10 s without packets, go2rtc after 5 s); ffmpeg
// decodes 3 s of it without an error. /status lists it.
TEST(StreamerLifecycle, ThePrinterScreenIsAnRtspStreamThatKeepsSending) {
  StreamerProcess p(PRINTCAST_STREAMER_BIN,
                    {"--board", "virtual", "--resolution", "320x240", "--display-fps", "5", "--no-ring"});
  ASSERT_TRUE(p.ok()) << p.log();
  const std::string url = "rtsp://127.0.0.1:" + std::to_string(p.rtspPort()) + "/display";
  // A screen sends a few pictures a second: ffprobe and ffmpeg would spend 10 s guessing its
  // frame rate (-fpsprobesize 0, -analyzeduration 0.5 s: they need not).
  const std::vector<std::string> fewPictures{"-rtsp_transport", "tcp",           "-analyzeduration",
                                             "500000",          "-fpsprobesize", "0"};
  std::vector<std::string> probe{"ffprobe", "-v", "error"};
  probe.insert(probe.end(), fewPictures.begin(), fewPictures.end());
  probe.insert(probe.end(), {"-select_streams", "v:0", "-show_entries",
                             "stream=codec_name,width,height:packet=pts_time,flags", "-read_intervals", "%+4",
                             "-of", "csv=p=0", url});
  const CommandResult r = runCommand(probe, 30s);
  ASSERT_EQ(r.exitCode, 0) << r.err;
  std::istringstream lines(r.out);
  std::vector<double> pts;
  std::string line, stream, first;
  while (std::getline(lines, line)) {
    if (line.rfind("h264", 0) == 0) {
      stream = line;
    } else if (!line.empty()) {
      if (first.empty()) first = line;
      if (line.rfind("N/A", 0) != 0) pts.push_back(std::stod(line));
    }
  }
  EXPECT_EQ(stream, "h264,800,480") << r.out;
  EXPECT_NE(first.find('K'), std::string::npos) << "first packet not a keyframe: " << r.out;
  ASSERT_GE(pts.size(), 4u) << "fewer than one picture a second over 4 s: " << r.out;
  for (size_t i = 1; i < pts.size(); ++i) EXPECT_GT(pts[i], pts[i - 1]) << r.out;
  EXPECT_LE(pts.back() - pts.front(), 5.0) << r.out;

  const CommandResult decode = ffmpegDecode(url, 3, fewPictures);
  EXPECT_EQ(decode.exitCode, 0) << decode.err;
  EXPECT_EQ(decode.err, "");
  const auto status = nlohmann::json::parse(httpRequest(p.streamPort(), "GET", "/status").body);
  EXPECT_NE(status["outputs"].dump().find("\"name\":\"display-rtsp\""), std::string::npos) << status.dump();
}

TEST_F(Streamer, FfmpegDecodesThreeSecondsOfRtspWithoutErrors) {
  for (const char* transport : {"tcp", "udp"}) {
    const CommandResult r = ffmpegDecode(rtspUrl(process_->rtspPort()), 3, {"-rtsp_transport", transport});
    EXPECT_EQ(r.exitCode, 0) << transport << ": " << r.err;
    EXPECT_EQ(r.err, "") << transport;
  }
}

// GStreamer (Debian's gst-launch-1.0, rtspsrc with its default transports: UDP first) decodes
// 45 pictures (3 s) and ends cleanly.
TEST_F(Streamer, GstreamerRtspsrcDecodesIt) {
  const CommandResult r =
      runCommand({"gst-launch-1.0", "-q", "rtspsrc", "location=" + rtspUrl(process_->rtspPort()), "!",
                  "rtph264depay", "!", "avdec_h264", "!", "identity", "eos-after=45", "!", "fakesink"},
                 60s);
  EXPECT_EQ(r.exitCode, 0) << r.out << r.err;
  const auto status =
      nlohmann::json::parse(httpRequest(process_->streamPort(), "GET", "/status").body, nullptr, false);
  bool listed = false;
  for (const auto& o : status["outputs"]) {
    listed = listed || (o.value("type", "") == "rtsp" && o.value("port", 0) == process_->rtspPort());
  }
  EXPECT_TRUE(listed) << status["outputs"].dump();
}

// ----------------------------------------------------------------------------- publishing

// A streamer publishing to `target`, received by ffmpeg run as the server (`listenFlags` before
// -i): the first receiver and then a second one on the same URL must each decode 3 s without an
// error (the second gets the stream from the publisher's retry, no restart). Returns /status.
std::string publishToTwoReceivers(const std::string& target, const std::vector<std::string>& listenFlags) {
  auto receive = [&] {
    std::vector<std::string> options = listenFlags;
    options.insert(options.end(), {"-timeout", "30"});
    return ffmpegDecode(target, 3, options);
  };
  CommandResult first;
  std::thread receiver([&] { first = receive(); });
  StreamerProcess publisher(PRINTCAST_STREAMER_BIN,
                            {"--board", "virtual", "--resolution", "320x240", "--desired-fps", "15",
                             "--no-display", "--no-ring", "--publish", target});
  receiver.join();
  EXPECT_TRUE(publisher.ok()) << publisher.log();
  if (!publisher.ok()) return {};
  EXPECT_EQ(first.exitCode, 0) << first.err << publisher.log();
  EXPECT_EQ(first.err, "") << "3 s decoded without an error";

  const CommandResult second = receive();
  EXPECT_EQ(second.exitCode, 0) << second.err << publisher.log();
  EXPECT_EQ(second.err, "");
  return httpRequest(publisher.streamPort(), "GET", "/status").body;
}

// --publish rtsp://: ffmpeg's RTSP listen mode takes our ANNOUNCE/SETUP (mode=record)/RECORD over
// TCP.
TEST(RtspPublish, FfmpegReceivesItAndAReceiverThatComesBackGetsItAgain) {
  const std::string target =
      "rtsp://127.0.0.1:" + std::to_string(printcast::testing::freeTcpPort()) + "/live/printer1";
  const std::string body = publishToTwoReceivers(target, {"-rtsp_flags", "listen"});
  const auto status = nlohmann::json::parse(body, nullptr, false);
  ASSERT_TRUE(status["publish"].is_array() && status["publish"].size() == 1) << body;
  const auto publish = status["publish"][0];
  EXPECT_EQ(publish.value("url", ""), target) << body;
  EXPECT_GE(publish.value("sessions", 0), 2) << body;
  EXPECT_GT(publish.value("bytes_sent", 0), 10000) << body;
}

// --publish rtsp:// into GStreamer's gst-rtsp-server in RECORD mode (tests/integration/
// rtsp_record_server.py, the way media servers take a pushed stream), twice: two targets (two
// servers, --publish given twice) each depayload and decode 45 pictures (3 s at 15 fps) of what
// we ANNOUNCE and RECORD, and /status lists both. The publishers retry until the receivers listen.
TEST(RtspPublish, TwoGstRtspServersInRecordModeEachDecodeIt) {
  const std::vector<uint16_t> ports{printcast::testing::freeTcpPort(), printcast::testing::freeTcpPort()};
  std::vector<CommandResult> received(ports.size());
  std::vector<std::thread> receivers;
  std::vector<std::string> args{"--board",       "virtual", "--resolution", "320x240",
                                "--desired-fps", "15",      "--no-display", "--no-ring"};
  for (size_t i = 0; i < ports.size(); ++i) {
    receivers.emplace_back([&, i] {
      received[i] = runCommand({"/usr/bin/python3", PRINTCAST_RTSP_RECORD_SERVER, "--port",
                                std::to_string(ports[i]), "--path", "/push", "--exit-after", "45"},
                               60s);
    });
    args.insert(args.end(), {"--publish", "rtsp://127.0.0.1:" + std::to_string(ports[i]) + "/push"});
  }
  StreamerProcess publisher(PRINTCAST_STREAMER_BIN, args);
  for (auto& t : receivers) t.join();
  ASSERT_TRUE(publisher.ok()) << publisher.log();
  for (size_t i = 0; i < ports.size(); ++i) {
    EXPECT_EQ(received[i].exitCode, 0) << i << ": " << received[i].err << publisher.log();
    EXPECT_NE(received[i].out.find("DECODED 45"), std::string::npos) << i << ": " << received[i].out;
  }
  const auto status = nlohmann::json::parse(httpRequest(publisher.controlPort(), "GET", "/status").body);
  ASSERT_EQ(status["publish"].size(), 2u) << status.dump();
  for (size_t i = 0; i < ports.size(); ++i) {
    EXPECT_EQ(status["publish"][i]["url"], "rtsp://127.0.0.1:" + std::to_string(ports[i]) + "/push");
    EXPECT_GE(status["publish"][i]["sessions"], 1);
  }
}

// A camera of a `cameras` list publishes its own H.264 ("publish" in its entry, here a list: RTSP
// RECORD and RTMP at once): ffmpeg as each server decodes 3 s of camera 1's 176x144 pictures (not
// camera 0's 320x240) without an error. Nobody else watches camera 1: the publishers are its
// viewers. /status lists the targets under camera 1; camera 0 publishes nowhere.
TEST(RtspPublish, TheSecondCameraOfAListPublishesItsOwnPictures) {
  const std::string rtsp =
      "rtsp://127.0.0.1:" + std::to_string(printcast::testing::freeTcpPort()) + "/printer1-cam2";
  const std::string rtmp =
      "rtmp://127.0.0.1:" + std::to_string(printcast::testing::freeTcpPort()) + "/live/cam2";
  const std::string config = writeTempFile(R"({"camera_port_base": -1, "cameras": [
      {"id": "nozzle", "source": "test-pattern", "resolution": "320x240", "fps": 15},
      {"id": "bed", "source": "test-pattern", "resolution": "176x144", "fps": 15,
       "publish": [")" + rtsp + R"(", ")" + rtmp +
                                           R"("]}]})");
  CommandResult received[2];
  std::thread receivers[2];
  const std::vector<std::string> listen[2] = {{"-rtsp_flags", "listen", "-timeout", "30"},
                                              {"-listen", "1", "-timeout", "30"}};
  for (int i = 0; i < 2; ++i) {
    receivers[i] =
        std::thread([&, i] { received[i] = ffmpegDecode(i == 0 ? rtsp : rtmp, 3, listen[i], "framecrc"); });
  }
  StreamerProcess publisher(PRINTCAST_STREAMER_BIN,
                            {"--board", "virtual", "--config", config, "--no-display", "--no-ring"});
  for (auto& t : receivers) t.join();
  unlink(config.c_str());
  ASSERT_TRUE(publisher.ok()) << publisher.log();
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(received[i].exitCode, 0) << i << ": " << received[i].err << publisher.log();
    EXPECT_EQ(received[i].err, "") << i << ": 3 s decoded without an error";
    std::istringstream lines(received[i].out);
    std::string line;
    int pictures = 0;
    while (std::getline(lines, line)) {
      if (line.empty() || line[0] == '#') continue;
      ++pictures;
      // "0, dts, pts, duration, size, crc" (padded): a 176x144 4:2:0 picture is 38016 bytes.
      std::istringstream fields(line);
      std::string size;
      for (int field = 0; field < 5; ++field) std::getline(fields, size, ',');
      EXPECT_EQ(std::stoi(size), 38016) << i << ": " << line;
    }
    EXPECT_GE(pictures, 30) << i << ": " << received[i].out;
  }
  const auto status = nlohmann::json::parse(httpRequest(publisher.streamPort(), "GET", "/status").body);
  EXPECT_EQ(status["publish"], nlohmann::json::array()) << "camera 0 publishes nowhere";
  ASSERT_EQ(status["cameras"].size(), 2u) << status.dump();
  EXPECT_EQ(status["cameras"][0]["publish"], nlohmann::json::array());
  const auto targets = status["cameras"][1]["publish"];
  ASSERT_EQ(targets.size(), 2u) << status.dump();
  EXPECT_EQ(targets[0]["url"], rtsp);
  EXPECT_EQ(targets[0]["protocol"], "rtsp");
  EXPECT_EQ(targets[1]["protocol"], "rtmp");
  EXPECT_EQ(targets[1]["url"].get<std::string>().find("cam2"), std::string::npos) << "the key stays secret";
  for (const auto& t : targets) EXPECT_GE(t["sessions"].get<int>(), 1) << t.dump();
}

// --publish rtmp://: ffmpeg's RTMP server (-listen 1) takes our handshake, connect, createStream
// and publish, and decodes the FLV video messages. The key never shows in /status.
TEST(RtmpPublish, FfmpegReceivesItAndAReceiverThatComesBackGetsItAgain) {
  const std::string target =
      "rtmp://127.0.0.1:" + std::to_string(printcast::testing::freeTcpPort()) + "/live/s3cretkey";
  const std::string body = publishToTwoReceivers(target, {"-listen", "1"});
  EXPECT_EQ(body.find("s3cretkey"), std::string::npos) << "the stream key stays secret";
  const auto status = nlohmann::json::parse(body, nullptr, false);
  ASSERT_TRUE(status["publish"].is_array() && status["publish"].size() == 1) << body;
  const auto publish = status["publish"][0];
  EXPECT_EQ(publish.value("protocol", ""), "rtmp") << body;
  EXPECT_GE(publish.value("sessions", 0), 2) << body;
}

// A TLS terminator in front of ffmpeg's RTMP listener (ffmpeg cannot listen on rtmps:// itself:
// "rtmp_listen not available for rtmps"): stunnel4 with a certificate for localhost and 127.0.0.1
// made by openssl, started as a daemon (its pid file) and stopped with it.
class TlsTerminator {
 public:
  // Listens on 127.0.0.1:`port` and forwards the plaintext to 127.0.0.1:`to`. `error` says why not.
  TlsTerminator(uint16_t port, uint16_t to) {
    char dir[] = "/tmp/printcast-tls-XXXXXX";
    if (mkdtemp(dir) == nullptr) return;
    dir_ = dir;
    for (const char* name : {"ca", "other"}) {  // the server's certificate, and one that is not its
      const CommandResult r =
          runCommand({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                      "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout",
                      dir_ + "/" + name + ".key", "-out", dir_ + "/" + name + ".pem"},
                     30s);
      if (r.exitCode != 0) {
        error = "openssl: " + r.err;
        return;
      }
    }
    std::FILE* conf = std::fopen((dir_ + "/stunnel.conf").c_str(), "w");
    if (conf == nullptr) return;
    std::fprintf(conf, "foreground = no\npid = %s/stunnel.pid\noutput = %s/stunnel.log\n[rtmps]\n",
                 dir_.c_str(), dir_.c_str());
    std::fprintf(conf, "accept = 127.0.0.1:%u\nconnect = 127.0.0.1:%u\ncert = %s/ca.pem\nkey = %s/ca.key\n",
                 port, to, dir_.c_str(), dir_.c_str());
    std::fclose(conf);
    const CommandResult r = runCommand({"stunnel4", dir_ + "/stunnel.conf"}, 30s);
    if (r.exitCode != 0) {
      error = "stunnel4: " + r.out + r.err;
      return;
    }
    // Its daemon writes the pid file once it runs (what the destructor stops it by).
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (pid() <= 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
    error = pid() > 0 ? "" : "stunnel4 wrote no pid file: " + r.out + r.err;
  }
  ~TlsTerminator() {
    if (const int p = pid(); p > 0 && ::kill(p, SIGTERM) == 0) {
      // Not our child (it daemonized): wait until it is gone, as it removes its pid file on exit
      // and must not do that while the folder is being removed.
      const auto deadline = std::chrono::steady_clock::now() + 5s;
      while (::kill(p, 0) == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(10ms);
    }
    std::error_code ec;  // whatever is left, best effort: a destructor must not throw
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  std::string caFile() const { return dir_ + "/ca.pem"; }
  std::string otherCaFile() const { return dir_ + "/other.pem"; }
  std::string error = "could not write its files";  // "" once it runs

 private:
  // The daemon's pid from its pid file, 0 before it is written.
  int pid() const {
    std::FILE* f = dir_.empty() ? nullptr : std::fopen((dir_ + "/stunnel.pid").c_str(), "r");
    int pid = 0;
    if (f != nullptr) {
      if (std::fscanf(f, "%d", &pid) != 1) pid = 0;
      std::fclose(f);
    }
    return pid;
  }
  std::string dir_;
};

// --publish rtmps://: the TLS handshake (SNI, the certificate checked against SSL_CERT_FILE's CA
// and the host name), then the same RTMP publish: ffmpeg behind the terminator decodes 3 s. With
// SSL_CERT_FILE naming another CA the certificate is refused, and /status says why.
TEST(RtmpPublish, OverTlsFfmpegBehindATlsTerminatorReceivesItAndAnUntrustedCertificateIsRefused) {
  if (!printcast::transport::rtmpsSupported())
    GTEST_SKIP() << "machine: this build has no TLS client (GnuTLS)";
  if (runCommand({"stunnel4", "-version"}, 10s).exitCode != 0)
    GTEST_SKIP() << "machine: no stunnel4 here (scripts/install-deps.sh test installs it)";
  const uint16_t tlsPort = printcast::testing::freeTcpPort();
  const uint16_t rtmpPort = printcast::testing::freeTcpPort();
  TlsTerminator terminator(tlsPort, rtmpPort);
  ASSERT_EQ(terminator.error, "");
  const std::string target = "rtmps://localhost:" + std::to_string(tlsPort) + "/live/s3cretkey";
  auto publisher = [&](const std::string& caFile) {
    ::setenv("SSL_CERT_FILE", caFile.c_str(), 1);  // the streamer inherits it
    auto p = std::make_unique<StreamerProcess>(
        PRINTCAST_STREAMER_BIN,
        std::vector<std::string>{"--board", "virtual", "--resolution", "320x240", "--desired-fps", "15",
                                 "--no-display", "--no-ring", "--publish", target});
    ::unsetenv("SSL_CERT_FILE");
    return p;
  };

  CommandResult received;
  std::thread receiver([&] {
    received = ffmpegDecode("rtmp://127.0.0.1:" + std::to_string(rtmpPort) + "/live/s3cretkey", 3,
                            {"-listen", "1", "-timeout", "30"});
  });
  auto trusting = publisher(terminator.caFile());
  receiver.join();
  ASSERT_TRUE(trusting->ok()) << trusting->log();
  EXPECT_EQ(received.exitCode, 0) << received.err << trusting->log();
  EXPECT_EQ(received.err, "") << "3 s decoded without an error";
  auto status = nlohmann::json::parse(httpRequest(trusting->streamPort(), "GET", "/status").body);
  EXPECT_EQ(status["publish"][0].value("url", ""),
            "rtmps://localhost:" + std::to_string(tlsPort) + "/live/***");
  EXPECT_GE(status["publish"][0].value("sessions", 0), 1) << status["publish"].dump();
  trusting.reset();

  auto refusing = publisher(terminator.otherCaFile());
  ASSERT_TRUE(refusing->ok()) << refusing->log();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  nlohmann::json publish;
  do {
    std::this_thread::sleep_for(50ms);
    publish = nlohmann::json::parse(httpRequest(refusing->streamPort(), "GET", "/status").body)["publish"][0];
  } while (publish.value("failures", 0) < 1 && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(publish.value("sessions", -1), 0) << publish.dump();
  EXPECT_NE(publish.value("last_error", "").find("certificate is refused"), std::string::npos)
      << publish.dump();
}

}  // namespace
