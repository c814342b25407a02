// SPDX-License-Identifier: MIT
// A 5x7 bitmap font (digits, capitals, a little punctuation) for the software sources' overlays.
#pragma once

#include <cstdint>
#include <string_view>

#include "printcast/hal/geometry.h"

namespace printcast::hal::font {

// Glyph cell 5x7 pixels; each character advances 6 cells (one blank column) and a line is
// 8 cells high (one blank row), all multiplied by the drawing scale.
inline constexpr int kGlyphWidth = 5;
inline constexpr int kGlyphHeight = 7;
inline constexpr int kAdvance = kGlyphWidth + 1;
inline constexpr int kLineHeight = kGlyphHeight + 1;

// Width and height in pixels of `text` on one line at `scale` (no trailing blank column).
int textWidth(std::string_view text, int scale);
inline int textHeight(int scale) { return kGlyphHeight * scale; }

// Draw `text` with its top-left corner at `origin` into an 8-bit plane of `planeSize` (e.g. the
// Y plane of I420), each lit font cell becoming a scale x scale block of `value`. Lower-case
// letters draw as capitals; characters the font lacks draw as blanks. Clipped to the plane.
void drawText(uint8_t* plane, int stride, Size planeSize, Point origin, std::string_view text, int scale,
              uint8_t value);

// The same into a 32-bit image (XRGB8888 as native uint32 0xXXRRGGBB), `strideWords` uint32 per row.
void drawText(uint32_t* pixels, int strideWords, Size imageSize, Point origin, std::string_view text,
              int scale, uint32_t colour);

}  // namespace printcast::hal::font
