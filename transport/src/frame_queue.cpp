// SPDX-License-Identifier: MIT
// FrameQueue (see frame_queue.h).
#include "frame_queue.h"

#include <fmt/format.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <memory>

#include "printcast/codecs/jpeg.h"
#include "printcast/hal/mjpeg_dht.h"

namespace printcast::transport {

FrameQueue::FrameQueue(std::string label, std::chrono::milliseconds noPictureTimeout)
    : label_(std::move(label)),
      noPictureTimeout_(noPictureTimeout),
      event_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

FrameQueue::~FrameQueue() {
  if (event_ >= 0) ::close(event_);
}

hal::Status FrameQueue::ready() const {
  if (event_ < 0) return hal::errnoError("eventfd");
  return {};
}

void FrameQueue::setInlineConsumer() {
  std::lock_guard lock(mutex_);
  signalOnPush_ = false;
}

void FrameQueue::signalLocked() {
  if (signaled_) return;  // readable already: one write is enough until a drain
  const uint64_t one = 1;
  (void)!::write(event_, &one, sizeof one);
  signaled_ = true;
}

void FrameQueue::drainLocked() {
  if (!signaled_) return;
  uint64_t v = 0;
  (void)!::read(event_, &v, sizeof v);
  signaled_ = false;
}

bool FrameQueue::deliverJpeg(std::vector<uint8_t> jpeg, hal::Timestamp arrival) {
  {
    std::lock_guard lock(mutex_);
    if (!error_.ok()) return false;
    if (hal::insertDefaultHuffmanTables(jpeg, repaired_)) jpeg.swap(repaired_);
  }
  auto header = codecs::inspectJpeg(jpeg);
  if (!header) {
    ++dropped_;
    return true;
  }
  auto buffer = std::make_shared<std::vector<uint8_t>>(std::move(jpeg));
  hal::FrameDescription d;
  d.format = hal::fourcc::kMJPEG;
  d.size = header->size;
  d.timestamp = arrival;
  std::lock_guard lock(mutex_);
  return pushLocked(d, std::move(buffer), false, true);
}

bool FrameQueue::deliverH264(std::vector<uint8_t> annexB, bool idr, hal::Size size, hal::Timestamp pts) {
  auto buffer = std::make_shared<std::vector<uint8_t>>(std::move(annexB));
  hal::FrameDescription d;
  d.format = hal::fourcc::kH264;
  d.size = size;
  d.timestamp = pts;
  std::lock_guard lock(mutex_);
  return pushLocked(d, std::move(buffer), true, idr);
}

bool FrameQueue::pushLocked(hal::FrameDescription& d, std::shared_ptr<std::vector<uint8_t>> buffer, bool h264,
                            bool keyframe) {
  if (!error_.ok()) return false;
  if (size_.empty()) {
    size_ = d.size;
    first_.notify_all();
  } else if (!(size_ == d.size)) {
    error_ = hal::Status(hal::Errc::Disconnected, fmt::format("{}: the picture size changed from {} to {}",
                                                              label_, size_.str(), d.size.str()));
    signalLocked();
    return false;
  }
  lastPicture_ = hal::Clock::now();
  if (h264) {
    if (frames_.size() >= kH264Backlog) {  // the consumer is behind: start again at the next IDR
      dropped_ += frames_.size();
      frames_.clear();
      waitForIdr_ = true;
    }
    if (waitForIdr_ && !keyframe) {
      ++dropped_;
      return true;
    }
    waitForIdr_ = false;
  } else if (frames_.size() >= kJpegBacklog) {
    frames_.pop_front();
    ++dropped_;
  }
  d.planeCount = 1;
  d.planes[0] = hal::Plane{buffer->data(), 0, buffer->size()};
  d.bytesUsed = buffer->size();
  d.sequence = sequence_++;
  frames_.push_back(hal::Frame::adopt(d, [buffer] {}));
  if (signalOnPush_) signalLocked();
  return true;
}

void FrameQueue::announceSize(hal::Size size) {
  std::lock_guard lock(mutex_);
  if (!size_.empty() || size.empty()) return;
  size_ = size;
  lastPicture_ = hal::Clock::now();  // the watchdog runs from here
  first_.notify_all();
}

void FrameQueue::fail(hal::Error error) {
  std::lock_guard lock(mutex_);
  if (!error_.ok()) return;
  error_ = hal::Status(std::move(error));
  signalLocked();
  first_.notify_all();
}

bool FrameQueue::waitForFirst(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return first_.wait_for(lock, timeout, [this] { return !size_.empty() || !error_.ok(); });
}

hal::Size FrameQueue::size() const {
  std::lock_guard lock(mutex_);
  return size_;
}

size_t FrameQueue::waiting() const {
  std::lock_guard lock(mutex_);
  return frames_.size();
}

hal::Status FrameQueue::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

hal::Result<hal::Frame> FrameQueue::dequeue() {
  std::lock_guard lock(mutex_);
  if (!frames_.empty()) {
    hal::Frame f = std::move(frames_.front());
    frames_.pop_front();
    if (frames_.empty()) {
      if (error_.ok()) drainLocked();
    } else {
      signalLocked();  // an inline consumer's poll must not sleep while frames wait
    }
    return f;
  }
  if (error_.ok() && !size_.empty() && hal::Clock::now() - lastPicture_ > noPictureTimeout_) {
    error_ =
        hal::Status(hal::Errc::NoSignal,
                    fmt::format("{}: no picture for {} s", label_,
                                std::chrono::duration_cast<std::chrono::seconds>(noPictureTimeout_).count()));
  }
  if (!error_.ok()) return error_.error();
  drainLocked();
  return hal::Error{hal::Errc::Again, 0, "no frame yet"};
}

}  // namespace printcast::transport
