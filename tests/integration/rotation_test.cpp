// SPDX-License-Identifier: MIT
// camera_rotation / camera_flip_* (--rotate, --flip): every output carries the turned picture;
// stream_resolution / snapshot_resolution: the stream outputs scaled, snapshots at their own size.
// Each check undoes the transform on a decoded picture and reads the test pattern's wall-clock
// timecode strip back (hal/test_pattern.h): only the right transform puts the strip back along
// the bottom edge, left to right, so this checks orientation and mirroring, not only the size.
#include <turbojpeg.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "printcast/codecs/jpeg.h"
#include "printcast/hal/test_pattern.h"
#include "printcast/hal/transform.h"
#include "printcast/transport/mjpeg.h"
#include "test_client.h"

namespace {

using namespace std::chrono_literals;
using printcast::hal::Point;
using printcast::hal::Size;
using printcast::hal::Transform;
using printcast::testing::CommandResult;
using printcast::testing::httpRequest;
using printcast::testing::runCommand;
using printcast::testing::StreamConnection;
using printcast::testing::StreamerProcess;

struct Gray {
  Size size;
  std::vector<uint8_t> luma;
};

std::optional<Gray> decodeJpegLuma(const std::string& jpeg) {
  Gray out;
  tjhandle tj = tjInitDecompress();
  int subsampling = 0;
  int colorspace = 0;
  bool ok = tjDecompressHeader3(tj, reinterpret_cast<const unsigned char*>(jpeg.data()), jpeg.size(),
                                &out.size.width, &out.size.height, &subsampling, &colorspace) == 0;
  if (ok) {
    out.luma.resize(static_cast<size_t>(out.size.width) * out.size.height);
    ok = tjDecompress2(tj, reinterpret_cast<const unsigned char*>(jpeg.data()), jpeg.size(), out.luma.data(),
                       out.size.width, 0, out.size.height, TJPF_GRAY, 0) == 0;
  }
  tjDestroy(tj);
  if (!ok) return std::nullopt;
  return out;
}

// The first picture of `url`, decoded by ffmpeg to 8-bit luma at `size`.
std::optional<Gray> ffmpegLuma(const std::string& url, Size size,
                               std::vector<std::string> inputOptions = {}) {
  std::vector<std::string> argv{"ffmpeg", "-v", "error"};
  argv.insert(argv.end(), inputOptions.begin(), inputOptions.end());
  const std::string path = ::testing::TempDir() + "/rotation-" + std::to_string(::getpid()) + ".gray";
  argv.insert(argv.end(), {"-i", url, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-y", path});
  const CommandResult r = runCommand(argv, 30s);
  if (r.exitCode != 0) {
    ADD_FAILURE() << url << ": " << r.err;
    return std::nullopt;
  }
  Gray out{size, {}};
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return std::nullopt;
  out.luma.resize(static_cast<size_t>(size.width) * size.height);
  const size_t got = std::fread(out.luma.data(), 1, out.luma.size(), f);
  std::fclose(f);
  std::remove(path.c_str());
  if (got != out.luma.size()) return std::nullopt;
  return out;
}

// The camera's picture (cameraSize) from one turned by `t`, and its timecode: the wall-clock
// milliseconds (low 32 bits) of the capture.
std::optional<uint32_t> timecodeUpright(const Gray& turned, Transform t, Size cameraSize) {
  if (!(turned.size == t.apply(cameraSize))) {
    ADD_FAILURE() << "turned picture is " << turned.size.str() << ", expected " << t.apply(cameraSize).str();
    return std::nullopt;
  }
  std::vector<uint8_t> upright(static_cast<size_t>(cameraSize.width) * cameraSize.height);
  for (int y = 0; y < cameraSize.height; ++y) {
    for (int x = 0; x < cameraSize.width; ++x) {
      const Point p = t.applyToPixel({x, y}, cameraSize);
      upright[static_cast<size_t>(y) * cameraSize.width + x] =
          turned.luma[static_cast<size_t>(p.y) * turned.size.width + p.x];
    }
  }
  return printcast::hal::readTestPatternTimecode(upright.data(), cameraSize.width, cameraSize);
}

uint32_t wallClockMs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint32_t>(static_cast<uint64_t>(ts.tv_sec) * 1000 +
                               static_cast<uint64_t>(ts.tv_nsec) / 1000000);
}

// A timecode read back must be a capture time of the last minute: garbage from a picture
// turned the wrong way would not be.
void expectRecent(std::optional<uint32_t> timecode, const std::string& what) {
  ASSERT_TRUE(timecode.has_value()) << what << ": the timecode strip does not read back upright";
  const uint32_t age = wallClockMs() - *timecode;
  EXPECT_LT(age, 60000U) << what << ": timecode " << *timecode << " is not a recent capture";
}

// The first JPEG a viewer of /stream receives (empty when none came within 10 s).
std::string firstMjpegPart(uint16_t port) {
  StreamConnection viewer(port, "/stream");
  printcast::transport::mjpeg::Parser parser;
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (viewer.ok() && std::chrono::steady_clock::now() < end) {
    const std::string chunk = viewer.read(1 << 20, 200ms);
    if (!parser.feed({reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size()})) break;
    auto parts = parser.takeParts();
    if (!parts.empty()) return {parts[0].begin(), parts[0].end()};
  }
  ADD_FAILURE() << "no MJPEG part from /stream within 10 s";
  return {};
}

std::string url(uint16_t port, const std::string& path) {
  return "http://127.0.0.1:" + std::to_string(port) + path;
}

// ffprobe's width and height of the first video stream at `target`.
std::string probeSize(const std::string& target, std::vector<std::string> inputOptions = {}) {
  std::vector<std::string> argv{"ffprobe", "-v", "error"};
  argv.insert(argv.end(), inputOptions.begin(), inputOptions.end());
  argv.insert(argv.end(),
              {"-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0", target});
  const CommandResult r = runCommand(argv, 30s);
  EXPECT_EQ(r.exitCode, 0) << target << ": " << r.err;
  return r.out.substr(0, r.out.find('\n'));
}

TEST(CameraRotation, EveryOutputCarriesThePictureTurnedAndMirrored) {
  const Size camera{320, 240};
  // --rotate 90 --flip x: a transpose (the picture's top-left stays top-left).
  const Transform t = Transform::rot90().then(Transform::hflip());
  StreamerProcess p(PRINTCAST_STREAMER_BIN, {"--board", "virtual", "--resolution", camera.str(),
                                             "--no-display", "--rotate", "90", "--flip", "x", "--no-ring"});
  ASSERT_TRUE(p.ok()) << p.log();
  const auto status = nlohmann::json::parse(httpRequest(p.controlPort(), "GET", "/status").body);
  EXPECT_EQ(status["camera"]["rotation"], 90);
  EXPECT_EQ(status["camera"]["flip_x"], true);
  EXPECT_EQ(status["camera"]["flip_y"], false);

  // JPEG: /snapshot and a part of /stream.
  const auto snapshot = httpRequest(p.streamPort(), "GET", "/snapshot");
  ASSERT_EQ(snapshot.status, 200);
  auto luma = decodeJpegLuma(snapshot.body);
  ASSERT_TRUE(luma.has_value());
  expectRecent(timecodeUpright(*luma, t, camera), "/snapshot");
  luma = decodeJpegLuma(firstMjpegPart(p.streamPort()));
  ASSERT_TRUE(luma.has_value());
  expectRecent(timecodeUpright(*luma, t, camera), "/stream");

  // H.264: decoded from /flv; /stream.mp4, HLS and RTSP carry the same encoder's pictures.
  luma = ffmpegLuma(url(p.streamPort(), "/flv"), t.apply(camera));
  ASSERT_TRUE(luma.has_value());
  expectRecent(timecodeUpright(*luma, t, camera), "/flv");
  EXPECT_EQ(probeSize(url(p.streamPort(), "/stream.mp4")), "240,320");
  EXPECT_EQ(probeSize(url(p.streamPort(), "/hls/stream.m3u8")), "240,320");
  EXPECT_EQ(
      probeSize("rtsp://127.0.0.1:" + std::to_string(p.rtspPort()) + "/stream", {"-rtsp_transport", "tcp"}),
      "240,320");
}

// An MJPEG camera's JPEGs cannot be passed through when turned: they are decoded, turned and
// encoded again for /stream and /snapshot, and the H.264 outputs get the same turned picture.
TEST(CameraRotation, AnMjpegCamerasPicturesAreDecodedTurnedAndEncodedAgain) {
  const Size camera{640, 480};
  StreamerProcess upstream(PRINTCAST_STREAMER_BIN,
                           {"--board", "virtual", "--resolution", camera.str(), "--no-display", "--flv-port",
                            "-1", "--ws-port", "-1", "--rtsp-port", "-1", "--no-ring"});
  ASSERT_TRUE(upstream.ok()) << upstream.log();
  StreamerProcess p(PRINTCAST_STREAMER_BIN,
                    {"--board", "virtual", "--source", url(upstream.streamPort(), "/stream"), "--no-display",
                     "--rotate", "180", "--no-ring"});
  ASSERT_TRUE(p.ok()) << p.log();
  const Transform t = Transform::rot180();
  std::optional<Gray> luma;
  const auto end = std::chrono::steady_clock::now() + 15s;
  while (!luma && std::chrono::steady_clock::now() < end) {
    const auto snapshot = httpRequest(p.streamPort(), "GET", "/snapshot");
    if (snapshot.status == 200) luma = decodeJpegLuma(snapshot.body);
    if (!luma) std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(luma.has_value()) << p.log();
  expectRecent(timecodeUpright(*luma, t, camera), "/snapshot of a pulled MJPEG camera");
  luma = ffmpegLuma(url(p.streamPort(), "/flv"), camera);
  ASSERT_TRUE(luma.has_value());
  expectRecent(timecodeUpright(*luma, t, camera), "/flv of a pulled MJPEG camera");
}

// A full-size camera, a small stream, full-size snapshots, all turned: /snapshot is the camera's
// picture at 480x640, /stream and the H.264 outputs are 240x320, each upright once turned back.
TEST(StreamAndSnapshotResolution, SnapshotsKeepTheCamerasSizeWhileTheStreamIsScaledDown) {
  const Size camera{640, 480};
  const Transform t = Transform::rot90();
  StreamerProcess p(PRINTCAST_STREAMER_BIN,
                    {"--board", "virtual", "--resolution", camera.str(), "--stream-resolution", "320x240",
                     "--snapshot-resolution", "640x480", "--rotate", "90", "--no-display", "--no-ring"});
  ASSERT_TRUE(p.ok()) << p.log();
  const auto snapshot = httpRequest(p.streamPort(), "GET", "/snapshot");
  ASSERT_EQ(snapshot.status, 200);
  // A snapshot is answered once the camera streams: /status has its sizes by then.
  const auto status = nlohmann::json::parse(httpRequest(p.controlPort(), "GET", "/status").body);
  EXPECT_EQ(status["camera"]["stream_size"], "240x320") << status["camera"].dump();
  EXPECT_EQ(status["camera"]["snapshot_size"], "480x640") << status["camera"].dump();
  auto luma = decodeJpegLuma(snapshot.body);
  ASSERT_TRUE(luma.has_value());
  expectRecent(timecodeUpright(*luma, t, camera), "/snapshot at the camera's size");

  const Size stream{320, 240};
  luma = decodeJpegLuma(firstMjpegPart(p.streamPort()));
  ASSERT_TRUE(luma.has_value());
  expectRecent(timecodeUpright(*luma, t, stream), "/stream scaled down");
  // A snapshot asked for while /stream plays is still full size.
  const auto again = httpRequest(p.streamPort(), "GET", "/snapshot");
  ASSERT_EQ(again.status, 200);
  luma = decodeJpegLuma(again.body);
  ASSERT_TRUE(luma.has_value());
  EXPECT_EQ(luma->size, t.apply(camera));

  luma = ffmpegLuma(url(p.streamPort(), "/flv"), t.apply(stream));
  ASSERT_TRUE(luma.has_value());
  expectRecent(timecodeUpright(*luma, t, stream), "/flv scaled down");
}

}  // namespace
