// SPDX-License-Identifier: MIT
// The "no signal" I420 picture: grey with large centred text, drawn with the bitmap font.
#include "printcast/hal/no_signal.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "bitmap_font.h"

namespace printcast::hal {

Result<Frame> drawNoSignalFrame(FramePool& pool, std::string_view detail, Timestamp timestamp,
                                uint64_t sequence) {
  if (pool.format() != fourcc::kI420) {
    return {Errc::InvalidArgument,
            fmt::format("no-signal frame: needs an I420 pool, not {}", pool.format().str())};
  }
  auto w = pool.acquire();
  if (!w) return std::move(w).error();
  const Size s = pool.size();
  constexpr uint8_t kGrey = 128;  // BT.601 limited-range mid grey (Y), neutral chroma (U, V)
  constexpr uint8_t kWhite = 235;
  for (int p = 0; p < 3; ++p) {
    const int rows = p == 0 ? s.height : (s.height + 1) / 2;
    const int cols = p == 0 ? s.width : (s.width + 1) / 2;
    for (int y = 0; y < rows; ++y) {
      std::memset(w->data(p) + static_cast<ptrdiff_t>(y) * w->stride(p), kGrey, static_cast<size_t>(cols));
    }
  }
  constexpr std::string_view kTitle = "NO SIGNAL";
  // The title fills about 60% of the width; the detail line a third of that scale.
  const int titleScale = std::max(1, s.width * 6 / 10 / std::max(1, font::textWidth(kTitle, 1)));
  const int detailScale = std::max(1, titleScale / 3);
  const int titleY = s.height / 2 - font::textHeight(titleScale);
  font::drawText(w->data(0), w->stride(0), s,
                 Point{(s.width - font::textWidth(kTitle, titleScale)) / 2, titleY}, kTitle, titleScale,
                 kWhite);
  if (!detail.empty()) {
    const int detailW = font::textWidth(detail, detailScale);
    font::drawText(
        w->data(0), w->stride(0), s,
        Point{std::max(0, (s.width - detailW) / 2), titleY + font::kLineHeight * titleScale * 3 / 2}, detail,
        detailScale, kWhite);
  }
  return std::move(*w).publish(timestamp, sequence);
}

}  // namespace printcast::hal
