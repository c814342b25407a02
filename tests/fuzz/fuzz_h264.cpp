// SPDX-License-Identifier: MIT
// libFuzzer target: the H.264 bitstream parsers (a camera's H.264 is outside input): Annex-B
// splitting, SPS parsing, parameter-set extraction, avcC building, Annex-B <-> length-prefixed.
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <span>

#include "printcast/codecs/h264.h"

namespace h264 = printcast::codecs::h264;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  for (const auto& nal : h264::splitAnnexB(input)) {
    assert(nal.bytes.data() >= data && nal.bytes.data() + nal.bytes.size() <= data + size);
    if (nal.type() == h264::kSps) {
      if (auto sps = h264::parseSps(nal.bytes)) {
        assert(sps->chromaFormatIdc <= 3);
      }
    }
  }
  // The whole input as one SPS too (after a forced header byte), to reach deep SPS syntax.
  if (size > 0) {
    std::vector<uint8_t> sps(input.begin(), input.end());
    sps[0] = 0x67;
    (void)h264::parseSps(sps);
  }
  (void)h264::containsIdr(input);
  (void)h264::unescapeRbsp(input);
  if (auto config = h264::extractCodecConfig(input)) {
    (void)h264::avcDecoderConfigurationRecord(*config);
  }
  const auto avcc = h264::annexBToLengthPrefixed(input, false);
  auto back = h264::lengthPrefixedToAnnexB(avcc);
  assert(back);
  (void)h264::lengthPrefixedToAnnexB(input);
  // Arbitrary SPS/PPS pairs into an avcC.
  if (size >= 2) {
    const size_t split = data[0] % size;
    printcast::hal::CodecConfig config;
    config.sps.assign(data + 1, data + 1 + std::min(split, size - 1));
    config.pps.assign(data + 1 + std::min(split, size - 1), data + size);
    (void)h264::avcDecoderConfigurationRecord(config);
  }
  return 0;
}
