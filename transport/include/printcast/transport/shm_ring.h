// SPDX-License-Identifier: MIT
// ShmRing: the producer side of the shared-memory ring for local consumers (printcast_ring.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "printcast/hal/packet.h"
#include "printcast/hal/result.h"

namespace printcast::transport {

// One POSIX shared-memory object (/dev/shm/<name>) holding the newest encoded frames of one
// stream (H.264 access units or JPEGs) for any number of reader processes, which attach with the
// C API in printcast_ring.h. The layout (version 1), the seqlock, the futex wake-up and the
// restart rules are documented there and in docs/ring.md.
//
// The producer never waits for a reader: publish() overwrites the oldest frames, and readers
// that fall behind find out by themselves. Creating a ring retires any ring of the same name
// (its readers reattach to the new one and see PRINTCAST_RING_RESTARTED); destroying it retires
// it and unlinks the name (if it is still ours).
//
// Threading: publish() and keyframeRequested() from one thread (the producer's); liveReaders(),
// stats() and name() from any thread.
class ShmRing {
 public:
  struct Config {
    std::string name;               // object name without '/': 1..200 of [A-Za-z0-9._-]
    hal::FourCC codec;              // fourcc::kH264 or fourcc::kMJPEG
    size_t dataCapacity = 8 << 20;  // bytes of frame data: 64 KiB..1 GiB
    uint32_t slotCount = 128;       // frames the index holds: 2..65536
    uint32_t readerCount = 32;      // reader-table entries: 1..4096
  };

  // Errors: InvalidArgument (name, codec or a size out of range, named in the message),
  // Busy (another producer created the name at the same moment), PermissionDenied (an existing
  // object of that name cannot be replaced), Io (shm_open/ftruncate/mmap failed; e.g. /dev/shm full).
  static hal::Result<std::unique_ptr<ShmRing>> create(const Config& config);
  ~ShmRing();
  ShmRing(const ShmRing&) = delete;
  ShmRing& operator=(const ShmRing&) = delete;

  // Copy one frame into the ring and wake every waiting reader. packet->keyframe becomes the
  // slot's keyframe flag, packet->pts its CLOCK_MONOTONIC pts_ns (hal::Clock is steady_clock,
  // which is CLOCK_MONOTONIC on Linux), packet->size its width/height.
  // Errors: InvalidArgument (null or empty packet, codec other than the ring's, or larger than
  // maxFrameSize() = dataCapacity / 2; nothing is published).
  hal::Status publish(const hal::PacketPtr& packet);

  // True once per batch of reader keyframe requests (printcast_ring_request_keyframe, or a
  // reader that attached or resynchronised with no keyframe in the ring).
  bool keyframeRequested();

  // Readers attached now: reader-table entries whose process exists and whose heartbeat is
  // under 3 s old. A reader killed by SIGKILL stops counting at once (its pid is gone).
  uint32_t liveReaders() const;

  struct Stats {
    uint64_t framesPublished = 0;
    uint64_t bytesPublished = 0;
    uint64_t framesRejected = 0;    // publish() errors
    uint64_t keyframeRequests = 0;  // the header's counter
    uint32_t generation = 0;
    uint32_t liveReaders = 0;
  };
  Stats stats() const;

  const std::string& name() const { return name_; }
  uint32_t maxFrameSize() const;

 private:
  ShmRing() = default;
  std::string name_;
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
  uint64_t dev_ = 0, ino_ = 0;
  uint64_t writePosition_ = 0;         // producer thread
  uint64_t lastKeyframeRequests_ = 0;  // producer thread
  hal::FourCC codec_;
  struct Counters;
  std::unique_ptr<Counters> counters_;
};

}  // namespace printcast::transport
