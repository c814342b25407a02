// SPDX-License-Identifier: MIT
// NetworkCapture: what every network camera capture with a connection of its own (HTTP MJPEG
// pull, HTTP-FLV pull, RTSP pull) shares: the FrameQueue the protocol fills, a wake eventfd that
// stop() signals, and the open that waits for the picture size. The protocol runs one of two ways:
// - on an I/O thread of its own (open(), run()): the MJPEG and FLV pulls;
// - on the thread that drives the capture (openInline(), connect(), pumpReady()): the RTSP pull.
//   No thread and no hand-over: per access unit the camera thread wakes once for its socket
//   instead of an I/O thread waking for the socket and then waking the camera thread (context
//   switches were about a third of a 4-camera dashboard's CPU; docs/benchmarks.md). Internal to
//   transport.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "frame_queue.h"
#include "printcast/codecs/h264.h"
#include "printcast/hal/capture.h"
#include "printcast/transport/media_clock.h"

namespace printcast::transport {

// A threaded derived class implements run() (the I/O thread: connect, read, deliver to frames_,
// and on its end frames_.fail() unless stopping_) and start(); its destructor must call
// stopThread() first: run() uses the derived object. An inline one implements connect(),
// pumpReady() and streamFds() instead. info() and validate() answer for the one format, at the
// size of the first picture.
class NetworkCapture : public hal::Capture {
 public:
  ~NetworkCapture() override;
  NetworkCapture(const NetworkCapture&) = delete;
  NetworkCapture& operator=(const NetworkCapture&) = delete;

  hal::CaptureInfo info() const override;
  // Invalid for another format; Adjusted with the camera's size for another size, and with the
  // rate of the SPS's VUI timing when an H.264 camera's SPS gives one (noteSpsFps()).
  hal::Negotiation validate(hal::CaptureConfig& config) const override;
  void stop() override { stopThread(); }
  // Threaded: the FrameQueue's eventfd. Inline: an epoll set of streamFds() and that eventfd
  // (readable when a socket has bytes or a frame or the error waits).
  int pollFd() const override { return inline_ ? epoll_ : frames_.pollFd(); }
  // Inline: when no frame waits, pumpReady() first (its error fails the queue).
  hal::Result<hal::Frame> dequeue() override;
  uint64_t dropped() const { return frames_.dropped(); }

 protected:
  // `label` names the camera in info() and messages (the URL without credentials); `driver` is
  // info().driver; `noPictureTimeout` the FrameQueue's watchdog.
  NetworkCapture(std::string label, std::string driver, hal::FourCC format,
                 std::chrono::milliseconds noPictureTimeout);

  // Start run() and wait up to `timeout` for the picture size. Errors: the I/O thread's first
  // error, or Timeout ("<label>: <missing> within N ms"); the thread is stopped then.
  hal::Status open(std::chrono::milliseconds timeout, std::string_view missing);
  // Signal wake_, set stopping_, join the I/O thread. Idempotent.
  void stopThread();
  // Threaded captures only (an inline one never starts a thread).
  virtual void run() {}

  // Inline: connect() on the calling thread (it must give up at `deadline` and when wake_ turns
  // readable), then, until the picture size is known, pumpReady() whenever streamFds() poll
  // readable. Errors as open(); on an error the caller closes what connect() opened.
  hal::Status openInline(std::chrono::milliseconds timeout, std::string_view missing);
  virtual hal::Status connect(std::chrono::steady_clock::time_point deadline);
  // Non-blocking: read what the sockets have, deliver to frames_ (stop early once a frame
  // waits: the rest stays readable), and keep the session (keepalives, watchdogs). An error ends
  // the stream.
  virtual hal::Status pumpReady();
  // The sockets pumpReady() reads; valid after connect().
  virtual std::vector<int> streamFds() const { return {}; }
  // An H.264 camera's SPS: its VUI frame rate (1..240) is the one validate() answers.
  void noteSpsFps(const codecs::h264::Sps& sps);

  const std::string label_;
  FrameQueue frames_;
  const int wake_;  // eventfd: readable once stopping (poll it with the sockets)
  std::atomic<bool> stopping_{false};

 private:
  std::atomic<int> spsFps_{0};  // the frame rate the SPS's VUI says; 0 = none
  bool inline_ = false;         // set by openInline() before the capture is handed out
  int epoll_ = -1;
  const std::string driver_;
  const hal::FourCC format_;
  std::thread thread_;
};

}  // namespace printcast::transport
