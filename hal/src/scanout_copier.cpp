// SPDX-License-Identifier: MIT
// ScanoutCopier: scan-out buffer to pooled frame copies with sampled-row change detection.
#include "scanout_copier.h"

#include <cstring>

#include <fmt/format.h>

namespace printcast::hal {

Status ScanoutCopier::configure(FourCC format, Size size) {
  int bytesPerPixel = 0;
  if (format == fourcc::kXRGB8888) bytesPerPixel = 4;
  if (format == fourcc::kRGB565) bytesPerPixel = 2;
  if (bytesPerPixel == 0) {
    return {Errc::InvalidArgument, fmt::format("scan-out copy: unsupported format {}", format.str())};
  }
  auto pool = FramePool::create(format, size, kPoolBuffers);
  if (!pool) return std::move(pool).error();
  pool_ = std::move(*pool);
  format_ = format;
  size_ = size;
  rowBytes_ = static_cast<size_t>(size.width) * static_cast<size_t>(bytesPerPixel);
  previous_ = Frame();
  phase_ = 0;
  return {};
}

bool ScanoutCopier::changed(const uint8_t* src, int srcStride) {
  if (!previous_.valid()) return true;
  const Plane& prev = previous_.plane(0);
  const int phase = phase_;
  phase_ = (phase_ + 1) % kRowStep;
  for (int y = phase; y < size_.height; y += kRowStep) {
    if (std::memcmp(src + static_cast<ptrdiff_t>(y) * srcStride,
                    prev.data + static_cast<ptrdiff_t>(y) * prev.stride, rowBytes_) != 0) {
      return true;
    }
  }
  return false;
}

Result<Frame> ScanoutCopier::copy(const uint8_t* src, int srcStride) {
  if (!changed(src, srcStride)) return previous_;
  auto writable = pool_->acquire();
  if (!writable) return std::move(writable).error();
  uint8_t* dst = writable->data(0);
  const int dstStride = writable->stride(0);
  for (int y = 0; y < size_.height; ++y) {
    std::memcpy(dst + static_cast<ptrdiff_t>(y) * dstStride, src + static_cast<ptrdiff_t>(y) * srcStride,
                rowBytes_);
  }
  // The first picture ever is sequence 0; every changed picture after it (also after a
  // geometry change) gets the next number.
  if (anyFrame_) ++sequence_;
  anyFrame_ = true;
  previous_ = std::move(*writable).publish(Clock::now(), sequence_);
  return previous_;
}

}  // namespace printcast::hal
