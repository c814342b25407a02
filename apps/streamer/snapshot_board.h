// SPDX-License-Identifier: MIT
// SnapshotBoard: the newest JPEG of a source (the camera, the printer's screen) and the requests
// waiting for the next one (/snapshot, /display/snapshot, the timelapse's captures).
#pragma once

#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "printcast/hal/packet.h"
#include "printcast/hal/result.h"
#include "printcast/transport/http_server.h"

namespace printcast::streamer {

// A JPEG as an HTTP answer: image/jpeg, no caching, X-Timestamp (the capture time, seconds of
// CLOCK_MONOTONIC).
transport::HttpResponse jpegResponse(const hal::PacketPtr& jpeg);

// Threading: every call from any thread. Deferred answers and next()'s promises are completed on
// the thread that publishes (or expires) outside the lock.
class SnapshotBoard {
 public:
  // A JPEG at most `maxAge` old answers at once; otherwise the request waits for the next one
  // (a deferred response, answered by publish() or with 503 by expire()/failAll()).
  transport::HttpResponse request(std::chrono::milliseconds maxAge);
  bool hasWaiters() const;
  // The next JPEG published (never one from before the call), for in-process consumers such as
  // the timelapse. Blocks up to `timeout`. Errors: Timeout (none came, or the source is stopping).
  hal::Result<hal::PacketPtr> next(std::chrono::milliseconds timeout);
  // Answer every waiter with `jpeg` and keep it as the newest.
  void publish(const hal::PacketPtr& jpeg);
  // Answer requests waiting longer than `timeout` with 503 and `reason`.
  void expire(std::chrono::milliseconds timeout, const std::string& reason);
  // Answer every request with 503 and `reason`; next() callers get Timeout.
  void failAll(const std::string& reason);

 private:
  struct Waiter {
    std::shared_ptr<transport::DeferredResponse> response;
    hal::Timestamp since;
  };
  mutable std::mutex mutex_;
  hal::PacketPtr latest_;
  hal::Timestamp publishedAt_{};
  std::vector<Waiter> waiters_;
  std::vector<std::shared_ptr<std::promise<hal::PacketPtr>>> packetWaiters_;
};

}  // namespace printcast::streamer
