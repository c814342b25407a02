// SPDX-License-Identifier: MIT
// NetworkCapture (see network_capture.h).
#include "network_capture.h"

#include <fmt/format.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "printcast/hal/thread_name.h"

namespace printcast::transport {

NetworkCapture::NetworkCapture(std::string label, std::string driver, hal::FourCC format,
                               std::chrono::milliseconds noPictureTimeout)
    : label_(std::move(label)),
      frames_(label_, noPictureTimeout),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      driver_(std::move(driver)),
      format_(format) {}

NetworkCapture::~NetworkCapture() {
  stopThread();
  if (wake_ >= 0) ::close(wake_);
}

hal::Status NetworkCapture::open(std::chrono::milliseconds timeout, std::string_view missing) {
  if (auto st = frames_.ready(); !st) return st;
  if (wake_ < 0) return hal::errnoError("eventfd");
  thread_ = std::thread([this] {
    hal::nameThisThread(driver_ + " in");  // "rtsp in", "mjpeg in"
    run();
  });
  const bool settled = frames_.waitForFirst(timeout);
  if (!frames_.size().empty()) return {};
  hal::Status result = settled ? frames_.error()
                               : hal::Status(hal::Errc::Timeout, fmt::format("{}: {} within {} ms", label_,
                                                                             missing, timeout.count()));
  stopThread();
  return result;
}

void NetworkCapture::stopThread() {
  stopping_ = true;
  const uint64_t one = 1;
  if (wake_ >= 0) (void)!::write(wake_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

hal::CaptureInfo NetworkCapture::info() const {
  hal::CaptureInfo i;
  i.name = label_;
  i.driver = driver_;
  i.busInfo = label_;
  i.formats.push_back(hal::CaptureFormat{format_, {frames_.size()}, {}});
  return i;
}

hal::Negotiation NetworkCapture::validate(hal::CaptureConfig& config) const {
  if (config.format != format_) return hal::Negotiation::Invalid;
  hal::Negotiation n = hal::Negotiation::Valid;
  if (const hal::Size size = frames_.size(); config.size != size) {
    config.size = size;
    n = hal::Negotiation::Adjusted;
  }
  if (const int fps = spsFps_.load(); fps > 0 && config.fps != fps) {
    config.fps = fps;
    n = hal::Negotiation::Adjusted;
  }
  return n;
}

hal::Timestamp MediaClock::map(int64_t ticks, int64_t rate, hal::Timestamp arrival) {
  const auto offset = std::chrono::duration_cast<hal::Timestamp::duration>(
      std::chrono::duration<double>(static_cast<double>(ticks) / static_cast<double>(rate)));
  if (!haveBase_) {
    haveBase_ = true;
    base_ = arrival - offset;
  }
  hal::Timestamp pts = base_ + offset;
  if (pts - arrival > std::chrono::seconds(1) || arrival - pts > std::chrono::seconds(1)) {
    base_ = arrival - offset;
    pts = arrival;
  }
  return pts;
}

void NetworkCapture::noteSpsFps(const codecs::h264::Sps& sps) {
  if (sps.fps && *sps.fps >= 1 && *sps.fps <= 240) spsFps_ = static_cast<int>(*sps.fps + 0.5);
}

}  // namespace printcast::transport
