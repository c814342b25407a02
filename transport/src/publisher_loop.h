// SPDX-License-Identifier: MIT
// PublisherLoop: what the RTSP and RTMP publishers share: the I/O thread that runs one session
// after another with backoff, the eventfds it waits on (stop, and "the stream queue has data"),
// and the status. Internal to transport.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "printcast/hal/result.h"
#include "printcast/transport/fanout.h"
#include "printcast/transport/publish_status.h"

namespace printcast::transport {

// The derived class implements session(): connect, set up, call publishing() once the server
// takes the stream, send until an error, and return it (or anything when stopping_). The
// derived destructor must call stopThread() first: session() uses the derived object.
class PublisherLoop {
 public:
  virtual ~PublisherLoop();
  PublisherLoop(const PublisherLoop&) = delete;
  PublisherLoop& operator=(const PublisherLoop&) = delete;
  PublishStatus status() const;
  // Start the I/O thread (once, after construction). Io when the eventfds could not be made.
  hal::Status startThread();

 protected:
  // `shownUrl`: the URL without secrets, for status and messages. After a failed session the
  // loop waits firstRetry, doubling up to maxRetry; after one that was publishing, firstRetry.
  PublisherLoop(std::string shownUrl, std::chrono::milliseconds firstRetry,
                std::chrono::milliseconds maxRetry);
  void stopThread();
  virtual hal::Status session() = 0;

  void setState(std::string state);
  void publishing();  // counts the session, state "publishing"
  void sent(size_t bytes);
  // Subscribe `queue` (made by the caller's stream) to wake the loop: its pushes make data_
  // readable. Drain with drainData() after a poll.
  void wakeOnData(ClientQueue& queue) const;
  void drainData() const;

  const std::string shownUrl_;
  const int wake_;  // readable once stopping: poll it with the sockets
  const int data_;  // readable when a subscribed queue got data
  std::atomic<bool> stopping_{false};

 private:
  void run();

  const std::chrono::milliseconds firstRetry_, maxRetry_;
  bool published_ = false;  // I/O thread: this session got to publishing()
  std::thread thread_;
  mutable std::mutex statusMutex_;
  PublishStatus status_;
};

}  // namespace printcast::transport
