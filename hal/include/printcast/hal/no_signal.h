// SPDX-License-Identifier: MIT
// The "no signal" picture a streamer serves while its camera is gone (ustreamer does the same).
#pragma once

#include <cstdint>
#include <string_view>

#include "printcast/hal/frame.h"
#include "printcast/hal/result.h"

namespace printcast::hal {

// Draw a mid-grey I420 frame with "NO SIGNAL" in large letters at the centre and `detail`
// (e.g. "RECONNECTING /dev/v4l/by-id/...") in small letters below it, into a buffer of `pool`
// (an I420 pool of any even size from 16x16). Text the built-in 5x7 font lacks draws blank;
// lower case draws as capitals; too-long text is clipped.
// Errors: InvalidArgument (pool not I420), Again (every buffer of the pool is leased).
// Threading: any thread (the pool serialises buffer hand-out).
Result<Frame> drawNoSignalFrame(FramePool& pool, std::string_view detail, Timestamp timestamp,
                                uint64_t sequence);

}  // namespace printcast::hal
