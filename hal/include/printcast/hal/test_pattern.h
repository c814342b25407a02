// SPDX-License-Identifier: MIT
// A test-pattern camera: moving shapes with the frame counter and capture time drawn in.
#pragma once

#include <memory>

#include "printcast/hal/capture.h"

namespace printcast::hal {

// Creates a Capture that synthesises I420 frames (fourcc::kI420) of any even size from 16x16 to
// 3840x2160 at 1..120 fps, or as fast as consumers take them at fps 0. Each frame shows colour
// bars, a box moving one way and a circle another (so motion and encoder errors are visible),
// the frame sequence number and the capture time in milliseconds, drawn large enough to read at
// 320x240. Frames are paced by a timerfd at the configured rate (pollFd() is that timerfd), so
// the source never runs ahead of real time; the timestamp is the monotonic time of synthesis.
// Errors from the returned object: see Capture. validate() adjusts odd sizes down to even and
// out-of-range fps into range.
std::unique_ptr<Capture> createTestPatternCapture();

}  // namespace printcast::hal
