// SPDX-License-Identifier: MIT
// Probe: touch panels (evdev name, ABS ranges, multi-touch slots) and, with --test, taps at the
// four corners and the centre, read back from the same event node.
#include <fcntl.h>
#include <libevdev/libevdev.h>
#include <poll.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "printcast/hal/display_open.h"
#include "printcast/hal/touch_evdev.h"
#include "probe.h"

namespace printcast::probe {

namespace {

// An event node opened for reading through libevdev; closes both on destruction.
class EventReader {
 public:
  explicit EventReader(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) {
      error_ = fmt::format("{}: {}", path, std::strerror(errno));
      return;
    }
    if (const int rc = libevdev_new_from_fd(fd_, &dev_); rc < 0) {
      error_ = fmt::format("{}: libevdev: {}", path, std::strerror(-rc));
      dev_ = nullptr;
    }
  }
  ~EventReader() {
    if (dev_) libevdev_free(dev_);
    if (fd_ >= 0) ::close(fd_);
  }
  EventReader(const EventReader&) = delete;
  EventReader& operator=(const EventReader&) = delete;

  bool ok() const { return dev_ != nullptr; }
  const std::string& error() const { return error_; }
  libevdev* dev() const { return dev_; }
  int fd() const { return fd_; }
  bool isTouchscreen() const {
    return dev_ && libevdev_has_event_code(dev_, EV_ABS, ABS_MT_POSITION_X) &&
           libevdev_has_event_code(dev_, EV_ABS, ABS_MT_POSITION_Y);
  }

 private:
  std::string path_;
  int fd_ = -1;
  libevdev* dev_ = nullptr;
  std::string error_;
};

nlohmann::json absRange(libevdev* dev, unsigned code) {
  const auto* a = libevdev_get_abs_info(dev, code);
  if (!a) return nullptr;
  return {{"min", a->minimum}, {"max", a->maximum}};
}

struct Down {
  bool pressed = false, released = false;
  int x = -1, y = -1;
};

// Reads events until BTN_TOUCH 0 or the deadline; the position is slot 0's at the press report.
Down readTap(EventReader& reader, std::chrono::milliseconds limit) {
  Down down;
  bool sawPress = false;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline && !down.released) {
    pollfd pfd{reader.fd(), POLLIN, 0};
    ::poll(&pfd, 1, 50);
    input_event ev{};
    int rc = 0;
    while ((rc = libevdev_next_event(reader.dev(), LIBEVDEV_READ_FLAG_NORMAL, &ev)) ==
           LIBEVDEV_READ_STATUS_SUCCESS) {
      if (ev.type == EV_KEY && ev.code == BTN_TOUCH) {
        if (ev.value == 1) sawPress = true;
        if (ev.value == 0 && down.pressed) down.released = true;
      }
      if (ev.type == EV_SYN && ev.code == SYN_REPORT && sawPress && !down.pressed) {
        down.pressed = true;
        down.x = libevdev_get_slot_value(reader.dev(), 0, ABS_MT_POSITION_X);
        down.y = libevdev_get_slot_value(reader.dev(), 0, ABS_MT_POSITION_Y);
      }
    }
    if (rc == LIBEVDEV_READ_STATUS_SYNC) {
      // Dropped events: resync and carry on; the check below fails if the tap got lost.
      while (libevdev_next_event(reader.dev(), LIBEVDEV_READ_FLAG_SYNC, &ev) == LIBEVDEV_READ_STATUS_SYNC) {
      }
    }
  }
  return down;
}

void testTaps(const Options& options, const std::string& node, EventReader& reader, Report& report) {
  nlohmann::json test;
  hal::EvdevTouchConfig config{.deviceName = libevdev_get_name(reader.dev()),
                               .panelRange = options.touchRange};
  auto injector = hal::createEvdevTouchInjector(config);
  if (!injector)
    return report.fail(fmt::format("touch {}: open for writing: {}", node, injector.error().describe()));
  const auto info = (*injector)->info();
  test["range"] = info.range.str();
  const auto* ax = libevdev_get_abs_info(reader.dev(), ABS_MT_POSITION_X);
  const auto* ay = libevdev_get_abs_info(reader.dev(), ABS_MT_POSITION_Y);
  const int w = info.range.width, h = info.range.height;
  const hal::Point points[] = {{0, 0}, {w, 0}, {0, h}, {w, h}, {w / 2, h / 2}};
  nlohmann::json taps = nlohmann::json::array();
  int bad = 0;
  for (const auto p : points) {
    // Expected device value: the injector's documented scaling of panelPos onto the ABS range.
    auto scale = [](int v, int range, const input_absinfo* a) {
      return range > 0 ? a->minimum + static_cast<int>(std::lround(static_cast<double>(v) *
                                                                   (a->maximum - a->minimum) / range))
                       : v;
    };
    const int ex = scale(p.x, w, ax), ey = scale(p.y, h, ay);
    std::thread tap([&] { (void)(*injector)->tap(p, options.tapHold); });
    const Down got = readTap(reader, std::chrono::milliseconds(2000) + options.tapHold);
    tap.join();
    const bool ok = got.pressed && got.released && got.x == ex && got.y == ey;
    if (!ok) ++bad;
    taps.push_back({{"panelPos", {p.x, p.y}},
                    {"expected", {ex, ey}},
                    {"read", {got.x, got.y}},
                    {"pressed", got.pressed},
                    {"released", got.released},
                    {"ok", ok}});
  }
  test["taps"] = taps;
  test["readBack"] = true;
  report.details["test"] = test;
  if (bad > 0) report.fail(fmt::format("touch {}: {} of 5 taps were not read back as written", node, bad));
}

}  // namespace

Report probeTouch(const Options& options) {
  Report report;
  nlohmann::json list = nlohmann::json::array();
  std::string chosen;
  for (const auto& node : hal::listNumberedNodes("/dev/input", "event")) {
    EventReader reader(node);
    if (!reader.ok()) {
      list.push_back({{"node", node}, {"error", reader.error()}});
      continue;
    }
    nlohmann::json entry = {{"node", node},
                            {"name", libevdev_get_name(reader.dev())},
                            {"touchscreen", reader.isTouchscreen()},
                            {"direct", libevdev_has_property(reader.dev(), INPUT_PROP_DIRECT) == 1}};
    if (reader.isTouchscreen()) {
      entry["x"] = absRange(reader.dev(), ABS_MT_POSITION_X);
      entry["y"] = absRange(reader.dev(), ABS_MT_POSITION_Y);
      const auto* slots = libevdev_get_abs_info(reader.dev(), ABS_MT_SLOT);
      entry["slots"] = slots ? slots->maximum - slots->minimum + 1 : 1;
      entry["trackingId"] = absRange(reader.dev(), ABS_MT_TRACKING_ID);
      const bool matches = options.touchName.empty()
                               ? libevdev_has_property(reader.dev(), INPUT_PROP_DIRECT) == 1
                               : options.touchName == libevdev_get_name(reader.dev());
      if (chosen.empty() && matches) chosen = node;
    }
    list.push_back(entry);
  }
  report.details["devices"] = list;
  if (chosen.empty()) {
    if (!options.touchName.empty()) {
      report.fail(fmt::format("touch \"{}\": no event node has that name", options.touchName));
    } else {
      report.status = "absent";
      report.details["reason"] = "no direct-input multi-touch device under /dev/input";
    }
    return report;
  }
  report.details["tested"] = chosen;
  if (options.test) {
    // Open for reading before injecting so every event written is seen.
    EventReader reader(chosen);
    if (!reader.ok()) return report.fail("touch: " + reader.error()), report;
    testTaps(options, chosen, reader, report);
  }
  return report;
}

}  // namespace printcast::probe
