// SPDX-License-Identifier: MIT
// Frame leases and the heap FramePool used by software sources.
#include "printcast/hal/frame.h"

#include <cstdlib>
#include <mutex>
#include <vector>

#include <fmt/format.h>

namespace printcast::hal {

struct Frame::State {
  FrameDescription description;
  std::function<void()> release;
  State(const FrameDescription& d, std::function<void()> r) : description(d), release(std::move(r)) {}
  ~State() {
    if (release) release();
  }
  State(const State&) = delete;
  State& operator=(const State&) = delete;
};

Frame Frame::adopt(const FrameDescription& description, std::function<void()> release) {
  Frame f;
  f.state_ = std::make_shared<const State>(description, std::move(release));
  return f;
}

const FrameDescription& Frame::desc() const {
  static const FrameDescription kEmpty{};
  return state_ ? state_->description : kEmpty;
}

namespace {
constexpr size_t kAlign = 64;

int alignUp(int v) { return static_cast<int>((static_cast<size_t>(v) + kAlign - 1) / kAlign * kAlign); }

struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }  // NOLINT(cppcoreguidelines-no-malloc)
};
}  // namespace

struct Buffer {
  std::unique_ptr<uint8_t, AlignedFree> memory;
  std::array<size_t, kMaxPlanes> offsets{};
  std::array<int, kMaxPlanes> strides{};
  std::array<size_t, kMaxPlanes> sizes{};
  bool leased = false;
};

struct FramePool::Shared {
  FourCC format;
  Size size;
  int planes = 1;
  std::mutex mutex;
  std::vector<Buffer> buffers;
};

struct FramePool::Writable::Impl {
  std::shared_ptr<FramePool::Shared> pool;
  size_t index = 0;
  bool published = false;
  ~Impl() {
    if (!published && pool) {
      std::lock_guard lock(pool->mutex);
      pool->buffers[index].leased = false;
    }
  }
};

FramePool::FramePool(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
FramePool::~FramePool() = default;

Result<std::shared_ptr<FramePool>> FramePool::create(FourCC format, Size size, int count) {
  if (size.empty()) return {Errc::InvalidArgument, fmt::format("frame pool: empty size {}", size.str())};
  if (isCompressed(format) || bytesPerPixel(format) == 0) {
    return {Errc::InvalidArgument, fmt::format("frame pool: {} is not a raw format", format.str())};
  }
  if (count < 1) return {Errc::InvalidArgument, "frame pool: count must be at least 1"};

  auto shared = std::make_shared<Shared>();
  shared->format = format;
  shared->size = size;
  shared->planes = planeCount(format);
  const int cw = (size.width + 1) / 2;
  const int ch = (size.height + 1) / 2;
  for (int b = 0; b < count; ++b) {
    Buffer buf;
    size_t total = 0;
    for (int p = 0; p < shared->planes; ++p) {
      int rowBytes = size.width * bytesPerPixel(format);
      int rows = size.height;
      if (p > 0) {
        rowBytes = (format == fourcc::kNV12) ? 2 * cw : cw;
        rows = ch;
      }
      const auto i = static_cast<size_t>(p);
      buf.strides[i] = alignUp(rowBytes);
      buf.sizes[i] = static_cast<size_t>(buf.strides[i]) * static_cast<size_t>(rows);
      buf.offsets[i] = total;
      total += buf.sizes[i];
    }
    // NOLINTNEXTLINE(cppcoreguidelines-no-malloc)
    auto* mem = static_cast<uint8_t*>(std::aligned_alloc(kAlign, total));
    if (mem == nullptr) return {Errc::Io, "frame pool: out of memory"};
    buf.memory.reset(mem);
    shared->buffers.push_back(std::move(buf));
  }
  return std::shared_ptr<FramePool>(new FramePool(std::move(shared)));
}

Result<FramePool::Writable> FramePool::acquire() {
  std::lock_guard lock(shared_->mutex);
  for (size_t i = 0; i < shared_->buffers.size(); ++i) {
    if (!shared_->buffers[i].leased) {
      shared_->buffers[i].leased = true;
      Writable w;
      w.impl_ = std::make_shared<Writable::Impl>();
      w.impl_->pool = shared_;
      w.impl_->index = i;
      return w;
    }
  }
  return {Errc::Again, "frame pool: every buffer is leased"};
}

FourCC FramePool::format() const { return shared_->format; }
Size FramePool::size() const { return shared_->size; }
int FramePool::count() const { return static_cast<int>(shared_->buffers.size()); }
int FramePool::freeCount() const {
  std::lock_guard lock(shared_->mutex);
  int n = 0;
  for (const auto& b : shared_->buffers) n += b.leased ? 0 : 1;
  return n;
}

uint8_t* FramePool::Writable::data(int plane) const {
  const auto& b = impl_->pool->buffers[impl_->index];
  return b.memory.get() + b.offsets.at(static_cast<size_t>(plane));
}
int FramePool::Writable::stride(int plane) const {
  return impl_->pool->buffers[impl_->index].strides.at(static_cast<size_t>(plane));
}
FourCC FramePool::Writable::format() const { return impl_->pool->format; }
Size FramePool::Writable::size() const { return impl_->pool->size; }

Frame FramePool::Writable::publish(Timestamp timestamp, uint64_t sequence) && {
  auto impl = std::move(impl_);
  auto& pool = *impl->pool;
  const Buffer& b = pool.buffers[impl->index];
  FrameDescription d;
  d.format = pool.format;
  d.size = pool.size;
  d.planeCount = pool.planes;
  for (int p = 0; p < pool.planes; ++p) {
    const auto i = static_cast<size_t>(p);
    d.planes[i] = Plane{b.memory.get() + b.offsets[i], b.strides[i], b.sizes[i]};
    d.bytesUsed += b.sizes[i];
  }
  d.timestamp = timestamp;
  d.sequence = sequence;
  impl->published = true;
  std::shared_ptr<Shared> owner = impl->pool;
  const size_t index = impl->index;
  return Frame::adopt(d, [owner, index] {
    std::lock_guard lock(owner->mutex);
    owner->buffers[index].leased = false;
  });
}

}  // namespace printcast::hal
