// SPDX-License-Identifier: MIT
// Robustness of the H.264 bitstream parsers against camera data that is garbage or truncated
// (an H.264 camera's stream is outside input): never crash, never read past the input.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "printcast/codecs/h264.h"

namespace h264 = printcast::codecs::h264;

namespace {

// A real baseline SPS (640x480) and PPS, to mutate.
const std::vector<uint8_t> kSps = {0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80,
                                   0xF6, 0x80, 0x6D, 0x0A, 0x13, 0x50};
const std::vector<uint8_t> kAccessUnit = {0,    0,    0, 1,    0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02,
                                          0x80, 0xF6, 0, 0,    1,    0x68, 0xCE, 0x3C, 0x80, 0,
                                          0,    0,    1, 0x65, 0x88, 0x84, 0x21, 0xA0};

}  // namespace

TEST(H264Robustness, RandomAndMutatedInputsNeverCrashOrOverrun) {
  std::mt19937 rng(20261122);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int round = 0; round < 3000; ++round) {
    std::vector<uint8_t> input;
    if (round % 3 == 0) {
      input.resize(static_cast<size_t>(rng() % 64));
      for (auto& b : input) b = static_cast<uint8_t>(byte(rng));
    } else {
      input = (round % 3 == 1) ? kSps : kAccessUnit;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < flips && !input.empty(); ++i)
        input[rng() % input.size()] = static_cast<uint8_t>(byte(rng));
      input.resize(rng() % (input.size() + 1));  // truncate anywhere
    }

    const auto sps = h264::parseSps(input);
    if (sps.ok()) {
      EXPECT_GT(sps->size.width, 0);
      EXPECT_GT(sps->size.height, 0);
    }
    for (const auto& nal : h264::splitAnnexB(input)) {
      ASSERT_GE(nal.bytes.data(), input.data());
      ASSERT_LE(nal.bytes.data() + nal.bytes.size(), input.data() + input.size());
      (void)h264::parseSps(nal.bytes);
    }
    const auto avcc = h264::annexBToLengthPrefixed(input, round % 2 == 0);
    const auto back = h264::lengthPrefixedToAnnexB(avcc);
    EXPECT_TRUE(back.ok()) << "our own length-prefixed output must parse back";
    (void)h264::lengthPrefixedToAnnexB(input);  // garbage lengths: an error, not an overrun
    (void)h264::extractCodecConfig(input);
    (void)h264::containsIdr(input);
  }
}
