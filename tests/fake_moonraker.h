// SPDX-License-Identifier: MIT
// A fake Moonraker for tests: the real JSON-RPC 2.0 protocol over a unix socket (messages end with
// byte 0x03) and over WebSocket ws://127.0.0.1:<port>/websocket (RFC 6455, server frames
// unmasked), answering what printcast asks with the shapes of Moonraker's documented API
// (https://moonraker.readthedocs.io/en/latest/web_api/):
//   server.connection.identify -> {"connection_id": N}
//   server.info                -> {"klippy_connected", "klippy_state", "components", ...}
//   printer.objects.subscribe  -> {"eventtime": t, "status": {<requested objects and fields>}},
//                                 or while Klippy is "not ready": error {"code": 503,
//                                 "message": "Klippy Disconnected"}
//   server.webcams.post_item   -> {"webcam": {...}} (recorded for the test)
//   anything else              -> error {"code": -32601, "message": "Method not found"}
// and pushes {"jsonrpc":"2.0","method":"notify_status_update","params":[{changes}, eventtime]}
// to subscribed clients, notify_klippy_ready when Klippy becomes ready.
// restart() closes every connection and the listening sockets for a while, like a Moonraker
// service restart. Threading: one server thread; the public calls are thread-safe.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "printcast/transport/websocket.h"

namespace printcast::testing {

class FakeMoonraker {
 public:
  // `socketPath` non-empty: listen there; `websocket`: also listen on a free TCP port.
  FakeMoonraker(std::string socketPath, bool websocket) : socketPath_(std::move(socketPath)), ws_(websocket) {
    status_ = {{"print_stats",
                {{"state", "standby"},
                 {"filename", ""},
                 {"info", {{"total_layer", nullptr}, {"current_layer", nullptr}}}}},
               {"virtual_sdcard", {{"current_layer", nullptr}, {"total_layer", nullptr}}}};
    listen();
    thread_ = std::thread([this] { run(); });
  }
  ~FakeMoonraker() {
    running_ = false;
    if (thread_.joinable()) thread_.join();
    closeAll();
    if (!socketPath_.empty()) ::unlink(socketPath_.c_str());
  }

  uint16_t port() const { return tcpPort_; }

  // Apply `delta` ({"print_stats": {...}, "virtual_sdcard": {...}}) and notify subscribers.
  void update(const nlohmann::json& delta) {
    std::lock_guard lock(mutex_);
    for (const auto& [object, fields] : delta.items())
      for (const auto& [k, v] : fields.items()) status_[object][k] = v;
    for (auto& c : clients_) {
      if (c->subscribed)
        send(*c, {{"jsonrpc", "2.0"}, {"method", "notify_status_update"}, {"params", {delta, eventtime()}}});
    }
  }
  void setKlippyReady(bool ready) {
    std::lock_guard lock(mutex_);
    const bool was = klippyReady_;
    klippyReady_ = ready;
    if (ready && !was)
      for (auto& c : clients_) send(*c, {{"jsonrpc", "2.0"}, {"method", "notify_klippy_ready"}});
  }
  // Drop every connection and stop listening for `downtime` (a Moonraker service restart).
  void restart(std::chrono::milliseconds downtime) {
    {
      std::lock_guard lock(mutex_);
      closeAll();
      downUntil_ = std::chrono::steady_clock::now() + downtime;
      ++restarts_;
    }
  }
  // Wait until `n` subscribe requests were answered with a status (any connection).
  bool waitForSubscribes(int n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return subscribes_ >= n; });
  }
  bool waitForCall(const std::string& method, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return calls_.count(method) != 0; });
  }
  std::vector<nlohmann::json> calls(const std::string& method) {
    std::lock_guard lock(mutex_);
    auto it = calls_.find(method);
    return it == calls_.end() ? std::vector<nlohmann::json>{} : it->second;
  }
  int subscribes() {
    std::lock_guard lock(mutex_);
    return subscribes_;
  }
  int connections() {
    std::lock_guard lock(mutex_);
    return static_cast<int>(clients_.size());
  }

 private:
  struct Client {
    int fd = -1;
    bool websocket = false;
    bool handshakeDone = false;
    bool subscribed = false;
    std::string in;
    std::unique_ptr<transport::ws::FrameParser> parser;
  };

  static double eventtime() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }

  void listen() {
    if (!socketPath_.empty()) {
      ::unlink(socketPath_.c_str());
      unixFd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::strncpy(addr.sun_path, socketPath_.c_str(), sizeof addr.sun_path - 1);
      if (::bind(unixFd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
          ::listen(unixFd_, 8) != 0) {
        ::close(unixFd_);
        unixFd_ = -1;
      }
    }
    if (ws_) {
      tcpFd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const int one = 1;
      ::setsockopt(tcpFd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(tcpPort_);  // the same port again after a restart
      if (::bind(tcpFd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(tcpFd_, 8) != 0) {
        ::close(tcpFd_);
        tcpFd_ = -1;
        return;
      }
      socklen_t len = sizeof addr;
      ::getsockname(tcpFd_, reinterpret_cast<sockaddr*>(&addr), &len);
      tcpPort_ = ntohs(addr.sin_port);
    }
  }

  void closeAll() {
    for (auto& c : clients_) ::close(c->fd);
    clients_.clear();
    if (unixFd_ >= 0) ::close(unixFd_);
    if (tcpFd_ >= 0) ::close(tcpFd_);
    unixFd_ = tcpFd_ = -1;
    if (!socketPath_.empty()) ::unlink(socketPath_.c_str());
  }

  void send(Client& c, const nlohmann::json& msg) {
    const std::string text = msg.dump();
    std::vector<uint8_t> bytes;
    if (c.websocket) {
      bytes = transport::ws::frame(transport::ws::Opcode::Text,
                                   {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
    } else {
      bytes.assign(text.begin(), text.end());
      bytes.push_back(0x03);
    }
    size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = ::send(c.fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }

  void handle(Client& c, const std::string& text) {
    const auto msg = nlohmann::json::parse(text, nullptr, false);
    if (msg.is_discarded() || !msg.contains("method")) return;
    const std::string method = msg["method"];
    const auto params = msg.value("params", nlohmann::json::object());
    calls_[method].push_back(params);
    nlohmann::json reply{{"jsonrpc", "2.0"}, {"id", msg.value("id", 0)}};
    if (method == "server.connection.identify") {
      reply["result"] = {{"connection_id", ++connectionIds_}};
    } else if (method == "server.info") {
      reply["result"] = {{"klippy_connected", klippyReady_},
                         {"klippy_state", klippyReady_ ? "ready" : "startup"},
                         {"components", {"webcam", "history"}},
                         {"failed_components", nlohmann::json::array()},
                         {"registered_directories", {"config", "gcodes"}},
                         {"warnings", nlohmann::json::array()},
                         {"websocket_count", clients_.size()},
                         {"moonraker_version", "v0.9.3-fake"},
                         {"api_version", {1, 5, 0}},
                         {"api_version_string", "1.5.0"}};
    } else if (method == "printer.objects.subscribe") {
      if (!klippyReady_) {
        reply["error"] = {{"code", 503}, {"message", "Klippy Disconnected"}};
      } else {
        nlohmann::json status = nlohmann::json::object();
        const nlohmann::json objects = params.value("objects", nlohmann::json::object());
        for (const auto& [object, fields] : objects.items()) {
          status[object] = nlohmann::json::object();
          if (fields.is_array()) {
            for (const auto& f : fields)
              if (status_[object].contains(f))
                status[object][f.get<std::string>()] = status_[object][f.get<std::string>()];
          } else {
            status[object] = status_[object];
          }
        }
        reply["result"] = {{"eventtime", eventtime()}, {"status", status}};
        c.subscribed = true;
        ++subscribes_;
      }
    } else if (method == "server.webcams.post_item") {
      reply["result"] = {{"webcam", params}};
    } else {
      reply["error"] = {{"code", -32601}, {"message", "Method not found"}};
    }
    send(c, reply);
    cv_.notify_all();
  }

  // Returns false when the client is gone.
  bool readClient(Client& c) {
    char buf[8192];
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    if (!c.websocket) {
      c.in.append(buf, static_cast<size_t>(n));
      size_t pos;
      while ((pos = c.in.find('\x03')) != std::string::npos) {
        const std::string one = c.in.substr(0, pos);
        c.in.erase(0, pos + 1);
        handle(c, one);
      }
      return true;
    }
    if (!c.handshakeDone) {
      c.in.append(buf, static_cast<size_t>(n));
      const size_t end = c.in.find("\r\n\r\n");
      if (end == std::string::npos) return true;
      std::map<std::string, std::string> headers;
      std::string method;
      size_t lineStart = 0;
      bool first = true;
      while (lineStart < end) {
        size_t lineEnd = c.in.find("\r\n", lineStart);
        const std::string line = c.in.substr(lineStart, lineEnd - lineStart);
        lineStart = lineEnd + 2;
        if (first) {
          method = line.substr(0, line.find(' '));
          if (line.find(" /websocket ") == std::string::npos) return false;
          first = false;
          continue;
        }
        const auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(value.begin());
        headers[name] = value;
      }
      auto accept = transport::ws::checkHandshake(method, headers);
      if (!accept) return false;
      const std::string response =
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Accept: " +
          *accept + "\r\n\r\n";
      if (::send(c.fd, response.data(), response.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(response.size()))
        return false;
      c.handshakeDone = true;
      c.parser =
          std::make_unique<transport::ws::FrameParser>(transport::ws::FrameParser::Role::Server, 1u << 20);
      const std::string rest = c.in.substr(end + 4);
      c.in.clear();
      if (!rest.empty()) c.parser->feed({reinterpret_cast<const uint8_t*>(rest.data()), rest.size()});
    } else {
      c.parser->feed({reinterpret_cast<const uint8_t*>(buf), static_cast<size_t>(n)});
    }
    while (auto ev = c.parser->next()) {
      if (ev->kind == transport::ws::Event::Kind::Message) {
        handle(c, std::string(ev->payload.begin(), ev->payload.end()));
      } else if (ev->kind == transport::ws::Event::Kind::Close ||
                 ev->kind == transport::ws::Event::Kind::Error) {
        return false;
      }
    }
    return true;
  }

  void run() {
    while (running_) {
      std::vector<pollfd> fds;
      {
        std::lock_guard lock(mutex_);
        if (unixFd_ < 0 && tcpFd_ < 0 && std::chrono::steady_clock::now() >= downUntil_ && restarts_ > 0)
          listen();
        if (unixFd_ >= 0) fds.push_back({unixFd_, POLLIN, 0});
        if (tcpFd_ >= 0) fds.push_back({tcpFd_, POLLIN, 0});
        for (auto& c : clients_) fds.push_back({c->fd, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      std::lock_guard lock(mutex_);
      for (const auto& p : fds) {
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
        if (p.fd == unixFd_ || p.fd == tcpFd_) {
          const int fd = ::accept4(p.fd, nullptr, nullptr, SOCK_CLOEXEC);
          if (fd < 0) continue;
          auto c = std::make_unique<Client>();
          c->fd = fd;
          c->websocket = p.fd == tcpFd_;
          clients_.push_back(std::move(c));
          continue;
        }
        auto it =
            std::find_if(clients_.begin(), clients_.end(), [&](const auto& c) { return c->fd == p.fd; });
        if (it == clients_.end()) continue;  // closed by restart() meanwhile
        if (!readClient(**it)) {
          ::close((*it)->fd);
          clients_.erase(it);
        }
      }
    }
  }

  std::string socketPath_;
  bool ws_ = false;
  int unixFd_ = -1, tcpFd_ = -1;
  uint16_t tcpPort_ = 0;
  std::atomic<bool> running_{true};
  std::mutex mutex_;
  std::condition_variable cv_;
  nlohmann::json status_;
  bool klippyReady_ = true;
  int subscribes_ = 0;
  int connectionIds_ = 0;
  int restarts_ = 0;
  std::chrono::steady_clock::time_point downUntil_{};
  std::map<std::string, std::vector<nlohmann::json>> calls_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::thread thread_;
};

}  // namespace printcast::testing
