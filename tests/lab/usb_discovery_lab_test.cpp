// SPDX-License-Identifier: MIT
// Lab: USB camera auto-discovery (issue 11, apps/streamer/usb_camera_plan.h) against real kernel
// devices: two vivid capture nodes given /dev/v4l/by-id links, and the real printcast-streamer on
// generic-linux without --source/--device, read over loopback.
//
// NOTE FOR THE LAB RUNNER (tests/lab/run-lab.sh) — what this binary, `lab_usb_discovery`, does:
//  - Runs inside the lab VM as root. Reloads vivid with two capture devices
//    (`rmmod vivid`, `modprobe vivid n_devs=2 node_types=0x1,0x1`) and, whatever happens, puts
//    back the lab's default (`n_devs=1 node_types=0x1`, /dev/video0) at the end, so the tests and
//    the probe that run after it find the camera they expect. Override the commands with
//    PRINTCAST_LAB_VIVID_UNLOAD / PRINTCAST_LAB_VIVID_LOAD2 / PRINTCAST_LAB_VIVID_LOAD.
//  - udev does not run in the VM and vivid is not a USB device, so the test makes the links udev
//    would make for two USB webcams, /dev/v4l/by-id/usb-printcast_Lab_Vivid_00N-video-index0 ->
//    ../../videoN, and removes them at the end.
//  - What the planner sees: two capture nodes with a by-id link each (vicodec's M2M nodes are not
//    capture nodes and have no link). vivid's bus_info is "platform:vivid-000" / "platform:vivid-001":
//    not "usb-...", so usbBusOf() makes each its own bus with one camera on it, and nothing is
//    reduced (no plan_note, no plan notes). The board's camera match is "" (generic-linux), so
//    camera 0 is the first node by number (vivid-000); camera 1 is vivid-001. vivid offers no
//    MJPEG: camera 0 takes the pipeline's order after the board's MJPEG (I420), camera 1 YUYV.
//  - Outside the lab VM (PRINTCAST_LAB unset) the test skips, naming the machine.
//  - Takes ~5 s under TCG. Writes nothing but its gtest XML (and the plan it saw, on stdout).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "printcast/hal/v4l2.h"
#include "test_client.h"

namespace {

using namespace std::chrono_literals;
using printcast::testing::httpRequest;
using printcast::testing::jpegSize;
using printcast::testing::StreamerProcess;
namespace fs = std::filesystem;

constexpr const char* kByIdDir = "/dev/v4l/by-id";

std::string envOr(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

// The vivid capture nodes by bus_info ("platform:vivid-000" -> "/dev/video0"), in bus_info order.
std::vector<printcast::hal::V4l2DeviceInfo> vividNodes() {
  std::vector<printcast::hal::V4l2DeviceInfo> out;
  auto devices = printcast::hal::enumerateV4l2Devices();
  if (!devices) return out;
  for (auto& d : *devices) {
    if (d.driver == "vivid") out.push_back(d);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.busInfo < b.busInfo; });
  return out;
}

class UsbDiscoveryLab : public ::testing::Test {
 protected:
  void SetUp() override {
    // Outside the VM it would unload the host's vivid: only where run-lab.sh runs it.
    if (std::getenv("PRINTCAST_LAB") == nullptr)
      GTEST_SKIP() << "machine: not in the lab VM (tests/lab/run-lab.sh)";
    ASSERT_TRUE(fs::exists("/sys/module/vivid")) << "the lab VM has no vivid loaded";
    reloaded_ = true;  // from here on TearDown puts the lab's vivid back
    const std::string unload = envOr("PRINTCAST_LAB_VIVID_UNLOAD", "rmmod vivid");
    const std::string load = envOr("PRINTCAST_LAB_VIVID_LOAD2", "modprobe vivid n_devs=2 node_types=0x1,0x1");
    ASSERT_EQ(std::system(unload.c_str()), 0) << unload << " (is a vivid node still open?)";
    ASSERT_EQ(std::system(load.c_str()), 0) << load;
    for (int i = 0; i < 50 && nodes_.size() < 2; ++i) {
      nodes_ = vividNodes();
      if (nodes_.size() < 2) std::this_thread::sleep_for(100ms);
    }
    ASSERT_EQ(nodes_.size(), 2u) << "vivid n_devs=2 gave " << nodes_.size() << " capture nodes";
    // What the planner groups by (usbBusOf): not "usb-...", so one bus per device.
    ASSERT_EQ(nodes_[0].busInfo, "platform:vivid-000");
    ASSERT_EQ(nodes_[1].busInfo, "platform:vivid-001");
    ASSERT_TRUE(nodes_[0].byIdLinks.empty() && nodes_[1].byIdLinks.empty()) << "by-id links before ours";

    // The links udev would make for two USB webcams (ID_SERIAL "printcast_Lab_Vivid_00N").
    std::error_code ec;
    createdDirs_ = !fs::exists("/dev/v4l");
    fs::create_directories(kByIdDir, ec);
    ASSERT_FALSE(ec) << kByIdDir << ": " << ec.message();
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const std::string link =
          std::string(kByIdDir) + "/usb-printcast_Lab_Vivid_00" + std::to_string(i) + "-video-index0";
      fs::create_symlink("../../" + fs::path(nodes_[i].path).filename().string(), link, ec);
      ASSERT_FALSE(ec) << link << ": " << ec.message();
      links_.push_back(link);
    }
  }

  void TearDown() override {
    if (streamer_ && streamer_->ok()) streamer_->terminate(5s);
    streamer_.reset();  // SIGKILL if it is still there: rmmod needs every vivid node closed
    std::error_code ec;
    for (const auto& l : links_) fs::remove(l, ec);
    if (createdDirs_) {
      fs::remove(kByIdDir, ec);
      fs::remove("/dev/v4l", ec);
    }
    if (!reloaded_) return;
    const std::string unload = envOr("PRINTCAST_LAB_VIVID_UNLOAD", "rmmod vivid");
    const std::string load = envOr("PRINTCAST_LAB_VIVID_LOAD", "modprobe vivid n_devs=1 node_types=0x1");
    EXPECT_EQ(std::system((unload + " 2>/dev/null; " + load).c_str()), 0) << unload << "; " << load;
    EXPECT_TRUE(fs::exists("/dev/video0")) << "the lab's vivid is not back at /dev/video0";
  }

  // /api/cameras (control port) as JSON; null when it does not answer.
  nlohmann::json cameras() const {
    const auto r = httpRequest(streamer_->controlPort(), "GET", "/api/cameras", "", {}, 5s);
    return r.status == 200 ? nlohmann::json::parse(r.body, nullptr, false) : nlohmann::json();
  }

  std::vector<printcast::hal::V4l2DeviceInfo> nodes_;
  std::vector<std::string> links_;
  bool createdDirs_ = false;
  bool reloaded_ = false;
  std::unique_ptr<StreamerProcess> streamer_;
};

TEST_F(UsbDiscoveryLab, TwoByIdNodesStreamAsTwoCamerasWithThePlan) {
  // generic-linux: a V4L2 camera without a match; no --source/--device and no config: discovery.
  streamer_ = std::make_unique<StreamerProcess>(
      PRINTCAST_STREAMER_BIN,
      std::vector<std::string>{"--board", "generic-linux", "--no-display", "-r", "640x480"});
  ASSERT_TRUE(streamer_->ok()) << streamer_->log();
  const std::string log = streamer_->log();

  // The plan as the streamer logged it: camera 0 vivid-000 (I420, H.264), camera 1 vivid-001 in
  // YUYV (vivid has no MJPEG), each on its own "bus", nothing reduced.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      log, m,
      std::regex(R"(USB camera 0: [^\n]*\()" + links_[0] +
                 R"(\) on platform:vivid-000: (\S+) (\d+x\d+) at (\d+) fps[^\n]*, H\.264\n)")))
      << log;
  EXPECT_EQ(m[1], "YU12") << "camera 0's format (the pipeline's I420 after the board's MJPEG)";
  EXPECT_EQ(m[2], "640x480");
  ASSERT_TRUE(std::regex_search(
      log, m,
      std::regex(R"(USB camera 1: [^\n]*\()" + links_[1] +
                 R"(\) on platform:vivid-001: (\S+) (\d+x\d+) at (\d+) fps[^\n]*, MJPEG only\n)")))
      << log;
  EXPECT_EQ(m[1], "YUYV") << "camera 1: MJPEG, else YUYV";
  const std::string plannedSize = m[2];
  EXPECT_EQ(plannedSize, "640x480");
  EXPECT_EQ(log.find("USB cameras: "), std::string::npos) << "a plan note or an unusable plan:\n" << log;
  for (size_t at = log.find("USB camera "); at != std::string::npos; at = log.find("USB camera ", at + 1))
    std::printf("%s\n", log.substr(at, log.find('\n', at) - at).c_str());

  // Both cameras reach "streaming".
  nlohmann::json list;
  for (int i = 0; i < 150; ++i) {
    list = cameras();
    if (list.is_array() && list.size() == 2 && list[0]["state"] == "streaming" &&
        list[1]["state"] == "streaming")
      break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(list.is_array()) << "GET /api/cameras did not answer\n" << streamer_->log();
  ASSERT_EQ(list.size(), 2u) << list.dump();
  EXPECT_EQ(list[0]["id"], "0");
  EXPECT_EQ(list[1]["id"], "1");
  EXPECT_EQ(list[0]["primary"], true);
  EXPECT_EQ(list[0]["source"], links_[0]);
  EXPECT_EQ(list[1]["source"], links_[1]);
  EXPECT_EQ(list[0]["state"], "streaming") << list.dump();
  EXPECT_EQ(list[1]["state"], "streaming") << list.dump();
  EXPECT_EQ(list[0]["plan_note"], "");
  EXPECT_EQ(list[1]["plan_note"], "");
  EXPECT_EQ(list[0]["h264"], true) << list[0].dump();
  EXPECT_TRUE(list[0]["outputs"].contains("flv")) << list[0].dump();
  EXPECT_EQ(list[1]["h264"], false) << list[1].dump();
  EXPECT_FALSE(list[1]["outputs"].contains("flv")) << list[1].dump();
  EXPECT_EQ(list[1]["outputs"]["snapshot"], "/cam/1/snapshot");
  EXPECT_EQ(list[1]["resolution"], plannedSize);
  for (const auto& c : list) {
    std::printf("camera %s: %s, %s at %s fps, h264 %s\n", c.value("id", "?").c_str(),
                c.value("state", "?").c_str(), c.value("resolution", "?").c_str(), c["fps"].dump().c_str(),
                c["h264"].dump().c_str());
  }

  const auto statusReply = httpRequest(streamer_->streamPort(), "GET", "/status", "", {}, 5s);
  const auto status = nlohmann::json::parse(statusReply.body, nullptr, false);
  ASSERT_TRUE(status.is_object()) << statusReply.status << " " << statusReply.body;
  ASSERT_TRUE(status.contains("camera_plan")) << status.dump();
  EXPECT_EQ(status["camera_plan"]["auto_discovered"], true);
  EXPECT_EQ(status["camera_plan"]["notes"], nlohmann::json::array());
  ASSERT_EQ(status["cameras"].size(), 2u);
  EXPECT_EQ(status["cameras"][1]["plan_note"], "");
  const auto flv = httpRequest(streamer_->streamPort(), "GET", "/cam/1/flv", "", {}, 5s);
  EXPECT_EQ(flv.status, 404) << "camera 1 has no H.264 outputs";

  // Snapshots: camera 1 at its planned size, camera 0 (/snapshot) at the size asked.
  for (const auto& [path, size] : {std::pair<std::string, std::string>{"/cam/1/snapshot", plannedSize},
                                   std::pair<std::string, std::string>{"/snapshot", "640x480"}}) {
    const auto r = httpRequest(streamer_->streamPort(), "GET", path, "", {}, 10s);
    ASSERT_EQ(r.status, 200) << path << ": " << r.error << r.body;
    EXPECT_EQ(r.headers.count("content-type") ? r.headers.at("content-type") : "", "image/jpeg") << path;
    const auto wh = jpegSize(r.body);
    ASSERT_TRUE(wh.has_value()) << path << ": " << r.body.size() << " bytes, not a JPEG";
    EXPECT_EQ(std::to_string(wh->first) + "x" + std::to_string(wh->second), size) << path;
  }
  EXPECT_EQ(streamer_->terminate(5s), 0);
}

}  // namespace
