// SPDX-License-Identifier: MIT
// evdev TouchInjector: taps and swipes written as input events into a touch panel's event node.
#pragma once

#include <memory>
#include <string>

#include "printcast/hal/geometry.h"
#include "printcast/hal/result.h"
#include "printcast/hal/syscalls.h"
#include "printcast/hal/touch_injector.h"

namespace printcast::hal {

struct EvdevTouchConfig {
  // The panel's evdev name (EVIOCGNAME), matched exactly. Empty: the first device (lowest
  // eventN) that is a direct-input multi-touch device (INPUT_PROP_DIRECT, EV_ABS with
  // ABS_MT_POSITION_X and ABS_MT_POSITION_Y): a touchscreen, not a touchpad.
  std::string deviceName;
  // The coordinate range callers give panelPos in, which becomes TouchInfo.range (a board's
  // raw panel range). Points are scaled from it onto the device's ABS_MT_POSITION_X/Y ranges
  // (min + p * (max - min) / range, rounded), so a board range that equals the ABS extent is
  // passed through unchanged. Empty: TouchInfo.range is the ABS extent (max - min) itself.
  Size panelRange;
  // Where the event nodes live; tests point it at a temporary folder.
  std::string inputDir = "/dev/input";
};

// Finds the panel among inputDir/event* (never by index: each node is opened read-only and asked
// EVIOCGNAME, EVIOCGBIT(0), EVIOCGBIT(EV_ABS), EVIOCGPROP), reads the ABS ranges (EVIOCGABS of
// ABS_MT_POSITION_X/Y, ABS_MT_SLOT for TouchInfo.slots, ABS_MT_TRACKING_ID for the id range),
// then keeps the node open O_WRONLY and writes `struct input_event`s to it with write(2) -- as
// the printers' own streamer does; no uinput. The kernel stamps the events' times. A panel grabbed
// by the vendor UI (EVIOCGRAB) still delivers written events to the grabbing client.
//
// The event sequences, multi-touch protocol B (the kernel's
// Documentation/input/multi-touch-protocol.rst; the printers' touch_inject.c):
//   tap down:  ABS_MT_SLOT 0, ABS_MT_TRACKING_ID id, ABS_MT_POSITION_X x, ABS_MT_POSITION_Y y,
//              ABS_MT_TOUCH_MAJOR 50, ABS_MT_PRESSURE 100, BTN_TOUCH 1, SYN_REPORT
//   hold `hold`
//   tap up:    ABS_MT_TRACKING_ID -1, BTN_TOUCH 0, SYN_REPORT
//   swipe:     the tap's down at `from`; `steps` times: wait duration/steps, ABS_MT_POSITION_X x,
//              ABS_MT_POSITION_Y y, SYN_REPORT (the i-th of `steps` equal moves towards `to`); up.
// Each report (down, move, up) is one write(). Tracking ids start at 1 and increase with every
// gesture (wrapping within the device's ABS_MT_TRACKING_ID maximum). Readers see fewer events than
// were written: the input core drops a value equal to the current one (ABS_MT_SLOT 0 when the slot
// already is 0, an unchanged position).
//
// Creation errors: NoDevice (no node matches; the message lists the names seen),
// PermissionDenied (the matching node, or a node that could not be probed, is not accessible:
// the `input` group or root), Io.
// tap()/swipe() errors: InvalidArgument (a point outside [0, range], negative times, steps < 1),
// Disconnected (ENODEV: the panel went away; the injector stays dead, open a new one), Io (other
// write failures, a short write).
// Threading: as TouchInjector: gestures are serialised by a mutex and block for their duration;
// info() from any thread. Ownership: the injector owns the fd; `sys` must outlive it.
Result<std::unique_ptr<TouchInjector>> createEvdevTouchInjector(const EvdevTouchConfig& config,
                                                                Syscalls& sys = realSyscalls());

}  // namespace printcast::hal
