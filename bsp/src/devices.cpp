// SPDX-License-Identifier: MIT
// Opening a board's devices: board data (kinds, nodes, sizes) to HAL backend objects.
#include "printcast/bsp/devices.h"

#include <utility>

#include "printcast/hal/memory_screen.h"
#include "printcast/hal/test_pattern.h"

namespace printcast::bsp {

hal::Result<std::unique_ptr<hal::Capture>> openCamera(const Board& board, std::string_view deviceOverride) {
  // --device names a real camera, even on a board whose own camera is the test pattern.
  if (board.camera.kind == CameraKind::TestPattern && deviceOverride.empty()) {
    return hal::createTestPatternCapture();
  }
  const std::string_view match = deviceOverride.empty() ? board.camera.match : deviceOverride;
  return hal::Result<std::unique_ptr<hal::Capture>>(
      hal::Errc::Unsupported, "camera " + std::string(match.empty() ? "(first V4L2 device)" : match) +
                                  ": the V4L2 capture backend is not built yet (issue 3)");
}

ScreenDevices openScreen(const Board& board) {
  ScreenDevices out;

  // The virtual board's display and touch are one hal::MemoryScreen: a tap must show up in the
  // captured picture. Its touch space is its scan-out space (see memory_screen.h).
  std::shared_ptr<hal::MemoryScreen> memoryScreen;
  if (board.display.kind == DisplayKind::Memory || board.touch.kind == TouchKind::Memory) {
    hal::MemoryScreenConfig config;
    if (board.display.kind == DisplayKind::Memory) {
      config.panelSize = board.display.nativeSize;
      config.orientation = board.display.orientation;
    } else {
      // Touch only: the panel is the touch range, and the touch transform (upright -> panel)
      // is the inverse of the orientation (panel -> upright).
      config.panelSize = board.touch.range;
      config.orientation = board.touch.transform.inverse();
    }
    config.title = std::string(board.name);
    memoryScreen = hal::MemoryScreen::create(config);
  }

  switch (board.display.kind) {
    case DisplayKind::None:
      out.displayError = "display: board " + std::string(board.id) + " has no display";
      break;
    case DisplayKind::Fbdev:
      out.displayError = "display " + std::string(board.display.node) +
                         ": the fbdev display capture backend is not built in yet (issue 3)";
      break;
    case DisplayKind::Drm:
      out.displayError = "display " + std::string(board.display.node) +
                         ": the DRM/KMS display capture backend is not built in yet (issue 3)";
      break;
    case DisplayKind::Memory: out.display = memoryScreen->displayCapture(); break;
  }

  switch (board.touch.kind) {
    case TouchKind::None: out.touchError = "touch: board " + std::string(board.id) + " has no touch"; break;
    case TouchKind::Evdev:
      out.touchError = "touch \"" + std::string(board.touch.deviceName) +
                       "\": the evdev touch injection backend is not built in yet (issue 3)";
      break;
    case TouchKind::Memory: out.touch = memoryScreen->touchInjector(); break;
  }
  return out;
}

}  // namespace printcast::bsp
