// SPDX-License-Identifier: MIT
// H.264 Encoder over libx264: I420 in, one Annex-B access unit per Packet out.
#include <cstdint>
// x264.h needs the fixed-width integer types declared first.
#include <x264.h>

#include <atomic>
#include <deque>
#include <memory>
#include <utility>

#include <fmt/format.h>

#include "encoder_limits.h"
#include "printcast/codecs/h264.h"
#include "printcast/codecs/x264_encoder.h"

namespace printcast::codecs {

namespace {

struct X264Closer {
  void operator()(x264_t* encoder) const { x264_encoder_close(encoder); }
};
using X264Handle = std::unique_ptr<x264_t, X264Closer>;

hal::Error invalid(std::string message) {
  return hal::Error{hal::Errc::InvalidArgument, 0, "x264: " + std::move(message)};
}

class X264Encoder final : public hal::Encoder {
 public:
  explicit X264Encoder(X264Options options) : options_(std::move(options)) {}

  hal::EncoderInfo info() const override {
    return hal::EncoderInfo{"x264", hal::fourcc::kH264, {hal::fourcc::kI420}};
  }

  hal::Status configure(const hal::EncoderConfig& config) override {
    if (auto st = checkEncoderConfig(config, "x264"); !st) return st;
    const hal::Size size = config.size;

    if (options_.crf > 51) return invalid(fmt::format("crf {} outside 0..51", options_.crf));

    x264_param_t param;
    if (x264_param_default_preset(&param, options_.preset.c_str(),
                                  options_.tune.empty() ? nullptr : options_.tune.c_str()) < 0) {
      return invalid(fmt::format("unknown preset '{}' or tune '{}'", options_.preset, options_.tune));
    }
    param.i_log_level = X264_LOG_WARNING;
    param.i_threads = options_.threads;
    param.i_width = size.width;
    param.i_height = size.height;
    param.i_csp = X264_CSP_I420;
    param.i_fps_num = static_cast<uint32_t>(config.fps);
    param.i_fps_den = 1;
    // Rate control runs on the nominal rate; capture timestamps only travel through as pts.
    param.b_vfr_input = 0;
    param.i_keyint_max = config.gopFrames;
    param.b_open_gop = 0;
    param.i_bframe = 0;  // Packet promises dts == pts whatever the profile
    param.b_repeat_headers = 1;
    param.b_annexb = 1;
    if (config.fullRange) {
      param.vui.b_fullrange = 1;
      param.vui.i_colmatrix = 6;  // SMPTE 170M = BT.601, JFIF's matrix (H.264 Table E-5)
    }
    if (options_.crf >= 0) {
      // Constant quality for recordings: no VBV, the size follows the picture.
      param.rc.i_rc_method = X264_RC_CRF;
      param.rc.f_rf_constant = options_.crf;
    } else {
      param.rc.i_rc_method = X264_RC_ABR;
      param.rc.i_bitrate = config.bitrateKbps;
      // A one-second VBV at the target rate: CBR-like, so a live stream never bursts far past it.
      param.rc.i_vbv_max_bitrate = config.bitrateKbps;
      param.rc.i_vbv_buffer_size = config.bitrateKbps;
    }
    if (!options_.profile.empty() && x264_param_apply_profile(&param, options_.profile.c_str()) < 0) {
      return invalid(
          fmt::format("profile '{}' is unknown or incompatible with the options", options_.profile));
    }

    X264Handle encoder(x264_encoder_open(&param));
    if (!encoder) return openFailed(config);
    x264_nal_t* nals = nullptr;
    int nalCount = 0;
    const int headerBytes = x264_encoder_headers(encoder.get(), &nals, &nalCount);
    if (headerBytes <= 0 || nalCount <= 0) return {hal::Errc::Io, "x264: x264_encoder_headers failed"};
    // With b_annexb every payload begins with its start code and all are contiguous.
    auto codecConfig = h264::extractCodecConfig(
        std::span<const uint8_t>(nals[0].p_payload, static_cast<size_t>(headerBytes)));
    if (!codecConfig) return {hal::Errc::Io, "x264: headers hold no SPS/PPS"};

    encoder_ = std::move(encoder);
    param_ = param;
    config_ = config;
    codecConfig_ = std::make_shared<const hal::CodecConfig>(std::move(*codecConfig));
    pending_.clear();
    nextPts_ = 0;
    return {};
  }

  hal::Result<hal::PacketPtr> encode(const hal::Frame& frame) override {
    if (!codecConfig_) return {hal::Errc::InvalidArgument, "x264: encode() before a successful configure()"};
    if (auto st = checkEncoderInput(frame, config_.size, "x264"); !st) return st.error();

    if (!encoder_) {
      // After release(): the same parameters give the same SPS/PPS (codecConfig_ stays true),
      // and a new encoder starts with an IDR.
      encoder_.reset(x264_encoder_open(&param_));
      if (!encoder_) return openFailed(config_);
    }

    x264_picture_t in;
    x264_picture_init(&in);
    in.img.i_csp = X264_CSP_I420;
    in.img.i_plane = 3;
    for (int p = 0; p < 3; ++p) {
      // x264 only reads its input (it copies into its own frame), so the lease's pixels are
      // handed over as they are, strides included.
      in.img.plane[p] = const_cast<uint8_t*>(frame.plane(p).data);
      in.img.i_stride[p] = frame.plane(p).stride;
    }
    in.i_pts = nextPts_++;
    if (keyframeRequested_.exchange(false, std::memory_order_acq_rel)) in.i_type = X264_TYPE_IDR;
    // Frame delay (frame threads, lookahead) depends on the preset; remember what each input
    // was so the output picks up its own capture time and sequence.
    pending_.push_back(Pending{in.i_pts, frame.timestamp(), frame.sequence()});

    x264_picture_t out;
    x264_nal_t* nals = nullptr;
    int nalCount = 0;
    const int bytes = x264_encoder_encode(encoder_.get(), &nals, &nalCount, &in, &out);
    if (bytes < 0) {
      pending_.pop_back();
      return {hal::Errc::Io, fmt::format("x264: x264_encoder_encode failed on frame {}", frame.sequence())};
    }
    if (bytes == 0 || nalCount == 0) return {hal::Errc::Again, "x264: frame buffered, no output yet"};

    while (!pending_.empty() && pending_.front().pts < out.i_pts) pending_.pop_front();
    Pending source{out.i_pts, frame.timestamp(), frame.sequence()};
    if (!pending_.empty() && pending_.front().pts == out.i_pts) {
      source = pending_.front();
      pending_.pop_front();
    }

    auto packet = std::make_shared<hal::Packet>();
    packet->codec = hal::fourcc::kH264;
    // x264 guarantees the payloads of one call are sequential in memory: they form one access
    // unit (every slice of the picture, with SPS/PPS/SEI in front of an IDR).
    packet->data.assign(nals[0].p_payload, nals[0].p_payload + bytes);
    packet->keyframe = out.b_keyframe != 0;
    packet->pts = source.timestamp;
    packet->sequence = source.sequence;
    packet->size = config_.size;
    packet->config = codecConfig_;
    return hal::PacketPtr(std::move(packet));
  }

  void requestKeyframe() override { keyframeRequested_.store(true, std::memory_order_release); }

  void release() override {
    encoder_.reset();
    pending_.clear();  // frames buffered inside the closed encoder never come out
  }

  std::shared_ptr<const hal::CodecConfig> codecConfig() const override { return codecConfig_; }

 private:
  struct Pending {
    int64_t pts = 0;
    hal::Timestamp timestamp;
    uint64_t sequence = 0;
  };

  static hal::Error openFailed(const hal::EncoderConfig& config) {
    return {hal::Errc::Io, 0,
            fmt::format("x264: x264_encoder_open failed for {} at {} kbps", config.size.str(),
                        config.bitrateKbps)};
  }

  X264Options options_;
  X264Handle encoder_;  // null before configure() and after release()
  x264_param_t param_{};
  hal::EncoderConfig config_;
  std::shared_ptr<const hal::CodecConfig> codecConfig_;
  std::deque<Pending> pending_;
  int64_t nextPts_ = 0;
  std::atomic<bool> keyframeRequested_{false};
};

}  // namespace

std::unique_ptr<hal::Encoder> createX264Encoder(const X264Options& options) {
  return std::make_unique<X264Encoder>(options);
}

}  // namespace printcast::codecs
