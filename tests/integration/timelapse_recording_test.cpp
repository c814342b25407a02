// SPDX-License-Identifier: MIT
// The streamer's timelapse end to end: the real printcast-streamer on the virtual board follows a
// 40-layer print from a fake Moonraker on its unix socket, takes each frame from its own
// snapshot path, and writes an MP4 that ffprobe/ffmpeg accept; it registers its webcam.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "../fake_moonraker.h"
#include "test_client.h"

using namespace std::chrono_literals;
using printcast::testing::httpRequest;
using printcast::testing::runCommand;
using printcast::testing::StreamerProcess;
namespace fs = std::filesystem;

namespace {

nlohmann::json timelapseStatus(const StreamerProcess& p) {
  const auto r = httpRequest(p.controlPort(), "GET", "/api/timelapse/status");
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  return j.is_discarded() ? nlohmann::json::object() : j;
}

bool waitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

}  // namespace

TEST(TimelapseRecording, FortyLayerPrintFromMoonrakerBecomesAVideo) {
  char tmpl[] = "/tmp/printcast-tl-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path dir = tmpl;
  const fs::path videos = dir / "videos";
  const std::string socketPath = (dir / "moonraker.sock").string();
  printcast::testing::FakeMoonraker moonraker(socketPath, false);
  {
    std::ofstream cfg(dir / "app.json");
    cfg << nlohmann::json{{"timelapse_enabled", true},           {"timelapse_mode", "layer"},
                          {"timelapse_stream_delay", 0},         {"timelapse_output_fps", 20},
                          {"timelapse_duplicate_last_frame", 2}, {"moonraker_socket", socketPath},
                          {"moonraker_register_webcam", true},   {"timelapse_folder", videos.string()}}
               .dump();
  }
  StreamerProcess p(PRINTCAST_STREAMER_BIN, {"--board", "virtual", "--desired-fps", "15", "--resolution",
                                             "320x240", "--config", (dir / "app.json").string()});
  ASSERT_TRUE(p.ok()) << p.log();
  ASSERT_TRUE(moonraker.waitForSubscribes(1, 10s)) << p.log();
  ASSERT_TRUE(moonraker.waitForCall("server.webcams.post_item", 10s));
  const auto webcam = moonraker.calls("server.webcams.post_item")[0];
  EXPECT_EQ(webcam["service"], "mjpegstreamer-adaptive");
  EXPECT_EQ(webcam["name"], "printcast");
  const std::string snapshotUrl = webcam["snapshot_url"];
  EXPECT_EQ(snapshotUrl.find('&'), std::string::npos);
  EXPECT_TRUE(snapshotUrl.ends_with(":" + std::to_string(p.streamPort()) + "/snapshot")) << snapshotUrl;
  EXPECT_TRUE(webcam["stream_url"].get<std::string>().ends_with("/stream"));

  auto st = timelapseStatus(p);
  EXPECT_EQ(st["enabled"], true) << st.dump();
  EXPECT_EQ(st["moonraker"]["state"], "subscribed") << st.dump();
  EXPECT_EQ(st["moonraker"]["connected"], true);
  EXPECT_EQ(httpRequest(p.controlPort(), "GET", "/api/timelapse/moonraker").status, 200);

  moonraker.update({{"print_stats", {{"state", "printing"}, {"filename", "calibration cube.gcode"}}},
                    {"virtual_sdcard", {{"current_layer", 0}, {"total_layer", 40}}}});
  for (int layer = 1; layer <= 40; ++layer) {
    moonraker.update({{"virtual_sdcard", {{"current_layer", layer}}}});
    ASSERT_TRUE(waitFor([&] { return timelapseStatus(p)["recording"]["frames_captured"] == layer; }, 10s))
        << "layer " << layer << ": " << timelapseStatus(p).dump() << p.log();
  }
  st = timelapseStatus(p);
  EXPECT_EQ(st["state"], "recording");
  EXPECT_EQ(st["moonraker"]["print"]["current_layer"], 40);
  moonraker.update({{"print_stats", {{"state", "complete"}}}});
  ASSERT_TRUE(waitFor([&] { return timelapseStatus(p)["assembly"]["videos_made"] == 1; }, 60s))
      << timelapseStatus(p).dump();
  st = timelapseStatus(p);
  EXPECT_EQ(st["assembly"]["last_video"], "calibration_cube_1.mp4");
  EXPECT_EQ(st["assembly"]["last_thumbnail"], "calibration_cube_1_40.jpg");
  EXPECT_EQ(st["last_error"], "");
  const fs::path video = videos / "calibration_cube_1.mp4";
  ASSERT_TRUE(fs::exists(video));
  EXPECT_TRUE(fs::exists(videos / "calibration_cube_1_40.jpg"));
  const auto probe =
      runCommand({"ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
                  "stream=nb_read_frames,avg_frame_rate,width,height", "-of", "csv=p=0", video.string()},
                 30s);
  EXPECT_EQ(probe.out, "320,240,20/1,42\n") << probe.out;
  // The frames are decoded JPEG snapshots (full range): players must be told (H.264 VUI).
  const auto range = runCommand({"ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                                 "stream=color_range,color_space", "-of", "csv=p=0", video.string()},
                                30s);
  EXPECT_EQ(range.out, "pc,smpte170m\n") << range.out;
  const auto decode = runCommand({"ffmpeg", "-v", "error", "-i", video.string(), "-f", "null", "-"}, 30s);
  EXPECT_EQ(decode.exitCode, 0);
  EXPECT_EQ(decode.err, "") << decode.err;

  // The recorder's keys through the manager's settings API: checked across keys, applied live
  // (the client reconnects and subscribes again, the recorder runs in the new mode).
  const std::map<std::string, std::string> json{{"Content-Type", "application/json"}};
  const auto bad =
      httpRequest(p.controlPort(), "POST", "/api/timelapse/settings",
                  R"({"timelapse_variable_fps_min": 70, "timelapse_variable_fps_max": 60})", json);
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(nlohmann::json::parse(bad.body)["key"], "timelapse_variable_fps_min") << bad.body;
  const auto good =
      httpRequest(p.controlPort(), "POST", "/api/timelapse/settings",
                  R"({"timelapse_mode": "hyperlapse", "timelapse_hyperlapse_interval": 5})", json);
  ASSERT_EQ(good.status, 200) << good.body;
  EXPECT_TRUE(moonraker.waitForSubscribes(2, 10s));
  ASSERT_TRUE(waitFor([&] { return timelapseStatus(p)["mode"] == "hyperlapse"; }, 10s))
      << timelapseStatus(p).dump();
  const auto saved = httpRequest(p.controlPort(), "GET", "/api/timelapse/settings");
  EXPECT_EQ(nlohmann::json::parse(saved.body)["settings"]["timelapse_hyperlapse_interval"], 5) << saved.body;
  EXPECT_EQ(p.terminate(10s), 0);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

namespace {

// The go-klipper firmware's local service (gkapi, protocols.md "Anycubic firmware integration"):
// a TCP listener speaking 0x03-terminated JSON. It answers the LAN-mode query (one request per
// connection) and keeps every other connection (the streamer's timelapse link, which sends only
// replies) so the test can broadcast the firmware's process_status_update messages to it.
class FakeGkapi {
 public:
  FakeGkapi() {
    fd_ = printcast::testing::listenLoopback(port_, 8);
    EXPECT_GE(fd_, 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeGkapi() {
    stop_ = true;
    thread_.join();
    for (int c : clients_) ::close(c);
    ::close(fd_);
  }
  FakeGkapi(const FakeGkapi&) = delete;
  FakeGkapi& operator=(const FakeGkapi&) = delete;
  uint16_t port() const { return port_; }

  // Send one video_stream_request (and, when given, print_stats.state) to every kept connection;
  // returns the first reply (the JSON before its 0x03) within `timeout`, or "" when none came.
  std::string request(const nlohmann::json& videoRequest, const std::string& printState = "",
                      std::chrono::milliseconds timeout = 5s) {
    nlohmann::json status = nlohmann::json::object();
    if (!videoRequest.is_null()) status["video_stream_request"] = videoRequest;
    if (!printState.empty()) status["print_stats"] = {{"state", printState}};
    std::string message = nlohmann::json{{"id", 0},
                                         {"method", "process_status_update"},
                                         {"params", {{"eventtime", 0}, {"response", ""}, {"status", status}}}}
                              .dump();
    message.push_back('\x03');
    std::vector<int> clients;
    {
      std::lock_guard lock(mutex_);
      clients = clients_;
    }
    for (int c : clients) (void)::write(c, message.data(), message.size());
    if (videoRequest.is_null()) return "";
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (int c : clients) {
      std::string in;
      char buf[512];
      while (in.find('\x03') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
        pollfd p{c, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
      }
      if (in.find('\x03') != std::string::npos) return in.substr(0, in.find('\x03'));
    }
    return "";
  }
  size_t kept() const {
    std::lock_guard lock(mutex_);
    return clients_.size();
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      // A LAN-mode query arrives at once; the timelapse link sends nothing until asked.
      pollfd q{c, POLLIN, 0};
      std::string in;
      char buf[512];
      while (in.find('\x03') == std::string::npos && ::poll(&q, 1, 300) > 0) {
        const ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
      }
      if (in.find('\x03') == std::string::npos) {
        std::lock_guard lock(mutex_);
        clients_.push_back(c);
        continue;
      }
      std::string out = R"({"id":2016,"result":{"open":1}})";
      out.push_back('\x03');
      (void)::write(c, out.data(), out.size());
      ::close(c);
    }
  }
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<int> clients_;
  std::thread thread_;
};

}  // namespace

// go-klipper mode with timelapse_enabled false: the firmware's own timelapse requests (as gkcam
// gets them) drive the recorder. openDelayCamera opens the recording, each startLanCapture takes a
// frame, print_stats complete makes the video; every request gets Video/VideoStreamReply with its id.
TEST(TimelapseRecording, TwentyLayerPrintFromTheFirmwaresRequestsBecomesAVideo) {
  char tmpl[] = "/tmp/printcast-tl-native-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path dir = tmpl;
  const fs::path videos = dir / "videos";
  FakeGkapi gkapi;
  {
    std::ofstream cfg(dir / "app.json");
    cfg << nlohmann::json{{"mode", "go-klipper"},
                          {"lan_mode_port", gkapi.port()},
                          {"timelapse_enabled", false},
                          {"timelapse_output_fps", 20},
                          {"timelapse_folder", videos.string()}}
               .dump();
  }
  StreamerProcess p(PRINTCAST_STREAMER_BIN, {"--board", "virtual", "--desired-fps", "15", "--resolution",
                                             "320x240", "--config", (dir / "app.json").string()});
  ASSERT_TRUE(p.ok()) << p.log();
  auto status = [&] {
    const auto r = httpRequest(p.controlPort(), "GET", "/status");
    return nlohmann::json::parse(r.body, nullptr, false);
  };
  ASSERT_TRUE(waitFor(
      [&] {
        const auto s = status();
        return s.is_object() && s["anycubic"]["timelapse"]["connected"] == true &&
               s["camera"]["signal"] == true && s["lan_mode"]["state"] != "unknown" && gkapi.kept() == 1;
      },
      15s))
      << status().dump() << p.log();
  EXPECT_EQ(status()["anycubic"]["timelapse"]["recorder"], "native");

  auto reply = [](const std::string& text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    return j.is_object() ? j["params"]["status"]["video_stream_reply"] : nlohmann::json();
  };
  int id = 100;
  auto r = reply(gkapi.request({{"id", ++id}, {"method", "SetLed"}, {"params", {{"enable", 1}}}}));
  EXPECT_EQ(r["id"], id) << r.dump();
  r = reply(gkapi.request({{"id", ++id},
                           {"method", "openDelayCamera"},
                           {"params", {{"filepath", "/useremain/app/gk/gcodes/Benchy_PLA_0.2.gcode"}}}}));
  EXPECT_EQ(r["id"], id) << r.dump();
  EXPECT_EQ(r["method"], "openDelayCamera");
  EXPECT_TRUE(r.contains("result")) << r.dump();
  r = reply(
      gkapi.request({{"id", ++id}, {"method", "stopLanCapture"}, {"params", nlohmann::json::object()}}));
  EXPECT_EQ(r["id"], id) << r.dump();
  for (int layer = 1; layer <= 20; ++layer) {
    r = reply(gkapi.request({{"id", ++id}, {"method", "startLanCapture"}, {"params", {{"channel", "x"}}}}));
    ASSERT_EQ(r["id"], id) << r.dump();
    ASSERT_TRUE(r.contains("result")) << r.dump();
    ASSERT_TRUE(waitFor([&] { return timelapseStatus(p)["recording"]["frames_captured"] == layer; }, 10s))
        << "layer " << layer << ": " << timelapseStatus(p).dump() << p.log();
  }
  gkapi.request(nullptr, "complete");
  ASSERT_TRUE(waitFor([&] { return timelapseStatus(p)["assembly"]["videos_made"] == 1; }, 60s))
      << timelapseStatus(p).dump() << p.log();
  const std::string name = timelapseStatus(p)["assembly"]["last_video"];
  EXPECT_EQ(name, "Benchy_PLA_0.2_1.mp4");  // the gcode's base name keeps its dots
  const fs::path video = videos / name;
  ASSERT_TRUE(fs::exists(video)) << video;
  const auto probe =
      runCommand({"ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
                  "stream=nb_read_frames,width,height", "-of", "csv=p=0", video.string()},
                 30s);
  EXPECT_EQ(probe.out, "320,240,20\n") << probe.out;
  fs::remove_all(dir);
}
