// SPDX-License-Identifier: MIT
// JpegFrameQueue (see jpeg_frame_queue.h).
#include "jpeg_frame_queue.h"

#include <fmt/format.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <memory>

#include "printcast/codecs/jpeg.h"
#include "printcast/hal/mjpeg_dht.h"

namespace printcast::transport {

JpegFrameQueue::JpegFrameQueue(std::string label, std::chrono::milliseconds noPictureTimeout)
    : label_(std::move(label)),
      noPictureTimeout_(noPictureTimeout),
      event_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

JpegFrameQueue::~JpegFrameQueue() {
  if (event_ >= 0) ::close(event_);
}

hal::Status JpegFrameQueue::ready() const {
  if (event_ < 0) return hal::errnoError("eventfd");
  return {};
}

void JpegFrameQueue::signalLocked() {
  const uint64_t one = 1;
  (void)!::write(event_, &one, sizeof one);
}

void JpegFrameQueue::drainLocked() {
  uint64_t v = 0;
  (void)!::read(event_, &v, sizeof v);
}

bool JpegFrameQueue::deliver(std::vector<uint8_t> jpeg, hal::Timestamp arrival) {
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
  d.planeCount = 1;
  d.planes[0] = hal::Plane{buffer->data(), 0, buffer->size()};
  d.bytesUsed = buffer->size();
  d.timestamp = arrival;
  std::lock_guard lock(mutex_);
  if (!error_.ok()) return false;
  if (size_.empty()) {
    size_ = header->size;
    first_.notify_all();
  } else if (!(size_ == header->size)) {
    error_ = hal::Status(hal::Errc::Disconnected, fmt::format("{}: the picture size changed from {} to {}",
                                                              label_, size_.str(), header->size.str()));
    signalLocked();
    return false;
  }
  d.sequence = sequence_++;
  if (frames_.size() >= 2) {
    frames_.pop_front();
    ++dropped_;
  }
  frames_.push_back(hal::Frame::adopt(d, [buffer] {}));
  lastPicture_ = arrival;
  signalLocked();
  return true;
}

void JpegFrameQueue::fail(hal::Error error) {
  std::lock_guard lock(mutex_);
  if (!error_.ok()) return;
  error_ = hal::Status(std::move(error));
  signalLocked();
  first_.notify_all();
}

bool JpegFrameQueue::waitForFirst(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return first_.wait_for(lock, timeout, [this] { return !size_.empty() || !error_.ok(); });
}

hal::Size JpegFrameQueue::size() const {
  std::lock_guard lock(mutex_);
  return size_;
}

hal::Status JpegFrameQueue::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

hal::Result<hal::Frame> JpegFrameQueue::dequeue() {
  std::lock_guard lock(mutex_);
  if (!frames_.empty()) {
    hal::Frame f = std::move(frames_.front());
    frames_.pop_front();
    if (frames_.empty() && error_.ok()) drainLocked();
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
