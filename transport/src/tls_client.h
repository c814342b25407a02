// SPDX-License-Identifier: MIT
// TlsClient: the client side of TLS on a connected non-blocking socket, for rtmps:// (RTMP inside
// TLS from the first byte, as ffmpeg, OBS and the RTMPS ingests speak it) and TlsTunnel (the
// MQTT responder's TLS). Internal to transport. One backend per build: tls_client_gnutls.cpp
// (GnuTLS, PRINTCAST_WITH_GNUTLS), else tls_client_mbedtls.cpp (mbedTLS, PRINTCAST_WITH_MBEDTLS:
// the static images, Debian has no static p11-kit for GnuTLS), else tls_client_unavailable.cpp.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "printcast/hal/result.h"
#include "printcast/transport/tls_tunnel.h"

namespace printcast::transport {

// Whether this build has a TLS client (tlsClientLibrary() names it).
bool tlsClientAvailable();

// The CA file a verifying client trusts: options.caFile, else the SSL_CERT_FILE environment
// variable's, else "" (the system's trust store). `where` says which, for error messages.
struct CaFileChoice {
  std::string path;
  std::string where;  // "/path", "SSL_CERT_FILE /path" or "the system's trust store"
};
CaFileChoice caFileToTrust(const TlsOptions& options);

// One TLS session. Threading: one thread at a time (a publisher's I/O thread). The socket stays
// the caller's: destroy the client before closing it (the destructor sends close_notify, one try).
class TlsClient {
 public:
  virtual ~TlsClient() = default;
  // send(2)'s and recv(2)'s contract on a non-blocking socket: the bytes moved; 0 from recv when
  // the server closed; else -1 with errno EAGAIN (poll the socket: POLLOUT for send, POLLIN for
  // recv), EINTR (call again), or EPROTO (a TLS error: the session is over). After EAGAIN, send()
  // must be called again with the same bytes.
  virtual ssize_t send(const uint8_t* data, size_t size) = 0;
  virtual ssize_t recv(uint8_t* buf, size_t size) = 0;
  // Decrypted bytes wait inside the client: recv() them before polling the socket again.
  virtual bool pending() const = 0;
};

// The TLS handshake on `fd` (connected, non-blocking) with the server `host` (a name or an IP
// address): SNI when `host` is a name; with TlsVerify::Full the server's certificate must chain
// to a trusted CA (options.caFile, else the PEM file the SSL_CERT_FILE environment variable names,
// as OpenSSL and curl read it, else the system's trust store) and name `host`; ChainOnly skips the
// name, None the whole check. Bounded by `timeout`; `wakeFd` (>= 0) readable abandons it.
// Errors: Unsupported (built without a TLS library), PermissionDenied (the certificate is
// refused, saying why), Timeout (no handshake within `timeout`, or stopped), Io (a TLS error or
// no trusted CA to check with, named). Messages name `host`.
hal::Result<std::unique_ptr<TlsClient>> startTlsClient(int fd, const std::string& host,
                                                       std::chrono::milliseconds timeout, int wakeFd,
                                                       const TlsOptions& options = {});

}  // namespace printcast::transport
