// SPDX-License-Identifier: MIT
// Frame: a read-only lease on a pooled image buffer, shared by every consumer of one capture.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "printcast/hal/geometry.h"
#include "printcast/hal/pixel_format.h"
#include "printcast/hal/result.h"

namespace printcast::hal {

// Capture times are CLOCK_MONOTONIC (libstdc++'s steady_clock), the clock V4L2 stamps buffers with.
using Clock = std::chrono::steady_clock;
using Timestamp = Clock::time_point;

inline constexpr int kMaxPlanes = 3;

// One plane of an image: `stride` bytes per row (>= width * bytes per pixel; never assume packed),
// `size` bytes in all. For compressed formats plane 0 holds the bitstream and stride is 0.
struct Plane {
  const uint8_t* data = nullptr;
  int stride = 0;
  size_t size = 0;
};

// Everything a backend says about a buffer it hands out as a Frame.
struct FrameDescription {
  FourCC format;
  Size size;
  int planeCount = 0;
  std::array<Plane, kMaxPlanes> planes{};
  size_t bytesUsed = 0;   // compressed: payload bytes in plane 0; raw: sum of plane sizes
  Timestamp timestamp{};  // monotonic capture time of the first pixel/byte
  uint64_t sequence = 0;  // per-source counter; a gap means the source dropped frames
  // The whole buffer as a DMA-BUF (Linux dma-buf, exported e.g. with VIDIOC_EXPBUF), so that a
  // device can read the pixels without a copy (a V4L2 M2M encoder importing it with
  // V4L2_MEMORY_DMABUF); -1 when the buffer has none (heap buffers, copies, drivers that cannot
  // export). Layout: plane 0 starts at byte 0 of the DMA-BUF and every other plane at its offset
  // from plane 0 (planes[p].data - planes[0].data); `dmabufLength` is the DMA-BUF's size in bytes
  // (>= the end of the last plane), 0 when there is no fd.
  // Ownership: the backend owns the fd and keeps it open while any lease of the frame exists;
  // consumers must not close it, and must dup() it (or have the kernel take its own reference, as
  // VIDIOC_QBUF does) to use it after their lease drops. The pixels may change as soon as the last
  // lease drops, so a device reading the DMA-BUF must finish before its user drops the lease.
  int dmabufFd = -1;
  size_t dmabufLength = 0;
};

// A read-only lease on one buffer. Copying a Frame adds a lease (cheap: a shared_ptr copy);
// the buffer goes back to its owner (a FramePool, or VIDIOC_QBUF for V4L2) when the last lease
// drops. A default-constructed Frame is empty (valid() == false).
// Thread-safety: a Frame may be read and copied from any thread; the pixels never change while
// any lease exists.
class Frame {
 public:
  Frame() = default;

  // For backends: wrap a buffer the backend owns. `release` runs exactly once, on whichever
  // thread drops the last lease, and must not block.
  static Frame adopt(const FrameDescription& description, std::function<void()> release);

  bool valid() const { return state_ != nullptr; }
  FourCC format() const { return desc().format; }
  Size size() const { return desc().size; }
  int planeCount() const { return desc().planeCount; }
  const Plane& plane(int index) const { return desc().planes.at(static_cast<size_t>(index)); }
  size_t bytesUsed() const { return desc().bytesUsed; }
  Timestamp timestamp() const { return desc().timestamp; }
  uint64_t sequence() const { return desc().sequence; }
  // The buffer's DMA-BUF (FrameDescription::dmabufFd: owned by the backend, valid while this lease
  // exists, never to be closed by the caller) and its size in bytes; -1 and 0 when it has none.
  int dmabufFd() const { return desc().dmabufFd; }
  size_t dmabufLength() const { return desc().dmabufLength; }
  // Number of live leases on this buffer (for tests and pool accounting).
  long leaseCount() const { return state_.use_count(); }

 private:
  struct State;
  const FrameDescription& desc() const;
  std::shared_ptr<const State> state_;
};

// A fixed set of heap buffers of one format and size for software sources (test pattern,
// in-memory display, format conversion). Buffers are 64-byte aligned with tightly packed
// strides rounded up to 64 bytes.
// Thread-safety: acquire() may be called from any thread; the pool may be destroyed while
// frames are still leased (the buffers outlive it until the last lease drops).
class FramePool {
 public:
  // A buffer being filled: writable until publish() turns it into a read-only Frame.
  class Writable {
   public:
    uint8_t* data(int plane) const;
    int stride(int plane) const;
    FourCC format() const;
    Size size() const;
    // Seal the buffer with its capture time and sequence; the Writable becomes empty.
    Frame publish(Timestamp timestamp, uint64_t sequence) &&;

   private:
    friend class FramePool;
    struct Impl;
    std::shared_ptr<Impl> impl_;
  };

  // Errors: InvalidArgument for an empty size, a compressed format or count < 1.
  static Result<std::shared_ptr<FramePool>> create(FourCC format, Size size, int count);

  // Take a free buffer. Errors: Again when every buffer is leased (a consumer holds on too long).
  Result<Writable> acquire();

  FourCC format() const;
  Size size() const;
  int count() const;
  int freeCount() const;

  ~FramePool();
  FramePool(const FramePool&) = delete;
  FramePool& operator=(const FramePool&) = delete;

 private:
  struct Shared;
  explicit FramePool(std::shared_ptr<Shared> shared);
  std::shared_ptr<Shared> shared_;
};

}  // namespace printcast::hal
