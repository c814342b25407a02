// SPDX-License-Identifier: MIT
// The "no signal" picture: grey I420 with white text in the middle, from any I420 pool.
#include "printcast/hal/no_signal.h"

#include <gtest/gtest.h>

namespace {

using printcast::hal::Errc;
using printcast::hal::FramePool;
using printcast::hal::Size;
using printcast::hal::Timestamp;
namespace fourcc = printcast::hal::fourcc;

TEST(NoSignal, GreyWithWhiteTextInTheMiddleBand) {
  auto pool = FramePool::create(fourcc::kI420, Size{640, 480}, 1);
  ASSERT_TRUE(pool.ok());
  auto frame = printcast::hal::drawNoSignalFrame(**pool, "RECONNECTING BUS:USB-1",
                                                 Timestamp(std::chrono::seconds(5)), 4);
  ASSERT_TRUE(frame.ok()) << frame.error().describe();
  EXPECT_EQ(frame->size(), (Size{640, 480}));
  EXPECT_EQ(frame->sequence(), 4u);
  int white = 0;
  int whiteOutsideBand = 0;
  const auto& y = frame->plane(0);
  for (int row = 0; row < 480; ++row) {
    for (int x = 0; x < 640; ++x) {
      const uint8_t v = y.data[row * y.stride + x];
      ASSERT_TRUE(v == 128 || v == 235) << x << "," << row;
      if (v == 235) {
        ++white;
        if (row < 120 || row > 360) ++whiteOutsideBand;
      }
    }
  }
  EXPECT_GT(white, 2000) << "the title is large";
  EXPECT_EQ(whiteOutsideBand, 0);
  for (int p = 1; p <= 2; ++p) {
    EXPECT_EQ(frame->plane(p).data[0], 128);
    EXPECT_EQ(frame->plane(p).data[frame->plane(p).stride * 239 + 319], 128);
  }
}

TEST(NoSignal, ExhaustedPoolIsAgainAndWrongFormatIsInvalid) {
  auto pool = FramePool::create(fourcc::kI420, Size{64, 48}, 1);
  ASSERT_TRUE(pool.ok());
  auto held = printcast::hal::drawNoSignalFrame(**pool, "", {}, 0);
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(printcast::hal::drawNoSignalFrame(**pool, "", {}, 1).code(), Errc::Again);
  auto yuyv = FramePool::create(fourcc::kYUYV, Size{64, 48}, 1);
  ASSERT_TRUE(yuyv.ok());
  EXPECT_EQ(printcast::hal::drawNoSignalFrame(**yuyv, "", {}, 0).code(), Errc::InvalidArgument);
}

}  // namespace
