// SPDX-License-Identifier: MIT
// NetworkCapture (see network_capture.h).
#include "network_capture.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
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
  if (epoll_ >= 0) ::close(epoll_);
}

hal::Status NetworkCapture::connect(std::chrono::steady_clock::time_point /*deadline*/) {
  return {hal::Errc::Unsupported, label_ + ": this source runs on an I/O thread"};
}

hal::Status NetworkCapture::pumpReady() {
  return {hal::Errc::Unsupported, label_ + ": this source runs on an I/O thread"};
}

hal::Status NetworkCapture::openInline(std::chrono::milliseconds timeout, std::string_view missing) {
  using SteadyClock = std::chrono::steady_clock;
  if (auto st = frames_.ready(); !st) return st;
  if (wake_ < 0) return hal::errnoError("eventfd");
  frames_.setInlineConsumer();  // this thread delivers and dequeues
  const auto deadline = SteadyClock::now() + timeout;
  if (auto st = connect(deadline); !st) return st;
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) return hal::errnoError(label_ + ": epoll_create1");
  std::vector<int> fds = streamFds();
  fds.push_back(frames_.pollFd());
  for (int fd : fds) {
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.fd = fd;
    if (fd >= 0 && ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &e) != 0)
      return hal::errnoError(label_ + ": epoll_ctl");
  }
  inline_ = true;
  // Until the size is known (at once when the session announced it, else the first SPS).
  while (frames_.size().empty()) {
    if (auto st = frames_.error(); !st) return st;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0)
      return {hal::Errc::Timeout, fmt::format("{}: {} within {} ms", label_, missing, timeout.count())};
    pollfd p[2] = {{epoll_, POLLIN, 0}, {wake_, POLLIN, 0}};
    (void)::poll(p, 2, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (stopping_) return {hal::Errc::Timeout, label_ + ": stopped"};
    if (auto st = pumpReady(); !st) return st;
  }
  return {};
}

hal::Result<hal::Frame> NetworkCapture::dequeue() {
  if (inline_ && !stopping_ && frames_.waiting() == 0 && frames_.error().ok()) {
    if (auto st = pumpReady(); !st) frames_.fail(std::move(st).error());
  }
  return frames_.dequeue();
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

void NetworkCapture::noteSpsFps(const codecs::h264::Sps& sps) {
  if (sps.fps && *sps.fps >= 1 && *sps.fps <= 240) spsFps_ = static_cast<int>(*sps.fps + 0.5);
}

}  // namespace printcast::transport
