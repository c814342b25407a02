// SPDX-License-Identifier: MIT
// Moonraker JSON-RPC client over the unix socket (0x03-terminated) or the WebSocket.
#include "moonraker_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "printcast/hal/thread_name.h"
#include "printcast/transport/tcp_connect.h"
#include "printcast/transport/websocket.h"

namespace printcast::streamer {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace ws = transport::ws;

constexpr char kEtx = 0x03;
constexpr size_t kMaxMessageBytes = 4u << 20;
constexpr size_t kMaxQueuedCalls = 16;
constexpr std::chrono::milliseconds kConnectTimeout{3000};

std::optional<int> layerOf(const nlohmann::json& v) {
  if (v.is_number_integer()) return v.get<int>();
  if (v.is_number_float()) return static_cast<int>(v.get<double>());
  return std::nullopt;
}

// Merge a notify_status_update delta into the status: objects and their fields are replaced
// key by key (Moonraker sends only the fields that changed; nested dicts such as
// print_stats.info are sent whole).
void mergeStatus(nlohmann::json& into, const nlohmann::json& delta) {
  if (!delta.is_object()) return;
  for (const auto& [object, fields] : delta.items()) {
    if (!fields.is_object()) continue;
    auto& target = into[object];
    if (!target.is_object()) target = nlohmann::json::object();
    for (const auto& [k, v] : fields.items()) target[k] = v;
  }
}

std::string randomWsKey() {
  std::random_device rd;
  std::string raw(16, '\0');
  for (auto& c : raw) c = static_cast<char>(rd() & 0xff);
  static const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < 16; i += 3) {
    const uint32_t b0 = static_cast<uint8_t>(raw[i]);
    const uint32_t b1 = i + 1 < 16 ? static_cast<uint8_t>(raw[i + 1]) : 0;
    const uint32_t b2 = i + 2 < 16 ? static_cast<uint8_t>(raw[i + 2]) : 0;
    const uint32_t n = (b0 << 16) | (b1 << 8) | b2;
    out += kB64[(n >> 18) & 63];
    out += kB64[(n >> 12) & 63];
    out += i + 1 < 16 ? kB64[(n >> 6) & 63] : '=';
    out += i + 2 < 16 ? kB64[n & 63] : '=';
  }
  return out;
}

bool writeAll(int fd, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd pfd{fd, POLLOUT, 0};
        if (::poll(&pfd, 1, 2000) <= 0) return false;
        continue;
      }
      return false;
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

PrintStatus printStatusFrom(const nlohmann::json& objects) {
  PrintStatus out;
  if (!objects.is_object()) return out;
  const auto ps = objects.value("print_stats", nlohmann::json::object());
  const auto sd = objects.value("virtual_sdcard", nlohmann::json::object());
  if (ps.is_object()) {
    if (ps.contains("state") && ps["state"].is_string()) out.state = ps["state"].get<std::string>();
    if (ps.contains("filename") && ps["filename"].is_string())
      out.filename = ps["filename"].get<std::string>();
  }
  if (sd.is_object()) {
    if (sd.contains("current_layer")) out.currentLayer = layerOf(sd["current_layer"]);
    if (sd.contains("total_layer")) out.totalLayer = layerOf(sd["total_layer"]);
  }
  if (ps.is_object() && ps.contains("info") && ps["info"].is_object()) {
    const auto& info = ps["info"];
    if (!out.currentLayer && info.contains("current_layer"))
      out.currentLayer = layerOf(info["current_layer"]);
    if (!out.totalLayer && info.contains("total_layer")) out.totalLayer = layerOf(info["total_layer"]);
  }
  return out;
}

struct MoonrakerClient::Impl {
  MoonrakerClient* owner = nullptr;
  MoonrakerConfig config;
  StatusHandler onStatus;
  ConnectHandler onConnect;
  std::thread thread;
  std::atomic<bool> running{false};
  int wakeFd = -1;

  mutable std::mutex mutex;  // guards everything below
  State st;
  std::deque<std::string> outgoing;  // JSON-RPC requests (method calls) waiting to be sent
  nlohmann::json objects = nlohmann::json::object();

  // Connection (I/O thread only).
  int fd = -1;
  bool websocket = false;
  std::string inText;  // unix socket: bytes up to the next 0x03
  std::unique_ptr<ws::FrameParser> parser;
  int nextId = 1;
  std::map<int, std::string> pending;  // request id -> method
  int subscribeId = -1;
  Clock::time_point resubscribeAt = Clock::time_point::max();

  void setState(const std::string& s, const std::string& error = {}) {
    std::lock_guard lock(mutex);
    st.state = s;
    if (!error.empty()) st.lastError = error;
  }
  void wake() {
    const uint64_t one = 1;
    if (wakeFd >= 0) (void)!::write(wakeFd, &one, sizeof one);
  }

  bool connectUnix(std::string& error) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (config.socketPath.size() >= sizeof addr.sun_path) {
      error = "moonraker_socket path too long: " + config.socketPath;
      return false;
    }
    std::memcpy(addr.sun_path, config.socketPath.c_str(), config.socketPath.size() + 1);
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      error = fmt::format("connect {}: {}", config.socketPath, std::strerror(errno));
      return false;
    }
    websocket = false;
    inText.clear();
    return true;
  }

  bool connectWebSocket(std::string& error) {
    // Non-blocking (every read and write below polls first): a host that never answers costs
    // kConnectTimeout, not the kernel's minutes of SYN retries, and stop() is not held up.
    auto connected = transport::connectTcp(config.host, config.port, kConnectTimeout, wakeFd);
    if (!connected) {
      error = connected.error().message;
      return false;
    }
    fd = *connected;
    // RFC 6455 4.1 opening handshake.
    const std::string key = randomWsKey();
    const std::string request = fmt::format(
        "GET /websocket HTTP/1.1\r\nHost: {}:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        config.host, config.port, key);
    if (!writeAll(fd, request.data(), request.size())) {
      error = "sending the WebSocket handshake failed";
      return false;
    }
    std::string in;
    const auto deadline = Clock::now() + 5s;
    char buf[2048];
    while (in.find("\r\n\r\n") == std::string::npos) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd p{fd, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) {
        error = "no WebSocket handshake answer within 5 s";
        return false;
      }
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) {
        error = "connection closed during the WebSocket handshake";
        return false;
      }
      in.append(buf, static_cast<size_t>(n));
      if (in.size() > 16384) {
        error = "WebSocket handshake answer too long";
        return false;
      }
    }
    const size_t end = in.find("\r\n\r\n");
    const std::string head = in.substr(0, end);
    if (head.compare(0, 12, "HTTP/1.1 101") != 0) {
      error = "WebSocket handshake refused: " + head.substr(0, head.find("\r\n"));
      return false;
    }
    std::string lower = head;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const size_t at = lower.find("sec-websocket-accept:");
    std::string accept;
    if (at != std::string::npos) {
      size_t b = at + 21;
      while (b < head.size() && head[b] == ' ') ++b;
      accept = head.substr(b, head.find("\r\n", b) - b);
      while (!accept.empty() && (accept.back() == ' ' || accept.back() == '\r')) accept.pop_back();
    }
    if (accept != ws::acceptKey(key)) {
      error = "WebSocket handshake: wrong Sec-WebSocket-Accept";
      return false;
    }
    websocket = true;
    parser = std::make_unique<ws::FrameParser>(ws::FrameParser::Role::Client, kMaxMessageBytes);
    const std::string rest = in.substr(end + 4);
    if (!rest.empty()) parser->feed({reinterpret_cast<const uint8_t*>(rest.data()), rest.size()});
    return true;
  }

  void closeConnection() {
    if (fd >= 0) ::close(fd);
    fd = -1;
    parser.reset();
    pending.clear();
    subscribeId = -1;
    resubscribeAt = Clock::time_point::max();
  }

  bool sendText(const std::string& text) {
    if (websocket) {
      std::random_device rd;
      const auto frame =
          ws::maskedFrame(ws::Opcode::Text, {reinterpret_cast<const uint8_t*>(text.data()), text.size()},
                          static_cast<uint32_t>(rd()));
      return writeAll(fd, frame.data(), frame.size());
    }
    std::string msg = text;
    msg.push_back(kEtx);
    return writeAll(fd, msg.data(), msg.size());
  }

  bool request(const std::string& method, const nlohmann::json& params) {
    const int id = nextId++;
    pending[id] = method;
    if (method == "printer.objects.subscribe") subscribeId = id;
    nlohmann::json msg{{"jsonrpc", "2.0"}, {"method", method}, {"id", id}};
    if (!params.is_null()) msg["params"] = params;
    return sendText(msg.dump());
  }

  bool subscribe() {
    return request("printer.objects.subscribe", {{"objects",
                                                  {{"print_stats", {"state", "filename", "info"}},
                                                   {"virtual_sdcard", {"current_layer", "total_layer"}}}}});
  }

  void publishStatus() {
    PrintStatus ps;
    {
      std::lock_guard lock(mutex);
      ps = printStatusFrom(objects);
      st.print = ps;
    }
    if (onStatus) onStatus(ps);
  }

  // One JSON-RPC message from Moonraker.
  void handleMessage(const std::string& text) {
    const auto msg = nlohmann::json::parse(text, nullptr, false);
    if (msg.is_discarded() || !msg.is_object()) {
      spdlog::warn("moonraker: ignoring a message that is not a JSON object");
      return;
    }
    if (msg.contains("method")) {
      const std::string method = msg.value("method", "");
      const auto params = msg.value("params", nlohmann::json::array());
      if (method == "notify_status_update" && params.is_array() && !params.empty()) {
        {
          std::lock_guard lock(mutex);
          mergeStatus(objects, params[0]);
          ++st.notifications;
        }
        publishStatus();
      } else if (method == "notify_klippy_ready") {
        {
          std::lock_guard lock(mutex);
          st.klippy = "ready";
        }
        (void)subscribe();
      } else if (method == "notify_klippy_disconnected" || method == "notify_klippy_shutdown") {
        std::lock_guard lock(mutex);
        st.klippy = method == "notify_klippy_shutdown" ? "shutdown" : "disconnected";
      }
      return;
    }
    if (!msg.contains("id") || !msg["id"].is_number_integer()) return;
    const int id = msg["id"].get<int>();
    const auto it = pending.find(id);
    const std::string method = it == pending.end() ? std::string() : it->second;
    if (it != pending.end()) pending.erase(it);
    if (msg.contains("error")) {
      const auto& e = msg["error"];
      const std::string reason = e.is_object() ? e.value("message", e.dump()) : e.dump();
      if (id == subscribeId) {
        // Typically "Klippy Disconnected" / not ready: wait for notify_klippy_ready, retry anyway.
        std::lock_guard lock(mutex);
        st.klippy = "not ready: " + reason;
        st.lastError = "printer.objects.subscribe: " + reason;
        resubscribeAt = Clock::now() + 2s;
      } else {
        std::lock_guard lock(mutex);
        st.lastError = fmt::format("{}: {}", method.empty() ? "request" : method, reason);
        spdlog::warn("moonraker: {}", st.lastError);
      }
      return;
    }
    if (id == subscribeId) {
      const auto result = msg.value("result", nlohmann::json::object());
      {
        std::lock_guard lock(mutex);
        objects = nlohmann::json::object();
        mergeStatus(objects, result.value("status", nlohmann::json::object()));
        st.state = "subscribed";
        st.klippy = "ready";
      }
      resubscribeAt = Clock::time_point::max();
      spdlog::info("moonraker: subscribed to print_stats and virtual_sdcard");
      publishStatus();
      if (onConnect) onConnect(*owner);
    }
  }

  // Read what is there; false when the connection ended.
  bool readSome(std::string& error) {
    char buf[16384];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) {
      error = "Moonraker closed the connection";
      return false;
    }
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) return true;
      error = fmt::format("read: {}", std::strerror(errno));
      return false;
    }
    if (!websocket) {
      inText.append(buf, static_cast<size_t>(n));
      size_t pos;
      while ((pos = inText.find(kEtx)) != std::string::npos) {
        const std::string one = inText.substr(0, pos);
        inText.erase(0, pos + 1);
        handleMessage(one);
      }
      if (inText.size() > kMaxMessageBytes) {
        error = "message without 0x03 terminator longer than 4 MiB";
        return false;
      }
      return true;
    }
    parser->feed({reinterpret_cast<const uint8_t*>(buf), static_cast<size_t>(n)});
    while (auto ev = parser->next()) {
      switch (ev->kind) {
        case ws::Event::Kind::Message:
          handleMessage(std::string(ev->payload.begin(), ev->payload.end()));
          break;
        case ws::Event::Kind::Ping: {
          std::random_device rd;
          const auto pong = ws::maskedFrame(ws::Opcode::Pong, ev->payload, static_cast<uint32_t>(rd()));
          if (!writeAll(fd, pong.data(), pong.size())) {
            error = "sending a Pong failed";
            return false;
          }
          break;
        }
        case ws::Event::Kind::Pong: break;
        case ws::Event::Kind::Close:
          error = fmt::format("Moonraker closed the WebSocket ({})", ev->closeCode);
          return false;
        case ws::Event::Kind::Error: error = "WebSocket protocol error: " + ev->reason; return false;
      }
    }
    return true;
  }

  bool sendQueued(std::string& error) {
    std::deque<std::string> calls;
    {
      std::lock_guard lock(mutex);
      calls.swap(outgoing);
    }
    while (!calls.empty()) {
      const auto call = nlohmann::json::parse(calls.front());
      calls.pop_front();
      if (!request(call["method"].get<std::string>(), call["params"])) {
        error = "send failed";
        return false;
      }
    }
    return true;
  }

  // Wait up to `d` unless stopping.
  void sleepFor(std::chrono::milliseconds d) {
    pollfd p{wakeFd, POLLIN, 0};
    const auto until = Clock::now() + d;
    while (running) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
      if (left <= 0) return;
      if (::poll(&p, 1, static_cast<int>(left)) > 0) {
        uint64_t v;
        (void)!::read(wakeFd, &v, sizeof v);
      }
    }
  }

  void run() {
    auto backoff = config.firstRetry;
    std::string lastLogged;
    while (running) {
      setState("connecting");
      std::string error;
      const bool connected = config.socketPath.empty() ? connectWebSocket(error) : connectUnix(error);
      if (connected) {
        {
          std::lock_guard lock(mutex);
          st.state = "connected";
          ++st.connections;
          st.retryIn = 0ms;
        }
        spdlog::info("moonraker: connected to {}", endpoint());
        lastLogged.clear();
        backoff = config.firstRetry;
        nlohmann::json identify{{"client_name", config.clientName},
                                {"version", "1"},
                                {"type", "other"},
                                {"url", "https://github.com/printcast"}};
        if (!request("server.connection.identify", identify) || !subscribe()) error = "send failed";
        while (running && error.empty()) {
          if (!sendQueued(error)) break;
          if (Clock::now() >= resubscribeAt) {
            resubscribeAt = Clock::time_point::max();
            if (!subscribe()) {
              error = "send failed";
              break;
            }
          }
          pollfd p[2] = {{fd, POLLIN, 0}, {wakeFd, POLLIN, 0}};
          int timeoutMs = 1000;
          if (resubscribeAt != Clock::time_point::max()) {
            timeoutMs = static_cast<int>(std::clamp<int64_t>(
                std::chrono::duration_cast<std::chrono::milliseconds>(resubscribeAt - Clock::now()).count(),
                0, 1000));
          }
          if (::poll(p, 2, timeoutMs) < 0 && errno != EINTR) {
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
      }
      closeConnection();
      if (!running) break;
      {
        std::lock_guard lock(mutex);
        st.state = "disconnected";
        st.lastError = error;
        st.klippy.clear();
        st.retryIn = backoff;
      }
      if (error != lastLogged) {
        spdlog::warn("moonraker: {} ({}); retrying with backoff up to {:.1f} s", error, endpoint(),
                     static_cast<double>(config.maxRetry.count()) / 1000.0);
        lastLogged = error;
      }
      sleepFor(backoff);
      backoff = std::min(backoff * 2, config.maxRetry);
    }
    setState("stopped");
  }

  std::string endpoint() const {
    return config.socketPath.empty() ? fmt::format("ws://{}:{}/websocket", config.host, config.port)
                                     : "unix:" + config.socketPath;
  }
};

MoonrakerClient::MoonrakerClient(MoonrakerConfig config, StatusHandler onStatus, ConnectHandler onConnect)
    : impl_(std::make_unique<Impl>()) {
  impl_->owner = this;
  impl_->config = std::move(config);
  impl_->onStatus = std::move(onStatus);
  impl_->onConnect = std::move(onConnect);
  impl_->st.state = "stopped";
  impl_->st.endpoint = impl_->endpoint();
}

MoonrakerClient::~MoonrakerClient() { stop(); }

void MoonrakerClient::start() {
  if (impl_->running.exchange(true)) return;
  impl_->wakeFd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  impl_->thread = std::thread([this] {
    hal::nameThisThread("moonraker");
    impl_->run();
  });
}

void MoonrakerClient::stop() {
  if (!impl_->running.exchange(false)) return;
  impl_->wake();
  if (impl_->thread.joinable()) impl_->thread.join();
  if (impl_->wakeFd >= 0) ::close(impl_->wakeFd);
  impl_->wakeFd = -1;
}

void MoonrakerClient::call(const std::string& method, const nlohmann::json& params) {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->outgoing.push_back(nlohmann::json{{"method", method}, {"params", params}}.dump());
    while (impl_->outgoing.size() > kMaxQueuedCalls) impl_->outgoing.pop_front();
  }
  impl_->wake();
}

MoonrakerClient::State MoonrakerClient::state() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->st;
}

}  // namespace printcast::streamer
