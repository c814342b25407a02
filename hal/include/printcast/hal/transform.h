// SPDX-License-Identifier: MIT
// Transform: the eight rotations and flips of a rectangle (the dihedral group D4), used for
// display mount orientation and touch mapping alike so that the two compose.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "printcast/hal/geometry.h"

namespace printcast::hal {

// A transform is three bits applied in this order to a point (x, y) in a W x H space:
//   1. Transpose: (x, y) -> (y, x), the space becomes H x W;
//   2. HFlip:     x -> W' - x  (W' the width after step 1);
//   3. VFlip:     y -> H' - y.
// Points are continuous coordinates (a click at the right edge of an 800-wide image is x=800),
// which is how printers' touch tables are written: a 180-degree panel maps (x, y) to (800-x, 480-y).
// Rotations are clockwise as seen by the viewer: Rot90 turns a landscape W x H image into a
// portrait H x W one whose top row was the source's left column.
class Transform {
 public:
  enum Bits : uint8_t { kHFlip = 1, kVFlip = 2, kTranspose = 4 };

  constexpr Transform() = default;
  constexpr explicit Transform(uint8_t bits) : bits_(bits & 7) {}

  static constexpr Transform identity() { return Transform(0); }
  static constexpr Transform rot90() { return Transform(kTranspose | kHFlip); }
  static constexpr Transform rot180() { return Transform(kHFlip | kVFlip); }
  static constexpr Transform rot270() { return Transform(kTranspose | kVFlip); }
  static constexpr Transform hflip() { return Transform(kHFlip); }
  static constexpr Transform vflip() { return Transform(kVFlip); }
  static constexpr Transform transpose() { return Transform(kTranspose); }
  // Transpose about the other diagonal (rot90 then hflip).
  static constexpr Transform antiTranspose() { return Transform(kTranspose | kHFlip | kVFlip); }
  // All eight, identity first.
  static std::array<Transform, 8> all();

  constexpr uint8_t bits() const { return bits_; }
  constexpr bool transposes() const { return (bits_ & kTranspose) != 0; }
  constexpr bool operator==(const Transform&) const = default;

  // The size of the space after applying this transform to a space of `size`.
  constexpr Size apply(Size size) const { return transposes() ? Size{size.height, size.width} : size; }
  // Map a point of a `space`-sized rectangle (continuous coordinates, see above).
  Point apply(Point p, Size space) const;
  // Map a pixel (integer cell) index: like apply() but with W-1-x, so that pixel centres map
  // to pixel centres. Used to check pixel-exact rotations.
  Point applyToPixel(Point pixel, Size space) const;

  // then(b): first this, then b. (a.then(b)).apply(p) == b.apply(a.apply(p)).
  Transform then(Transform b) const;
  // The transform that undoes this one: t.then(t.inverse()) == identity().
  Transform inverse() const;

  // Clockwise quarter turns (0..3) and whether a vertical flip follows them; every transform
  // is exactly one such pair. This is the form libyuv's rotate + negative-height flip takes.
  int quarterTurns() const;
  bool vflipAfterRotation() const;

  // "identity", "rot90", "rot180", "rot270", "hflip", "vflip", "transpose", "antitranspose".
  std::string_view name() const;
  static std::optional<Transform> fromName(std::string_view name);
  // Clockwise degrees 0/90/180/270 (no flip) -> rotation; anything else -> nullopt.
  static std::optional<Transform> fromDegrees(int degreesClockwise);

 private:
  uint8_t bits_ = 0;
};

}  // namespace printcast::hal
