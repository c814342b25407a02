// SPDX-License-Identifier: MIT
// TlsTunnel: a plain-TCP port on 127.0.0.1 whose connections are carried over TLS to one server,
// for a client library that has no TLS of its own in this build. The printers' static images
// carry libmosquitto without TLS (its only TLS is OpenSSL, ~2.4 MB there): the streamer's MQTT
// responder (apps/streamer) connects it to the tunnel, and the tunnel speaks TLS to the
// firmware's broker with this build's TLS client (GnuTLS, or mbedTLS where GnuTLS cannot be
// linked statically).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "printcast/hal/result.h"

namespace printcast::transport {

// How much of the server's certificate a TLS client checks.
enum class TlsVerify {
  Full,       // chains to a trusted CA and names the host (a public server: rtmps:// ingests)
  ChainOnly,  // chains to a trusted CA, any name (a device whose certificate names no host we know)
  None,       // not checked: encrypted, not authenticated (the printer's own broker on 127.0.0.1)
};

struct TlsOptions {
  TlsVerify verify = TlsVerify::Full;
  // PEM file of the trusted CA certificates. Empty: the SSL_CERT_FILE environment variable's file
  // (as OpenSSL and curl read it), else the system's trust store. Not read with TlsVerify::None.
  std::string caFile;
};

// Which TLS library this build's client uses: "GnuTLS", "mbedTLS", or "" (none: every TLS call
// answers Unsupported).
const char* tlsClientLibrary();

struct TlsTunnelOptions {
  std::string host;  // the TLS server: a name or an IP address
  uint16_t port = 0;
  TlsOptions tls;
  std::chrono::milliseconds connectTimeout{5000};  // TCP connect, then the handshake, each
  std::chrono::milliseconds writeTimeout{5000};    // a side that stops reading for this long ends it
};

// Why the last tunnelled connection ended: `error` is empty when the local client closed it.
// `established`: the TLS session was up (false: the connect or the handshake failed).
struct TlsTunnelEnd {
  bool established = false;
  std::string error;
};

// Threading: start() and the destructor from one thread; port() and lastEnd() from any. The
// tunnel has a thread of its own ("tls tunnel") that connects, handshakes and relays; DNS and the
// handshake run there, never on the caller's thread.
// One connection at a time: a new local connection replaces the one before (a client that
// reconnects). Each local connection gets a new TCP connection and TLS session to the server,
// opened when it arrives. The port is bound to 127.0.0.1 only; any local process may use it,
// which gives it nothing it could not do itself (the server's credentials travel inside, from the
// client).
class TlsTunnel {
 public:
  // Listens on an ephemeral port of 127.0.0.1 and starts the thread.
  // Errors: Unsupported (this build has no TLS client), InvalidArgument (no host or port),
  // Io (the listening socket, the thread's wake-up descriptor).
  static hal::Result<std::unique_ptr<TlsTunnel>> start(TlsTunnelOptions options);
  ~TlsTunnel();
  TlsTunnel(const TlsTunnel&) = delete;
  TlsTunnel& operator=(const TlsTunnel&) = delete;

  // The local port to connect to (127.0.0.1).
  uint16_t port() const;
  // How the last connection ended; nullopt while the newest one is open (or none came yet). It is
  // set before the local socket is closed, so a client that sees its connection close reads why here.
  std::optional<TlsTunnelEnd> lastEnd() const;

  struct Impl;

 private:
  explicit TlsTunnel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace printcast::transport
