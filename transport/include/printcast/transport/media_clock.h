// SPDX-License-Identifier: MIT
// MediaClock: a network camera's media time (RTP timestamps, FLV milliseconds) on the capture
// clock (hal::Clock, steady), so its pictures carry timestamps comparable with a USB camera's:
// HLS's PROGRAM-DATE-TIME, the RTSP server's sender reports and the muxers' PTS all read them.
#pragma once

#include <chrono>
#include <cstdint>

#include "printcast/hal/frame.h"

namespace printcast::transport {

// The mapping is media time + base. The base aims at the smallest transit (arrival - media time)
// seen over the last two windows of kWindow: the picture that came through fastest fixes the
// relation, the others' network and buffering delays do not move it. The base slews toward that
// aim by at most an eighth of the media time between two pictures, so pictures keep their
// spacing within 1/8 and times never go backwards (for media times that do not: no B-frames).
// Consequences:
// - the burst a camera sends at PLAY (the last second's pictures at once) keeps its spacing,
//   and the stream's times then come down to real time (about 8 s for a second ahead); before,
//   the first picture fixed the base and the whole session stayed up to a second off;
// - a camera clock that runs slow or fast against ours is followed (the aim moves within two
//   windows), instead of drifting until a 1 s step;
// - a picture more than kJump away from its arrival (a camera clock stepped, a reconnect
//   upstream) starts the mapping again at its arrival.
// `ticks` is the unwrapped media time in ticks of 1/`rate` s (RTP 90 kHz: rate 90000; FLV:
// 1000). Not thread-safe: one per stream, called by the thread that reads it.
class MediaClock {
 public:
  static constexpr std::chrono::seconds kWindow{4};
  static constexpr std::chrono::seconds kJump{1};

  hal::Timestamp map(int64_t ticks, int64_t rate, hal::Timestamp arrival);

 private:
  bool started_ = false;
  hal::Timestamp::duration base_{};  // capture time of media time 0
  hal::Timestamp::duration lastMedia_{};
  hal::Timestamp windowStart_{};
  hal::Timestamp::duration windowMin_{};    // this window's smallest arrival - media time
  hal::Timestamp::duration previousMin_{};  // the last window's
};

}  // namespace printcast::transport
