// SPDX-License-Identifier: MIT
// H.264 encoder selection: the board's backend list, the user's choice, fallback while encoding.
#include "printcast/codecs/h264_encoders.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <utility>

namespace printcast::codecs {

namespace {

using hal::EncoderBackend;

constexpr std::array<std::pair<EncoderBackend, std::string_view>, 4> kNames{{
    {EncoderBackend::X264, "x264"},
    {EncoderBackend::VaApi, "vaapi"},
    {EncoderBackend::V4L2M2M, "v4l2m2m"},
    {EncoderBackend::Vendor, "vendor"},
}};

}  // namespace

std::string_view h264BackendName(EncoderBackend backend) noexcept {
  for (const auto& [b, name] : kNames)
    if (b == backend) return name;
  return "unknown";
}

std::optional<EncoderBackend> parseH264Backend(std::string_view name) noexcept {
  for (const auto& [b, n] : kNames)
    if (n == name) return b;
  return std::nullopt;
}

hal::Result<std::unique_ptr<hal::Encoder>> openH264Backend(EncoderBackend backend,
                                                           const H264BackendOptions& options) {
  switch (backend) {
    case EncoderBackend::X264: return createX264Encoder(options.x264);
    case EncoderBackend::V4L2M2M: {
      V4l2M2mOptions m2m = options.v4l2m2m;
      m2m.codedFormat = hal::fourcc::kH264;
      return createV4l2M2mEncoder(m2m);
    }
    case EncoderBackend::VaApi: return createVaapiEncoder(options.vaapi);
    case EncoderBackend::Vendor:
      return hal::Error{hal::Errc::Unsupported, 0,
                        "a vendor SDK encoder is not built in (docs/porting-guide.md, \"Encoders\")"};
  }
  return hal::Error{hal::Errc::InvalidArgument, 0, "unknown encoder backend"};
}

hal::Result<std::vector<EncoderBackend>> h264BackendOrder(std::span<const EncoderBackend> boardPreference,
                                                          std::string_view choice) {
  std::vector<EncoderBackend> order;
  if (choice != "auto") {
    auto named = parseH264Backend(choice);
    if (!named) {
      return hal::Error{
          hal::Errc::InvalidArgument, 0,
          "unknown H.264 encoder \"" + std::string(choice) + "\" (auto, x264, v4l2m2m, vaapi, vendor)"};
    }
    order.push_back(*named);
  }
  for (EncoderBackend b : boardPreference)
    if (std::find(order.begin(), order.end(), b) == order.end()) order.push_back(b);
  // x264 is in every build: last, so that a stream always has an encoder.
  std::erase(order, EncoderBackend::X264);
  order.push_back(EncoderBackend::X264);
  return order;
}

// ---------------------------------------------------------------------------------------------

SelectingEncoder::SelectingEncoder(std::vector<Candidate> candidates)
    : candidates_(std::move(candidates)), failed_(candidates_.size(), false) {}

hal::EncoderInfo SelectingEncoder::info() const {
  if (active_) return active_->info();
  return {.name = "none", .codec = hal::fourcc::kH264, .inputFormats = {hal::fourcc::kI420}};
}

void SelectingEncoder::refuse(size_t index, std::string reason, bool runtime) {
  spdlog::warn("H.264 encoder {}: {}{}", candidates_[index].name, reason,
               index + 1 < candidates_.size() ? "; trying the next backend" : "");
  std::lock_guard lock(mutex_);
  refusals_.push_back({candidates_[index].name, std::move(reason), runtime});
}

hal::Status SelectingEncoder::activateFrom(size_t first) {
  std::unique_ptr<hal::Encoder> previous;
  {
    std::lock_guard lock(mutex_);
    previous = std::move(active_);
    activeName_ = "none";
    codecConfig_.reset();
  }
  previous.reset();  // may drain for a while: not under the lock status readers take
  std::string why;
  hal::Errc lastCode = hal::Errc::Unsupported;
  for (size_t i = first; i < candidates_.size(); ++i) {
    if (failed_[i]) continue;
    auto opened = candidates_[i].open();
    if (!opened) {
      lastCode = opened.code();
      why += candidates_[i].name + ": " + opened.error().describe() + "; ";
      refuse(i, opened.error().describe(), false);
      continue;
    }
    std::unique_ptr<hal::Encoder> encoder = std::move(*opened);
    if (auto st = encoder->configure(*config_); !st) {
      lastCode = st.code();
      why += candidates_[i].name + ": " + st.error().describe() + "; ";
      refuse(i,
             "refused " + config_->size.str() + " at " + std::to_string(config_->fps) +
                 " fps: " + st.error().describe(),
             false);
      continue;
    }
    std::lock_guard lock(mutex_);
    active_ = std::move(encoder);
    activeIndex_ = i;
    activeName_ = candidates_[i].name;
    codecConfig_ = active_->codecConfig();
    return {};
  }
  if (why.size() >= 2) why.resize(why.size() - 2);
  return hal::Error{lastCode, 0, "no H.264 encoder accepts " + config_->size.str() + ": " + why};
}

hal::Status SelectingEncoder::configure(const hal::EncoderConfig& config) {
  const std::optional<hal::EncoderConfig> previous = config_;
  config_ = config;
  {
    std::lock_guard lock(mutex_);
    std::erase_if(refusals_, [](const EncoderRefusal& r) { return !r.runtime; });
  }
  // The working backend first: most reconfigurations (bitrate, quality) stay with it.
  if (active_) {
    if (auto st = active_->configure(config); st) {
      std::lock_guard lock(mutex_);
      codecConfig_ = active_->codecConfig();
      return {};
    }
  }
  auto st = activateFrom(0);
  if (!st) config_ = previous;
  keyframeWanted_ = true;
  return st;
}

hal::Result<hal::PacketPtr> SelectingEncoder::encode(const hal::Frame& frame) {
  if (!active_) return hal::Error{hal::Errc::InvalidArgument, 0, "H.264 encoder not configured"};
  if (keyframeWanted_.exchange(false)) active_->requestKeyframe();
  auto packet = active_->encode(frame);
  if (packet || packet.code() == hal::Errc::Again || packet.code() == hal::Errc::InvalidArgument) {
    if (packet && (*packet)->config) {
      std::lock_guard lock(mutex_);
      if (codecConfig_ != (*packet)->config) codecConfig_ = (*packet)->config;
    }
    return packet;
  }
  // The backend failed while encoding: the next one takes over from this frame, on an IDR.
  failed_[activeIndex_] = true;
  refuse(activeIndex_, "failed while encoding: " + packet.error().describe(), true);
  {
    std::lock_guard lock(mutex_);
    ++fallbacks_;
  }
  if (auto st = activateFrom(activeIndex_ + 1); !st) return st.error();
  active_->requestKeyframe();
  return encode(frame);
}

void SelectingEncoder::requestKeyframe() { keyframeWanted_ = true; }

std::shared_ptr<const hal::CodecConfig> SelectingEncoder::codecConfig() const {
  std::lock_guard lock(mutex_);
  return codecConfig_;
}

void SelectingEncoder::release() {
  if (active_) active_->release();
}

hal::EncoderInputPath SelectingEncoder::inputPath() const {
  std::lock_guard lock(mutex_);
  if (!active_) return hal::EncoderInputPath{"", "no encoder configured", 0, 0};
  return active_->inputPath();
}

std::string SelectingEncoder::activeName() const {
  std::lock_guard lock(mutex_);
  return activeName_;
}

std::vector<EncoderRefusal> SelectingEncoder::refusals() const {
  std::lock_guard lock(mutex_);
  return refusals_;
}

uint64_t SelectingEncoder::fallbacks() const {
  std::lock_guard lock(mutex_);
  return fallbacks_;
}

std::unique_ptr<SelectingEncoder> createH264Encoder(std::span<const EncoderBackend> order,
                                                    const H264BackendOptions& options) {
  std::vector<SelectingEncoder::Candidate> candidates;
  for (EncoderBackend backend : order) {
    candidates.push_back({std::string(h264BackendName(backend)),
                          [backend, options] { return openH264Backend(backend, options); }});
  }
  return std::make_unique<SelectingEncoder>(std::move(candidates));
}

}  // namespace printcast::codecs
