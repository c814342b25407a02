// SPDX-License-Identifier: MIT
// libFuzzer target: an FLV stream as an HTTP-FLV camera sends it, read by FlvDemuxer
// (transport/flv_demux.h), and its sequence headers by parseAvcDecoderConfigurationRecord.
// Input: the first byte splits the rest into two feeds at (byte * rest / 256), as bytes arrive in
// any pieces; the same bytes also go in one feed (small limit: 64 KiB tags). Oracles: both ways
// give the same access units and the same outcome; once feed() failed it stays failed; every
// access unit is non-empty Annex-B (starts with a 4-byte start code) whose dts is within the
// 24-bit CompositionTime of its pts; a parsed record has 1, 2 or 4-byte NAL lengths and at least
// one non-empty SPS and PPS.
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "printcast/transport/flv_demux.h"

using namespace printcast::transport::flv;

namespace {

std::vector<AccessUnit> drain(FlvDemuxer& demuxer) {
  std::vector<AccessUnit> out;
  AccessUnit au;
  while (demuxer.pop(au)) out.push_back(std::move(au));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t split = static_cast<size_t>(data[0]) * (size - 1) / 256;
  ++data;
  --size;
  const FlvDemuxer::Limits limits{size_t{64} * 1024};

  FlvDemuxer split2(limits);
  auto first = split2.feed(std::span<const uint8_t>(data, split));
  auto second = split2.feed(std::span<const uint8_t>(data + split, size - split));
  assert(first.ok() || !second.ok());
  FlvDemuxer whole(limits);
  auto once = whole.feed(std::span<const uint8_t>(data, size));
  assert(once.ok() == second.ok());

  const auto a = drain(split2);
  const auto b = drain(whole);
  if (once.ok()) assert(a.size() == b.size());
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    assert(a[i].annexB == b[i].annexB);
    assert(a[i].ptsMs == b[i].ptsMs && a[i].dtsMs == b[i].dtsMs);
    assert(a[i].keyframe == b[i].keyframe && a[i].idr == b[i].idr);
  }
  for (const auto& au : b) {
    assert(au.annexB.size() > 4);
    assert(au.annexB[0] == 0 && au.annexB[1] == 0 && au.annexB[2] == 0 && au.annexB[3] == 1);
    assert(au.ptsMs - au.dtsMs >= -0x800000 && au.ptsMs - au.dtsMs < 0x800000);
  }

  if (auto record = parseAvcDecoderConfigurationRecord(std::span<const uint8_t>(data, size))) {
    assert(record->nalLengthSize == 1 || record->nalLengthSize == 2 || record->nalLengthSize == 4);
    assert(!record->sps.empty() && !record->pps.empty());
    for (const auto& set : record->sps) assert(!set.empty());
    for (const auto& set : record->pps) assert(!set.empty());
  }
  return 0;
}
