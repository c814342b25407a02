// SPDX-License-Identifier: MIT
// ShmRing: creates, fills and retires the shared-memory ring (layout in printcast_ring.h).
#include "printcast/transport/shm_ring.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <type_traits>

#include <fmt/format.h>

#include "printcast_ring.h"
#include "ring_internal.h"

namespace printcast::transport {

namespace {

// A ring structure at `p` in the mapping. mmap returns page-aligned memory and the layout keeps
// every structure at a multiple of its alignment (printcast_ring.h), which the compiler cannot
// see through a byte pointer (-Wcast-align on 32-bit ARM): go through void*.
template <typename T, typename Byte>
T* at(Byte* p) {
  return static_cast<T*>(static_cast<std::conditional_t<std::is_const_v<T>, const void*, void*>>(p));
}

constexpr size_t kMinCapacity = size_t{64} << 10;
constexpr size_t kMaxCapacity = size_t{1} << 30;

template <typename T>
T loadAcquire(const T* p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
template <typename T>
void storeRelaxed(T* p, T v) {
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
template <typename T>
void storeRelease(T* p, T v) {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

constexpr uint64_t alignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// Mark an existing ring of this name retired so its readers move on, and return its generation
// (0 when there is none or it is not a valid ring).
uint32_t retireExisting(const std::string& path) {
  const int fd = ::shm_open(path.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return 0;
  struct stat st {};
  uint32_t generation = 0;
  if (::fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_size) >= PRINTCAST_RING_HEADER_SIZE) {
    void* p = ::mmap(nullptr, PRINTCAST_RING_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) {
      auto* h = static_cast<printcast_ring_header*>(p);
      if (loadAcquire(&h->magic) == PRINTCAST_RING_MAGIC && h->version == PRINTCAST_RING_VERSION) {
        generation = h->generation;
        __atomic_fetch_or(&h->flags, PRINTCAST_RING_RETIRED, __ATOMIC_RELEASE);
        __atomic_fetch_add(&h->futex_word, 1u, __ATOMIC_RELEASE);
        printcast_ring_internal_wake_all(&h->futex_word);
      }
      ::munmap(p, PRINTCAST_RING_HEADER_SIZE);
    }
  }
  ::close(fd);
  return generation;
}

}  // namespace

struct ShmRing::Counters {
  std::atomic<uint64_t> frames{0}, bytes{0}, rejected{0};
};

hal::Result<std::unique_ptr<ShmRing>> ShmRing::create(const Config& config) {
  if (printcast_ring_internal_valid_name(config.name.c_str()) == 0) {
    return hal::Result<std::unique_ptr<ShmRing>>(
        hal::Errc::InvalidArgument,
        fmt::format("ring name '{}': must be 1..200 characters of A-Z a-z 0-9 . _ -", config.name));
  }
  auto invalid = [&](const std::string& what) {
    return hal::Result<std::unique_ptr<ShmRing>>(hal::Errc::InvalidArgument,
                                                 fmt::format("ring {}: {}", config.name, what));
  };
  if (config.codec != hal::fourcc::kH264 && config.codec != hal::fourcc::kMJPEG)
    return invalid("codec " + config.codec.str() + " is not H264 or MJPG");
  if (config.dataCapacity < kMinCapacity || config.dataCapacity > kMaxCapacity)
    return invalid(fmt::format("data capacity {} bytes is outside 64 KiB..1 GiB", config.dataCapacity));
  if (config.slotCount < 2 || config.slotCount > 65536)
    return invalid(fmt::format("slot count {} is outside 2..65536", config.slotCount));
  if (config.readerCount < 1 || config.readerCount > 4096)
    return invalid(fmt::format("reader count {} is outside 1..4096", config.readerCount));

  const std::string path = "/" + config.name;
  const uint32_t previousGeneration = retireExisting(path);
  if (::shm_unlink(path.c_str()) != 0 && errno != ENOENT) {
    return hal::errnoError(fmt::format("ring {}: cannot replace /dev/shm{}", config.name, path));
  }
  const int fd = ::shm_open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0660);
  if (fd < 0) {
    return hal::errnoError(fmt::format("ring {}: shm_open {}", config.name, path));
  }
  const uint64_t slotsOffset = PRINTCAST_RING_HEADER_SIZE;
  const uint64_t readersOffset = slotsOffset + uint64_t{config.slotCount} * PRINTCAST_RING_SLOT_SIZE;
  const uint64_t dataOffset =
      alignUp(readersOffset + uint64_t{config.readerCount} * PRINTCAST_RING_READER_ENTRY_SIZE, 64);
  const uint64_t total = dataOffset + config.dataCapacity;
  auto fail = [&](const char* what) {
    const int e = errno;
    ::close(fd);
    ::shm_unlink(path.c_str());
    return hal::Result<std::unique_ptr<ShmRing>>(
        hal::errnoError(fmt::format("ring {}: {} ({} bytes)", config.name, what, total), e));
  };
  struct stat st {};
  if (::ftruncate(fd, static_cast<off_t>(total)) != 0) return fail("ftruncate");
  if (::fstat(fd, &st) != 0) return fail("fstat");
  void* p = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return fail("mmap");
  ::close(fd);

  std::unique_ptr<ShmRing> ring(new ShmRing());
  ring->name_ = config.name;
  ring->base_ = static_cast<uint8_t*>(p);
  ring->size_ = total;
  ring->dev_ = st.st_dev;
  ring->ino_ = st.st_ino;
  ring->codec_ = config.codec;
  ring->counters_ = std::make_unique<Counters>();

  // The object is zero-filled (ftruncate): magic stays 0 until everything else is in place.
  auto* h = at<printcast_ring_header>(ring->base_);
  h->version = PRINTCAST_RING_VERSION;
  h->header_size = PRINTCAST_RING_HEADER_SIZE;
  h->slot_size = PRINTCAST_RING_SLOT_SIZE;
  h->slot_count = config.slotCount;
  h->reader_count = config.readerCount;
  h->slots_offset = slotsOffset;
  h->readers_offset = readersOffset;
  h->data_offset = dataOffset;
  h->data_capacity = config.dataCapacity;
  h->total_size = total;
  h->codec = config.codec.code;
  h->max_frame_size = static_cast<uint32_t>(config.dataCapacity / 2);
  h->producer_pid = static_cast<uint32_t>(::getpid());
  h->generation = previousGeneration + 1;
  storeRelease(&h->magic, PRINTCAST_RING_MAGIC);
  return ring;
}

ShmRing::~ShmRing() {
  if (base_ == nullptr) return;
  auto* h = at<printcast_ring_header>(base_);
  __atomic_fetch_or(&h->flags, PRINTCAST_RING_RETIRED, __ATOMIC_RELEASE);
  __atomic_fetch_add(&h->futex_word, 1u, __ATOMIC_RELEASE);
  printcast_ring_internal_wake_all(&h->futex_word);
  // Unlink only our own object: a newer producer may already have replaced the name.
  const std::string path = "/" + name_;
  const int fd = ::shm_open(path.c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (fd >= 0) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_dev) == dev_ &&
        static_cast<uint64_t>(st.st_ino) == ino_) {
      ::shm_unlink(path.c_str());
    }
    ::close(fd);
  }
  ::munmap(base_, size_);
}

uint32_t ShmRing::maxFrameSize() const { return at<const printcast_ring_header>(base_)->max_frame_size; }

hal::Status ShmRing::publish(const hal::PacketPtr& packet) {
  auto* h = at<printcast_ring_header>(base_);
  auto reject = [&](std::string why) {
    counters_->rejected.fetch_add(1, std::memory_order_relaxed);
    return hal::Status(hal::Errc::InvalidArgument, fmt::format("ring {}: {}", name_, why));
  };
  if (!packet || packet->data.empty()) return reject("empty packet");
  if (packet->codec != codec_)
    return reject(fmt::format("{} packet in a {} ring", packet->codec.str(), codec_.str()));
  const size_t length = packet->data.size();
  if (length > h->max_frame_size) {
    return reject(fmt::format("frame of {} bytes is larger than the ring's limit of {} (half its data area)",
                              length, h->max_frame_size));
  }
  const uint64_t capacity = h->data_capacity;
  uint64_t position = writePosition_;
  if (position % capacity + length > capacity) position = alignUp(position, capacity);  // no wrap inside
  const uint64_t end = position + length;

  // 1. Whatever these bytes held is gone: raise `reclaimed` before touching them.
  if (end > capacity) storeRelaxed(&h->reclaimed, end - capacity);
  // 2. Open the slot's seqlock (odd), 3. write the slot and the bytes, 4. close it (even).
  const uint64_t sequence = h->published + 1;
  auto* slot = at<printcast_ring_slot>(base_ + h->slots_offset) + sequence % h->slot_count;
  const uint64_t lock = slot->lock;
  storeRelaxed(&slot->lock, lock + 1);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  storeRelaxed(&slot->sequence, sequence);
  storeRelaxed(&slot->position, position);
  storeRelaxed(&slot->length, static_cast<uint32_t>(length));
  storeRelaxed(&slot->flags, packet->keyframe ? PRINTCAST_RING_KEYFRAME : 0u);
  storeRelaxed(
      &slot->pts_ns,
      static_cast<int64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(packet->pts.time_since_epoch()).count()));
  storeRelaxed(&slot->width, static_cast<uint32_t>(std::max(0, packet->size.width)));
  storeRelaxed(&slot->height, static_cast<uint32_t>(std::max(0, packet->size.height)));
  std::memcpy(base_ + h->data_offset + position % capacity, packet->data.data(), length);
  storeRelease(&slot->lock, lock + 2);
  storeRelaxed(&h->width, static_cast<uint32_t>(std::max(0, packet->size.width)));
  storeRelaxed(&h->height, static_cast<uint32_t>(std::max(0, packet->size.height)));
  // 5. Publish the sequence, 6. move the futex word on and wake every reader.
  storeRelease(&h->published, sequence);
  __atomic_fetch_add(&h->futex_word, 1u, __ATOMIC_RELEASE);
  printcast_ring_internal_wake_all(&h->futex_word);
  writePosition_ = end;
  counters_->frames.fetch_add(1, std::memory_order_relaxed);
  counters_->bytes.fetch_add(length, std::memory_order_relaxed);
  return {};
}

bool ShmRing::keyframeRequested() {
  const auto* h = at<const printcast_ring_header>(base_);
  const uint64_t requests = loadAcquire(&h->keyframe_requests);
  if (requests == lastKeyframeRequests_) return false;
  lastKeyframeRequests_ = requests;
  return true;
}

uint32_t ShmRing::liveReaders() const {
  return printcast_ring_internal_live_readers(base_, printcast_ring_internal_now_ns());
}

ShmRing::Stats ShmRing::stats() const {
  const auto* h = at<const printcast_ring_header>(base_);
  Stats s;
  s.framesPublished = counters_->frames.load(std::memory_order_relaxed);
  s.bytesPublished = counters_->bytes.load(std::memory_order_relaxed);
  s.framesRejected = counters_->rejected.load(std::memory_order_relaxed);
  s.keyframeRequests = loadAcquire(&h->keyframe_requests);
  s.generation = h->generation;
  s.liveReaders = liveReaders();
  return s;
}

}  // namespace printcast::transport
