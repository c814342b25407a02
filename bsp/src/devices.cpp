// SPDX-License-Identifier: MIT
// Opening a board's devices: board data (kinds, nodes, sizes) to HAL backend objects.
#include "printcast/bsp/devices.h"

#include <string>
#include <utility>
#include <vector>

#include "printcast/hal/display_fbdev.h"
#include "printcast/hal/display_open.h"
#include "printcast/hal/memory_screen.h"
#include "printcast/hal/test_pattern.h"
#include "printcast/hal/touch_evdev.h"
#include "printcast/hal/v4l2.h"

namespace printcast::bsp {

hal::Result<std::unique_ptr<hal::Capture>> openCamera(const Board& board, std::string_view deviceOverride) {
  // --device names a real camera, even on a board whose own camera is the test pattern.
  if (board.camera.kind == CameraKind::TestPattern && deviceOverride.empty()) {
    return hal::createTestPatternCapture();
  }
  // A path, a by-id/by-path link name, "bus:<bus_info>", or a substring of the card name or by-id
  // link; "" = the first capture node (see hal/v4l2.h). Never an index: nodes renumber on replug.
  const std::string_view match = deviceOverride.empty() ? board.camera.match : deviceOverride;
  return hal::createV4l2Capture(match);
}

namespace {

// Where a machine's screens live (the kernel's devtmpfs names, below ScreenOverrides::deviceRoot);
// nodes are listed, never guessed.
constexpr std::string_view kDevDir = "/dev";

// `node` ("/dev/fb0") with its /dev replaced by `root`; other paths unchanged.
std::string underRoot(std::string_view node, const std::string& root) {
  if (node.substr(0, kDevDir.size()) == kDevDir &&
      (node.size() == kDevDir.size() || node[kDevDir.size()] == '/')) {
    return root + std::string(node.substr(kDevDir.size()));
  }
  return std::string(node);
}

// A display backend's result into ScreenDevices, the reason prefixed with what was tried.
void takeDisplay(hal::Result<std::unique_ptr<hal::DisplayCapture>> r, const std::string& what,
                 ScreenDevices& out) {
  if (r) {
    out.display = std::move(*r);
  } else {
    out.displayError = what + ": " + r.error().describe();
  }
}

void takeTouch(hal::Result<std::unique_ptr<hal::TouchInjector>> r, const std::string& what,
               ScreenDevices& out) {
  if (r) {
    out.touch = std::move(*r);
  } else {
    out.touchError = what + ": " + r.error().describe();
  }
}

}  // namespace

ScreenDevices openScreen(const Board& boardData, const ScreenOverrides& overrides) {
  // The board's data with overridden nodes swapped in; the rest below reads `board` as usual.
  Board board = boardData;
  if (!overrides.displayNode.empty()) {
    board.display.node = overrides.displayNode;
    board.display.kind =
        overrides.displayNode.find("/dri/") != std::string::npos ? DisplayKind::Drm : DisplayKind::Fbdev;
  }
  if (!overrides.touchName.empty()) {
    board.touch.deviceName = overrides.touchName;
    board.touch.kind = TouchKind::Evdev;
  }
  const std::string root = overrides.deviceRoot.empty() ? std::string(kDevDir) : overrides.deviceRoot;
  const std::string drmDir = root + "/dri";
  const std::string inputDir = root + "/input";
  auto fbdevNodes = [&root] { return hal::listNumberedNodes(root, "fb"); };
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

  const std::string node = underRoot(board.display.node, root);
  switch (board.display.kind) {
    case DisplayKind::None:
      out.displayError = "display: board " + std::string(board.id) + " has no display";
      break;
    case DisplayKind::Fbdev:
      takeDisplay(hal::createFbdevDisplayCapture(node), "display " + node + " (fbdev)", out);
      break;
    case DisplayKind::Drm:
      // The card first; its fbdev emulation (or any framebuffer) when KMS will not let us read.
      takeDisplay(hal::openDisplayCapture(hal::DisplayCandidates{{node}, fbdevNodes()}),
                  "display " + node + " (DRM/KMS, then fbdev)", out);
      break;
    case DisplayKind::Memory: out.display = memoryScreen->displayCapture(); break;
    case DisplayKind::Auto:
      takeDisplay(hal::openDisplayCapture(
                      hal::DisplayCandidates{hal::listNumberedNodes(drmDir, "card"), fbdevNodes()}),
                  "display (any DRM card or fbdev)", out);
      break;
  }

  switch (board.touch.kind) {
    case TouchKind::None: out.touchError = "touch: board " + std::string(board.id) + " has no touch"; break;
    case TouchKind::Evdev:
      takeTouch(hal::createEvdevTouchInjector(
                    hal::EvdevTouchConfig{std::string(board.touch.deviceName), board.touch.range, inputDir}),
                "touch \"" + std::string(board.touch.deviceName) + "\" (evdev)", out);
      break;
    case TouchKind::Memory: out.touch = memoryScreen->touchInjector(); break;
    case TouchKind::Auto:
      takeTouch(hal::createEvdevTouchInjector(hal::EvdevTouchConfig{"", board.touch.range, inputDir}),
                "touch (any evdev touchscreen)", out);
      break;
  }
  return out;
}

}  // namespace printcast::bsp
