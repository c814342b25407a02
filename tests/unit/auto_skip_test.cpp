// SPDX-License-Identifier: MIT
// AutoSkip: h264-streamer's frame-skip rules.
#include "auto_skip.h"

#include <gtest/gtest.h>

using printcast::streamer::AutoSkip;
using namespace std::chrono_literals;

namespace {
printcast::hal::Timestamp at(std::chrono::milliseconds t) { return printcast::hal::Timestamp(t); }
}  // namespace

TEST(AutoSkip, JumpsByTwoOrThreeOnInstantOverload) {
  AutoSkip s(60);
  s.onCpuSample(85, at(0ms));  // > target + 20
  EXPECT_EQ(s.interval(), 3);
  s.onCpuSample(99, at(500ms));  // > target + 35
  EXPECT_EQ(s.interval(), 6);
}

TEST(AutoSkip, StepsByOneOnAverageOverloadAndCapsAtTen) {
  AutoSkip s(60);
  for (int i = 0; i < 20; ++i) s.onCpuSample(70, at(std::chrono::milliseconds(500 * i)));  // avg > 65
  EXPECT_EQ(s.interval(), AutoSkip::kMaxInterval);
}

TEST(AutoSkip, BacksOffOnlyAfterFourLowReadingsAndTwoSeconds) {
  AutoSkip s(60);
  s.onCpuSample(85, at(0ms));
  ASSERT_EQ(s.interval(), 3);
  // Three low readings: not yet. The fourth comes 1.5 s after the increase: still too soon.
  for (int i = 1; i <= 4; ++i) s.onCpuSample(10, at(std::chrono::milliseconds(375 * i)));
  EXPECT_EQ(s.interval(), 3);
  for (int i = 1; i <= 4; ++i) s.onCpuSample(10, at(2000ms + std::chrono::milliseconds(500 * i)));
  EXPECT_EQ(s.interval(), 2);
  EXPECT_TRUE(s.shouldEncode(4));
  EXPECT_FALSE(s.shouldEncode(5));
}

TEST(AutoSkip, StaysAtOneUnderTarget) {
  AutoSkip s(60);
  for (int i = 0; i < 30; ++i) s.onCpuSample(40, at(std::chrono::milliseconds(500 * i)));
  EXPECT_EQ(s.interval(), 1);
}
