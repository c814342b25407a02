// SPDX-License-Identifier: MIT
// WebSocketHub: one poll() thread serving every upgraded WebSocket connection.
#include "printcast/transport/websocket_hub.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "printcast/hal/thread_name.h"
#include "printcast/transport/websocket.h"

namespace printcast::transport {
namespace {

using SteadyClock = std::chrono::steady_clock;

// The eventfd that wakes the I/O thread. Shared with every queue's wake-up callback, which may
// still run (outside the queue lock) after the hub let go of the queue: the fd lives as long as
// any callback can.
struct Waker {
  int fd = -1;
  ~Waker() {
    if (fd >= 0) ::close(fd);
  }
  void wake() const {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(fd, &one, sizeof one);  // EAGAIN: already signalled
  }
  void drain() const {
    uint64_t value = 0;
    [[maybe_unused]] const ssize_t n = ::read(fd, &value, sizeof value);
  }
};

// Follows the frames we send (queue bytes are complete unmasked server frames) so control frames
// are only ever inserted between two frames, never inside one (RFC 6455 5.4).
class FrameBoundary {
 public:
  bool atBoundary() const { return payloadLeft_ == 0 && headerHave_ == 0; }
  // How many bytes can be sent before the next boundary (0 at a boundary).
  size_t untilBoundary() const {
    if (payloadLeft_ > 0) return static_cast<size_t>(std::min<uint64_t>(payloadLeft_, SIZE_MAX));
    if (headerHave_ == 0) return 0;
    return headerNeed() - headerHave_;
  }
  void account(const uint8_t* data, size_t size) {
    while (size > 0) {
      if (payloadLeft_ > 0) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(payloadLeft_, size));
        payloadLeft_ -= n;
        data += n;
        size -= n;
        continue;
      }
      header_[headerHave_++] = *data++;
      --size;
      if (headerHave_ >= 2 && headerHave_ == headerNeed()) {
        const uint8_t len7 = header_[1] & 0x7F;
        uint64_t length = len7;
        if (len7 >= 126) {
          length = 0;
          for (size_t i = 2; i < headerHave_; ++i) length = (length << 8) | header_[i];
        }
        payloadLeft_ = length;
        headerHave_ = 0;
      }
    }
  }

 private:
  size_t headerNeed() const {
    if (headerHave_ < 2) return 2;
    const uint8_t len7 = header_[1] & 0x7F;  // server frames are never masked
    return len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
  }
  uint8_t header_[10] = {};
  size_t headerHave_ = 0;
  uint64_t payloadLeft_ = 0;
};

struct Session {
  std::unique_ptr<UpgradedConnection> connection;
  std::shared_ptr<ClientQueue> queue;
  std::function<void()> onClose;
  WebSocketHub::MessageHandler onMessage;
  ws::FrameParser parser;
  std::vector<uint8_t> out;  // bytes being sent
  size_t outPos = 0;
  bool outIsClose = false;
  std::deque<std::vector<uint8_t>> control;  // Pong/Close frames waiting for a frame boundary
  FrameBoundary boundary;
  bool wantWrite = false;         // the socket refused bytes: poll for POLLOUT
  bool closeQueued = false;       // our Close is queued: no more data frames
  bool closeSent = false;         // our Close is on the wire
  bool finishAfterClose = false;  // the peer closed first: close the socket once ours is sent
  bool done = false;
  SteadyClock::time_point closeDeadline{};

  Session(std::unique_ptr<UpgradedConnection> c, std::shared_ptr<ClientQueue> q, std::function<void()> cb,
          WebSocketHub::MessageHandler m, size_t maxMessage)
      : connection(std::move(c)),
        queue(std::move(q)),
        onClose(std::move(cb)),
        onMessage(std::move(m)),
        parser(ws::FrameParser::Role::Server, maxMessage) {}
  int fd() const { return connection->fd(); }
};

// What upgradeResponse() hands the server: runs onClose if the upgrade never happens.
struct PendingUpgrade {
  PendingUpgrade(std::shared_ptr<ClientQueue> q, std::function<void()> cb, WebSocketHub::MessageHandler m)
      : queue(std::move(q)), onClose(std::move(cb)), onMessage(std::move(m)) {}
  PendingUpgrade(const PendingUpgrade&) = delete;
  PendingUpgrade& operator=(const PendingUpgrade&) = delete;
  std::shared_ptr<ClientQueue> queue;
  std::function<void()> onClose;
  WebSocketHub::MessageHandler onMessage;
  ~PendingUpgrade() {
    if (onClose) onClose();
  }
};

}  // namespace

struct WebSocketHub::Impl {
  WebSocketHubConfig config;
  std::shared_ptr<Waker> waker = std::make_shared<Waker>();
  std::thread thread;
  mutable std::mutex mutex;
  std::vector<std::unique_ptr<Session>> incoming;  // added, not yet taken by the I/O thread
  bool stopping = false;                           // under mutex
  std::atomic<size_t> connections{0};
  std::atomic<uint64_t> pings{0};
  std::atomic<uint64_t> protocolErrors{0};

  void run();
  void startClose(Session& s, uint16_t code, std::string_view reason) const;
  void onReadable(Session& s);
  void processEvents(Session& s);
  void flush(Session& s);
  std::vector<uint8_t> scratch;  // I/O thread only: bytes on their way from a queue to a socket
  static void finish(Session& s);
};

void WebSocketHub::Impl::startClose(Session& s, uint16_t code, std::string_view reason) const {
  if (s.closeQueued) return;
  s.closeQueued = true;
  s.control.push_back(ws::closeFrame(code, reason));
  s.closeDeadline = SteadyClock::now() + config.closeTimeout;
}

void WebSocketHub::Impl::onReadable(Session& s) {
  uint8_t buf[16 * 1024];
  while (!s.done) {
    const ssize_t n = ::recv(s.fd(), buf, sizeof buf, 0);
    if (n == 0) {  // the peer closed TCP (with or without a Close frame)
      s.done = true;
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) s.done = true;
      return;
    }
    s.parser.feed({buf, static_cast<size_t>(n)});
    processEvents(s);
    if (s.done) return;
    if (s.parser.stopped()) {
      // Nothing more will be parsed; keep reading only to notice the peer's TCP close.
      if (static_cast<size_t>(n) < sizeof buf) return;
    }
  }
}

void WebSocketHub::Impl::processEvents(Session& s) {
  while (auto event = s.parser.next()) {
    switch (event->kind) {
      case ws::Event::Kind::Message:
        if (s.onMessage && !s.closeQueued) s.onMessage(event->opcode, std::move(event->payload));
        break;
      case ws::Event::Kind::Pong: break;
      case ws::Event::Kind::Ping:
        if (!s.closeQueued) {
          ++pings;
          // Only the newest Ping needs an answer (RFC 6455 5.5.3): keep the queue short.
          if (s.control.size() >= 4) s.control.pop_front();
          s.control.push_back(ws::frame(ws::Opcode::Pong, event->payload));
        }
        break;
      case ws::Event::Kind::Close:
        if (s.closeSent) {  // the answer to our Close: done
          s.done = true;
          return;
        }
        // Echo the code (RFC 6455 5.5.1), then close the socket once it is sent.
        startClose(s, event->closeCode, {});
        s.finishAfterClose = true;
        break;
      case ws::Event::Kind::Error:
        ++protocolErrors;
        spdlog::debug("{}: closing a client with {}: {}", config.name, event->closeCode, event->reason);
        // Fail the connection (RFC 6455 7.1.7): our Close, then a lingering close: what the peer
        // still sends is read and discarded (the parser has stopped) until it closes or
        // closeTimeout passes. Closing at once would reset a peer that is mid-message (a camera
        // pushing a message too big) before it could read the Close and its code.
        startClose(s, event->closeCode, event->reason);
        break;
    }
  }
}

void WebSocketHub::Impl::flush(Session& s) {
  while (!s.done) {
    if (s.outPos == s.out.size()) {
      if (s.out.capacity() > 4096) {
        std::vector<uint8_t>().swap(s.out);  // a stall's leftover is sent: give the memory back
      } else {
        s.out.clear();
      }
      s.outPos = 0;
      if (s.outIsClose) {
        s.outIsClose = false;
        s.closeSent = true;
        if (s.finishAfterClose) s.done = true;
        // Our own Close: wait for the peer's (onReadable) until closeDeadline.
        return;
      }
      if (s.closeSent) return;
      const bool wantBoundary = s.closeQueued || !s.control.empty();
      if (wantBoundary && s.boundary.atBoundary()) {
        if (s.control.empty()) return;
        s.out = std::move(s.control.front());
        s.control.pop_front();
        s.outPos = 0;
        s.outIsClose = (s.out[0] & 0x0F) == static_cast<uint8_t>(ws::Opcode::Close);
      } else {
        // Data goes straight from the shared scratch buffer to the socket; only what the socket
        // refuses is kept per client (so idle and fast clients hold no write buffer).
        size_t max = config.writeChunkBytes;
        if (wantBoundary) max = std::min(max, s.boundary.untilBoundary());
        const size_t n = s.queue->read(scratch.data(), max, {});
        if (n == ClientQueue::kEnd) {
          startClose(s, ws::close_code::kGoingAway, "stream ended");
          continue;
        }
        if (n == 0) return;  // nothing pending: the queue wakes us on its next push
        s.boundary.account(scratch.data(), n);
        size_t sent = 0;
        while (sent < n) {
          const ssize_t w = ::send(s.fd(), scratch.data() + sent, n - sent, MSG_NOSIGNAL);
          if (w >= 0) {
            sent += static_cast<size_t>(w);
          } else if (errno != EINTR) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
              s.done = true;  // EPIPE, ECONNRESET: the client is gone
              return;
            }
            break;
          }
        }
        if (sent < n) {
          s.out.assign(scratch.data() + sent, scratch.data() + n);
          s.outPos = 0;
          s.wantWrite = true;
          return;
        }
        continue;
      }
    }
    const ssize_t w = ::send(s.fd(), s.out.data() + s.outPos, s.out.size() - s.outPos, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        s.wantWrite = true;
        return;
      }
      s.done = true;  // EPIPE, ECONNRESET: the client is gone
      return;
    }
    s.wantWrite = false;
    s.outPos += static_cast<size_t>(w);
  }
}

void WebSocketHub::Impl::finish(Session& s) {
  s.queue->setWakeup(nullptr);
  s.connection.reset();  // MHD_upgrade_action(CLOSE)
  if (s.onClose) {
    auto cb = std::move(s.onClose);
    cb();
  }
}

void WebSocketHub::Impl::run() {
  std::vector<std::unique_ptr<Session>> sessions;
  std::vector<pollfd> fds;
  bool stopSeen = false;
  SteadyClock::time_point stopDeadline{};
  while (true) {
    {
      std::lock_guard lock(mutex);
      for (auto& s : incoming) {
        processEvents(*s);  // the bytes that came with the upgrade
        sessions.push_back(std::move(s));
      }
      incoming.clear();
      if (stopping && !stopSeen) {
        stopSeen = true;
        stopDeadline = SteadyClock::now() + config.closeTimeout;
      }
    }
    const auto now = SteadyClock::now();
    for (auto& s : sessions) {
      if (stopSeen) startClose(*s, ws::close_code::kGoingAway, "server stopping");
      if (!s->wantWrite) flush(*s);
      if (s->closeQueued && now >= s->closeDeadline && s->closeDeadline != SteadyClock::time_point{}) {
        s->done = true;  // the peer never answered our Close
      }
    }
    for (auto& s : sessions) {
      if (s->done) finish(*s);
    }
    std::erase_if(sessions, [](const auto& s) { return s->done; });
    connections = sessions.size();
    if (stopSeen && (sessions.empty() || now >= stopDeadline)) {
      for (auto& s : sessions) finish(*s);
      connections = 0;
      return;
    }

    fds.clear();
    fds.push_back(pollfd{waker->fd, POLLIN, 0});
    int timeoutMs = -1;
    for (auto& s : sessions) {
      auto events = static_cast<short>(POLLIN);
      if (s->wantWrite) events = static_cast<short>(events | POLLOUT);
      fds.push_back(pollfd{s->fd(), events, 0});
      if (s->closeQueued) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(s->closeDeadline - now).count();
        timeoutMs = timeoutMs < 0 ? static_cast<int>(std::max<int64_t>(1, left + 1))
                                  : std::min(timeoutMs, static_cast<int>(std::max<int64_t>(1, left + 1)));
      }
    }
    if (::poll(fds.data(), fds.size(), timeoutMs) < 0 && errno != EINTR) {
      spdlog::error("{}: poll: {}", config.name, std::strerror(errno));
    }
    if ((fds[0].revents & POLLIN) != 0) waker->drain();
    for (size_t i = 0; i < sessions.size(); ++i) {
      Session& s = *sessions[i];
      const short revents = fds[i + 1].revents;
      if ((revents & (POLLIN | POLLHUP | POLLERR)) != 0) onReadable(s);
      if ((revents & POLLOUT) != 0) s.wantWrite = false;
    }
  }
}

// ---------------------------------------------------------------------------------------------

WebSocketHub::WebSocketHub(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WebSocketHub::~WebSocketHub() { stop(); }

hal::Result<std::unique_ptr<WebSocketHub>> WebSocketHub::start(WebSocketHubConfig config) {
  auto impl = std::make_unique<Impl>();
  impl->config = std::move(config);
  impl->config.writeChunkBytes = std::max<size_t>(impl->config.writeChunkBytes, 1);
  impl->scratch.resize(impl->config.writeChunkBytes);
  impl->waker->fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl->waker->fd < 0) return hal::errnoError(impl->config.name + ": eventfd");
  Impl* raw = impl.get();
  try {
    impl->thread = std::thread([raw] {
      hal::nameThisThread("websocket");
      raw->run();
    });
  } catch (const std::system_error& e) {
    return hal::Error{hal::Errc::Io, e.code().value(), impl->config.name + ": thread: " + e.what()};
  }
  return std::unique_ptr<WebSocketHub>(new WebSocketHub(std::move(impl)));
}

HttpResponse handshakeRefusal(const hal::Error& error, std::string_view context) {
  const bool upgradeRequired = error.code == hal::Errc::Unsupported;
  HttpResponse r = HttpResponse::error(upgradeRequired ? 426 : 400, std::string(context) + error.message);
  if (upgradeRequired) {
    r.headers.emplace_back("Upgrade", "websocket");
    r.headers.emplace_back("Sec-WebSocket-Version", "13");
  }
  return r;
}

HttpResponse WebSocketHub::upgradeResponse(const std::string& acceptValue, std::shared_ptr<ClientQueue> queue,
                                           std::function<void()> onClose, MessageHandler onMessage) {
  HttpResponse r;
  r.status = 101;
  r.customCors = true;  // not a resource a page reads: no CORS header on a 101
  r.headers.emplace_back("Upgrade", "websocket");
  r.headers.emplace_back("Sec-WebSocket-Accept", acceptValue);
  auto pending = std::make_shared<PendingUpgrade>(std::move(queue), std::move(onClose), std::move(onMessage));
  r.upgrade = [this, pending](std::unique_ptr<UpgradedConnection> connection) {
    add(std::move(connection), pending->queue, std::move(pending->onClose), std::move(pending->onMessage));
    pending->onClose = nullptr;
  };
  return r;
}

void WebSocketHub::add(std::unique_ptr<UpgradedConnection> connection, std::shared_ptr<ClientQueue> queue,
                       std::function<void()> onClose, MessageHandler onMessage) {
  auto session = std::make_unique<Session>(std::move(connection), std::move(queue), std::move(onClose),
                                           std::move(onMessage), impl_->config.maxClientMessageBytes);
  if (!session->connection->initialBytes().empty()) session->parser.feed(session->connection->initialBytes());
  {
    std::unique_lock lock(impl_->mutex);
    if (impl_->stopping) {
      lock.unlock();
      Impl::finish(*session);
      return;
    }
    session->queue->setWakeup([waker = impl_->waker] { waker->wake(); });
    impl_->incoming.push_back(std::move(session));
  }
  impl_->waker->wake();
}

WebSocketHubStats WebSocketHub::stats() const {
  return {impl_->connections.load(), impl_->pings.load(), impl_->protocolErrors.load()};
}

void WebSocketHub::stop() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stopping) return;
    impl_->stopping = true;
  }
  impl_->waker->wake();
  if (impl_->thread.joinable()) impl_->thread.join();
  std::vector<std::unique_ptr<Session>> left;
  {
    std::lock_guard lock(impl_->mutex);
    left.swap(impl_->incoming);
  }
  for (auto& s : left) Impl::finish(*s);
}

}  // namespace printcast::transport
