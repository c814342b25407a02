// SPDX-License-Identifier: MIT
// libFuzzer target: the H.264 decoder (codecs::H264Decoder over libavcodec) on a camera's H.264,
// which is outside input (an RTSP camera on the network): the input is an Annex-B stream, cut
// into access units as a camera sends them, then the whole input as one access unit.
#include <cassert>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "printcast/codecs/h264.h"
#include "printcast/codecs/h264_decoder.h"

namespace h264 = printcast::codecs::h264;
namespace hal = printcast::hal;

namespace {

// Decode one access unit into `pool`, making a pool of the picture's size when the decoder
// says the picture has another size (as the streamer does).
void decodeOne(printcast::codecs::H264Decoder& decoder, std::span<const uint8_t> au,
               std::shared_ptr<hal::FramePool>& pool, uint64_t sequence) {
  auto frame = decoder.decode(au, *pool, hal::Timestamp(std::chrono::milliseconds(sequence)), sequence);
  if (frame) {
    assert(frame->format() == hal::fourcc::kI420);
    assert(frame->size() == pool->size());
    assert(frame->plane(0).stride >= frame->size().width);
    return;
  }
  assert(frame.code() == hal::Errc::Again || frame.code() == hal::Errc::InvalidArgument ||
         frame.code() == hal::Errc::Unsupported || frame.code() == hal::Errc::Io);
  const hal::Size size = decoder.pictureSize();
  if (!size.empty() && !(size == pool->size())) {
    auto next = hal::FramePool::create(hal::fourcc::kI420, size, 2);
    assert(next);
    pool = *next;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto decoder = printcast::codecs::createH264Decoder();
  assert(decoder);
  auto pool = *hal::FramePool::create(hal::fourcc::kI420, hal::Size{16, 16}, 2);
  // Access units: a new one starts at an AUD or SPS, or at a slice when the current one has a
  // slice already (one slice per picture, as cameras and x264 send them).
  std::vector<uint8_t> au;
  bool hasSlice = false;
  uint64_t sequence = 0;
  for (const auto& nal : h264::splitAnnexB({data, size})) {
    const uint8_t type = nal.type();
    const bool slice = type == h264::kNonIdrSlice || type == h264::kIdrSlice;
    if (!au.empty() && (type == h264::kAud || type == h264::kSps || (slice && hasSlice))) {
      decodeOne(**decoder, au, pool, sequence++);
      au.clear();
      hasSlice = false;
    }
    au.insert(au.end(), {0, 0, 0, 1});
    au.insert(au.end(), nal.bytes.begin(), nal.bytes.end());
    hasSlice = hasSlice || slice;
  }
  if (!au.empty()) decodeOne(**decoder, au, pool, sequence++);
  // The whole input as one access unit, after a reset: whatever a broken camera sends at once.
  (*decoder)->reset();
  if (size > 0) decodeOne(**decoder, {data, size}, pool, sequence);
  return 0;
}
