// SPDX-License-Identifier: MIT
// TlsTunnel: a loopback listener relaying each connection over this build's TLS client.
#include "printcast/transport/tls_tunnel.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "printcast/hal/thread_name.h"
#include "printcast/transport/tcp_connect.h"
#include "tls_client.h"

namespace printcast::transport {

namespace {
// The message with its errno's text ("connect 127.0.0.1:9883: Connection refused").
std::string withErrno(const hal::Error& e) {
  return e.errnum != 0 ? e.message + ": " + std::strerror(e.errnum) : e.message;
}
}  // namespace

// Shared by the TLS client backends (tls_client.h).
CaFileChoice caFileToTrust(const TlsOptions& options) {
  if (!options.caFile.empty()) return {options.caFile, options.caFile};
  const char* env = std::getenv("SSL_CERT_FILE");  // NOLINT(concurrency-mt-unsafe): nothing sets it
  if (env != nullptr && *env != '\0') return {env, std::string("SSL_CERT_FILE ") + env};
  return {"", "the system's trust store"};
}

struct TlsTunnel::Impl {
  TlsTunnelOptions options;
  int listenFd = -1;
  int wakeFd = -1;
  uint16_t port = 0;
  std::atomic<bool> stopping{false};
  std::thread thread;

  mutable std::mutex mutex;  // guards lastEnd
  std::optional<TlsTunnelEnd> lastEnd;

  // The tunnel's thread only.
  int local = -1;
  int remote = -1;
  std::unique_ptr<TlsClient> tls;
  bool established = false;

  ~Impl() {
    if (listenFd >= 0) ::close(listenFd);
    if (wakeFd >= 0) ::close(wakeFd);
  }

  // Ends the current connection: records why first, then closes (the client reads lastEnd()
  // after it sees the close).
  void end(std::string error) {
    {
      std::lock_guard lock(mutex);
      lastEnd = TlsTunnelEnd{established, std::move(error)};
    }
    tls.reset();  // close_notify, before the socket goes
    if (remote >= 0) ::close(remote);
    if (local >= 0) ::close(local);
    remote = local = -1;
    established = false;
  }

  void openSession() {
    auto fd = connectTcp(options.host, options.port, options.connectTimeout, wakeFd);
    if (!fd) return end(withErrno(fd.error()));
    remote = *fd;
    auto session = startTlsClient(remote, options.host, options.connectTimeout, wakeFd, options.tls);
    if (!session) return end(withErrno(session.error()));
    tls = std::move(*session);
    established = true;
  }

  // The local client -> the server. False when the connection ended.
  bool relayUp(std::vector<uint8_t>& buf) {
    const ssize_t n = ::recv(local, buf.data(), buf.size(), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
    if (n <= 0) {
      end("");  // the client closed (or reset) its side
      return false;
    }
    auto sent = sendAll(remote, buf.data(), static_cast<size_t>(n), options.writeTimeout,
                        [this](const uint8_t* p, size_t size) { return tls->send(p, size); });
    if (!sent) {
      end("TLS with " + options.host + ": " + withErrno(sent.error()));
      return false;
    }
    return true;
  }

  // The server -> the local client: everything the session has now. False when it ended.
  bool relayDown(std::vector<uint8_t>& buf) {
    while (true) {
      const ssize_t n = tls->recv(buf.data(), buf.size());
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
      if (n < 0) {
        end("TLS with " + options.host + ": the session failed");
        return false;
      }
      if (n == 0) {
        end(options.host + ":" + std::to_string(options.port) + " closed the connection");
        return false;
      }
      if (auto sent = sendAll(local, buf.data(), static_cast<size_t>(n), options.writeTimeout); !sent) {
        end("the local client: " + withErrno(sent.error()));
        return false;
      }
    }
  }

  void run() {
    hal::nameThisThread("tls tunnel");
    std::vector<uint8_t> buf(16384);
    while (!stopping.load()) {
      pollfd p[4] = {{listenFd, POLLIN, 0}, {wakeFd, POLLIN, 0}, {local, POLLIN, 0}, {remote, POLLIN, 0}};
      const nfds_t n = local >= 0 ? 4 : 2;  // local and remote are open together
      const int ready = ::poll(p, n, tls && tls->pending() ? 0 : -1);
      if (ready < 0 && errno != EINTR) break;
      if (ready < 0 || (p[1].revents & POLLIN) != 0) continue;  // stopping is checked above
      const bool upReady = n == 4 && p[2].revents != 0;
      const bool downReady = n == 4 && (p[3].revents != 0 || tls->pending());
      const bool stillOpen = !upReady || relayUp(buf);
      if (stillOpen && downReady) relayDown(buf);
      if ((p[0].revents & POLLIN) != 0) {
        const int fd = ::accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
          if (local >= 0) end("replaced by a new connection");
          {
            std::lock_guard lock(mutex);
            lastEnd.reset();  // a new connection: nothing ended yet
          }
          local = fd;
          openSession();
        }
      }
    }
    if (local >= 0) end("");
  }
};

hal::Result<std::unique_ptr<TlsTunnel>> TlsTunnel::start(TlsTunnelOptions options) {
  if (options.host.empty() || options.port == 0)
    return hal::Error{hal::Errc::InvalidArgument, 0, "TLS tunnel: no server host and port"};
  if (!tlsClientAvailable()) {
    return hal::Error{hal::Errc::Unsupported, 0,
                      "TLS tunnel to " + options.host + ": this build has no TLS client (GnuTLS or mbedTLS)"};
  }
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->listenFd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (impl->listenFd < 0) return hal::errnoError("TLS tunnel: socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(impl->listenFd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(impl->listenFd, 4) != 0 ||
      ::getsockname(impl->listenFd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return hal::errnoError("TLS tunnel: listen on 127.0.0.1");
  }
  impl->port = ntohs(addr.sin_port);
  impl->wakeFd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (impl->wakeFd < 0) return hal::errnoError("TLS tunnel: eventfd");
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->run(); });
  return std::unique_ptr<TlsTunnel>(new TlsTunnel(std::move(impl)));  // NOLINT: private constructor
}

TlsTunnel::TlsTunnel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TlsTunnel::~TlsTunnel() {
  impl_->stopping.store(true);
  const uint64_t one = 1;
  (void)!::write(impl_->wakeFd, &one, sizeof one);
  if (impl_->thread.joinable()) impl_->thread.join();
}

uint16_t TlsTunnel::port() const { return impl_->port; }

std::optional<TlsTunnelEnd> TlsTunnel::lastEnd() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->lastEnd;
}

}  // namespace printcast::transport
