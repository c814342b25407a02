// SPDX-License-Identifier: MIT
// USB camera auto-discovery: the planner (usb_camera_plan.h) on hand-made enumeration results, and
// the start's seam (applyUsbCameraPlan -> finalizeSettings -> settingsForCamera).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "printcast/bsp/registry.h"
#include "settings.h"
#include "usb_camera_plan.h"

namespace {

using printcast::bsp::Board;
using printcast::bsp::CameraKind;
using printcast::bsp::CameraSpec;
using printcast::bsp::Limits;
using printcast::hal::FourCC;
using printcast::hal::Size;
using printcast::hal::V4l2DeviceInfo;
using printcast::hal::V4l2FormatInfo;
using printcast::hal::V4l2FrameSize;
namespace fourcc = printcast::hal::fourcc;
namespace streamer = printcast::streamer;

// A format offering discrete `sizes`, each at `rates`.
V4l2FormatInfo format(FourCC f, std::vector<Size> sizes, std::vector<double> rates = {30, 15}) {
  V4l2FormatInfo info;
  info.format = f;
  info.compressed = f == fourcc::kMJPEG || f == fourcc::kH264;
  for (auto s : sizes) info.sizes.push_back(V4l2FrameSize{s, s, {}, rates});
  return info;
}

// A UVC webcam: YUYV and MJPEG at 1280x720, 640x480, 320x240.
V4l2DeviceInfo webcam(const std::string& node, const std::string& byId, const std::string& busInfo,
                      const std::string& card = "USB Camera") {
  V4l2DeviceInfo d;
  d.path = node;
  d.card = card;
  d.driver = "uvcvideo";
  d.busInfo = busInfo;
  if (!byId.empty()) d.byIdLinks = {"/dev/v4l/by-id/" + byId};
  d.stableName = byId.empty() ? "bus:" + busInfo : d.byIdLinks.front();
  const std::vector<Size> sizes = {{1280, 720}, {640, 480}, {320, 240}};
  d.formats = {format(fourcc::kYUYV, sizes, {10, 5}), format(fourcc::kMJPEG, sizes, {30, 15})};
  return d;
}

CameraSpec usbSpec() {
  CameraSpec spec;
  spec.kind = CameraKind::V4L2;
  spec.preferredFormat = fourcc::kMJPEG;
  spec.defaultSize = {1280, 720};
  spec.defaultFps = 30;
  return spec;
}

streamer::UsbCameraPlan plan(const std::vector<V4l2DeviceInfo>& devices, Size size = {1280, 720},
                             int fps = 30) {
  return streamer::planUsbCameras(devices, usbSpec(), Limits{}, size, fps);
}

TEST(UsbCameraPlan, BusIsTheHostControllerPartOfBusInfo) {
  EXPECT_EQ(streamer::usbBusOf("usb-0000:00:14.0-2"), "usb-0000:00:14.0");
  EXPECT_EQ(streamer::usbBusOf("usb-0000:00:14.0-2.1.4"), "usb-0000:00:14.0");
  EXPECT_EQ(streamer::usbBusOf("usb-ffb00000.usb-1"), "usb-ffb00000.usb");
  EXPECT_EQ(streamer::usbBusOf("platform:vivid-000"), "platform:vivid-000");
}

TEST(UsbCameraPlan, CostFollowsTheDocumentedModel) {
  EXPECT_EQ(streamer::usbStreamCost(fourcc::kYUYV, {640, 480}, 30), 640 * 480 * 2 * 30);
  EXPECT_EQ(streamer::usbStreamCost(fourcc::kMJPEG, {1280, 720}, 30), 1280 * 720 * 30 / 2);
  EXPECT_EQ(streamer::usbStreamCost(fourcc::kNV12, {640, 480}, 10), 640 * 480 * 3 / 2 * 10);
  EXPECT_EQ(streamer::kUsbBusBudgetBytesPerSecond, 480'000'000 / 8 * 8 / 10);  // 80 % of 480 Mbit/s
}

TEST(UsbCameraPlan, OneCameraGetsWhatItAsksInTheBoardsFormatWithH264) {
  const auto p = plan({webcam("/dev/video0", "usb-Cam_A-video-index0", "usb-0000:00:14.0-1")});
  ASSERT_EQ(p.cameras.size(), 1u);
  const auto& c = p.cameras[0];
  EXPECT_EQ(c.id, "0");
  EXPECT_EQ(c.source, "/dev/v4l/by-id/usb-Cam_A-video-index0");
  EXPECT_EQ(c.format, fourcc::kMJPEG);
  EXPECT_EQ(c.formatKey, "auto");
  EXPECT_EQ(c.size, (Size{1280, 720}));
  EXPECT_EQ(c.fps, 30);
  EXPECT_TRUE(c.h264);
  EXPECT_EQ(c.note, "");
  EXPECT_EQ(c.bus, "usb-0000:00:14.0");
  EXPECT_TRUE(p.notes.empty());
}

TEST(UsbCameraPlan, FourOnOneBusThatDoNotFitStepTheLaterCamerasDownFirst) {
  std::vector<V4l2DeviceInfo> devices;
  for (int i = 0; i < 4; ++i) {
    devices.push_back(webcam("/dev/video" + std::to_string(2 * i),
                             "usb-Cam_" + std::string(1, 'A' + i) + "-video-index0",
                             "usb-0000:00:14.0-" + std::to_string(i + 1)));
  }
  const auto p = plan(devices);
  ASSERT_EQ(p.cameras.size(), 4u);
  // 4 x 1280x720 MJPEG at 30 fps = 4 x 13.8 MB/s = 55.3 MB/s > 48: the last camera steps to 640x480.
  int64_t total = 0;
  for (const auto& c : p.cameras) total += c.bytesPerSecond;
  EXPECT_LE(total, streamer::kUsbBusBudgetBytesPerSecond);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(p.cameras[i].size, (Size{1280, 720})) << i;
    EXPECT_EQ(p.cameras[i].note, "") << i;
  }
  EXPECT_EQ(p.cameras[3].size, (Size{640, 480}));
  EXPECT_EQ(p.cameras[3].fps, 30);
  EXPECT_EQ(p.cameras[3].note, "USB bus usb-0000:00:14.0: 4 cameras, 1280x720 MJPEG -> 640x480 to fit");
  // Ids by position, the others MJPEG without H.264.
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(p.cameras[i].id, std::to_string(i));
    EXPECT_EQ(p.cameras[i].formatKey, "mjpeg");
    EXPECT_FALSE(p.cameras[i].h264);
  }
  EXPECT_TRUE(p.notes.empty());
}

TEST(UsbCameraPlan, CamerasOnTwoBusesHaveABudgetEach) {
  std::vector<V4l2DeviceInfo> devices;
  // Three on the PCI xHCI, one on a SoC's own controller: only the first bus is over budget.
  for (int i = 0; i < 3; ++i)
    devices.push_back(webcam("/dev/video" + std::to_string(i),
                             "usb-Pci_" + std::to_string(i) + "-video-index0",
                             "usb-0000:00:14.0-" + std::to_string(i + 1)));
  devices.push_back(webcam("/dev/video9", "usb-Soc_0-video-index0", "usb-ffb00000.usb-1"));
  for (auto& d : devices) d.formats = {format(fourcc::kYUYV, {{640, 480}, {320, 240}}, {30, 15})};
  // YUYV 640x480 at 30 fps = 18.4 MB/s: three are 55.3 MB/s on one bus, one alone fits.
  const auto p = plan(devices, {640, 480}, 30);
  ASSERT_EQ(p.cameras.size(), 4u);
  EXPECT_EQ(p.cameras[0].bus, "usb-0000:00:14.0");
  const auto* soc = &p.cameras[0];
  for (const auto& c : p.cameras)
    if (c.bus == "usb-ffb00000.usb") soc = &c;
  EXPECT_EQ(soc->size, (Size{640, 480}));
  EXPECT_EQ(soc->note, "");
  int64_t pci = 0;
  int reduced = 0;
  for (const auto& c : p.cameras) {
    if (c.bus != "usb-0000:00:14.0") continue;
    pci += c.bytesPerSecond;
    if (!c.note.empty()) {
      ++reduced;
      EXPECT_NE(c.note.find("USB bus usb-0000:00:14.0: 3 cameras, 640x480 YUYV -> "), std::string::npos)
          << c.note;
    }
  }
  EXPECT_LE(pci, streamer::kUsbBusBudgetBytesPerSecond);
  EXPECT_GE(reduced, 1);
  EXPECT_EQ(p.cameras[0].note, "") << "camera 0 is reduced last";
}

TEST(UsbCameraPlan, AYuyvOnlyCameraIsPlannedInYuyvAndStepsSizesThenRates) {
  auto a = webcam("/dev/video0", "usb-Cam_A-video-index0", "usb-0000:00:14.0-1");
  auto b = webcam("/dev/video2", "usb-Raw_Only-video-index0", "usb-0000:00:14.0-2");
  b.formats = {format(fourcc::kYUYV, {{1280, 720}, {640, 480}}, {30, 10, 5})};
  // Camera 0 MJPEG 1280x720@30 = 13.8 MB/s; YUYV 1280x720@30 = 55.3, 640x480@30 = 18.4 MB/s: fits.
  auto p = plan({a, b});
  ASSERT_EQ(p.cameras.size(), 2u);
  EXPECT_EQ(p.cameras[1].format, fourcc::kYUYV);
  EXPECT_EQ(p.cameras[1].formatKey, "yuyv");
  EXPECT_EQ(p.cameras[1].size, (Size{640, 480}));
  EXPECT_EQ(p.cameras[1].fps, 30);
  EXPECT_EQ(p.cameras[1].note, "USB bus usb-0000:00:14.0: 2 cameras, 1280x720 YUYV -> 640x480 to fit");
  // With camera 0 in YUYV too (a board preferring it) and nothing smaller to step to, the raw
  // camera gives up frame rate: 960x720@30 YUYV = 41.5 MB/s leaves 6.5 for camera 1.
  CameraSpec yuyv = usbSpec();
  yuyv.preferredFormat = fourcc::kYUYV;
  a.formats = {format(fourcc::kYUYV, {{960, 720}}, {30})};
  p = streamer::planUsbCameras({a, b}, yuyv, Limits{}, {1280, 720}, 30);
  ASSERT_EQ(p.cameras.size(), 2u);
  EXPECT_EQ(p.cameras[0].format, fourcc::kYUYV);
  EXPECT_EQ(p.cameras[0].note, "");
  EXPECT_EQ(p.cameras[1].size, (Size{640, 480}));
  EXPECT_EQ(p.cameras[1].fps, 10);
  EXPECT_EQ(p.cameras[1].note,
            "USB bus usb-0000:00:14.0: 2 cameras, 1280x720 YUYV -> 640x480 at 10 fps to fit");
}

TEST(UsbCameraPlan, ACameraWithTwoCaptureNodesCountsOnce) {
  auto a = webcam("/dev/video0", "usb-Cam_A-video-index0", "usb-0000:00:14.0-1");
  auto a2 = a;  // its second capture node (an H.264 node), the same bus_info
  a2.path = "/dev/video1";
  a2.byIdLinks = {"/dev/v4l/by-id/usb-Cam_A-video-index1"};
  a2.formats = {format(fourcc::kH264, {{1920, 1080}})};
  auto b = webcam("/dev/video2", "usb-Cam_B-video-index0", "usb-0000:00:14.0-2");
  const auto p = plan({a, a2, b});
  ASSERT_EQ(p.cameras.size(), 2u);
  EXPECT_EQ(p.cameras[0].source, "/dev/v4l/by-id/usb-Cam_A-video-index0");
  EXPECT_EQ(p.cameras[1].source, "/dev/v4l/by-id/usb-Cam_B-video-index0");
}

TEST(UsbCameraPlan, NodesWithoutAByIdLinkAreNotUsbCameras) {
  auto vivid = webcam("/dev/video0", "", "platform:vivid-000", "vivid");
  auto a = webcam("/dev/video2", "usb-Cam_A-video-index0", "usb-0000:00:14.0-1");
  const auto p = plan({vivid, a});
  ASSERT_EQ(p.cameras.size(), 1u);
  EXPECT_EQ(p.cameras[0].source, "/dev/v4l/by-id/usb-Cam_A-video-index0");
}

TEST(UsbCameraPlan, MoreThanFourCamerasTakesFourAndNamesTheRest) {
  std::vector<V4l2DeviceInfo> devices;
  for (int i = 0; i < 6; ++i) {
    // Each on a bus of its own, so only the count matters.
    devices.push_back(webcam("/dev/video" + std::to_string(i),
                             "usb-Cam_" + std::to_string(i) + "-video-index0",
                             "usb-0000:0" + std::to_string(i) + ":00.0-1"));
  }
  const auto p = plan(devices);
  ASSERT_EQ(p.cameras.size(), 4u);
  ASSERT_EQ(p.notes.size(), 1u);
  EXPECT_EQ(p.notes[0],
            "6 USB cameras found, 4 taken (at most 4); not streamed: usb-Cam_4-video-index0, "
            "usb-Cam_5-video-index0");
  for (const auto& c : p.cameras) EXPECT_EQ(c.note, "");
}

TEST(UsbCameraPlan, CameraZeroIsTheBoardsMatchAndTheOthersFollowByIdNames) {
  auto z = webcam("/dev/video0", "usb-Zeta-video-index0", "usb-0000:00:14.0-1");
  auto printer = webcam("/dev/video2", "usb-Printer_Cam-video-index0", "usb-0000:00:14.0-2", "Printer Cam");
  auto a = webcam("/dev/video4", "usb-Alpha-video-index0", "usb-0000:00:14.0-3");
  CameraSpec spec = usbSpec();
  auto p = streamer::planUsbCameras({z, printer, a}, spec, Limits{}, {640, 480}, 15);
  ASSERT_EQ(p.cameras.size(), 3u);
  // No match: camera 0 is the first node (what the board opens without a list).
  EXPECT_EQ(p.cameras[0].source, z.byIdLinks[0]);
  EXPECT_EQ(p.cameras[1].source, a.byIdLinks[0]);
  EXPECT_EQ(p.cameras[2].source, printer.byIdLinks[0]);
  spec.match = "Printer Cam";
  p = streamer::planUsbCameras({z, printer, a}, spec, Limits{}, {640, 480}, 15);
  EXPECT_EQ(p.cameras[0].source, printer.byIdLinks[0]);
  EXPECT_EQ(p.cameras[0].name, "Printer Cam");
  EXPECT_EQ(p.cameras[1].source, a.byIdLinks[0]);
  EXPECT_EQ(p.cameras[2].source, z.byIdLinks[0]);
}

TEST(UsbCameraPlan, ABusThatCannotFitSaysSoAndKeepsEveryCamera) {
  std::vector<V4l2DeviceInfo> devices;
  for (int i = 0; i < 4; ++i) {
    auto d = webcam("/dev/video" + std::to_string(i), "usb-Raw_" + std::to_string(i) + "-video-index0",
                    "usb-0000:00:14.0-" + std::to_string(i + 1));
    d.formats = {format(fourcc::kYUYV, {{1280, 720}}, {30})};  // 55 MB/s each, nothing smaller
    devices.push_back(d);
  }
  const auto p = plan(devices);
  EXPECT_EQ(p.cameras.size(), 4u);
  ASSERT_EQ(p.notes.size(), 1u);
  EXPECT_NE(p.notes[0].find("USB bus usb-0000:00:14.0: 4 cameras need about 222 MB/s"), std::string::npos)
      << p.notes[0];
}

// ---- the start's seam: enumeration result -> the settings' `cameras` list ----

Board usbBoard() {
  auto virt = printcast::bsp::findBoard("virtual");
  EXPECT_TRUE(virt.ok());
  Board b = **virt;
  b.camera = usbSpec();
  b.camera.defaultSize = {640, 480};
  b.camera.defaultFps = 15;
  return b;
}

std::vector<V4l2DeviceInfo> twoWebcams() {
  return {webcam("/dev/video0", "usb-Cam_A-video-index0", "usb-0000:00:14.0-1", "Cam A"),
          webcam("/dev/video2", "usb-Cam_B-video-index0", "usb-0000:00:14.0-2", "Cam B")};
}

TEST(UsbCameraPlanSeam, TwoCamerasBecomeAValidCamerasList) {
  const Board board = usbBoard();
  streamer::Settings s;
  s.width = 1280;
  s.height = 720;
  s.fps = 30;
  const auto p = streamer::applyUsbCameraPlan(s, board, twoWebcams());
  ASSERT_EQ(p.cameras.size(), 2u);
  ASSERT_EQ(s.cameras.size(), 2u);
  EXPECT_TRUE(s.camerasDiscovered);
  EXPECT_EQ(s.cameras[0].id, "0");
  EXPECT_EQ(s.cameras[0].format, "auto");
  EXPECT_TRUE(s.cameras[0].h264);
  EXPECT_TRUE(s.cameras[0].size.empty()) << "camera 0 asks the top-level size as without a list";
  EXPECT_EQ(s.cameras[1].id, "1");
  EXPECT_EQ(s.cameras[1].name, "Cam B");
  EXPECT_EQ(s.cameras[1].source, "/dev/v4l/by-id/usb-Cam_B-video-index0");
  EXPECT_EQ(s.cameras[1].format, "mjpeg");
  EXPECT_FALSE(s.cameras[1].h264);
  EXPECT_EQ(s.cameras[1].size, (Size{1280, 720}));
  EXPECT_EQ(s.cameras[1].fps, 30);

  auto st = streamer::finalizeSettings(s, board);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(s.source, "/dev/v4l/by-id/usb-Cam_A-video-index0");  // camera 0's, as the top level
  EXPECT_EQ(s.width, 1280);
  EXPECT_TRUE(s.h264Offered);
  const streamer::Settings second = streamer::settingsForCamera(s, s.cameras[1]);
  EXPECT_EQ(second.cameraFormat, "mjpeg");
  EXPECT_FALSE(second.h264Offered);
  EXPECT_EQ(second.source, "/dev/v4l/by-id/usb-Cam_B-video-index0");
}

TEST(UsbCameraPlanSeam, EncoderTypeRkmpiYuyvPlansCameraZeroInYuyvAsThePipelineAsks) {
  streamer::Settings s;
  s.encoderType = "rkmpi-yuyv";
  const auto p = streamer::applyUsbCameraPlan(s, usbBoard(), twoWebcams());
  ASSERT_EQ(p.cameras.size(), 2u);
  EXPECT_EQ(p.cameras[0].format, fourcc::kYUYV);
  EXPECT_EQ(p.cameras[1].format, fourcc::kMJPEG);
}

TEST(UsbCameraPlanSeam, ZeroOrOneCameraOrAnExplicitChoiceLeavesTheSettingsAlone) {
  const Board board = usbBoard();
  auto untouched = [&](streamer::Settings s, const std::vector<V4l2DeviceInfo>& devices) {
    const auto before = s.cameras.size();
    const auto p = streamer::applyUsbCameraPlan(s, board, devices);
    return p.cameras.empty() && s.cameras.size() == before && !s.camerasDiscovered;
  };
  streamer::Settings s;
  EXPECT_TRUE(untouched(s, {}));
  EXPECT_TRUE(untouched(s, {twoWebcams()[0]}));
  streamer::Settings withSource;
  withSource.source = "/dev/video0";
  EXPECT_TRUE(untouched(withSource, twoWebcams()));
  streamer::Settings withDevice;
  withDevice.device = "/dev/video0";
  EXPECT_TRUE(untouched(withDevice, twoWebcams()));
  streamer::Settings withList;
  withList.cameras.emplace_back();
  withList.cameras.back().id = "a";
  withList.cameras.back().source = "test-pattern";
  EXPECT_TRUE(untouched(withList, twoWebcams()));
  // A board whose camera is not V4L2 (the virtual board's test pattern).
  auto virt = printcast::bsp::findBoard("virtual");
  ASSERT_TRUE(virt.ok());
  streamer::Settings plain;
  EXPECT_TRUE(streamer::applyUsbCameraPlan(plain, **virt, twoWebcams()).cameras.empty());
  EXPECT_TRUE(plain.cameras.empty());
}

TEST(UsbCameraPlanSeam, AReducedCameraZeroAsksForItsPlannedSizeAndTheNoteTravels) {
  Board board = usbBoard();
  board.camera.preferredFormat = fourcc::kYUYV;
  auto devices = twoWebcams();
  for (auto& d : devices) d.formats = {format(fourcc::kYUYV, {{1280, 720}, {640, 480}, {320, 240}}, {30})};
  streamer::Settings s;
  s.width = 1280;
  s.height = 720;
  s.fps = 30;
  const auto p = streamer::applyUsbCameraPlan(s, board, devices);
  ASSERT_EQ(p.cameras.size(), 2u);
  // YUYV 1280x720@30 is 55 MB/s alone: camera 1 goes to its smallest, then camera 0 steps down.
  EXPECT_EQ(s.cameras[1].size, (Size{320, 240}));
  EXPECT_EQ(s.cameras[0].size, (Size{640, 480}));
  EXPECT_EQ(s.cameras[0].planNote, "USB bus usb-0000:00:14.0: 2 cameras, 1280x720 YUYV -> 640x480 to fit");
  EXPECT_EQ(s.cameras[1].format, "yuyv");
  ASSERT_TRUE(streamer::finalizeSettings(s, board).ok());
  EXPECT_EQ(s.width, 640);
  EXPECT_EQ(s.height, 480);
}

}  // namespace
