// SPDX-License-Identifier: MIT
// A small HTTP server over libmicrohttpd whose callbacks never block: buffered responses,
// endless streams fed by a ClientQueue (suspend/resume), deferred responses completed
// later by another thread (e.g. a snapshot waiting for the next encoded frame), and protocol
// upgrades (101 Switching Protocols, e.g. WebSocket) that hand the socket to another thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "printcast/hal/result.h"
#include "printcast/transport/fanout.h"
#include "printcast/transport/http_access.h"

namespace printcast::transport {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // URL path without the query string, percent-decoded ("/", "/stream")
  std::map<std::string, std::string> query;    // query arguments (last value wins)
  std::map<std::string, std::string> headers;  // request headers, names lower-case
  std::string body;                            // request body (POST), at most maxBodyBytes

  // The query argument or "" when absent.
  std::string arg(const std::string& key) const;
  // The header (name lower-case) or "" when absent.
  std::string header(const std::string& lowerName) const;
  // Whether Content-Type's media type (before any ';' parameter, case-insensitive) is
  // `mediaType` ("application/json"). A state-changing JSON endpoint requires it: a cross-origin
  // page can send a form or text/plain without a CORS preflight, but not application/json.
  bool hasMediaType(std::string_view mediaType) const;
  // The client's address ("127.0.0.2", "::1"), for logs and per-address limits.
  std::string peer;
};

class DeferredResponse;

// An HTTP connection taken over by another protocol after a 101 response (RFC 7230 6.7), e.g. a
// WebSocket. It owns the socket: the destructor closes it (through libmicrohttpd, which must be
// the one to close it). Destroy it before the HttpServer stops: stop() waits (bounded) for that.
// Threading: use from one thread at a time (not necessarily the server thread).
class UpgradedConnection {
 public:
  UpgradedConnection(int fd, std::vector<uint8_t> initialBytes, std::function<void()> close);
  ~UpgradedConnection();
  UpgradedConnection(const UpgradedConnection&) = delete;
  UpgradedConnection& operator=(const UpgradedConnection&) = delete;

  // The socket, non-blocking. read/recv, write/send and shutdown() are allowed; close() is not.
  int fd() const { return fd_; }
  // Bytes the client sent after the request that the server had already read: treat them as the
  // first bytes read from fd().
  const std::vector<uint8_t>& initialBytes() const { return initialBytes_; }

 private:
  int fd_;
  std::vector<uint8_t> initialBytes_;
  std::function<void()> close_;
};

// Called on the server thread once the 101 response went out; must not block (hand the
// connection to another thread). Not called when the client went away before that: the
// function is then destroyed uncalled (release subscriptions in what it captures).
using UpgradeHandler = std::function<void(std::unique_ptr<UpgradedConnection>)>;

struct HttpResponse {
  static constexpr uint64_t kUnknownSize = UINT64_MAX;

  int status = 200;
  std::string contentType = "text/plain";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // Streaming: when set, the body is what the queue yields until it is closed. `streamSize`
  // kUnknownSize sends the stream HTTP/1.0-style (no chunked encoding, connection closes at
  // the end), which every MJPEG/FLV player accepts; a number is sent as Content-Length.
  // `onClose` runs on the server thread when the connection ends (unsubscribe there).
  std::shared_ptr<ClientQueue> stream;
  uint64_t streamSize = kUnknownSize;
  std::function<void()> onClose;

  // File: when set, the body is `file`'s bytes [offset, offset + length), which libmicrohttpd
  // sends with sendfile() as fast as the client's socket takes them (never blocking the server
  // thread on a slow client, never holding the file in memory). Content-Length is `length`;
  // for a HEAD request nothing is sent. The descriptor is closed when the response is done.
  std::shared_ptr<class FileBody> file;

  // Deferred: the connection waits (suspended, not blocking a thread) until another thread
  // calls complete() on this object.
  std::shared_ptr<DeferredResponse> deferred;

  // Upgrade: when set, the response is sent as `status` (101) with `headers` (e.g. Upgrade,
  // Sec-WebSocket-Accept; libmicrohttpd adds Connection: Upgrade) and no body, then `upgrade`
  // gets the connection. See WebSocketHub::upgradeResponse() for WebSocket.
  UpgradeHandler upgrade;

  // Leave out the server's Access-Control-Allow-Origin (the response sets its own).
  bool customCors = false;

  static HttpResponse text(int status, std::string body);
  static HttpResponse json(int status, std::string body);
  static HttpResponse error(int status, const std::string& reason);  // {"status":"error","error":reason}
};

// An open regular file to send as a response body (HttpResponse::file). Owns the descriptor.
// Threading: hand it to one response; the server takes the descriptor on the server thread.
class FileBody {
 public:
  // `fd` must be a regular file open for reading; [offset, offset + length) must lie inside it.
  FileBody(int fd, uint64_t offset, uint64_t length) : fd_(fd), offset_(offset), length_(length) {}
  ~FileBody();
  FileBody(const FileBody&) = delete;
  FileBody& operator=(const FileBody&) = delete;

  uint64_t offset() const { return offset_; }
  uint64_t length() const { return length_; }
  // Give the descriptor away (the caller now closes it); -1 if already given.
  int release();

 private:
  int fd_;
  uint64_t offset_;
  uint64_t length_;
};

// A response produced later. Thread-safe; complete() takes effect once (later calls ignored).
class DeferredResponse {
 public:
  DeferredResponse();
  void complete(HttpResponse response);
  bool completed() const;

  // For HttpServer: if not completed yet, remember `connection` and call `suspend` (under the
  // lock, so a concurrent complete() resumes it) and return true; false when already complete.
  bool parkUnlessComplete(void* connection, const std::function<void()>& suspend);
  // For HttpServer: move the completed response out.
  HttpResponse takeResponse();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// A thread for what an HTTP handler must not do on the server thread: file I/O, fsync, folder
// scans, DNS, decoding. defer(job) queues `job` and returns at once a deferred response that the
// job's result completes (the connection waits suspended, no thread blocks). Jobs run one at a
// time, in the order given. A full queue (`maxQueued` waiting) answers 503 at once, so a flood of
// slow requests costs bounded memory.
// Threading: defer() from any thread; jobs run on the worker's thread, so what they touch must
// be safe to use from there. stop() (or the destructor) answers the queued jobs 503, waits for
// the running one, and joins; defer() after it answers 503.
class BlockingWorker {
 public:
  explicit BlockingWorker(std::string name, size_t maxQueued = 32);
  ~BlockingWorker();
  BlockingWorker(const BlockingWorker&) = delete;
  BlockingWorker& operator=(const BlockingWorker&) = delete;

  // Takes `job` (run once, then destroyed on the worker's thread). Returns a response whose
  // `deferred` the job's result completes (return it from an HttpHandler), or at once a 503
  // (queue full: "N requests are already waiting", or stopped). A job that throws answers 500.
  HttpResponse defer(std::function<HttpResponse()> job);
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Parse an application/x-www-form-urlencoded body ("x=10&y=20%2E5") with libmicrohttpd's
// unescaping ('+' is a space). Later keys win. Never fails: malformed pairs are kept as given.
std::map<std::string, std::string> parseFormUrlEncoded(const std::string& body);

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerConfig {
  std::string name = "http";      // for logs
  std::string host;               // numeric IPv4 address to bind; "" = all interfaces
  uint16_t port = 8080;           // 0 = pick a free port (see HttpServer::port())
  std::string allowOrigin = "*";  // Access-Control-Allow-Origin on every response; "" = none
                                  // (ignored when policy.sameOriginWrites: see OriginPolicy)
  OriginPolicy policy;            // who may change state (http_access.h); default: anyone
  // Optional credentials: when set, a request (but a CORS preflight, which browsers send
  // without credentials) it returns false for gets 401 with `WWW-Authenticate: Basic`, so a
  // browser asks for them once (http_auth.h makes the token check). Called on the server thread:
  // it must be quick (no I/O).
  std::function<bool(const HttpRequest&)> authorize;
  size_t maxBodyBytes = size_t{64} * 1024;  // larger request bodies get 413

  // Limits (connection floods, slowloris). A connection from an address that already has
  // `perAddressLimit` open gets 503 with the reason to its request and is closed; beyond that
  // plus a few more, new connections from it are closed at once. `connectionLimit` bounds the
  // port as a whole (libmicrohttpd closes what comes beyond). Each refusal is logged at most once
  // per address per minute and counted (stats()).
  unsigned connectionLimit = 512;
  unsigned perAddressLimit = 48;  // a farm dashboard of 16 tiles from one browser fits, twice
  // Seconds a connection may stay silent before its request head is complete (a new connection,
  // or a kept-alive one between requests). An idle timeout, not a deadline: a client that sends a
  // byte every few seconds keeps its connection; the per-address limit bounds how many it holds.
  unsigned headTimeoutSeconds = 10;
  // Seconds a connection with a response in progress may neither read nor write.
  unsigned idleTimeoutSeconds = 60;
  // Seconds a stream client (HttpResponse::stream) may accept no bytes while the stream has
  // bytes for it before it is dropped (counted in stats().streamStalls).
  unsigned streamStallSeconds = 20;
  // SO_SNDBUF of every connection (the kernel doubles it), 0 = the kernel's autotuning, which
  // grows a stalled client's socket to 4 MiB: on a 256 MB printer 48 stalled viewers would pin
  // 200 MB, and a slow viewer would see seconds-old frames before the fan-out's per-client drop
  // to the next keyframe starts. 256 KiB (512 KiB in effect) carries 40 Mbit/s at 100 ms RTT.
  int socketSendBufferBytes = 256 * 1024;
};

// What the limits, the origin rule and the credentials refused so far (monotonic counters).
struct HttpServerStats {
  uint64_t connections = 0;          // accepted connections
  uint64_t addressLimitRefused = 0;  // closed or answered 503: too many from one address
  // State-changing requests and CORS preflights refused by the origin rule (403).
  uint64_t crossOriginRefused = 0;
  uint64_t unauthorized = 0;  // requests without valid credentials (401)
  uint64_t streamStalls = 0;  // streams dropped: the client accepted nothing for streamStallSeconds
  uint64_t timeouts = 0;      // other connections closed by the head or idle timeout
};

// Threading: one internal libmicrohttpd polling thread (epoll/poll over non-blocking sockets)
// serves every connection of the port and calls `handler` for each complete request; the handler
// must return quickly (no blocking I/O, no waiting). A slow or stalled client never holds that
// thread: streams, files and buffers are written only as far as its socket accepts, then the
// thread moves on to the other connections. OPTIONS requests are answered by the server itself
// (CORS preflight; with policy.sameOriginWrites only for trusted origins, others get 403).
// State-changing requests that break config.policy get 403 with the reason before the handler
// sees them. A URL whose path or query has a percent-encoded NUL (%00) is answered 400 by
// the server itself: a NUL would silently cut the decoded path short (".../x%00.mp4" read as
// ".../x"). stop() may be called from any thread once.
class HttpServer {
 public:
  // Errors: Busy (port in use), InvalidArgument (bad host), Io.
  static hal::Result<std::unique_ptr<HttpServer>> start(const HttpServerConfig& config, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  // Thread-safe.
  HttpServerStats stats() const;
  // Fail pending deferred responses with 503, wait (bounded) for streams to drain after their
  // queues were closed by their owners and for upgraded connections to be destroyed by their
  // owners, and stop the daemon.
  void stop();

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace printcast::transport
