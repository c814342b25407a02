// SPDX-License-Identifier: MIT
// Transform: the dihedral group D4 on rectangles (composition, inverse, names).
#include "printcast/hal/transform.h"

namespace printcast::hal {

namespace {
// An asymmetric probe: no two transforms map it to the same place in this space.
constexpr Size kProbeSpace{7, 5};
constexpr Point kProbe{1, 2};

constexpr std::array<std::string_view, 8> kNames = {"identity",  "hflip", "vflip",  "rot180",
                                                    "transpose", "rot90", "rot270", "antitranspose"};
}  // namespace

std::array<Transform, 8> Transform::all() {
  std::array<Transform, 8> out{};
  for (uint8_t i = 0; i < 8; ++i) out[i] = Transform(i);
  return out;
}

Point Transform::apply(Point p, Size space) const {
  if (transposes()) {
    p = Point{p.y, p.x};
    space = Size{space.height, space.width};
  }
  if ((bits_ & kHFlip) != 0) p.x = space.width - p.x;
  if ((bits_ & kVFlip) != 0) p.y = space.height - p.y;
  return p;
}

Point Transform::applyToPixel(Point pixel, Size space) const {
  // Pixel i covers [i, i+1): map its centre and step back to the containing cell.
  const Point doubled =
      apply(Point{2 * pixel.x + 1, 2 * pixel.y + 1}, Size{2 * space.width, 2 * space.height});
  return Point{(doubled.x - 1) / 2, (doubled.y - 1) / 2};
}

Transform Transform::then(Transform b) const {
  const Point expected = b.apply(apply(kProbe, kProbeSpace), apply(kProbeSpace));
  for (Transform c : all()) {
    if (c.apply(kProbe, kProbeSpace) == expected) return c;
  }
  return Transform{};  // unreachable: D4 is closed under composition
}

Transform Transform::inverse() const {
  for (Transform c : all()) {
    if (then(c) == identity()) return c;
  }
  return Transform{};  // unreachable
}

int Transform::quarterTurns() const {
  for (int turns = 0; turns < 4; ++turns) {
    Transform r = identity();
    for (int i = 0; i < turns; ++i) r = r.then(rot90());
    if (r == *this || r.then(vflip()) == *this) return turns;
  }
  return 0;
}

bool Transform::vflipAfterRotation() const {
  Transform r = identity();
  for (int i = 0; i < quarterTurns(); ++i) r = r.then(rot90());
  return r != *this;
}

std::string_view Transform::name() const { return kNames[bits_]; }

std::optional<Transform> Transform::fromName(std::string_view name) {
  for (uint8_t i = 0; i < 8; ++i) {
    if (kNames[i] == name) return Transform(i);
  }
  return std::nullopt;
}

std::optional<Transform> Transform::fromDegrees(int degreesClockwise) {
  switch (degreesClockwise) {
    case 0: return identity();
    case 90: return rot90();
    case 180: return rot180();
    case 270: return rot270();
    default: return std::nullopt;
  }
}

}  // namespace printcast::hal
