// SPDX-License-Identifier: MIT
// MediaClock: a network camera's media time on the capture clock (transport/media_clock.h).
#include "printcast/transport/media_clock.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <vector>

using printcast::hal::Timestamp;
using printcast::transport::MediaClock;
using namespace std::chrono_literals;

namespace {

constexpr int64_t kRate = 90000;     // RTP's video clock
constexpr int64_t kPerFrame = 3000;  // 30 fps
const Timestamp kStart = Timestamp{} + 1000s;

// A delay per picture between 5 and 25 ms, repeating (network and send jitter).
std::chrono::microseconds jitter(int i) { return std::chrono::microseconds(5000 + (i * 7919) % 20000); }

double ms(Timestamp::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

TEST(MediaClock, PicturesAreNeverAfterTheirArrivalAndKeepTheirSpacing) {
  MediaClock clock;
  Timestamp last{};
  for (int i = 0; i < 300; ++i) {
    const Timestamp captured = kStart + std::chrono::microseconds(i * 33333);
    const Timestamp arrival = captured + jitter(i);
    const Timestamp pts = clock.map(i * kPerFrame, kRate, arrival);
    EXPECT_LE(pts, arrival) << i;
    if (i > 0) {
      EXPECT_GT(pts, last) << i;
    }
    last = pts;
    // Once the fastest picture (5 ms) was seen, the times are the capture times plus 5 ms.
    if (i >= 30) {
      EXPECT_NEAR(ms(pts - captured), 5.0, 0.1) << i;
    }
  }
}

TEST(MediaClock, TheBurstAtPlayKeepsItsSpacingAndTheTimesComeDownToRealTime) {
  // At PLAY the camera sends the last second at once (30 pictures within 10 ms), then one picture
  // every 33 ms as it is captured, 10 ms late.
  MediaClock clock;
  Timestamp last{};
  for (int i = 0; i < 400; ++i) {
    const Timestamp arrival = i < 30 ? kStart + std::chrono::microseconds(i * 333)
                                     : kStart + std::chrono::microseconds((i - 29) * 33333) + 10ms;
    const Timestamp pts = clock.map(i * kPerFrame, kRate, arrival);
    if (i > 0) {
      // Within an eighth of the picture spacing, also inside the burst.
      EXPECT_GE(ms(pts - last), 33.333 * 7 / 8 - 0.01) << i;
      EXPECT_LE(ms(pts - last), 33.333 * 9 / 8 + 0.01) << i;
    }
    last = pts;
    if (i >= 300) {
      // Real time: within the 10 ms of delay of arrival (the old mapping stayed 0.95 s ahead).
      EXPECT_LE(pts, arrival) << i;
      EXPECT_LT(arrival - pts, 40ms) << i;
    }
  }
}

TEST(MediaClock, FollowsACameraClockThatRunsSlowOrFast) {
  for (const double rate : {0.99, 1.01}) {  // 1 % slow, 1 % fast: 10 ms per second
    MediaClock clock;
    Timestamp last{};
    for (int i = 0; i < 30 * 60; ++i) {  // a minute
      const Timestamp arrival = kStart + std::chrono::microseconds(i * 33333) + jitter(i);
      const auto ticks = static_cast<int64_t>(static_cast<double>(i * kPerFrame) * rate);
      const Timestamp pts = clock.map(ticks, kRate, arrival);
      EXPECT_LE(pts, arrival) << rate << " " << i;
      if (i > 0) {
        EXPECT_GT(pts, last) << rate << " " << i;
      }
      last = pts;
      // Behind arrival by the jitter plus at most two windows of drift (8 s x 1 %), never by the
      // whole second the old mapping let it drift.
      if (i >= 30) {
        EXPECT_LT(arrival - pts, 120ms) << rate << " " << i;
      }
    }
  }
}

TEST(MediaClock, AJumpOfTheCameraClockStartsAgainAtTheArrival) {
  MediaClock clock;
  int64_t ticks = 0;
  Timestamp arrival = kStart;
  for (int i = 0; i < 60; ++i, ticks += kPerFrame, arrival += 33333us) (void)clock.map(ticks, kRate, arrival);
  // Stepped back 10 s (a camera's NTP correction, a reconnect upstream): at its arrival.
  ticks -= 10 * kRate;
  EXPECT_EQ(clock.map(ticks, kRate, arrival), arrival);
  const Timestamp next = clock.map(ticks + kPerFrame, kRate, arrival + 33333us);
  EXPECT_NEAR(ms(next - arrival), 33.3, 0.1);
  // Forward 10 s: no picture after its arrival.
  ticks += 10 * kRate + 2 * kPerFrame;
  arrival += 66666us;
  EXPECT_EQ(clock.map(ticks, kRate, arrival), arrival);
}
