// SPDX-License-Identifier: MIT
// A test-pattern camera: moving shapes with the frame counter and capture time drawn in.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "printcast/hal/capture.h"

namespace printcast::hal {

// Creates a Capture that synthesises I420 frames (fourcc::kI420) of any even size from 16x16 to
// 3840x2160 at 1..120 fps, or as fast as consumers take them at fps 0. Each frame shows colour
// bars, a box moving one way and a circle another (so motion and encoder errors are visible),
// the frame sequence number and the capture time in milliseconds, drawn large enough to read at
// 320x240. Frames are paced by a timerfd at the configured rate (pollFd() is that timerfd), so
// the source never runs ahead of real time; the timestamp is the monotonic time of synthesis.
// Errors from the returned object: see Capture. validate() adjusts odd sizes down to even and
// out-of-range fps (and bufferCount, 1..32) into range; any format but I420 is Invalid. The
// drawn time is milliseconds since start(), on the same clock as the frame timestamps.
// At fps 0 pollFd() stays readable while streaming and dequeue() returns Again only when all
// bufferCount frames are leased. When paced, a period whose frame finds every buffer leased is
// dropped and leaves a gap in the sequence; periods that pass unread are not drops (a late
// consumer gets one current frame, never a backlog). dequeue() before start() or after stop():
// InvalidArgument; start() while streaming: Busy.
//
// Along the bottom edge each frame carries a timecode strip for glass-to-glass latency
// measurements: the wall-clock time of synthesis (CLOCK_REALTIME milliseconds since the Unix
// epoch, low 32 bits) as 32 square cells of testPatternTimecodeCell() pixels, most significant bit
// at the left, black (Y 16) for 0 and white (Y 235) for 1. A browser reads it back by drawing the
// decoded picture to a canvas and sampling each cell's centre (bench/glass_latency).
std::unique_ptr<Capture> createTestPatternCapture();

// The timecode cell size in pixels for a frame size: width / 32 rounded down to even (min 2).
int testPatternTimecodeCell(Size size);
// Read the timecode back from a (decoded) luma plane; nullopt when a cell is neither dark nor
// light (not a test-pattern picture, or too damaged).
std::optional<uint32_t> readTestPatternTimecode(const uint8_t* luma, int stride, Size size);

}  // namespace printcast::hal
