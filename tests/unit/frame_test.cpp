// SPDX-License-Identifier: MIT
// FramePool and Frame leases: exhaustion, return on last lease, plane geometry; Result/Error text.
#include "printcast/hal/frame.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace hal = printcast::hal;
using hal::Errc;
using hal::FramePool;
namespace fourcc = hal::fourcc;

namespace {

std::shared_ptr<FramePool> makePool(hal::FourCC format, hal::Size size, int count) {
  auto pool = FramePool::create(format, size, count);
  EXPECT_TRUE(pool.ok()) << pool.error().describe();
  return pool.ok() ? *pool : nullptr;
}

}  // namespace

TEST(FramePool, AcquireUntilAgain) {
  auto pool = makePool(fourcc::kI420, {64, 48}, 3);
  ASSERT_TRUE(pool);
  EXPECT_EQ(pool->count(), 3);
  std::vector<FramePool::Writable> held;
  for (int i = 0; i < 3; ++i) {
    auto w = pool->acquire();
    ASSERT_TRUE(w.ok()) << i;
    held.push_back(std::move(*w));
    EXPECT_EQ(pool->freeCount(), 2 - i);
  }
  auto extra = pool->acquire();
  ASSERT_FALSE(extra.ok());
  EXPECT_EQ(extra.code(), Errc::Again);
  EXPECT_FALSE(extra.error().message.empty());

  // A Writable dropped unpublished goes straight back.
  held.pop_back();
  EXPECT_EQ(pool->freeCount(), 1);
  EXPECT_TRUE(pool->acquire().ok());
}

TEST(FramePool, BufferReturnsWhenLastLeaseDrops) {
  auto pool = makePool(fourcc::kXRGB8888, {32, 16}, 1);
  ASSERT_TRUE(pool);
  auto w = pool->acquire();
  ASSERT_TRUE(w.ok());
  const auto now = hal::Clock::now();
  hal::Frame first = std::move(*w).publish(now, 7);
  EXPECT_TRUE(first.valid());
  EXPECT_EQ(first.sequence(), 7U);
  EXPECT_EQ(first.timestamp(), now);
  EXPECT_EQ(first.leaseCount(), 1);
  EXPECT_EQ(pool->freeCount(), 0);

  hal::Frame second = first;  // a second consumer
  EXPECT_EQ(first.leaseCount(), 2);
  first = hal::Frame();
  EXPECT_FALSE(first.valid());
  EXPECT_EQ(pool->freeCount(), 0) << "one lease is still out";
  EXPECT_EQ(pool->acquire().code(), Errc::Again);

  second = hal::Frame();
  EXPECT_EQ(pool->freeCount(), 1);
  EXPECT_TRUE(pool->acquire().ok());
}

TEST(FramePool, LeasesSurvivePoolDestruction) {
  auto pool = makePool(fourcc::kI420, {16, 16}, 2);
  ASSERT_TRUE(pool);
  auto w = pool->acquire();
  ASSERT_TRUE(w.ok());
  std::memset(w->data(0), 0xAB, 16);
  hal::Frame frame = std::move(*w).publish(hal::Clock::now(), 1);
  pool.reset();
  ASSERT_TRUE(frame.valid());
  EXPECT_EQ(frame.plane(0).data[0], 0xAB);
  EXPECT_EQ(frame.plane(0).data[15], 0xAB);
  hal::Frame copy = frame;
  frame = hal::Frame();
  EXPECT_EQ(copy.plane(0).data[3], 0xAB);  // dropping the last lease later must not crash (ASan)
}

TEST(FramePool, PlaneGeometry) {
  struct Case {
    hal::FourCC format;
    hal::Size size;
    int planes;
    std::array<int, 3> minStride;
    std::array<int, 3> rows;
  };
  const std::vector<Case> cases = {
      {fourcc::kI420, {640, 480}, 3, {640, 320, 320}, {480, 240, 240}},
      {fourcc::kI420, {33, 17}, 3, {33, 17, 17}, {17, 9, 9}},
      {fourcc::kNV12, {1280, 720}, 2, {1280, 1280, 0}, {720, 360, 0}},
      {fourcc::kXRGB8888, {800, 480}, 1, {3200, 0, 0}, {480, 0, 0}},
      {fourcc::kXRGB8888, {30, 2}, 1, {120, 0, 0}, {2, 0, 0}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.format.str() + " " + c.size.str());
    auto pool = makePool(c.format, c.size, 1);
    ASSERT_TRUE(pool);
    EXPECT_EQ(pool->format(), c.format);
    EXPECT_EQ(pool->size(), c.size);
    auto w = pool->acquire();
    ASSERT_TRUE(w.ok());
    hal::Frame f = std::move(*w).publish(hal::Clock::now(), 0);
    EXPECT_EQ(f.format(), c.format);
    EXPECT_EQ(f.size(), c.size);
    ASSERT_EQ(f.planeCount(), c.planes);
    size_t total = 0;
    const uint8_t* previousEnd = nullptr;
    for (int p = 0; p < c.planes; ++p) {
      const hal::Plane& plane = f.plane(p);
      const auto i = static_cast<size_t>(p);
      EXPECT_GE(plane.stride, c.minStride[i]) << "plane " << p;
      EXPECT_EQ(plane.stride % 64, 0) << "plane " << p;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(plane.data) % 64, 0U) << "plane " << p;
      EXPECT_GE(plane.size, static_cast<size_t>(plane.stride) * static_cast<size_t>(c.rows[i]))
          << "plane " << p;
      if (previousEnd != nullptr) {
        EXPECT_GE(plane.data, previousEnd) << "planes overlap";
      }
      previousEnd = plane.data + plane.size;
      total += plane.size;
    }
    EXPECT_EQ(f.bytesUsed(), total);
    EXPECT_GE(total, hal::packedImageSize(c.format, c.size.width, c.size.height));
  }
}

TEST(FramePool, RejectsBadArguments) {
  EXPECT_EQ(FramePool::create(fourcc::kI420, {0, 480}, 2).code(), Errc::InvalidArgument);
  EXPECT_EQ(FramePool::create(fourcc::kMJPEG, {640, 480}, 2).code(), Errc::InvalidArgument);
  EXPECT_EQ(FramePool::create(fourcc::kI420, {640, 480}, 0).code(), Errc::InvalidArgument);
}

TEST(Frame, DefaultIsEmpty) {
  const hal::Frame f;
  EXPECT_FALSE(f.valid());
  EXPECT_EQ(f.planeCount(), 0);
  EXPECT_EQ(f.leaseCount(), 0);
}

TEST(Frame, AdoptRunsReleaseOnceOnLastLease) {
  int released = 0;
  hal::FrameDescription d;
  d.format = fourcc::kMJPEG;
  d.planeCount = 1;
  {
    hal::Frame a = hal::Frame::adopt(d, [&released] { ++released; });
    hal::Frame b = a;
    a = hal::Frame();
    EXPECT_EQ(released, 0);
  }
  EXPECT_EQ(released, 1);
}

TEST(Result, ErrorDescribe) {
  const hal::Error plain{Errc::InvalidArgument, 0, "bitrate 0 out of range"};
  EXPECT_EQ(plain.describe(), "invalid-argument: bitrate 0 out of range");

  const hal::Error fromErrno = hal::errnoError("/dev/video0", ENODEV);
  EXPECT_EQ(fromErrno.code, Errc::Disconnected);
  EXPECT_EQ(fromErrno.errnum, ENODEV);
  const std::string text = fromErrno.describe();
  EXPECT_EQ(text.rfind("disconnected: /dev/video0: ", 0), 0U) << text;
  EXPECT_NE(text.find("(errno 19)"), std::string::npos) << text;

  EXPECT_EQ(hal::errcFromErrno(EAGAIN), Errc::Again);
  EXPECT_EQ(hal::errcFromErrno(EBUSY), Errc::Busy);
  EXPECT_EQ(hal::errcFromErrno(EIO), Errc::Io);
  EXPECT_EQ(hal::errcName(Errc::NoSignal), "no-signal");
}

TEST(Result, ValueAndErrorAccess) {
  hal::Result<int> ok = 42;
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 42);
  hal::Result<int> bad(Errc::Timeout, "waited 5 s");
  EXPECT_FALSE(bad);
  EXPECT_EQ(bad.code(), Errc::Timeout);
  EXPECT_EQ(bad.error().message, "waited 5 s");

  const hal::Status fine;
  EXPECT_TRUE(fine.ok());
  const hal::Status failed(Errc::Unsupported, "no keyframes");
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().describe(), "unsupported: no keyframes");
}
