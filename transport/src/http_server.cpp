// SPDX-License-Identifier: MIT
// libmicrohttpd glue: request collection, buffered/streamed/deferred responses, CORS.
#include "printcast/transport/http_server.h"
#include "printcast/hal/thread_name.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace printcast::transport {

std::string HttpRequest::arg(const std::string& key) const {
  auto it = query.find(key);
  return it == query.end() ? std::string() : it->second;
}

std::string HttpRequest::header(const std::string& lowerName) const {
  auto it = headers.find(lowerName);
  return it == headers.end() ? std::string() : it->second;
}

bool HttpRequest::hasMediaType(std::string_view mediaType) const {
  std::string type = header("content-type");
  type = type.substr(0, type.find(';'));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.pop_back();
  const size_t start = type.find_first_not_of(" \t");
  if (start == std::string::npos || type.size() - start != mediaType.size()) return false;
  for (size_t i = 0; i < mediaType.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(type[start + i])) !=
        std::tolower(static_cast<unsigned char>(mediaType[i])))
      return false;
  }
  return true;
}

HttpResponse HttpResponse::text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.contentType = "text/plain; charset=utf-8";
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.contentType = "application/json";
  r.body = std::move(body);
  return r;
}

namespace {
std::string jsonEscape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out += ch;
    }
  }
  return out;
}
}  // namespace

HttpResponse HttpResponse::error(int status, const std::string& reason) {
  return json(status, fmt::format(R"({{"status":"error","error":"{}"}})", jsonEscape(reason)));
}

std::map<std::string, std::string> parseFormUrlEncoded(const std::string& body) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start <= body.size()) {
    size_t end = body.find('&', start);
    if (end == std::string::npos) end = body.size();
    std::string pair = body.substr(start, end - start);
    if (!pair.empty()) {
      for (auto& ch : pair) {
        if (ch == '+') ch = ' ';
      }
      const size_t eq = pair.find('=');
      std::string key = pair.substr(0, eq);
      std::string value = eq == std::string::npos ? std::string() : pair.substr(eq + 1);
      key.resize(MHD_http_unescape(key.data()));
      value.resize(MHD_http_unescape(value.data()));
      out[key] = value;
    }
    start = end + 1;
  }
  return out;
}

UpgradedConnection::UpgradedConnection(int fd, std::vector<uint8_t> initialBytes, std::function<void()> close)
    : fd_(fd), initialBytes_(std::move(initialBytes)), close_(std::move(close)) {}

UpgradedConnection::~UpgradedConnection() {
  if (close_) close_();
}

FileBody::~FileBody() {
  if (fd_ >= 0) ::close(fd_);
}

int FileBody::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

struct DeferredResponse::Impl {
  std::mutex mutex;
  bool done = false;
  HttpResponse response;
  MHD_Connection* connection = nullptr;
  bool suspended = false;
};

DeferredResponse::DeferredResponse() : impl_(std::make_shared<Impl>()) {}

void DeferredResponse::complete(HttpResponse response) {
  std::lock_guard lock(impl_->mutex);
  if (impl_->done) return;
  impl_->done = true;
  impl_->response = std::move(response);
  if (impl_->suspended) {
    impl_->suspended = false;
    MHD_resume_connection(impl_->connection);
  }
}

bool DeferredResponse::parkUnlessComplete(void* connection, const std::function<void()>& suspend) {
  std::lock_guard lock(impl_->mutex);
  if (impl_->done) return false;
  impl_->connection = static_cast<MHD_Connection*>(connection);
  impl_->suspended = true;
  suspend();
  return true;
}

HttpResponse DeferredResponse::takeResponse() {
  std::lock_guard lock(impl_->mutex);
  return std::move(impl_->response);
}

bool DeferredResponse::completed() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->done;
}

struct BlockingWorker::Impl {
  std::string name;
  size_t maxQueued = 0;
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::pair<std::function<HttpResponse()>, std::shared_ptr<DeferredResponse>>> queue;
  bool stopping = false;
  std::thread thread;

  void run() {
    std::unique_lock lock(mutex);
    for (;;) {
      wake.wait(lock, [this] { return stopping || !queue.empty(); });
      if (stopping) return;
      auto [job, response] = std::move(queue.front());
      queue.pop_front();
      lock.unlock();
      HttpResponse result;
      try {
        result = job();
      } catch (const std::exception& e) {
        result = HttpResponse::error(500, fmt::format("{}: {}", name, e.what()));
      }
      response->complete(std::move(result));
      lock.lock();
    }
  }
};

BlockingWorker::BlockingWorker(std::string name, size_t maxQueued) : impl_(std::make_unique<Impl>()) {
  impl_->name = std::move(name);
  impl_->maxQueued = maxQueued;
  impl_->thread = std::thread([impl = impl_.get()] {
    hal::nameThisThread(impl->name);  // "camera discovery" -> "camera discove"
    impl->run();
  });
}

BlockingWorker::~BlockingWorker() { stop(); }

HttpResponse BlockingWorker::defer(std::function<HttpResponse()> job) {
  auto deferred = std::make_shared<DeferredResponse>();
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stopping) return HttpResponse::error(503, "server is shutting down");
    if (impl_->queue.size() >= impl_->maxQueued) {
      return HttpResponse::error(503, fmt::format("{}: {} requests are already waiting; try again",
                                                  impl_->name, impl_->queue.size()));
    }
    impl_->queue.emplace_back(std::move(job), deferred);
  }
  impl_->wake.notify_one();
  HttpResponse r;
  r.deferred = std::move(deferred);
  return r;
}

void BlockingWorker::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  decltype(impl_->queue) left;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
    left.swap(impl_->queue);
  }
  impl_->wake.notify_all();
  for (auto& [job, response] : left) response->complete(HttpResponse::error(503, "server is shutting down"));
  impl_->thread.join();
}

struct HttpServer::Impl {
  HttpServerConfig config;
  HttpHandler handler;
  MHD_Daemon* daemon = nullptr;
  uint16_t port = 0;
  std::atomic<int> parkedStreams{0};
  std::atomic<bool> stopped{false};
  std::mutex pendingMutex;
  std::set<std::shared_ptr<DeferredResponse>> pending;  // deferred responses not yet completed
  // Upgraded connections not yet closed. Shared: an UpgradedConnection may outlive the server.
  std::shared_ptr<std::atomic<int>> upgraded = std::make_shared<std::atomic<int>>(0);
  // Connections whose request line or query decoded a %00 (server thread only): answered 400.
  std::set<MHD_Connection*> nulInUrl;
  std::string machineName;  // gethostname(), lower-case: a Host the origin rule accepts
  // Open connections per client address (server thread only), and when a refusal for an address
  // was last logged (at most once a minute each).
  std::map<std::string, unsigned> perAddress;
  std::map<std::string, std::chrono::steady_clock::time_point> lastLogged;
  struct Counters {
    std::atomic<uint64_t> connections{0}, addressLimitRefused{0}, crossOriginRefused{0}, unauthorized{0},
        streamStalls{0}, timeouts{0};
  } counters;

  // Log `message` about `address` unless something about it was logged less than a minute ago.
  void logOncePerMinute(const std::string& address, const std::string& message) {
    const auto now = std::chrono::steady_clock::now();
    auto [it, fresh] = lastLogged.try_emplace(address, now);
    if (!fresh && now - it->second < std::chrono::minutes(1)) return;
    it->second = now;
    if (lastLogged.size() > 4096) lastLogged.clear();  // bounded: a scan from many addresses
    spdlog::warn("{}: {} (logged once a minute per address)", config.name, message);
  }
};

namespace {

// Connections past an address's limit that still get a 503 with the reason (the rest are closed).
constexpr unsigned kOverLimitAnswered = 8;

// One per connection (libmicrohttpd's socket context), from accept to close.
struct ConnectionInfo {
  std::string address;     // the client's address, numeric
  bool overLimit = false;  // opened while its address had perAddressLimit connections: 503
  bool streaming = false;  // the current response is a stream (for the stall counter)
};

std::string addressString(const sockaddr* addr) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr == nullptr) return "?";
  // Copied out, not cast: a sockaddr may be less aligned than the specific structure (ARM).
  if (addr->sa_family == AF_INET) {
    sockaddr_in v4{};
    std::memcpy(&v4, addr, sizeof v4);
    inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text);
  } else if (addr->sa_family == AF_INET6) {
    sockaddr_in6 v6{};
    std::memcpy(&v6, addr, sizeof v6);
    inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text);
  } else {
    return "?";
  }
  return text;
}

ConnectionInfo* connectionInfo(MHD_Connection* connection) {
  const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return info != nullptr ? static_cast<ConnectionInfo*>(info->socket_context) : nullptr;
}

void setTimeout(MHD_Connection* connection, unsigned seconds) {
  MHD_set_connection_option(connection, MHD_CONNECTION_OPTION_TIMEOUT,
                            seconds);  // NOLINT(cppcoreguidelines-pro-type-vararg)
}

struct RequestState {
  HttpRequest request;
  std::string allowOrigin;  // this request's Access-Control-Allow-Origin ("" = none)
  bool tooLarge = false;
  bool nulInUrl = false;
  std::shared_ptr<DeferredResponse> deferred;
  UpgradeHandler upgrade;  // the 101 response's handler, until libmicrohttpd calls onUpgrade
  bool upgraded = false;   // the response was a 101: the connection is not libmicrohttpd's HTTP any more
};

struct StreamContext {
  std::shared_ptr<ClientQueue> queue;
  MHD_Connection* connection = nullptr;
  std::function<void()> onClose;
  HttpServer::Impl* server = nullptr;
};

MHD_Result collectValue(void* cls, MHD_ValueKind /*kind*/, const char* key, const char* value) {
  auto* map = static_cast<std::map<std::string, std::string>*>(cls);
  (*map)[key != nullptr ? key : ""] = value != nullptr ? value : "";
  return MHD_YES;
}

MHD_Result collectHeader(void* cls, MHD_ValueKind /*kind*/, const char* key, const char* value) {
  auto* map = static_cast<std::map<std::string, std::string>*>(cls);
  std::string name = key != nullptr ? key : "";
  for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  (*map)[name] = value != nullptr ? value : "";
  return MHD_YES;
}

ssize_t readStream(void* cls, uint64_t /*pos*/, char* buf, size_t max) {
  auto* ctx = static_cast<StreamContext*>(cls);
  const size_t n = ctx->queue->read(reinterpret_cast<uint8_t*>(buf), max, [ctx] {
    ctx->server->parkedStreams.fetch_add(1);
    MHD_suspend_connection(ctx->connection);
  });
  if (n == ClientQueue::kEnd) return MHD_CONTENT_READER_END_OF_STREAM;
  return static_cast<ssize_t>(n);
}

void freeStream(void* cls) {
  auto* ctx = static_cast<StreamContext*>(cls);
  ctx->queue->setWakeup(nullptr);
  ctx->queue->setDirectSocket(-1);
  if (ctx->onClose) ctx->onClose();
  delete ctx;  // NOLINT(cppcoreguidelines-owning-memory): owned by libmicrohttpd until now
}

// libmicrohttpd sent the 101: the socket is ours to use (never to close()) until
// MHD_upgrade_action(CLOSE), which UpgradedConnection's destructor does.
void onUpgrade(void* cls, MHD_Connection* /*connection*/, void* conCls, const char* extraIn,
               size_t extraInSize, MHD_socket sock, MHD_UpgradeResponseHandle* urh) {
  auto* server = static_cast<HttpServer::Impl*>(cls);
  auto* state = static_cast<RequestState*>(conCls);
  UpgradeHandler handler = state != nullptr ? std::move(state->upgrade) : UpgradeHandler();
  const int flags = fcntl(sock, F_GETFL);
  if (flags >= 0) fcntl(sock, F_SETFL, flags | O_NONBLOCK);  // NOLINT(cppcoreguidelines-pro-type-vararg)
  std::vector<uint8_t> initial(
      reinterpret_cast<const uint8_t*>(extraIn),
      reinterpret_cast<const uint8_t*>(extraIn) + (extraIn != nullptr ? extraInSize : 0));
  server->upgraded->fetch_add(1);
  auto connection =
      std::make_unique<UpgradedConnection>(sock, std::move(initial), [urh, counter = server->upgraded] {
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        counter->fetch_sub(1);
      });
  if (handler) handler(std::move(connection));  // else: closed right here
}

// `mayUpgrade`: false for a deferred response (its upgrade handler would not be kept).
MHD_Result queueResponse(HttpServer::Impl* server, MHD_Connection* connection, HttpResponse r,
                         RequestState* state, bool mayUpgrade = true) {
  MHD_Response* response = nullptr;
  if (r.upgrade) {
    if (!mayUpgrade) {
      return queueResponse(server, connection, HttpResponse::error(500, "upgrade from a deferred response"),
                           state, false);
    }
    if (server->stopped.load()) {
      return queueResponse(server, connection, HttpResponse::error(503, "server is shutting down"), state,
                           false);
    }
    response = MHD_create_response_for_upgrade(&onUpgrade, server);
    if (response == nullptr) return MHD_NO;
    state->upgrade = std::move(r.upgrade);
    state->upgraded = true;
  } else if (r.stream) {
    auto* ctx = new StreamContext{r.stream, connection, std::move(r.onClose), server};  // NOLINT
    r.stream->setWakeup([server, connection] {
      server->parkedStreams.fetch_sub(1);
      MHD_resume_connection(connection);
    });
    const bool endless = r.streamSize == HttpResponse::kUnknownSize;
    response = MHD_create_response_from_callback(endless ? MHD_SIZE_UNKNOWN : r.streamSize, size_t{64} * 1024,
                                                 &readStream, ctx, &freeStream);
    if (response == nullptr) {
      freeStream(ctx);
      return MHD_NO;
    }
    if (endless) {
      MHD_set_response_options(response, MHD_RF_HTTP_1_0_COMPATIBLE_STRICT, MHD_RO_END);
      // No chunked framing, no length to count: while the connection is suspended (parked), the
      // producer writes to its socket itself (ClientQueue::setDirectSocket): one sendmsg per
      // frame instead of a wake-up, a pass of this thread and a copy per client and frame.
      if (const MHD_ConnectionInfo* info =
              MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD))
        r.stream->setDirectSocket(info->connect_fd);
    }
    setTimeout(connection, server->config.streamStallSeconds);
    if (ConnectionInfo* info = connectionInfo(connection)) info->streaming = true;
  } else if (r.file) {
    const int fd = r.file->release();
    if (fd < 0) {
      return queueResponse(server, connection, HttpResponse::error(500, "file body used twice"), state,
                           false);
    }
    // libmicrohttpd owns (and closes) the descriptor from here on, also when this fails.
    response = MHD_create_response_from_fd_at_offset64(r.file->length(), fd, r.file->offset());
    if (response == nullptr) {
      ::close(fd);
      return MHD_NO;
    }
  } else {
    response = MHD_create_response_from_buffer(r.body.size(), r.body.data(), MHD_RESPMEM_MUST_COPY);
    if (response == nullptr) return MHD_NO;
  }
  if (!state->upgraded)
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, r.contentType.c_str());
  if (!r.customCors && !state->allowOrigin.empty()) {
    MHD_add_response_header(response, "Access-Control-Allow-Origin", state->allowOrigin.c_str());
  }
  if (server->config.policy.sameOriginWrites) MHD_add_response_header(response, "Vary", "Origin");
  for (const auto& [name, value] : r.headers) MHD_add_response_header(response, name.c_str(), value.c_str());
  const MHD_Result result = MHD_queue_response(connection, static_cast<unsigned>(r.status), response);
  MHD_destroy_response(response);
  return result;
}

// The CORS preflight. Under the same-origin rule only a trusted origin gets the Allow-* headers,
// for a fixed list of headers; the stream ports allow what is asked.
HttpResponse preflight(const HttpServer::Impl& server, const RequestState& state) {
  const HttpRequest& request = state.request;
  if (server.config.policy.sameOriginWrites && state.allowOrigin.empty()) {
    return HttpResponse::error(403, "cross-origin requests from '" + request.header("origin") +
                                        "' are not allowed here; add the origin to control_allow_origin");
  }
  HttpResponse r;
  r.status = 204;
  r.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS");
  const std::string asked = request.header("access-control-request-headers");
  const bool fixed = server.config.policy.sameOriginWrites || asked.empty();
  r.headers.emplace_back("Access-Control-Allow-Headers",
                         fixed ? "Content-Type, Range, Authorization" : asked);
  r.headers.emplace_back("Access-Control-Max-Age", "86400");
  return r;
}

// This request's Access-Control-Allow-Origin: the port's value, or under the same-origin rule
// the request's Origin when it is trusted ("*" when every origin is).
std::string allowOriginFor(const HttpServer::Impl& server, const HttpRequest& request) {
  const OriginPolicy& policy = server.config.policy;
  if (!policy.sameOriginWrites) return server.config.allowOrigin;
  const std::string origin = request.header("origin");
  if (origin.empty() || !isTrustedOrigin(policy, origin, request.header("host"))) return {};
  return std::find(policy.trustedOrigins.begin(), policy.trustedOrigins.end(), "*") !=
                 policy.trustedOrigins.end()
             ? "*"
             : origin;
}

MHD_Result onRequest(void* cls, MHD_Connection* connection, const char* url, const char* method,
                     const char* /*version*/, const char* uploadData, size_t* uploadSize, void** conCls) {
  auto* server = static_cast<HttpServer::Impl*>(cls);
  auto* state = static_cast<RequestState*>(*conCls);
  if (state == nullptr) {
    state = new RequestState;  // NOLINT(cppcoreguidelines-owning-memory): freed in onCompleted
    state->request.method = method;
    state->request.path = url;
    MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, &collectValue, &state->request.query);
    MHD_get_connection_values(connection, MHD_HEADER_KIND, &collectHeader, &state->request.headers);
    state->nulInUrl = server->nulInUrl.erase(connection) > 0;
    const ConnectionInfo* info = connectionInfo(connection);
    state->request.peer = info != nullptr ? info->address : "?";
    state->allowOrigin = allowOriginFor(*server, state->request);
    setTimeout(connection, server->config.idleTimeoutSeconds);  // the head is in: the idle rule now
    *conCls = state;
    return MHD_YES;
  }
  if (*uploadSize != 0) {
    if (state->request.body.size() + *uploadSize > server->config.maxBodyBytes) {
      state->tooLarge = true;
    } else {
      state->request.body.append(uploadData, *uploadSize);
    }
    *uploadSize = 0;
    return MHD_YES;
  }
  if (state->deferred) {  // resumed: the response is ready
    HttpResponse ready = state->deferred->takeResponse();
    {
      std::lock_guard lock(server->pendingMutex);
      server->pending.erase(state->deferred);
    }
    state->deferred.reset();
    return queueResponse(server, connection, std::move(ready), state, false);
  }
  if (const ConnectionInfo* info = connectionInfo(connection); info != nullptr && info->overLimit) {
    const std::string reason =
        fmt::format("too many connections from {}: at most {} per address on this port", info->address,
                    server->config.perAddressLimit);
    server->logOncePerMinute(info->address, reason);
    HttpResponse busy = HttpResponse::error(503, reason);
    busy.headers.emplace_back("Connection", "close");
    busy.headers.emplace_back("Retry-After", "5");
    return queueResponse(server, connection, std::move(busy), state, false);
  }
  if (state->tooLarge) {
    return queueResponse(server, connection,
                         HttpResponse::error(413, fmt::format("request body larger than {} bytes",
                                                              server->config.maxBodyBytes)),
                         state, false);
  }
  if (state->nulInUrl) {
    return queueResponse(server, connection, HttpResponse::error(400, "the request URL has a NUL byte (%00)"),
                         state, false);
  }
  if (state->request.method == "OPTIONS") {
    HttpResponse answer = preflight(*server, *state);
    if (answer.status == 403) {
      server->counters.crossOriginRefused.fetch_add(1);
      server->logOncePerMinute(state->request.peer,
                               fmt::format("refused a CORS preflight for {} from {}", state->request.path,
                                           state->request.header("origin")));
    }
    return queueResponse(server, connection, std::move(answer), state, false);
  }
  if (server->config.authorize && !server->config.authorize(state->request)) {
    server->counters.unauthorized.fetch_add(1);
    server->logOncePerMinute(state->request.peer,
                             fmt::format("{} {} from {}: no valid credentials (401)", state->request.method,
                                         state->request.path, state->request.peer));
    HttpResponse denied = HttpResponse::error(
        401,
        "credentials needed: Authorization: Bearer TOKEN, HTTP Basic with the token as password, or ?token=");
    denied.headers.emplace_back("WWW-Authenticate", "Basic realm=\"printcast\", charset=\"UTF-8\"");
    return queueResponse(server, connection, std::move(denied), state, false);
  }
  if (isStateChangingMethod(state->request.method)) {
    const std::string refused = checkStateChange(server->config.policy, state->request.header("host"),
                                                 state->request.header("origin"), server->machineName);
    if (!refused.empty()) {
      server->counters.crossOriginRefused.fetch_add(1);
      server->logOncePerMinute(state->request.peer,
                               fmt::format("refused {} {} from {}: {}", state->request.method,
                                           state->request.path, state->request.peer, refused));
      return queueResponse(server, connection, HttpResponse::error(403, refused), state, false);
    }
  }

  HttpResponse response = server->handler(state->request);
  if (response.deferred) {
    auto deferred = std::move(response.deferred);
    if (server->stopped.load()) {
      return queueResponse(server, connection, HttpResponse::error(503, "server is shutting down"), state,
                           false);
    }
    {
      std::lock_guard pendingLock(server->pendingMutex);
      server->pending.insert(deferred);
    }
    state->deferred = deferred;
    if (deferred->parkUnlessComplete(connection, [connection] { MHD_suspend_connection(connection); })) {
      return MHD_YES;
    }
    state->deferred.reset();
    {
      std::lock_guard pendingLock(server->pendingMutex);
      server->pending.erase(deferred);
    }
    return queueResponse(server, connection, deferred->takeResponse(), state, false);
  }
  return queueResponse(server, connection, std::move(response), state);
}

void onCompleted(void* cls, MHD_Connection* connection, void** conCls, MHD_RequestTerminationCode code) {
  auto* server = static_cast<HttpServer::Impl*>(cls);
  ConnectionInfo* info = connectionInfo(connection);
  if (code == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED) {
    if (info != nullptr && info->streaming) {
      server->counters.streamStalls.fetch_add(1);
      server->logOncePerMinute(
          info->address, fmt::format("dropped a stream to {}: it accepted no bytes for {} s", info->address,
                                     server->config.streamStallSeconds));
    } else {
      server->counters.timeouts.fetch_add(1);
    }
  }
  if (info != nullptr) info->streaming = false;
  // Kept alive: the next request head has the short deadline again.
  auto* state = static_cast<RequestState*>(*conCls);
  if (code == MHD_REQUEST_TERMINATED_COMPLETED_OK && (state == nullptr || !state->upgraded)) {
    setTimeout(connection, server->config.headTimeoutSeconds);
  }
  delete static_cast<RequestState*>(*conCls);  // NOLINT(cppcoreguidelines-owning-memory)
  *conCls = nullptr;
}

// Accept policy: an address already past its limit (plus the few that get a 503) is closed at once.
MHD_Result onAccept(void* cls, const sockaddr* addr, socklen_t /*addrlen*/) {
  auto* server = static_cast<HttpServer::Impl*>(cls);
  const std::string address = addressString(addr);
  auto it = server->perAddress.find(address);
  const unsigned open = it == server->perAddress.end() ? 0 : it->second;
  if (open < server->config.perAddressLimit + kOverLimitAnswered) return MHD_YES;
  server->counters.addressLimitRefused.fetch_add(1);
  server->logOncePerMinute(
      address, fmt::format("too many connections from {} ({} open): closing new ones", address, open));
  return MHD_NO;
}

// Percent-decode the path or a query key/value in place, as libmicrohttpd does by default, and
// remember the connection when a %00 is decoded (see onRequest).
size_t unescapeUrl(void* cls, MHD_Connection* connection, char* s) {
  auto* server = static_cast<HttpServer::Impl*>(cls);
  for (const char* p = s; *p != '\0'; ++p) {
    if (p[0] == '%' && p[1] == '0' && p[2] == '0') {
      server->nulInUrl.insert(connection);
      break;
    }
  }
  return MHD_http_unescape(s);
}

void onConnection(void* cls, MHD_Connection* connection, void** socketContext,
                  MHD_ConnectionNotificationCode code) {
  auto* server = static_cast<HttpServer::Impl*>(cls);
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    const MHD_ConnectionInfo* ci = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    auto* info = new ConnectionInfo;  // NOLINT(cppcoreguidelines-owning-memory): freed at CLOSED
    info->address = addressString(ci != nullptr ? ci->client_addr : nullptr);
    if (server->config.socketSendBufferBytes > 0) {
      if (const MHD_ConnectionInfo* fd =
              MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD)) {
        const int bytes = server->config.socketSendBufferBytes;
        ::setsockopt(fd->connect_fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
      }
    }
    const unsigned open = ++server->perAddress[info->address];
    if (open > server->config.perAddressLimit) {
      info->overLimit = true;
      server->counters.addressLimitRefused.fetch_add(1);
    }
    server->counters.connections.fetch_add(1);
    *socketContext = info;
    return;
  }
  server->nulInUrl.erase(connection);
  auto* info = static_cast<ConnectionInfo*>(*socketContext);
  if (info == nullptr) return;
  auto it = server->perAddress.find(info->address);
  if (it != server->perAddress.end() && --it->second == 0) server->perAddress.erase(it);
  delete info;  // NOLINT(cppcoreguidelines-owning-memory)
  *socketContext = nullptr;
}

void logMhd(void* cls, const char* format, va_list ap) {
  auto* server = static_cast<HttpServer::Impl*>(cls);
  char line[512];
  std::vsnprintf(line, sizeof line, format, ap);  // NOLINT(cert-err33-c)
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  spdlog::debug("{}: libmicrohttpd: {}", server->config.name, text);
}

}  // namespace

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { stop(); }

hal::Result<std::unique_ptr<HttpServer>> HttpServer::start(const HttpServerConfig& config,
                                                           HttpHandler handler) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->handler = std::move(handler);

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(config.port);
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (!config.host.empty() && inet_pton(AF_INET, config.host.c_str(), &addr.sin_addr) != 1) {
    return {hal::Errc::InvalidArgument,
            fmt::format("{}: host '{}' is not a numeric IPv4 address", config.name, config.host)};
  }
  const unsigned flags =
      MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG;
  Impl* raw = impl.get();
  char hostname[256] = {};
  if (gethostname(hostname, sizeof hostname - 1) == 0) {
    impl->machineName = hostname;
    for (auto& ch : impl->machineName) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  impl->daemon = MHD_start_daemon(
      flags, config.port, &onAccept, raw, &onRequest, raw, MHD_OPTION_SOCK_ADDR,
      reinterpret_cast<const sockaddr*>(&addr), MHD_OPTION_NOTIFY_COMPLETED, &onCompleted, raw,
      MHD_OPTION_CONNECTION_LIMIT, config.connectionLimit, MHD_OPTION_CONNECTION_TIMEOUT,
      config.headTimeoutSeconds, MHD_OPTION_EXTERNAL_LOGGER, &logMhd, raw, MHD_OPTION_UNESCAPE_CALLBACK,
      &unescapeUrl, raw, MHD_OPTION_NOTIFY_CONNECTION, &onConnection, raw, MHD_OPTION_END);
  if (impl->daemon == nullptr) {
    return {hal::Errc::Busy,
            fmt::format("{}: cannot listen on {}:{} (port in use or not permitted)", config.name,
                        config.host.empty() ? "0.0.0.0" : config.host, config.port)};
  }
  const MHD_DaemonInfo* info = MHD_get_daemon_info(impl->daemon, MHD_DAEMON_INFO_BIND_PORT);
  impl->port = info != nullptr ? info->port : config.port;
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

uint16_t HttpServer::port() const { return impl_->port; }

HttpServerStats HttpServer::stats() const {
  const auto& c = impl_->counters;
  return HttpServerStats{c.connections.load(),  c.addressLimitRefused.load(), c.crossOriginRefused.load(),
                         c.unauthorized.load(), c.streamStalls.load(),        c.timeouts.load()};
}

void HttpServer::stop() {
  if (!impl_ || impl_->stopped.exchange(true)) return;
  std::set<std::shared_ptr<DeferredResponse>> pending;
  {
    std::lock_guard lock(impl_->pendingMutex);
    pending = impl_->pending;
  }
  for (const auto& d : pending) d->complete(HttpResponse::error(503, "server is shutting down"));
  // Every suspended connection must be resumed before MHD_stop_daemon; the stream owners
  // closed their queues (which resumes them), so wait briefly for the daemon to see that.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (impl_->parkedStreams.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // Upgraded sockets must be closed (MHD_upgrade_action) by their owners before the daemon goes.
  while (impl_->upgraded->load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (impl_->upgraded->load() > 0) {
    spdlog::warn("{}: stopping with {} upgraded connection(s) still open", impl_->config.name,
                 impl_->upgraded->load());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let resumed connections be processed
  MHD_stop_daemon(impl_->daemon);
  impl_->daemon = nullptr;
}

}  // namespace printcast::transport
