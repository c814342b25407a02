// SPDX-License-Identifier: MIT
// PublisherLoop (see publisher_loop.h).
#include "publisher_loop.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

#include "printcast/hal/thread_name.h"
#include "printcast/transport/tcp_connect.h"

namespace printcast::transport {

PublisherLoop::PublisherLoop(std::string shownUrl, std::string host, uint16_t port,
                             std::chrono::milliseconds connectTimeout, std::chrono::milliseconds firstRetry,
                             std::chrono::milliseconds maxRetry)
    : shownUrl_(std::move(shownUrl)),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      data_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      host_(std::move(host)),
      port_(port),
      connectTimeout_(connectTimeout),
      firstRetry_(firstRetry),
      maxRetry_(std::max(firstRetry, maxRetry)) {
  status_.url = shownUrl_;
  status_.state = "connecting";
}

PublisherLoop::~PublisherLoop() {
  stopThread();
  if (wake_ >= 0) ::close(wake_);
  if (data_ >= 0) ::close(data_);
}

hal::Status PublisherLoop::startThread() {
  if (wake_ < 0 || data_ < 0) return hal::errnoError("publisher: eventfd");
  thread_ = std::thread([this] {
    hal::nameThisThread("publish");
    run();
  });
  return {};
}

void PublisherLoop::stopThread() {
  stopping_ = true;
  const uint64_t one = 1;
  if (wake_ >= 0) (void)!::write(wake_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

PublishStatus PublisherLoop::status() const {
  std::lock_guard lock(statusMutex_);
  return status_;
}

void PublisherLoop::setState(std::string state) {
  std::lock_guard lock(statusMutex_);
  status_.state = std::move(state);
}

void PublisherLoop::publishing() {
  published_ = true;
  std::lock_guard lock(statusMutex_);
  ++status_.sessions;
  status_.state = "publishing";
}

void PublisherLoop::sent(size_t bytes) {
  std::lock_guard lock(statusMutex_);
  status_.bytesSent += bytes;
}

std::shared_ptr<ClientQueue> PublisherLoop::watch(Fanout& stream, std::shared_ptr<ClientQueue> queue) {
  const int fd = data_;
  queue->setWakeup([fd] {
    const uint64_t one = 1;
    (void)!::write(fd, &one, sizeof one);
  });
  watched_ = &stream;
  queue_ = queue;
  return queue;
}

void PublisherLoop::drainData() const {
  uint64_t v = 0;
  (void)!::read(data_, &v, sizeof v);
}

void PublisherLoop::run() {
  auto backoff = firstRetry_;
  while (!stopping_) {
    published_ = false;
    setState("connecting");
    hal::Status st;
    if (auto fd = connectTcp(host_, port_, connectTimeout_, wake_); !fd) {
      st = hal::Error{fd.code(), 0, shownUrl_ + ": " + fd.error().message};
    } else {
      st = session(*fd);
      if (queue_) watched_->unsubscribe(queue_);
      queue_.reset();
      ::close(*fd);
    }
    if (stopping_) return;
    if (published_) backoff = firstRetry_;  // the server was there: try again soon
    const std::string reason = st.ok() ? std::string("ended") : st.error().describe();
    {
      std::lock_guard lock(statusMutex_);
      ++status_.failures;
      status_.lastError = reason;
      status_.state =
          fmt::format("retrying in {} s: {}", std::max<long long>(1, (backoff.count() + 999) / 1000), reason);
    }
    pollfd p{wake_, POLLIN, 0};
    (void)::poll(&p, 1, static_cast<int>(backoff.count()));
    backoff = std::min(backoff * 2, maxRetry_);
  }
}

}  // namespace printcast::transport
