// SPDX-License-Identifier: MIT
// FrameQueue: how a network JPEG source (HTTP pull, WebSocket push) hands frames to the
// thread that drives its hal::Capture. Internal to transport.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "printcast/hal/frame.h"
#include "printcast/hal/result.h"

namespace printcast::transport {

// Producer: deliverJpeg()/deliverH264() from the source's I/O thread, fail() from any thread.
// Consumer: dequeue() and pollFd() from the thread that drives the capture. When the consumer is
// slow, frames are dropped (counted): JPEGs stand alone, so at most two wait and the oldest goes;
// H.264 access units depend on the ones before, so at most kH264Backlog wait and on overflow all
// waiting ones go and the next IDR starts again (a decoder never sees a gap in its references).
// The first error sticks: every later dequeue() returns it once the waiting frames are taken.
class FrameQueue {
 public:
  static constexpr size_t kJpegBacklog = 2;
  static constexpr size_t kH264Backlog = 60;

  // `label` prefixes error messages ("http://cam:81/stream"); `noPictureTimeout` is the
  // watchdog: dequeue() fails with NoSignal when no picture came for that long.
  FrameQueue(std::string label, std::chrono::milliseconds noPictureTimeout);
  ~FrameQueue();
  FrameQueue(const FrameQueue&) = delete;
  FrameQueue& operator=(const FrameQueue&) = delete;

  // Io when the eventfd could not be made.
  hal::Status ready() const;
  // An eventfd, readable while a frame or the error waits (with setInlineConsumer(): while a
  // frame waits that dequeue() has not just been handed with it, or the error).
  int pollFd() const { return event_; }
  // The consumer is the thread that delivers (NetworkCapture::openInline: the RTSP session runs
  // inside dequeue()): pushes do not write the eventfd, dequeue() does when frames still wait after
  // the one it returns, so the consumer's poll does not sleep on them. Two syscalls less per frame.
  void setInlineConsumer();

  // One JPEG (SOI..EOI) that arrived at `arrival`: the standard Huffman tables are inserted when
  // it has none; its header gives its size. The first picture sets the queue's size; one of
  // another size fails the queue (Disconnected: the consumer reopens at the new size). A JPEG
  // whose header does not parse is dropped (counted). Returns false once the queue has failed.
  bool deliverJpeg(std::vector<uint8_t> jpeg, hal::Timestamp arrival);
  // One H.264 access unit (Annex-B) of a picture of `size` (from its SPS), captured at `pts`.
  // Same size rule as deliverJpeg(). Non-IDR access units are dropped (counted) until the first
  // IDR and after an overflow. Returns false once the queue has failed.
  bool deliverH264(std::vector<uint8_t> annexB, bool idr, hal::Size size, hal::Timestamp pts);
  // The picture size is known before the first frame (an RTSP camera's SDP): waitForFirst()
  // returns now. Ignored once a size is set.
  void announceSize(hal::Size size);
  void fail(hal::Error error);
  void countDropped(uint64_t n) { dropped_ += n; }

  // Until the first picture's size is known or the queue failed; false on timeout.
  bool waitForFirst(std::chrono::milliseconds timeout);
  hal::Size size() const;
  hal::Status error() const;
  uint64_t dropped() const { return dropped_.load(); }
  // How many frames wait for dequeue().
  size_t waiting() const;

  // Non-blocking: the oldest waiting frame, else the error, else Again (or NoSignal when the
  // watchdog ran out).
  hal::Result<hal::Frame> dequeue();

 private:
  // The eventfd is written once when it becomes readable and read once when it stops (signaled_).
  void drainLocked();
  void signalLocked();
  // The size rule and the backlog of both deliver functions; false once the queue has failed.
  bool pushLocked(hal::FrameDescription& d, std::shared_ptr<std::vector<uint8_t>> buffer, bool h264,
                  bool keyframe);

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
  bool waitForIdr_ = true;         // H.264: drop until an IDR (start, overflow)
  std::vector<uint8_t> repaired_;  // deliverJpeg()'s scratch for the DHT repair
  bool signaled_ = false;          // the eventfd is readable
  bool signalOnPush_ = true;       // false: setInlineConsumer()
};

}  // namespace printcast::transport
