// SPDX-License-Identifier: MIT
// MemoryScreen: an in-memory printer screen (XRGB8888 scan-out buffer) that reacts to touches.
#pragma once

#include <memory>
#include <string>

#include "printcast/hal/display_capture.h"
#include "printcast/hal/touch_injector.h"
#include "printcast/hal/transform.h"

namespace printcast::hal {

struct MemoryScreenConfig {
  // Scan-out buffer size in the panel's own orientation (e.g. 800x480) and mount orientation:
  // the Transform that turns the scan-out buffer upright for the viewer. The screen draws its
  // user interface upright and stores it through the inverse, as a real printer UI does.
  Size panelSize{800, 480};
  Transform orientation;
  std::string title = "printcast virtual printer";
};

// A simulated printer LCD. Its touch panel's coordinate range equals panelSize (touch space is
// scan-out space). Every tap draws a visible mark (a filled ring of radius ~12 px, a different
// colour per tap) centred on the touched pixel of the scan-out buffer, and the UI's status line
// shows the last touch in upright coordinates; swipes draw their path.
// Thread-safety: displayCapture() and touchInjector() objects may be used from different
// threads at once; the screen outlives neither (they share ownership of it).
// The display side: info() reports a stride padded past width * 4 (as some fbdev drivers do),
// so code that assumes packed rows fails here first. Each displayCapture() object has its own
// pool of 4 frames and its own sequence, starting at 0 and advancing only when the pixels
// changed since that object's previous grab: on every touch and when the animated progress bar
// steps (at most twice a second). The touch side: tap() and swipe() also reject a negative hold
// or duration with InvalidArgument; touch marks (the last 32) stay on screen.
class MemoryScreen {
 public:
  // Returns null when config.panelSize is empty or larger than 8192x8192.
  static std::shared_ptr<MemoryScreen> create(const MemoryScreenConfig& config);
  virtual ~MemoryScreen() = default;

  virtual std::unique_ptr<DisplayCapture> displayCapture() = 0;
  virtual std::unique_ptr<TouchInjector> touchInjector() = 0;
  // Number of taps and swipes received so far (for tests).
  virtual int touchCount() const = 0;
};

}  // namespace printcast::hal
