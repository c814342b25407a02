// SPDX-License-Identifier: MIT
// JpegFrameQueue: how a network JPEG source (HTTP pull, WebSocket push) hands frames to the
// thread that drives its hal::Capture. Internal to transport.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "printcast/hal/frame.h"
#include "printcast/hal/result.h"

namespace printcast::transport {

// Producer: deliver() from the source's I/O thread, fail() from any thread. Consumer: dequeue()
// and pollFd() from the thread that drives the capture. At most two frames wait; older ones are
// dropped (counted) when the consumer is slow. The first error sticks: every later dequeue()
// returns it once the waiting frames are taken.
class JpegFrameQueue {
 public:
  // `label` prefixes error messages ("http://cam:81/stream"); `noPictureTimeout` is the
  // watchdog: dequeue() fails with NoSignal when no picture came for that long.
  JpegFrameQueue(std::string label, std::chrono::milliseconds noPictureTimeout);
  ~JpegFrameQueue();
  JpegFrameQueue(const JpegFrameQueue&) = delete;
  JpegFrameQueue& operator=(const JpegFrameQueue&) = delete;

  // Io when the eventfd could not be made.
  hal::Status ready() const;
  // An eventfd, readable while a frame or the error waits.
  int pollFd() const { return event_; }

  // One JPEG (SOI..EOI) that arrived at `arrival`: the standard Huffman tables are inserted when
  // it has none; its header gives its size. The first picture sets the queue's size; one of
  // another size fails the queue (Disconnected: the consumer reopens at the new size). A JPEG
  // whose header does not parse is dropped (counted). Returns false once the queue has failed.
  bool deliver(std::vector<uint8_t> jpeg, hal::Timestamp arrival);
  void fail(hal::Error error);
  void countDropped(uint64_t n) { dropped_ += n; }

  // Until the first picture's size is known or the queue failed; false on timeout.
  bool waitForFirst(std::chrono::milliseconds timeout);
  hal::Size size() const;
  hal::Status error() const;
  uint64_t dropped() const { return dropped_.load(); }

  // Non-blocking: the oldest waiting frame, else the error, else Again (or NoSignal when the
  // watchdog ran out).
  hal::Result<hal::Frame> dequeue();

 private:
  void drainLocked();
  void signalLocked();

  const std::string label_;
  const std::chrono::milliseconds noPictureTimeout_;
  const int event_;
  std::atomic<uint64_t> dropped_{0};
  mutable std::mutex mutex_;
  std::condition_variable first_;
  uint64_t sequence_ = 0;
  hal::Size size_;
  hal::Timestamp lastPicture_{};
  std::deque<hal::Frame> frames_;
  hal::Status error_;
  std::vector<uint8_t> repaired_;  // deliver()'s scratch for the DHT repair
};

}  // namespace printcast::transport
