// SPDX-License-Identifier: MIT
// gkapi client for Anycubic's native timelapse requests (see anycubic_rpc.h).
#include "anycubic_rpc.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "printcast/hal/thread_name.h"
#include "printcast/transport/tcp_connect.h"

namespace printcast::streamer {

namespace {

using Clock = std::chrono::steady_clock;
constexpr char kEtx = 0x03;
constexpr size_t kMaxMessageBytes = 1u << 20;
constexpr std::chrono::milliseconds kConnectTimeout{3000};

}  // namespace

struct GkapiVideoClient::Impl {
  GkapiVideoConfig config;
  AnycubicTimelapseHandler& handler;
  std::thread thread;
  std::atomic<bool> running{false};
  int wakeFd = -1;

  mutable std::mutex mutex;  // guards st
  State st;

  // I/O thread only.
  int fd = -1;
  std::string in;
  bool skipping = false;  // inside an oversized message: drop bytes up to the next 0x03

  Impl(GkapiVideoConfig c, AnycubicTimelapseHandler& h) : config(std::move(c)), handler(h) {}

  void wake() {
    const uint64_t one = 1;
    if (wakeFd >= 0) (void)!::write(wakeFd, &one, sizeof one);
  }

  // Wait up to `d` unless stopping.
  void sleepFor(std::chrono::milliseconds d) {
    const auto until = Clock::now() + d;
    while (running) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
      if (left <= 0) return;
      pollfd p{wakeFd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) > 0) {
        uint64_t v;
        (void)!::read(wakeFd, &v, sizeof v);
      }
    }
  }

  // One complete message: the handler's replies go back on the connection.
  bool dispatch(std::string_view message, std::string& error) {
    {
      std::lock_guard lock(mutex);
      ++st.messages;
    }
    for (const auto& reply : handler.handleRpcMessage(message)) {
      std::string framed = reply;
      framed.push_back(kEtx);
      if (auto sent = transport::sendAll(fd, framed.data(), framed.size(), config.sendTimeout); !sent) {
        error = "sending a reply: " + sent.error().describe();
        return false;
      }
      std::lock_guard lock(mutex);
      ++st.replies;
    }
    return true;
  }

  // Read what is there; false when the connection ended.
  bool readSome(std::string& error) {
    char buf[16384];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) {
      error = "the firmware service closed the connection";
      return false;
    }
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return true;
      error = fmt::format("read: {}", std::strerror(errno));
      return false;
    }
    std::string_view chunk(buf, static_cast<size_t>(n));
    while (!chunk.empty()) {
      const size_t etx = chunk.find(kEtx);
      if (skipping) {
        if (etx == std::string_view::npos) return true;
        skipping = false;
        chunk.remove_prefix(etx + 1);
        continue;
      }
      if (etx == std::string_view::npos) {
        in.append(chunk);
        if (in.size() > kMaxMessageBytes) {
          in.clear();
          skipping = true;
          std::lock_guard lock(mutex);
          ++st.oversized;
        }
        return true;
      }
      bool ok;
      if (in.empty()) {
        ok = dispatch(chunk.substr(0, etx), error);
      } else {
        in.append(chunk.substr(0, etx));
        const std::string message = std::move(in);
        in.clear();
        if (message.size() > kMaxMessageBytes) {
          std::lock_guard lock(mutex);
          ++st.oversized;
          ok = true;
        } else {
          ok = dispatch(message, error);
        }
      }
      if (!ok) return false;
      chunk.remove_prefix(etx + 1);
    }
    return true;
  }

  void run() {
    auto backoff = config.firstRetry;
    std::string lastLogged;
    while (running) {
      std::string error;
      auto connected = transport::connectTcp(config.host, config.port, kConnectTimeout, wakeFd);
      if (connected) {
        fd = *connected;
        in.clear();
        skipping = false;
        {
          std::lock_guard lock(mutex);
          st.connected = true;
          ++st.connections;
          st.retryIn = std::chrono::milliseconds(0);
        }
        spdlog::info("anycubic timelapse: listening to the firmware service on {}:{}", config.host,
                     config.port);
        lastLogged.clear();
        backoff = config.firstRetry;
        while (running) {
          pollfd p[2] = {{fd, POLLIN, 0}, {wakeFd, POLLIN, 0}};
          if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            error = std::strerror(errno);
            break;
          }
          if (p[1].revents & POLLIN) {
            uint64_t v;
            (void)!::read(wakeFd, &v, sizeof v);
          }
          if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (!readSome(error)) break;
          }
        }
        ::close(fd);
        fd = -1;
      } else {
        error = connected.error().describe();
      }
      if (!running) break;
      {
        std::lock_guard lock(mutex);
        st.connected = false;
        st.lastError = error;
        st.retryIn = backoff;
      }
      if (error != lastLogged) {
        spdlog::warn("anycubic timelapse: firmware service {}:{}: {}; retrying with backoff up to {:.1f} s",
                     config.host, config.port, error, static_cast<double>(config.maxRetry.count()) / 1000.0);
        lastLogged = error;
      }
      sleepFor(backoff);
      backoff = std::min(backoff * 2, config.maxRetry);
    }
    std::lock_guard lock(mutex);
    st.connected = false;
  }
};

GkapiVideoClient::GkapiVideoClient(GkapiVideoConfig config, AnycubicTimelapseHandler& handler)
    : impl_(std::make_unique<Impl>(std::move(config), handler)) {}

GkapiVideoClient::~GkapiVideoClient() { stop(); }

void GkapiVideoClient::start() {
  if (impl_->running.exchange(true)) return;
  impl_->wakeFd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  impl_->thread = std::thread([this] {
    hal::nameThisThread("gkapi");
    impl_->run();
  });
}

void GkapiVideoClient::stop() {
  if (!impl_->running.exchange(false)) return;
  impl_->wake();
  if (impl_->thread.joinable()) impl_->thread.join();
  if (impl_->wakeFd >= 0) ::close(impl_->wakeFd);
  impl_->wakeFd = -1;
}

GkapiVideoClient::State GkapiVideoClient::state() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->st;
}

}  // namespace printcast::streamer
