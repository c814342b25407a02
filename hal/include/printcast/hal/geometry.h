// SPDX-License-Identifier: MIT
// Sizes and points in pixels. Name the coordinate space in variable names (viewPos, panelPos).
#pragma once

#include <string>

namespace printcast::hal {

struct Size {
  int width = 0;
  int height = 0;
  constexpr bool operator==(const Size&) const = default;
  constexpr bool empty() const { return width <= 0 || height <= 0; }
  std::string str() const;  // "800x480"
};

struct Point {
  int x = 0;
  int y = 0;
  constexpr bool operator==(const Point&) const = default;
};

}  // namespace printcast::hal
