// SPDX-License-Identifier: MIT
// Opening a board's devices: the one place that turns board data into HAL backend objects.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "printcast/bsp/board.h"
#include "printcast/hal/capture.h"
#include "printcast/hal/display_capture.h"
#include "printcast/hal/result.h"
#include "printcast/hal/touch_injector.h"

namespace printcast::bsp {

// The board's camera. `deviceOverride` (the --device flag) replaces the board's camera match.
// Errors: Unsupported (the backend for this kind is not built in), NoDevice, Busy, ...
hal::Result<std::unique_ptr<hal::Capture>> openCamera(const Board& board, std::string_view deviceOverride);

// The board's screen: display capture and touch injection. They are opened together because on
// the virtual board they share one hal::MemoryScreen. Either may be null with the reason in the
// matching *Error string (e.g. "display: the fbdev backend is not built in").
struct ScreenDevices {
  std::unique_ptr<hal::DisplayCapture> display;
  std::unique_ptr<hal::TouchInjector> touch;
  std::string displayError;
  std::string touchError;
};
// Replacements for the board's device names (the streamer's --display-node / --touch-name: a
// bench or the lab VM whose nodes differ from the printer's). Empty = the board's own.
// displayNode "/dev/dri/cardN" selects the DRM backend, any other node fbdev; touchName selects
// evdev. deviceRoot replaces "/dev" wherever screens are looked for: the board's nodes under
// /dev, the DRM cards (/dev/dri), framebuffers (/dev/fbN) and input devices (/dev/input); a
// folder with no devices in it shows what a machine without screens reports (the unit tests).
// The strings must outlive the openScreen() call only.
struct ScreenOverrides {
  std::string displayNode;
  std::string touchName;
  std::string deviceRoot;
};
ScreenDevices openScreen(const Board& board, const ScreenOverrides& overrides = {});

}  // namespace printcast::bsp
