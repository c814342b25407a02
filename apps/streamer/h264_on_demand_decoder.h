// SPDX-License-Identifier: MIT
// Pictures of an H.264 camera for the JPEG outputs: decoded only on demand, from the kept GOP.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>

#include "printcast/codecs/h264_decoder.h"
#include "printcast/hal/frame.h"
#include "printcast/hal/packet.h"
#include "printcast/hal/result.h"

namespace printcast::streamer {

// Feeds an H.264 camera's access units to a codecs::H264Decoder, but only while a JPEG
// consumer (MJPEG client, snapshot waiter, JPEG ring reader) wants pictures; otherwise nothing
// is decoded. Every access unit since the last IDR is kept (bounded by Limits), so a consumer
// arriving while the decoder is idle gets a picture of the newest access unit at once: the
// decoder catches up over the kept access units it has not seen (from where it stopped, or from
// the IDR) instead of waiting up to a GOP for the camera's next IDR. When the kept GOP
// outgrows its limits it is dropped (counted); then an idle decoder waits for the next IDR.
// After Limits::idleRelease without demand the decoder itself is freed (its reference
// pictures: ~15 MB at 1080p); the next demand makes a new one and starts from the kept IDR.
//
// Threading and ownership: push() and reset() from one thread (the camera thread); stats() from
// any thread. Kept access units are shared packets (the same ones the H.264 outputs send); the
// returned frames are leases on this object's pool and may outlive it.
class H264OnDemandDecoder {
 public:
  struct Limits {
    size_t maxGopBytes = 8u << 20;   // 8 MiB: a 10 s GOP of a 6 Mbit/s camera
    size_t maxGopAccessUnits = 300;  // 10 s at 30 fps
    std::chrono::milliseconds idleRelease{10'000};
  };
  using DecoderFactory = std::function<hal::Result<std::unique_ptr<codecs::H264Decoder>>()>;

  H264OnDemandDecoder() : H264OnDemandDecoder(Limits{}) {}
  explicit H264OnDemandDecoder(Limits limits, DecoderFactory factory = codecs::createH264Decoder);

  // Every access unit of the camera, in order (a hal::Packet of fourcc::kH264: Annex-B, keyframe
  // set on IDRs, config the SPS/PPS in force). A change of config (new SPS/PPS: size, profile)
  // starts over with a new decoder. When `wanted`, the access units the decoder has not seen
  // are decoded and the picture of this one is returned (I420, its pts and sequence).
  // `now` is for the idle release only.
  // Errors: Again when not wanted, when there is nothing to start from (no IDR kept yet: the
  // stream's first IDR is still to come, or the kept GOP overflowed) or the pool is exhausted;
  // Unsupported when no decoder can be made (built without libavcodec, with its message), or
  // the stream is of a format I420 cannot carry; InvalidArgument when libavcodec rejects this
  // access unit (corrupt data, with libavcodec's message). Errors of kept access units decoded
  // on the way are counted in stats().errors, not returned.
  hal::Result<hal::Frame> push(const hal::PacketPtr& accessUnit, bool wanted,
                               hal::Timestamp now = hal::Clock::now());

  // Forget the kept access units and the decoder (the camera was reopened: a new stream).
  void reset();

  struct Stats {
    bool decoding = false;            // a decoder exists and was fed the last access unit
    uint64_t pictures = 0;            // pictures handed out
    uint64_t catchUps = 0;            // demands that decoded kept access units first
    uint64_t catchUpAccessUnits = 0;  // kept access units decoded by those
    uint64_t errors = 0;              // access units libavcodec rejected
    uint64_t gopOverflows = 0;        // kept GOPs dropped for outgrowing Limits
    uint64_t idleReleases = 0;        // decoders freed after Limits::idleRelease unwanted
    size_t keptAccessUnits = 0;       // now
    size_t keptBytes = 0;             // now
  };
  Stats stats() const;

 private:
  hal::Result<hal::Frame> decodeOne(const hal::Packet& accessUnit);
  hal::Status ensureDecoder();
  void dropGop();

  Limits limits_;
  DecoderFactory factory_;
  std::optional<hal::Error> unavailable_;  // the factory said Unsupported: never asked again
  std::unique_ptr<codecs::H264Decoder> decoder_;
  std::shared_ptr<hal::FramePool> pool_;
  std::shared_ptr<const hal::CodecConfig> config_;  // the SPS/PPS the decoder was made for
  hal::Size spsSize_;                               // the picture size that SPS gives
  // Access units are numbered in push() order. gop_ holds the numbers gopStart_.. (an IDR and
  // every access unit since) while gopValid_; the decoder has consumed everything before fedUpTo_.
  uint64_t next_ = 0;
  std::deque<hal::PacketPtr> gop_;
  uint64_t gopStart_ = 0;
  size_t gopBytes_ = 0;
  bool gopValid_ = false;
  uint64_t fedUpTo_ = 0;
  hal::Timestamp lastWanted_{};

  std::atomic<bool> decoding_{false};
  std::atomic<uint64_t> pictures_{0}, catchUps_{0}, catchUpAccessUnits_{0}, errors_{0}, gopOverflows_{0},
      idleReleases_{0};
  std::atomic<size_t> keptAccessUnits_{0}, keptBytes_{0};
};

}  // namespace printcast::streamer
