// SPDX-License-Identifier: MIT
// Lab: the evdev touch backend writes protocol B into a uinput "hyn_ts" that a libevdev reader sees.
//
// Runs inside the lab VM (tests/lab/run-lab.sh) as root; skips where /dev/uinput is absent (any
// build host). Creates two uinput touchscreens -- "hyn_ts2" first (a lower event number, a name
// that must not match) and "hyn_ts" with an ABS range of 0..4095 that differs from the board's
// 800x480 panel range -- opens the anycubic-ks1 board's touch through bsp::openScreen(), taps,
// and reads back with libevdev: the protocol-B sequence the backend wrote, minus the values the
// input core drops because they equal the current ones (ABS_MT_SLOT 0, unchanged positions),
// with the point the streamer maps (viewPos -> rot180 -> panelPos) scaled onto 0..4095.
#include <fcntl.h>
#include <libevdev/libevdev-uinput.h>
#include <libevdev/libevdev.h>
#include <linux/input.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "printcast/bsp/devices.h"
#include "printcast/bsp/registry.h"
#include "printcast/hal/touch_evdev.h"

namespace {

using printcast::hal::Point;
using printcast::hal::Size;
using namespace std::chrono_literals;

constexpr int kAbsMax = 4095;

struct Ev {
  uint16_t type, code;
  int32_t value;
  bool operator==(const Ev&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Ev& e) {
  return os << "{" << libevdev_event_type_get_name(e.type) << " "
            << libevdev_event_code_get_name(e.type, e.code) << " " << e.value << "}";
}

// A uinput multi-touch touchscreen (INPUT_PROP_DIRECT, protocol B) plus a reader on its node.
class UinputPanel {
 public:
  UinputPanel(const std::string& name, int absMax) {
    dev_ = libevdev_new();
    libevdev_set_name(dev_, name.c_str());
    libevdev_set_id_bustype(dev_, BUS_VIRTUAL);
    libevdev_enable_property(dev_, INPUT_PROP_DIRECT);
    libevdev_enable_event_type(dev_, EV_KEY);
    libevdev_enable_event_code(dev_, EV_KEY, BTN_TOUCH, nullptr);
    libevdev_enable_event_type(dev_, EV_ABS);
    auto abs = [&](unsigned code, int max) {
      input_absinfo info{};
      info.maximum = max;
      libevdev_enable_event_code(dev_, EV_ABS, code, &info);
    };
    abs(ABS_X, absMax);
    abs(ABS_Y, absMax);
    abs(ABS_MT_SLOT, 9);
    abs(ABS_MT_TRACKING_ID, 65535);
    abs(ABS_MT_POSITION_X, absMax);
    abs(ABS_MT_POSITION_Y, absMax);
    abs(ABS_MT_TOUCH_MAJOR, 255);
    abs(ABS_MT_PRESSURE, 255);
    const int rc = libevdev_uinput_create_from_device(dev_, LIBEVDEV_UINPUT_OPEN_MANAGED, &uinput_);
    if (rc < 0) {
      error_ = std::string("/dev/uinput: ") + std::strerror(-rc);
      return;
    }
    const char* node = libevdev_uinput_get_devnode(uinput_);
    node_ = node != nullptr ? node : "";
    // devtmpfs creates the node asynchronously.
    for (int i = 0; i < 100 && !std::filesystem::exists(node_); ++i) std::this_thread::sleep_for(20ms);
    readFd_ = ::open(node_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (readFd_ < 0 || libevdev_new_from_fd(readFd_, &reader_) != 0)
      error_ = node_ + ": cannot open the reader";
  }
  ~UinputPanel() {
    if (reader_ != nullptr) libevdev_free(reader_);
    if (readFd_ >= 0) ::close(readFd_);
    if (uinput_ != nullptr) libevdev_uinput_destroy(uinput_);
    libevdev_free(dev_);
  }
  UinputPanel(const UinputPanel&) = delete;
  UinputPanel& operator=(const UinputPanel&) = delete;

  const std::string& error() const { return error_; }
  const std::string& node() const { return node_; }

  // Events until `reports` SYN_REPORTs were read or `timeout` passed.
  std::vector<Ev> read(int reports, std::chrono::milliseconds timeout = 2000ms) {
    std::vector<Ev> out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (reports > 0 && std::chrono::steady_clock::now() < deadline) {
      input_event e{};
      const int rc = libevdev_next_event(reader_, LIBEVDEV_READ_FLAG_NORMAL, &e);
      if (rc == -EAGAIN) {
        pollfd p{readFd_, POLLIN, 0};
        ::poll(&p, 1, 50);
        continue;
      }
      if (rc != LIBEVDEV_READ_STATUS_SUCCESS) break;
      out.push_back({e.type, e.code, e.value});
      if (e.type == EV_SYN && e.code == SYN_REPORT) --reports;
    }
    return out;
  }

 private:
  libevdev* dev_ = nullptr;
  libevdev_uinput* uinput_ = nullptr;
  libevdev* reader_ = nullptr;
  int readFd_ = -1;
  std::string node_;
  std::string error_;
};

// What the input core passes on of written events (drivers/input/input.c): a value equal to the
// current one is dropped (ABS per MT slot, keys by state); ABS_MT_SLOT only passes when the slot
// changes; a SYN_REPORT with nothing before it is dropped. Slots start with tracking id -1.
class InputCoreFilter {
 public:
  std::vector<Ev> pass(const std::vector<Ev>& written) {
    std::vector<Ev> out;
    int pending = 0;
    for (const Ev& e : written) {
      if (e.type == EV_SYN) {
        if (pending > 0) out.push_back(e);
        pending = 0;
        continue;
      }
      if (e.type == EV_ABS && e.code == ABS_MT_TRACKING_ID && abs_.count(e.code) == 0) abs_[e.code] = -1;
      int& cur = e.type == EV_KEY ? keys_[e.code] : e.code == ABS_MT_SLOT ? slot_ : abs_[e.code];
      if (cur == e.value) continue;
      cur = e.value;
      out.push_back(e);
      ++pending;
    }
    return out;
  }

 private:
  int slot_ = 0;
  std::map<uint16_t, int> abs_;
  std::map<uint16_t, int> keys_;
};

std::vector<Ev> tapWritten(int id, int x, int y) {
  return {{EV_ABS, ABS_MT_SLOT, 0},       {EV_ABS, ABS_MT_TRACKING_ID, id}, {EV_ABS, ABS_MT_POSITION_X, x},
          {EV_ABS, ABS_MT_POSITION_Y, y}, {EV_ABS, ABS_MT_TOUCH_MAJOR, 50}, {EV_ABS, ABS_MT_PRESSURE, 100},
          {EV_KEY, BTN_TOUCH, 1},         {EV_SYN, SYN_REPORT, 0},          {EV_ABS, ABS_MT_TRACKING_ID, -1},
          {EV_KEY, BTN_TOUCH, 0},         {EV_SYN, SYN_REPORT, 0}};
}

int scaled(int p, int range) {
  return static_cast<int>(std::llround(static_cast<double>(p) * kAbsMax / range));
}

TEST(TouchLab, TapThroughTheKs1BoardReachesAUinputHynTs) {
  if (!std::filesystem::exists("/dev/uinput")) GTEST_SKIP() << "/dev/uinput is absent: run inside the lab VM";
  auto board = printcast::bsp::findBoard("anycubic-ks1");
  if (!board) GTEST_SKIP() << "anycubic-ks1 is not in this build (PRINTCAST_BOARDS)";

  // The panel's name must be unique on the machine for the test to know which node gets the events.
  for (const auto& entry : std::filesystem::directory_iterator("/dev/input")) {
    if (entry.path().filename().string().rfind("event", 0) != 0) continue;
    const int fd = ::open(entry.path().c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    libevdev* d = nullptr;
    if (fd >= 0 && libevdev_new_from_fd(fd, &d) == 0) {
      EXPECT_NE(std::string(libevdev_get_name(d)), "hyn_ts")
          << entry.path() << " is already a hyn_ts: a leftover?";
      libevdev_free(d);
    }
    if (fd >= 0) ::close(fd);
  }

  UinputPanel decoy("hyn_ts2", kAbsMax);  // created first: a lower event number
  ASSERT_TRUE(decoy.error().empty()) << decoy.error();
  UinputPanel panel("hyn_ts", kAbsMax);
  ASSERT_TRUE(panel.error().empty()) << panel.error();
  std::cout << "decoy " << decoy.node() << ", panel " << panel.node() << "\n";

  const auto& touchSpec = (*board)->touch;
  auto screen = printcast::bsp::openScreen(**board);
  ASSERT_NE(screen.touch, nullptr) << screen.touchError;
  EXPECT_EQ(screen.touch->info().name, "hyn_ts");
  EXPECT_EQ(screen.touch->info().range, touchSpec.range);
  EXPECT_EQ(screen.touch->info().slots, 10);

  // The streamer's mapping (apps/streamer touchRequest): viewPos in the upright picture ->
  // the board's touch transform -> the board's panel range; the backend then scales the
  // panel range onto the device's ABS range.
  const Size view = (*board)->display.orientation.apply((*board)->display.nativeSize);
  InputCoreFilter core;
  int trackingId = 0;
  for (const Point viewPos : {Point{100, 50}, Point{0, 0}, Point{view.width, view.height}, Point{100, 50},
                              Point{view.width / 2, view.height / 2}}) {
    SCOPED_TRACE("viewPos " + std::to_string(viewPos.x) + "," + std::to_string(viewPos.y));
    const Point mapped = touchSpec.transform.apply(viewPos, view);
    const Size mappedSpace = touchSpec.transform.apply(view);
    const Point panelPos{static_cast<int>(std::lround(static_cast<double>(mapped.x) * touchSpec.range.width /
                                                      mappedSpace.width)),
                         static_cast<int>(std::lround(static_cast<double>(mapped.y) * touchSpec.range.height /
                                                      mappedSpace.height))};
    ASSERT_TRUE(screen.touch->tap(panelPos, 20ms).ok());
    ++trackingId;
    const std::vector<Ev> expected = core.pass(tapWritten(
        trackingId, scaled(panelPos.x, touchSpec.range.width), scaled(panelPos.y, touchSpec.range.height)));
    const std::vector<Ev> got = panel.read(2);
    EXPECT_EQ(got, expected);
  }
  // For KS1 (rot180), the first tap's upright (100, 50) is panel (700, 430) = ABS (3583, 3668).
  if (touchSpec.transform == printcast::hal::Transform::rot180() && touchSpec.range == (Size{800, 480})) {
    EXPECT_EQ(scaled(700, 800), 3583);
    EXPECT_EQ(scaled(430, 480), 3668);
  }
  EXPECT_TRUE(decoy.read(1, 200ms).empty()) << "nothing may reach the other touchscreen";

  // A swipe: down, moves, up.
  ASSERT_TRUE(screen.touch->swipe(Point{100, 100}, Point{500, 300}, 40ms, 4).ok());
  ++trackingId;
  std::vector<Ev> written = tapWritten(trackingId, scaled(100, 800), scaled(100, 480));
  written.resize(8);  // the down report
  for (int i = 1; i <= 4; ++i) {
    written.push_back({EV_ABS, ABS_MT_POSITION_X, scaled(100 + 400 * i / 4, 800)});
    written.push_back({EV_ABS, ABS_MT_POSITION_Y, scaled(100 + 200 * i / 4, 480)});
    written.push_back({EV_SYN, SYN_REPORT, 0});
  }
  written.push_back({EV_ABS, ABS_MT_TRACKING_ID, -1});
  written.push_back({EV_KEY, BTN_TOUCH, 0});
  written.push_back({EV_SYN, SYN_REPORT, 0});
  EXPECT_EQ(panel.read(6), core.pass(written));
}

}  // namespace
