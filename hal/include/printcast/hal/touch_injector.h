// SPDX-License-Identifier: MIT
// TouchInjector: taps and swipes written into a touch panel, in panel coordinates.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "printcast/hal/geometry.h"
#include "printcast/hal/result.h"

namespace printcast::hal {

struct TouchInfo {
  std::string name;  // the panel's name ("hyn_ts", "memory")
  Size range;        // panel coordinate range: x in [0, range.width], y in [0, range.height]
  int slots = 1;     // multi-touch slots (evdev ABS_MT_SLOT count)
};

// Coordinates are panel coordinates (`panelPos`): the caller maps the upright image point the
// user clicked through the board's touch Transform first. Each call blocks for the gesture's
// duration: call it from a worker thread, never from an HTTP callback. Calls are serialised
// internally; info() may be called from any thread.
class TouchInjector {
 public:
  virtual ~TouchInjector() = default;

  virtual TouchInfo info() const = 0;

  // Press at panelPos, hold for `hold`, release (multi-touch protocol B on evdev). `pressed`
  // (optional) runs on the calling thread once the press is on the panel, before the hold: a
  // screen capture can look for the printer's reaction from then on. It does not run when the
  // tap fails before pressing.
  // Errors: InvalidArgument (point outside range), Disconnected, Io.
  virtual Status tap(Point panelPos, std::chrono::milliseconds hold,
                     const std::function<void()>& pressed = nullptr) = 0;

  // Press at `from`, move to `to` in `steps` equal moves spread over `duration`, release.
  // Errors: InvalidArgument (a point outside range, steps < 1), Disconnected, Io.
  virtual Status swipe(Point from, Point to, std::chrono::milliseconds duration, int steps) = 0;
};

}  // namespace printcast::hal
