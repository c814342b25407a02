// SPDX-License-Identifier: MIT
// Lab: printcast-streamer on the anycubic-ks1 board with its devices overridden to the VM's (vivid
// /dev/video0, bochs /dev/fb0, a uinput "hyn_ts" panel), read over loopback by small clients.
#include <fcntl.h>
#include <libevdev/libevdev-uinput.h>
#include <libevdev/libevdev.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_client.h"

using namespace std::chrono_literals;
using printcast::testing::httpRequest;
using printcast::testing::jpegSize;
using printcast::testing::StreamConnection;
using printcast::testing::StreamerProcess;

namespace {

constexpr int kPanelWidth = 800, kPanelHeight = 480;  // the ks1 panel (bsp/anycubic-ks1)

// A uinput touchscreen named like the ks1's panel, and a reader on its event node.
class Touchscreen {
 public:
  Touchscreen() {
    dev_ = libevdev_new();
    libevdev_set_name(dev_, "hyn_ts");
    libevdev_set_id_bustype(dev_, BUS_VIRTUAL);
    libevdev_enable_property(dev_, INPUT_PROP_DIRECT);
    libevdev_enable_event_code(dev_, EV_KEY, BTN_TOUCH, nullptr);
    auto abs = [&](unsigned code, int max) {
      input_absinfo info{};
      info.maximum = max;
      libevdev_enable_event_code(dev_, EV_ABS, code, &info);
    };
    abs(ABS_X, kPanelWidth);
    abs(ABS_Y, kPanelHeight);
    abs(ABS_MT_SLOT, 9);
    abs(ABS_MT_TRACKING_ID, 65535);
    abs(ABS_MT_POSITION_X, kPanelWidth);
    abs(ABS_MT_POSITION_Y, kPanelHeight);
    abs(ABS_MT_TOUCH_MAJOR, 255);
    abs(ABS_MT_PRESSURE, 255);
    if (libevdev_uinput_create_from_device(dev_, LIBEVDEV_UINPUT_OPEN_MANAGED, &uinput_) < 0) return;
    const char* node = libevdev_uinput_get_devnode(uinput_);
    if (node) readFd_ = ::open(node, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (readFd_ >= 0 && libevdev_new_from_fd(readFd_, &reader_) < 0) reader_ = nullptr;
  }
  ~Touchscreen() {
    if (reader_) libevdev_free(reader_);
    if (readFd_ >= 0) ::close(readFd_);
    if (uinput_) libevdev_uinput_destroy(uinput_);
    libevdev_free(dev_);
  }
  bool ok() const { return reader_ != nullptr; }

  // Every event until BTN_TOUCH 0 (or `limit`), as "TYPE CODE VALUE" for the failure message,
  // and slot 0's position at the press.
  struct Tap {
    bool pressed = false, released = false;
    int x = -1, y = -1, trackingId = -1;
    std::vector<std::string> events;
  };
  Tap readTap(std::chrono::milliseconds limit) {
    Tap tap;
    bool sawPress = false;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline && !tap.released) {
      pollfd pfd{readFd_, POLLIN, 0};
      ::poll(&pfd, 1, 50);
      input_event ev{};
      while (libevdev_next_event(reader_, LIBEVDEV_READ_FLAG_NORMAL, &ev) == LIBEVDEV_READ_STATUS_SUCCESS) {
        tap.events.push_back(std::string(libevdev_event_code_get_name(ev.type, ev.code) != nullptr
                                             ? libevdev_event_code_get_name(ev.type, ev.code)
                                             : "?") +
                             " " + std::to_string(ev.value));
        if (ev.type == EV_KEY && ev.code == BTN_TOUCH && ev.value == 1) sawPress = true;
        if (ev.type == EV_KEY && ev.code == BTN_TOUCH && ev.value == 0 && tap.pressed) tap.released = true;
        if (ev.type == EV_ABS && ev.code == ABS_MT_TRACKING_ID && ev.value >= 0) tap.trackingId = ev.value;
        if (ev.type == EV_SYN && ev.code == SYN_REPORT && sawPress && !tap.pressed) {
          tap.pressed = true;
          tap.x = libevdev_get_slot_value(reader_, 0, ABS_MT_POSITION_X);
          tap.y = libevdev_get_slot_value(reader_, 0, ABS_MT_POSITION_Y);
        }
      }
    }
    return tap;
  }

 private:
  libevdev* dev_ = nullptr;
  libevdev_uinput* uinput_ = nullptr;
  int readFd_ = -1;
  libevdev* reader_ = nullptr;
};

bool isCompleteJpeg(const std::string& b) {
  return b.size() > 4 && static_cast<uint8_t>(b[0]) == 0xFF && static_cast<uint8_t>(b[1]) == 0xD8 &&
         static_cast<uint8_t>(b[b.size() - 2]) == 0xFF && static_cast<uint8_t>(b[b.size() - 1]) == 0xD9;
}

class StreamerLab : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    touchscreen_ = new Touchscreen();
    streamer_ = new StreamerProcess(PRINTCAST_STREAMER_BIN,
                                    {"--board", "anycubic-ks1", "--device", "/dev/video0", "--display-node",
                                     "/dev/fb0", "--touch-name", "hyn_ts", "--api-config", "/nonexistent"});
  }
  static void TearDownTestSuite() {
    if (streamer_ && streamer_->ok()) streamer_->terminate(5s);
    delete streamer_;
    delete touchscreen_;
    streamer_ = nullptr;
    touchscreen_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(touchscreen_->ok()) << "could not create the uinput touchscreen (is uinput loaded?)";
    ASSERT_TRUE(streamer_->ok()) << streamer_->log();
  }

  // The streamer's /status as JSON (a failure is recorded when it is not).
  static nlohmann::json status() {
    const auto reply = httpRequest(streamer_->streamPort(), "GET", "/status");
    auto json = nlohmann::json::parse(reply.body, nullptr, false);
    if (!json.is_object())
      ADD_FAILURE() << "GET /status: " << reply.status << " " << reply.error << reply.body;
    return json;
  }
  // Waits up to 10 s for the camera to stream; skips (with the reason) when the V4L2 backend is not
  // built, fails on any other state ("error: ...", "no-signal: ...").
  static void requireCamera() {
    std::string state;
    for (int i = 0; i < 100; ++i) {
      const auto s = status();
      state = s.is_object() ? s["camera"].value("state", "") : "";
      if (state == "streaming") return;
      if (state.find("not built") != std::string::npos) break;
      std::this_thread::sleep_for(100ms);
    }
    if (state.find("not built") != std::string::npos) GTEST_SKIP() << "camera backend: " << state;
    FAIL() << "camera state: " << state << "\n" << streamer_->log();
  }

  static inline Touchscreen* touchscreen_ = nullptr;
  static inline StreamerProcess* streamer_ = nullptr;
};

TEST_F(StreamerLab, MjpegStreamDeliversVividFramesAt640x480) {
  requireCamera();
  if (IsSkipped() || HasFatalFailure()) return;
  StreamConnection stream(streamer_->streamPort(), "/stream");
  ASSERT_TRUE(stream.ok());
  ASSERT_EQ(stream.status(), 200);
  EXPECT_NE(stream.header("content-type").find("multipart/x-mixed-replace"), std::string::npos);
  std::string bytes;
  int complete = 0;
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (complete < 5 && std::chrono::steady_clock::now() < deadline) {
    bytes += stream.read(1 << 16, 1s);
    complete = 0;
    size_t from = 0;
    while (true) {
      const size_t soi = bytes.find("\xFF\xD8\xFF", from);
      if (soi == std::string::npos) break;
      const size_t eoi = bytes.find("\xFF\xD9", soi);
      if (eoi == std::string::npos) break;
      const std::string jpeg = bytes.substr(soi, eoi + 2 - soi);
      const auto size = jpegSize(jpeg);
      ASSERT_TRUE(size.has_value()) << "a JPEG without a SOF segment";
      EXPECT_EQ(size->first, 640);
      EXPECT_EQ(size->second, 480);
      ++complete;
      from = eoi + 2;
    }
  }
  EXPECT_GE(complete, 5) << "complete JPEG frames on /stream within 15 s";
}

TEST_F(StreamerLab, FlvStreamStartsWithHeaderAndAvcTags) {
  requireCamera();
  if (IsSkipped() || HasFatalFailure()) return;
  StreamConnection stream(streamer_->streamPort(), "/flv");
  ASSERT_TRUE(stream.ok());
  ASSERT_EQ(stream.status(), 200);
  std::string bytes;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  int videoTags = 0, keyframes = 0;
  bool sequenceHeader = false;
  while (videoTags < 10 && std::chrono::steady_clock::now() < deadline) {
    bytes += stream.read(1 << 16, 1s);
    if (bytes.size() < 13) continue;
    ASSERT_EQ(bytes.substr(0, 3), "FLV");
    ASSERT_EQ(bytes[3], 1) << "FLV version";
    ASSERT_TRUE(bytes[4] & 1) << "FLV header says no video";
    videoTags = keyframes = 0;
    size_t at = 13;  // 9-byte header + PreviousTagSize0
    while (at + 11 <= bytes.size()) {
      const auto type = static_cast<uint8_t>(bytes[at]);
      const size_t size = (static_cast<uint8_t>(bytes[at + 1]) << 16) |
                          (static_cast<uint8_t>(bytes[at + 2]) << 8) | static_cast<uint8_t>(bytes[at + 3]);
      if (at + 11 + size + 4 > bytes.size()) break;
      ASSERT_TRUE(type == 8 || type == 9 || type == 18) << "FLV tag type " << int(type) << " at " << at;
      if (type == 9) {
        const auto frameAndCodec = static_cast<uint8_t>(bytes[at + 11]);
        EXPECT_EQ(frameAndCodec & 0x0F, 7) << "video codec id is not AVC";
        if (static_cast<uint8_t>(bytes[at + 12]) == 0)
          sequenceHeader = true;
        else
          ++videoTags;
        if ((frameAndCodec >> 4) == 1 && static_cast<uint8_t>(bytes[at + 12]) == 1) ++keyframes;
      }
      at += 11 + size + 4;
    }
  }
  EXPECT_TRUE(sequenceHeader) << "no AVC sequence header (SPS/PPS) tag";
  EXPECT_GE(videoTags, 10) << "AVC NALU tags within 20 s";
  EXPECT_GE(keyframes, 1) << "no key frame";
}

TEST_F(StreamerLab, DisplaySnapshotIsAnUpright800x480Jpeg) {
  const auto s = status();
  ASSERT_TRUE(s.is_object());
  if (!s["display"].value("enabled", false)) {
    const std::string error = s["display"].value("error", "");
    if (error.find("not built") != std::string::npos) GTEST_SKIP() << error;
    FAIL() << "display: " << error;
  }
  const auto reply = httpRequest(streamer_->streamPort(), "GET", "/display/snapshot", "", {}, 10s);
  ASSERT_EQ(reply.status, 200) << reply.error << reply.body;
  ASSERT_TRUE(isCompleteJpeg(reply.body)) << reply.body.size() << " bytes, not a complete JPEG";
  const auto size = jpegSize(reply.body);
  ASSERT_TRUE(size.has_value());
  EXPECT_EQ(size->first, 800);  // rot180 keeps the panel's 800x480
  EXPECT_EQ(size->second, 480);
}

TEST_F(StreamerLab, ApiTouchWritesTheTransformedTapToThePanel) {
  const auto s = status();
  ASSERT_TRUE(s.is_object());
  if (!s["touch"].value("enabled", false)) {
    const std::string error = s["touch"].value("error", "");
    if (error.find("not built") != std::string::npos) GTEST_SKIP() << error;
    FAIL() << "touch: " << error;
  }
  // The user taps (100, 60) on the upright picture; the ks1 panel is mounted rot180.
  const auto reply = httpRequest(streamer_->controlPort(), "POST", "/api/touch",
                                 R"({"x":100,"y":60,"duration":50})", {{"Content-Type", "application/json"}});
  ASSERT_EQ(reply.status, 200) << reply.body;
  const auto tap = touchscreen_->readTap(3s);
  std::string seen;
  for (const auto& e : tap.events) seen += e + "; ";
  EXPECT_TRUE(tap.pressed) << seen;
  EXPECT_TRUE(tap.released) << seen;
  EXPECT_GE(tap.trackingId, 0) << seen;
  EXPECT_EQ(tap.x, kPanelWidth - 100) << seen;
  EXPECT_EQ(tap.y, kPanelHeight - 60) << seen;
}

}  // namespace
