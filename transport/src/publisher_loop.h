// SPDX-License-Identifier: MIT
// PublisherLoop: what the RTSP and RTMP publishers share: the I/O thread that runs one session
// after another with backoff, the eventfds it waits on (stop, and "the stream queue has data"),
// and the status. Internal to transport.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "printcast/hal/result.h"
#include "printcast/transport/fanout.h"
#include "printcast/transport/publish_status.h"

namespace printcast::transport {

// Each round the loop connects to the server (connectTcp, abandoned when stopping) and calls
// session() with the connected socket; the derived class sets up, calls publishing() once the
// server takes the stream, sends until an error, and returns it (or anything when stopping_).
// After session() the loop unsubscribes the queue watch() registered and closes the socket. The
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
  // `host`:`port` is the server; `connectTimeout` bounds each connect.
  PublisherLoop(std::string shownUrl, std::string host, uint16_t port,
                std::chrono::milliseconds connectTimeout, std::chrono::milliseconds firstRetry,
                std::chrono::milliseconds maxRetry);
  void stopThread();
  // One session on `fd` (non-blocking, connected; the loop closes it afterwards).
  virtual hal::Status session(int fd) = 0;

  void setState(std::string state);
  void publishing();  // counts the session, state "publishing"
  void sent(size_t bytes);
  // `queue`, just subscribed to `stream`, wakes the loop (its pushes make data_ readable; drain
  // with drainData() after a poll) and is unsubscribed when the session ends. Returns it.
  std::shared_ptr<ClientQueue> watch(Fanout& stream, std::shared_ptr<ClientQueue> queue);
  void drainData() const;

  const std::string shownUrl_;
  const int wake_;  // readable once stopping: poll it with the sockets
  const int data_;  // readable when a subscribed queue got data
  std::atomic<bool> stopping_{false};

 private:
  void run();

  const std::string host_;
  const uint16_t port_;
  const std::chrono::milliseconds connectTimeout_, firstRetry_, maxRetry_;
  Fanout* watched_ = nullptr;  // I/O thread: the session's subscription
  std::shared_ptr<ClientQueue> queue_;
  bool published_ = false;  // I/O thread: this session got to publishing()
  std::thread thread_;
  mutable std::mutex statusMutex_;
  PublishStatus status_;
};

}  // namespace printcast::transport
