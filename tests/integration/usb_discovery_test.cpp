// SPDX-License-Identifier: MIT
// USB camera auto-discovery wired into a running streamer, without USB: the start's seam
// (applyUsbCameraPlan, fed an enumeration result) -> finalizeSettings -> Streamer::start in this
// process, then its HTTP answers. The planned by-id links do not exist, so every camera serves
// "no signal" with the reason: one camera failing stops none of the others or the servers.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "printcast/bsp/registry.h"
#include "printcast/hal/v4l2.h"
#include "settings.h"
#include "streamer.h"
#include "test_client.h"
#include "usb_camera_plan.h"

namespace {

using printcast::hal::Size;
using printcast::hal::V4l2DeviceInfo;
using printcast::hal::V4l2FormatInfo;
using printcast::hal::V4l2FrameSize;
using printcast::testing::httpRequest;
namespace fourcc = printcast::hal::fourcc;
namespace streamer = printcast::streamer;

// A YUYV-only USB camera (640x480 and 320x240 at 30 fps) with a by-id link that does not exist.
V4l2DeviceInfo rawCamera(int n) {
  V4l2DeviceInfo d;
  d.path = "/dev/video-printcast-none-" + std::to_string(n);
  d.card = "Raw Cam " + std::to_string(n);
  d.driver = "uvcvideo";
  d.busInfo = "usb-0000:00:14.0-" + std::to_string(n + 1);
  d.byIdLinks = {"/dev/v4l/by-id/usb-printcast-test-none-" + std::to_string(n) + "-video-index0"};
  d.stableName = d.byIdLinks.front();
  V4l2FormatInfo yuyv;
  yuyv.format = fourcc::kYUYV;
  for (Size s : {Size{640, 480}, Size{320, 240}}) yuyv.sizes.push_back(V4l2FrameSize{s, s, {}, {30}});
  d.formats = {yuyv};
  return d;
}

TEST(UsbAutoDiscovery, ThePlanRunsAsACamerasListWithItsNotesInStatusAndApi) {
  auto virt = printcast::bsp::findBoard("virtual");
  ASSERT_TRUE(virt.ok());
  printcast::bsp::Board board = **virt;  // the virtual board's screen, a USB camera
  board.camera.kind = printcast::bsp::CameraKind::V4L2;
  board.camera.preferredFormat = fourcc::kYUYV;

  streamer::Settings s;
  s.board = "virtual";
  s.width = 640;
  s.height = 480;
  s.fps = 30;
  s.port = 0;
  s.controlPort = 0;
  s.flvPort = -1;
  s.wsPort = -1;
  s.rtspPort = 0;
  s.cameraPortBase = 0;
  s.displayEnabled = false;
  s.ring = false;
  // Three YUYV cameras at 640x480@30 on one bus: 3 x 18.4 MB/s > 48, so camera 2 steps down.
  const auto plan = streamer::applyUsbCameraPlan(s, board, {rawCamera(0), rawCamera(1), rawCamera(2)});
  ASSERT_EQ(plan.cameras.size(), 3u);
  ASSERT_TRUE(streamer::finalizeSettings(s, board).ok());
  auto running = streamer::Streamer::start(s, board);
  ASSERT_TRUE(running.ok()) << running.error().describe();
  auto& st = **running;

  const auto list = nlohmann::json::parse(httpRequest(st.controlPort(), "GET", "/api/cameras").body);
  ASSERT_EQ(list.size(), 3u) << list.dump();
  EXPECT_EQ(list[0]["id"], "0");
  EXPECT_EQ(list[0]["primary"], true);
  EXPECT_EQ(list[0]["h264"], true);
  EXPECT_EQ(list[0]["source"], "/dev/v4l/by-id/usb-printcast-test-none-0-video-index0");
  EXPECT_EQ(list[0]["plan_note"], "");
  for (int i : {1, 2}) {
    EXPECT_EQ(list[i]["id"], std::to_string(i));
    EXPECT_EQ(list[i]["h264"], false) << list[i].dump();
    EXPECT_FALSE(list[i]["outputs"].contains("flv")) << list[i].dump();
    EXPECT_EQ(list[i]["outputs"]["mjpeg"], "/cam/" + std::to_string(i) + "/stream");
  }
  EXPECT_EQ(list[1]["plan_note"], "");
  EXPECT_EQ(list[2]["plan_note"], "USB bus usb-0000:00:14.0: 3 cameras, 640x480 YUYV -> 320x240 to fit");
  EXPECT_EQ(list[2]["resolution"], "320x240");

  const auto status = nlohmann::json::parse(httpRequest(st.streamPort(), "GET", "/status").body);
  EXPECT_EQ(status["camera_plan"]["auto_discovered"], true);
  EXPECT_EQ(status["cameras"][2]["plan_note"], list[2]["plan_note"]);
  const auto flv = httpRequest(st.streamPort(), "GET", "/cam/1/flv");
  EXPECT_EQ(flv.status, 404);
  EXPECT_NE(flv.body.find("camera '1' has no H.264 outputs"), std::string::npos) << flv.body;
  // Changes of a discovered list are not written to a config file.
  const auto patch = httpRequest(st.controlPort(), "PATCH", "/api/cameras/1", R"({"name": "Bed"})",
                                 {{"Content-Type", "application/json"}});
  EXPECT_EQ(patch.status, 200) << patch.body;
  EXPECT_EQ(nlohmann::json::parse(patch.body)["persisted"], false) << patch.body;
  st.stop();
}

}  // namespace
