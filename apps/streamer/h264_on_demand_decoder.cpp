// SPDX-License-Identifier: MIT
// H264OnDemandDecoder: the kept GOP, catch-up decoding and the idle release.
#include "h264_on_demand_decoder.h"

#include <utility>

#include <fmt/format.h>

#include "printcast/codecs/h264.h"

namespace printcast::streamer {

H264OnDemandDecoder::H264OnDemandDecoder(Limits limits, DecoderFactory factory)
    : limits_(limits), factory_(std::move(factory)) {}

hal::Status H264OnDemandDecoder::ensureDecoder() {
  if (unavailable_) return *unavailable_;
  if (decoder_) return {};
  auto decoder = factory_();
  if (!decoder) {
    if (decoder.code() == hal::Errc::Unsupported) {
      unavailable_ = decoder.error();
      dropGop();  // nothing will ever decode it
    }
    return std::move(decoder).error();
  }
  decoder_ = std::move(*decoder);
  fedUpTo_ = 0;  // a new decoder has seen nothing: it starts at the kept IDR
  return {};
}

void H264OnDemandDecoder::dropGop() {
  gop_.clear();
  gopBytes_ = 0;
  gopValid_ = false;
  keptAccessUnits_ = 0;
  keptBytes_ = 0;
}

void H264OnDemandDecoder::reset() {
  dropGop();
  decoder_.reset();
  decoding_ = false;
  config_.reset();
  spsSize_ = {};
  fedUpTo_ = 0;
}

hal::Result<hal::Frame> H264OnDemandDecoder::decodeOne(const hal::Packet& accessUnit) {
  hal::Size size = spsSize_.empty() ? accessUnit.size : spsSize_;
  if (size.empty()) size = hal::Size{16, 16};  // unknown: the first picture tells (below)
  if (!pool_ || !(pool_->size() == size)) {
    // Two buffers: a picture lives only until it is JPEG-encoded.
    auto pool = hal::FramePool::create(hal::fourcc::kI420, size, 2);
    if (!pool) return std::move(pool).error();
    pool_ = std::move(*pool);
  }
  auto frame = decoder_->decode(accessUnit.data, *pool_, accessUnit.pts, accessUnit.sequence);
  if (!frame && frame.code() == hal::Errc::InvalidArgument && !decoder_->pictureSize().empty() &&
      !(decoder_->pictureSize() == pool_->size())) {
    // The SPS said another size than the picture has (we could not parse it): that picture is
    // lost, the next one lands in a pool of the right size.
    spsSize_ = decoder_->pictureSize();
    pool_.reset();
    return hal::Result<hal::Frame>(hal::Errc::Again, "H.264 decoder: picture size changed");
  }
  if (!frame && frame.code() == hal::Errc::InvalidArgument) ++errors_;
  return frame;
}

hal::Result<hal::Frame> H264OnDemandDecoder::push(const hal::PacketPtr& accessUnit, bool wanted,
                                                  hal::Timestamp now) {
  const uint64_t index = next_++;
  if (accessUnit->config && (!config_ || !(*accessUnit->config == *config_))) {
    // New parameter sets (another size or profile): a decoder of the old stream is not reused.
    config_ = accessUnit->config;
    auto sps = codecs::h264::parseSps(config_->sps);
    spsSize_ = sps ? sps->size : hal::Size{};
    decoder_.reset();
  }
  // Keep the GOP, unless no decoder can ever use it.
  if (!unavailable_) {
    if (accessUnit->keyframe) {
      dropGop();
      gopValid_ = true;
      gopStart_ = index;
    }
    if (gopValid_) {
      gop_.push_back(accessUnit);
      gopBytes_ += accessUnit->data.size();
      if (gopBytes_ > limits_.maxGopBytes || gop_.size() > limits_.maxGopAccessUnits) {
        dropGop();
        ++gopOverflows_;
      }
      keptAccessUnits_ = gop_.size();
      keptBytes_ = gopBytes_;
    }
  }

  if (!wanted) {
    if (decoder_ && now - lastWanted_ >= limits_.idleRelease) {
      decoder_.reset();
      ++idleReleases_;
    }
    decoding_ = false;
    return hal::Result<hal::Frame>(hal::Errc::Again, "no JPEG consumer: not decoding");
  }
  lastWanted_ = now;
  if (auto st = ensureDecoder(); !st) {
    decoding_ = false;
    return std::move(st).error();
  }

  // Where to start: right here when the decoder has seen everything before this access unit;
  // from where it stopped when that is still kept; else from the kept IDR.
  uint64_t from = index;
  if (fedUpTo_ != index) {
    if (!gopValid_) {
      decoding_ = false;
      return hal::Result<hal::Frame>(
          hal::Errc::Again, "H.264 decoder: waiting for the camera's next IDR (no GOP kept to start from)");
    }
    from = gopStart_;
    if (fedUpTo_ > gopStart_ && fedUpTo_ < index) {
      from = fedUpTo_;
    } else {
      decoder_->reset();  // from an IDR: nothing before it matters
    }
    if (from < index) ++catchUps_;
  }
  decoding_ = true;
  // Kept access units the decoder has not seen, then this one (the last kept one when kept).
  for (uint64_t i = from; i < index; ++i) {
    (void)decodeOne(*gop_[static_cast<size_t>(i - gopStart_)]);
    ++catchUpAccessUnits_;
  }
  fedUpTo_ = index + 1;
  auto frame = decodeOne(*accessUnit);
  if (frame) ++pictures_;
  return frame;
}

H264OnDemandDecoder::Stats H264OnDemandDecoder::stats() const {
  Stats s;
  s.decoding = decoding_;
  s.pictures = pictures_;
  s.catchUps = catchUps_;
  s.catchUpAccessUnits = catchUpAccessUnits_;
  s.errors = errors_;
  s.gopOverflows = gopOverflows_;
  s.idleReleases = idleReleases_;
  s.keptAccessUnits = keptAccessUnits_;
  s.keptBytes = keptBytes_;
  return s;
}

}  // namespace printcast::streamer
