// SPDX-License-Identifier: MIT
// TlsClient on GnuTLS (https://gnutls.org/manual/: "Asynchronous operation" for the non-blocking
// handshake and record calls, "Verifying a certificate" for gnutls_session_set_verify_cert).
#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <poll.h>

#include <cerrno>

#include "tls_client.h"

namespace printcast::transport {

namespace {

using Clock = std::chrono::steady_clock;

class GnutlsClient final : public TlsClient {
 public:
  GnutlsClient() = default;
  GnutlsClient(const GnutlsClient&) = delete;
  GnutlsClient& operator=(const GnutlsClient&) = delete;
  ~GnutlsClient() override {
    if (session != nullptr) {
      if (established) (void)gnutls_bye(session, GNUTLS_SHUT_WR);  // non-blocking: one try
      gnutls_deinit(session);
    }
    if (credentials != nullptr) gnutls_certificate_free_credentials(credentials);
  }

  ssize_t send(const uint8_t* data, size_t size) override {
    return mapped(gnutls_record_send(session, data, size));
  }
  ssize_t recv(uint8_t* buf, size_t size) override {
    const ssize_t n = gnutls_record_recv(session, buf, size);
    // A server that closes without close_notify has closed all the same.
    return n == GNUTLS_E_PREMATURE_TERMINATION ? 0 : mapped(n);
  }
  bool pending() const override { return gnutls_record_check_pending(session) > 0; }

  gnutls_session_t session = nullptr;
  gnutls_certificate_credentials_t credentials = nullptr;
  bool established = false;

 private:
  static ssize_t mapped(ssize_t n) {
    if (n >= 0) return n;
    errno = n == GNUTLS_E_AGAIN ? EAGAIN : n == GNUTLS_E_INTERRUPTED ? EINTR : EPROTO;
    return -1;
  }
};

bool isIpAddress(const std::string& host) {
  in6_addr addr{};
  return inet_pton(AF_INET, host.c_str(), &addr) == 1 || inet_pton(AF_INET6, host.c_str(), &addr) == 1;
}

}  // namespace

bool tlsClientAvailable() { return true; }
const char* tlsClientLibrary() { return "GnuTLS"; }

hal::Result<std::unique_ptr<TlsClient>> startTlsClient(int fd, const std::string& host,
                                                       std::chrono::milliseconds timeout, int wakeFd,
                                                       const TlsOptions& options) {
  auto fail = [&host](hal::Errc code, const std::string& what) {
    return hal::Error{code, 0, "TLS with " + host + ": " + what};
  };
  auto client = std::make_unique<GnutlsClient>();
  int rc = gnutls_certificate_allocate_credentials(&client->credentials);
  if (rc < 0) return fail(hal::Errc::Io, gnutls_strerror(rc));
  const bool verify = options.verify != TlsVerify::None;
  if (verify) {
    const CaFileChoice ca = caFileToTrust(options);
    rc = !ca.path.empty() ? gnutls_certificate_set_x509_trust_file(client->credentials, ca.path.c_str(),
                                                                   GNUTLS_X509_FMT_PEM)
                          : gnutls_certificate_set_x509_system_trust(client->credentials);
    if (rc <= 0) {
      return fail(hal::Errc::Io, "no trusted CA certificate from " + ca.where +
                                     (rc < 0 ? std::string(": ") + gnutls_strerror(rc) : std::string()));
    }
  }
  rc = gnutls_init(&client->session, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
  if (rc >= 0) rc = gnutls_set_default_priority(client->session);
  if (rc >= 0) rc = gnutls_credentials_set(client->session, GNUTLS_CRD_CERTIFICATE, client->credentials);
  if (rc >= 0 && !isIpAddress(host))
    rc = gnutls_server_name_set(client->session, GNUTLS_NAME_DNS, host.data(), host.size());
  if (rc < 0) return fail(hal::Errc::Io, gnutls_strerror(rc));
  // A null host name: the chain is checked, the name is not.
  if (verify)
    gnutls_session_set_verify_cert(client->session,
                                   options.verify == TlsVerify::Full ? host.c_str() : nullptr, 0);
  gnutls_transport_set_int(client->session, fd);

  const auto deadline = Clock::now() + timeout;
  while ((rc = gnutls_handshake(client->session)) < 0) {
    if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
      const unsigned status = gnutls_session_get_verify_cert_status(client->session);
      gnutls_datum_t text{};
      std::string why = "the server's certificate is refused";
      if (gnutls_certificate_verification_status_print(status, gnutls_certificate_type_get(client->session),
                                                       &text, 0) >= 0) {
        why += std::string(": ") + reinterpret_cast<const char*>(text.data);
        gnutls_free(text.data);
      }
      return fail(hal::Errc::PermissionDenied, why);
    }
    if (gnutls_error_is_fatal(rc) != 0) return fail(hal::Errc::Io, gnutls_strerror(rc));
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return fail(hal::Errc::Timeout, "no handshake");
    pollfd p[2] = {
        {fd, static_cast<short>(gnutls_record_get_direction(client->session) == 1 ? POLLOUT : POLLIN), 0},
        {wakeFd, POLLIN, 0}};
    (void)::poll(p, wakeFd >= 0 ? 2 : 1, static_cast<int>(left));
    if ((p[1].revents & POLLIN) != 0) return fail(hal::Errc::Timeout, "stopped");
  }
  client->established = true;
  return std::unique_ptr<TlsClient>(std::move(client));
}

}  // namespace printcast::transport
