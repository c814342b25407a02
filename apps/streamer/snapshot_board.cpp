// SPDX-License-Identifier: MIT
#include "snapshot_board.h"

#include <fmt/format.h>

namespace printcast::streamer {

using hal::Clock;
using transport::DeferredResponse;
using transport::HttpResponse;

HttpResponse jpegResponse(const hal::PacketPtr& jpeg) {
  HttpResponse r;
  r.contentType = "image/jpeg";
  r.body.assign(reinterpret_cast<const char*>(jpeg->data.data()), jpeg->data.size());
  r.headers.emplace_back("Cache-Control", "no-store, no-cache, must-revalidate, max-age=0");
  r.headers.emplace_back(
      "X-Timestamp",
      fmt::format("{:.6f}", std::chrono::duration<double>(jpeg->pts.time_since_epoch()).count()));
  return r;
}

HttpResponse SnapshotBoard::request(std::chrono::milliseconds maxAge) {
  std::lock_guard lock(mutex_);
  if (latest_ && Clock::now() - publishedAt_ <= maxAge) return jpegResponse(latest_);
  HttpResponse r;
  r.deferred = std::make_shared<DeferredResponse>();
  waiters_.push_back(Waiter{r.deferred, Clock::now()});
  return r;
}

bool SnapshotBoard::hasWaiters() const {
  std::lock_guard lock(mutex_);
  return !waiters_.empty() || !packetWaiters_.empty();
}

hal::Result<hal::PacketPtr> SnapshotBoard::next(std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<hal::PacketPtr>>();
  auto future = promise->get_future();
  {
    std::lock_guard lock(mutex_);
    packetWaiters_.push_back(promise);
  }
  if (future.wait_for(timeout) == std::future_status::ready) {
    auto packet = future.get();
    if (packet) return packet;
    return hal::Result<hal::PacketPtr>(hal::Errc::Timeout, "no JPEG: the source is stopping");
  }
  std::lock_guard lock(mutex_);
  std::erase(packetWaiters_, promise);
  return hal::Result<hal::PacketPtr>(hal::Errc::Timeout,
                                     fmt::format("no JPEG within {} ms", timeout.count()));
}

void SnapshotBoard::publish(const hal::PacketPtr& jpeg) {
  std::vector<Waiter> waiters;
  std::vector<std::shared_ptr<std::promise<hal::PacketPtr>>> packetWaiters;
  {
    std::lock_guard lock(mutex_);
    latest_ = jpeg;
    publishedAt_ = Clock::now();
    waiters.swap(waiters_);
    packetWaiters.swap(packetWaiters_);
  }
  for (auto& w : waiters) w.response->complete(jpegResponse(jpeg));
  for (auto& p : packetWaiters) p->set_value(jpeg);
}

void SnapshotBoard::expire(std::chrono::milliseconds timeout, const std::string& reason) {
  std::vector<Waiter> expired;
  {
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    std::erase_if(waiters_, [&](const Waiter& w) {
      if (now - w.since < timeout) return false;
      expired.push_back(w);
      return true;
    });
  }
  for (auto& w : expired) w.response->complete(HttpResponse::error(503, reason));
}

void SnapshotBoard::failAll(const std::string& reason) {
  expire(std::chrono::milliseconds(0), reason);
  std::vector<std::shared_ptr<std::promise<hal::PacketPtr>>> packetWaiters;
  {
    std::lock_guard lock(mutex_);
    packetWaiters.swap(packetWaiters_);
  }
  for (auto& p : packetWaiters) p->set_value(nullptr);
}

}  // namespace printcast::streamer
