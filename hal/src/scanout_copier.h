// SPDX-License-Identifier: MIT
// ScanoutCopier: copies a mapped scan-out buffer into pooled frames and skips unchanged pictures.
#pragma once

#include <cstdint>
#include <memory>

#include "printcast/hal/frame.h"
#include "printcast/hal/result.h"

namespace printcast::hal {

// Shared by the fbdev and DRM display captures. Not thread-safe: its owner's grab() serialises.
//
// Change detection (the DisplayCapture contract: an unchanged picture keeps the previous
// sequence). Each grab compares one eighth of the rows of the live buffer -- rows
// y = phase, phase + 8, ... with the phase advancing every grab -- against the last frame handed
// out, with memcmp (stops at the first difference). Trade-offs, against the alternatives:
//  - versus hashing sampled rows: no collisions and nothing to keep but the previous frame,
//    which is needed anyway to hand it out again;
//  - versus a downsampled grid (every Nth pixel of every Nth row): a grid misses a one-pixel
//    change for ever if it falls between grid points (a text cursor, a "." in "21.5C"); whole
//    rows catch any change at least 8 rows tall at once (UI text on an 800x480 panel is taller);
//  - the price: a change confined to fewer than 8 rows is seen when the phase reaches one of
//    its rows, at the latest 7 grabs later (1.4 s at the printers' 5 fps), never missed.
// Reading 1/8 of the scan-out buffer costs far less than copying it (device memory is often
// uncached), and an unchanged grab copies nothing: it returns a new lease on the previous frame
// (same buffer, same timestamp: when those pixels were captured).
class ScanoutCopier {
 public:
  static constexpr int kRowStep = 8;
  static constexpr int kPoolBuffers = 4;

  // (Re)start for a picture of `format` (kXRGB8888 or kRGB565) and `size`. Forgets the
  // previous frame, so the next copy() is a change. Errors: InvalidArgument.
  Status configure(FourCC format, Size size);

  // `src` is the first byte of the visible picture, `srcStride` bytes per row (>= the row's
  // bytes). The caller guarantees size.height rows are readable.
  // Errors: Again (every pool buffer is leased).
  Result<Frame> copy(const uint8_t* src, int srcStride);

  bool configured() const { return pool_ != nullptr; }
  FourCC format() const { return format_; }
  Size size() const { return size_; }

 private:
  bool changed(const uint8_t* src, int srcStride);

  std::shared_ptr<FramePool> pool_;
  FourCC format_;
  Size size_;
  size_t rowBytes_ = 0;
  Frame previous_;
  uint64_t sequence_ = 0;
  bool anyFrame_ = false;
  int phase_ = 0;
};

}  // namespace printcast::hal
