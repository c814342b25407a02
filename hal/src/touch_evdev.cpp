// SPDX-License-Identifier: MIT
// evdev TouchInjector: finds the panel by name and capabilities, writes protocol-B input events.
#include "printcast/hal/touch_evdev.h"

#include <fcntl.h>
#include <linux/input.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "printcast/hal/display_open.h"
#include "unique_fd.h"

namespace printcast::hal {

namespace {

// Values the printers' own injector writes (protocols.md, touch_inject.c).
constexpr int kTouchMajor = 50;
constexpr int kPressure = 100;
constexpr int kDefaultTrackingMax = 65535;

template <size_t N>
bool testBit(const std::array<uint8_t, N>& bits, unsigned bit) {
  return bit / 8 < N && (bits[bit / 8] & (1U << (bit % 8))) != 0;
}

struct Axis {
  int min = 0;
  int max = 0;
};

// What probing one event node found.
struct Probe {
  std::string path;
  std::string name;
  bool multiTouch = false;  // EV_ABS with ABS_MT_POSITION_X and _Y
  bool direct = false;      // INPUT_PROP_DIRECT: a touchscreen, not a touchpad
  Axis x, y;
  std::optional<Axis> slot, trackingId;
};

Result<Probe> probe(Syscalls& sys, const std::string& path) {
  const int raw = sys.open(path.c_str(), O_RDONLY | O_NONBLOCK);
  if (raw < 0) return errnoError(fmt::format("touch {}: open", path));
  const UniqueFd fd(raw, sys);
  Probe p;
  p.path = path;
  std::array<char, 256> name{};
  if (sys.ioctl(fd.get(), EVIOCGNAME(name.size() - 1), name.data()) < 0) {
    return errnoError(fmt::format("touch {}: EVIOCGNAME (not an evdev node?)", path));
  }
  p.name = name.data();
  std::array<uint8_t, (EV_MAX + 8) / 8> evBits{};
  std::array<uint8_t, (ABS_MAX + 8) / 8> absBits{};
  std::array<uint8_t, (INPUT_PROP_MAX + 8) / 8> propBits{};
  if (sys.ioctl(fd.get(), EVIOCGBIT(0, evBits.size()), evBits.data()) < 0) {
    return errnoError(fmt::format("touch {}: EVIOCGBIT", path));
  }
  if (testBit(evBits, EV_ABS) && sys.ioctl(fd.get(), EVIOCGBIT(EV_ABS, absBits.size()), absBits.data()) < 0) {
    return errnoError(fmt::format("touch {}: EVIOCGBIT(EV_ABS)", path));
  }
  // EVIOCGPROP exists since Linux 3.1; a failure just means "no properties".
  if (sys.ioctl(fd.get(), EVIOCGPROP(propBits.size()), propBits.data()) < 0) propBits.fill(0);
  p.multiTouch =
      testBit(evBits, EV_ABS) && testBit(absBits, ABS_MT_POSITION_X) && testBit(absBits, ABS_MT_POSITION_Y);
  p.direct = testBit(propBits, INPUT_PROP_DIRECT);
  if (!p.multiTouch) return p;
  auto axis = [&](unsigned code, const char* what) -> Result<Axis> {
    input_absinfo info{};
    if (sys.ioctl(fd.get(), EVIOCGABS(code), &info) < 0) {
      return errnoError(fmt::format("touch {} ({}): EVIOCGABS({})", path, p.name, what));
    }
    return Axis{info.minimum, info.maximum};
  };
  auto x = axis(ABS_MT_POSITION_X, "ABS_MT_POSITION_X");
  if (!x) return std::move(x).error();
  auto y = axis(ABS_MT_POSITION_Y, "ABS_MT_POSITION_Y");
  if (!y) return std::move(y).error();
  p.x = *x;
  p.y = *y;
  if (testBit(absBits, ABS_MT_SLOT)) {
    auto s = axis(ABS_MT_SLOT, "ABS_MT_SLOT");
    if (!s) return std::move(s).error();
    p.slot = *s;
  }
  if (testBit(absBits, ABS_MT_TRACKING_ID)) {
    auto t = axis(ABS_MT_TRACKING_ID, "ABS_MT_TRACKING_ID");
    if (!t) return std::move(t).error();
    p.trackingId = *t;
  }
  return p;
}

class EvdevTouchInjector final : public TouchInjector {
 public:
  EvdevTouchInjector(Syscalls& sys, UniqueFd fd, const Probe& panel, Size range)
      : sys_(sys),
        fd_(std::move(fd)),
        path_(panel.path),
        x_(panel.x),
        y_(panel.y),
        trackingMax_(panel.trackingId && panel.trackingId->max > 1 ? panel.trackingId->max
                                                                   : kDefaultTrackingMax),
        info_{panel.name, range, panel.slot ? panel.slot->max - panel.slot->min + 1 : 1} {}

  TouchInfo info() const override { return info_; }

  Status tap(Point panelPos, std::chrono::milliseconds hold,
             const std::function<void()>& pressed = nullptr) override {
    if (auto st = check(panelPos, "tap"); !st) return st;
    if (hold.count() < 0) return {Errc::InvalidArgument, fmt::format("touch {}: negative hold time", path_)};
    std::lock_guard lock(mutex_);
    if (auto st = down(panelPos); !st) return st;
    if (pressed) pressed();
    std::this_thread::sleep_for(hold);
    return up();
  }

  Status swipe(Point from, Point to, std::chrono::milliseconds duration, int steps) override {
    if (auto st = check(from, "swipe start"); !st) return st;
    if (auto st = check(to, "swipe end"); !st) return st;
    if (steps < 1) return {Errc::InvalidArgument, fmt::format("touch {}: swipe steps {} < 1", path_, steps)};
    if (duration.count() < 0)
      return {Errc::InvalidArgument, fmt::format("touch {}: negative swipe duration", path_)};
    std::lock_guard lock(mutex_);
    if (auto st = down(from); !st) return st;
    for (int i = 1; i <= steps; ++i) {
      std::this_thread::sleep_for(duration / steps);
      const Point p{from.x + (to.x - from.x) * i / steps, from.y + (to.y - from.y) * i / steps};
      const Point a = toAbs(p);
      const std::array move{event(EV_ABS, ABS_MT_POSITION_X, a.x), event(EV_ABS, ABS_MT_POSITION_Y, a.y),
                            event(EV_SYN, SYN_REPORT, 0)};
      if (auto st = send(move.data(), move.size()); !st) {
        (void)up();  // try not to leave a finger on the panel
        return st;
      }
    }
    return up();
  }

 private:
  static input_event event(uint16_t type, uint16_t code, int32_t value) {
    input_event e{};
    e.type = type;
    e.code = code;
    e.value = value;
    return e;
  }

  Status check(Point p, const char* what) const {
    const Size r = info_.range;
    if (p.x < 0 || p.y < 0 || p.x > r.width || p.y > r.height) {
      return {Errc::InvalidArgument, fmt::format("touch {}: {} at {},{} is outside 0..{} x 0..{}", path_,
                                                 what, p.x, p.y, r.width, r.height)};
    }
    return {};
  }

  // panelPos (continuous, [0, range]) -> the device's ABS coordinates, rounded to nearest.
  static int scale(int p, int range, Axis axis) {
    if (range <= 0) return axis.min;
    const auto span = static_cast<int64_t>(axis.max) - axis.min;
    return axis.min +
           static_cast<int>(std::llround(static_cast<double>(p) * static_cast<double>(span) / range));
  }
  Point toAbs(Point p) const {
    return Point{scale(p.x, info_.range.width, x_), scale(p.y, info_.range.height, y_)};
  }

  Status down(Point panelPos) {
    const int id = nextTrackingId_;
    nextTrackingId_ = nextTrackingId_ >= trackingMax_ ? 1 : nextTrackingId_ + 1;
    const Point a = toAbs(panelPos);
    const std::array report{event(EV_ABS, ABS_MT_SLOT, 0),
                            event(EV_ABS, ABS_MT_TRACKING_ID, id),
                            event(EV_ABS, ABS_MT_POSITION_X, a.x),
                            event(EV_ABS, ABS_MT_POSITION_Y, a.y),
                            event(EV_ABS, ABS_MT_TOUCH_MAJOR, kTouchMajor),
                            event(EV_ABS, ABS_MT_PRESSURE, kPressure),
                            event(EV_KEY, BTN_TOUCH, 1),
                            event(EV_SYN, SYN_REPORT, 0)};
    return send(report.data(), report.size());
  }

  Status up() {
    const std::array report{event(EV_ABS, ABS_MT_TRACKING_ID, -1), event(EV_KEY, BTN_TOUCH, 0),
                            event(EV_SYN, SYN_REPORT, 0)};
    return send(report.data(), report.size());
  }

  // One write() per report; evdev consumes whole events, so a short write resumes at the next one.
  Status send(const input_event* events, size_t count) {
    if (dead_) return {Errc::Disconnected, fmt::format("touch {}: device is gone", path_)};
    const auto* bytes = reinterpret_cast<const uint8_t*>(events);
    size_t left = count * sizeof(input_event);
    while (left > 0) {
      const ssize_t n = sys_.write(fd_.get(), bytes, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        Error e = errnoError(fmt::format("touch {} ({}): write", path_, info_.name));
        if (e.code == Errc::Disconnected) dead_ = true;
        return e;
      }
      if (n == 0 || static_cast<size_t>(n) % sizeof(input_event) != 0) {
        return {Errc::Io, fmt::format("touch {}: short write ({} of {} bytes)", path_, n, left)};
      }
      bytes += n;
      left -= static_cast<size_t>(n);
    }
    return {};
  }

  Syscalls& sys_;
  UniqueFd fd_;
  const std::string path_;
  const Axis x_, y_;
  const int trackingMax_;
  const TouchInfo info_;
  std::mutex mutex_;  // one gesture at a time; guards the members below
  int nextTrackingId_ = 1;
  bool dead_ = false;
};

}  // namespace

Result<std::unique_ptr<TouchInjector>> createEvdevTouchInjector(const EvdevTouchConfig& config,
                                                                Syscalls& sys) {
  using R = Result<std::unique_ptr<TouchInjector>>;
  const std::string wanted = config.deviceName.empty()
                                 ? std::string("a direct multi-touch device (touchscreen)")
                                 : fmt::format("\"{}\" with multi-touch axes", config.deviceName);
  const std::vector<std::string> nodes = listNumberedNodes(config.inputDir, "event");
  std::optional<Probe> match;
  std::vector<std::string> seen;
  std::string denied;
  for (const std::string& node : nodes) {
    auto p = probe(sys, node);
    if (!p) {
      if (p.code() == Errc::PermissionDenied) denied += (denied.empty() ? "" : ", ") + node;
      continue;
    }
    seen.push_back(fmt::format("{}=\"{}\"", node, p->name));
    const bool nameOk = config.deviceName.empty() ? p->direct : p->name == config.deviceName;
    if (nameOk && p->multiTouch) {
      match = std::move(*p);
      break;
    }
  }
  if (!match) {
    std::string message =
        fmt::format("touch: no evdev device {} among {} nodes in {}", wanted, nodes.size(), config.inputDir);
    if (!seen.empty()) message += fmt::format(" (seen: {})", fmt::join(seen, ", "));
    if (!denied.empty()) {
      return R(Errc::PermissionDenied,
               message +
                   fmt::format("; could not open {} (permission denied: the `input` group or root)", denied));
    }
    return R(Errc::NoDevice, std::move(message));
  }
  if (match->x.max <= match->x.min || match->y.max <= match->y.min) {
    return R(Errc::Unsupported,
             fmt::format("touch {} (\"{}\"): empty ABS_MT_POSITION range {}..{} x {}..{}", match->path,
                         match->name, match->x.min, match->x.max, match->y.min, match->y.max));
  }
  const int raw = sys.open(match->path.c_str(), O_WRONLY);
  if (raw < 0) {
    Error e = errnoError(fmt::format("touch {} (\"{}\"): open for writing", match->path, match->name));
    if (e.code == Errc::PermissionDenied) e.message += " (the `input` group or root)";
    return e;
  }
  const Size range = config.panelRange.empty()
                         ? Size{match->x.max - match->x.min, match->y.max - match->y.min}
                         : config.panelRange;
  return std::unique_ptr<TouchInjector>(
      std::make_unique<EvdevTouchInjector>(sys, UniqueFd(raw, sys), *match, range));
}

}  // namespace printcast::hal
