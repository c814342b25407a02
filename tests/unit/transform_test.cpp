// SPDX-License-Identifier: MIT
// Transform: group laws, names, point and size mapping.
#include "printcast/hal/transform.h"

#include <gtest/gtest.h>

using printcast::hal::Point;
using printcast::hal::Size;
using printcast::hal::Transform;

TEST(Transform, Rot90TurnsLandscapeClockwise) {
  const Size fb{800, 480};
  EXPECT_EQ(Transform::rot90().apply(fb), (Size{480, 800}));
  // The top-left corner of the source goes to the top-right of the portrait result.
  EXPECT_EQ(Transform::rot90().apply(Point{0, 0}, fb), (Point{480, 0}));
  EXPECT_EQ(Transform::rot90().applyToPixel(Point{0, 0}, fb), (Point{479, 0}));
}

TEST(Transform, CompositionAndInverseFormAGroup) {
  for (Transform a : Transform::all()) {
    EXPECT_EQ(a.then(a.inverse()), Transform::identity()) << a.name();
    EXPECT_EQ(a.inverse().then(a), Transform::identity()) << a.name();
    for (Transform b : Transform::all()) {
      const Size space{800, 480};
      const Point p{123, 45};
      EXPECT_EQ(a.then(b).apply(p, space), b.apply(a.apply(p, space), a.apply(space)))
          << a.name() << " then " << b.name();
    }
  }
  EXPECT_EQ(Transform::rot90().then(Transform::rot90()), Transform::rot180());
  EXPECT_EQ(Transform::rot90().then(Transform::rot180()), Transform::rot270());
}

TEST(Transform, QuarterTurnsPlusOptionalVflipCoverAll) {
  for (Transform t : Transform::all()) {
    Transform r = Transform::identity();
    for (int i = 0; i < t.quarterTurns(); ++i) r = r.then(Transform::rot90());
    if (t.vflipAfterRotation()) r = r.then(Transform::vflip());
    EXPECT_EQ(r, t) << t.name();
  }
}

TEST(Transform, NamesRoundTrip) {
  for (Transform t : Transform::all()) {
    ASSERT_TRUE(Transform::fromName(t.name()).has_value());
    EXPECT_EQ(*Transform::fromName(t.name()), t);
  }
  EXPECT_FALSE(Transform::fromName("rot45").has_value());
  EXPECT_EQ(*Transform::fromDegrees(270), Transform::rot270());
  EXPECT_FALSE(Transform::fromDegrees(45).has_value());
}

TEST(Transform, PixelMappingIsABijection) {
  const Size space{5, 3};
  for (Transform t : Transform::all()) {
    std::vector<int> seen(15, 0);
    const Size out = t.apply(space);
    for (int y = 0; y < space.height; ++y) {
      for (int x = 0; x < space.width; ++x) {
        const Point q = t.applyToPixel(Point{x, y}, space);
        ASSERT_GE(q.x, 0);
        ASSERT_LT(q.x, out.width);
        ASSERT_GE(q.y, 0);
        ASSERT_LT(q.y, out.height);
        ++seen[static_cast<size_t>(q.y * out.width + q.x)];
      }
    }
    for (int s : seen) EXPECT_EQ(s, 1) << t.name();
  }
}
