// SPDX-License-Identifier: MIT
// TlsClient on mbedTLS 2.28 (Debian bookworm's libmbedtls-dev; the static printer images, where
// GnuTLS cannot be linked). Mbed TLS documentation: "Mbed TLS tutorial" (client set-up:
// ssl_config_defaults, ctr_drbg seeded from entropy, set_bio) and ssl.h's notes on
// MBEDTLS_ERR_SSL_WANT_READ/WANT_WRITE (a non-blocking call is repeated with the same arguments).
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "tls_client.h"

namespace printcast::transport {

namespace {

using Clock = std::chrono::steady_clock;

// Debian's CA bundle (ca-certificates): mbedTLS has no notion of a system trust store.
constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";

std::string mbedtlsError(int rc) {
  std::array<char, 160> text{};
  mbedtls_strerror(rc, text.data(), text.size());
  return text.data();
}

// The record layer's transport: send(2)/recv(2) on the non-blocking socket.
int sendOnSocket(void* ctx, const unsigned char* buf, size_t len) {
  const int fd = *static_cast<int*>(ctx);
  const ssize_t n = ::send(fd, buf, len, MSG_NOSIGNAL);
  if (n >= 0) return static_cast<int>(n);
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return MBEDTLS_ERR_SSL_WANT_WRITE;
  return errno == EPIPE || errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_SEND_FAILED;
}

int recvOnSocket(void* ctx, unsigned char* buf, size_t len) {
  const int fd = *static_cast<int*>(ctx);
  const ssize_t n = ::recv(fd, buf, len, 0);
  if (n >= 0) return static_cast<int>(n);  // 0: the peer closed
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return MBEDTLS_ERR_SSL_WANT_READ;
  return errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_RECV_FAILED;
}

class MbedtlsClient final : public TlsClient {
 public:
  explicit MbedtlsClient(int socket) : fd(socket) {
    mbedtls_ssl_init(&ssl);
    mbedtls_ssl_config_init(&config);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_entropy_init(&entropy);
    mbedtls_x509_crt_init(&ca);
  }
  MbedtlsClient(const MbedtlsClient&) = delete;
  MbedtlsClient& operator=(const MbedtlsClient&) = delete;
  ~MbedtlsClient() override {
    if (established) (void)mbedtls_ssl_close_notify(&ssl);  // non-blocking: one try
    mbedtls_ssl_free(&ssl);
    mbedtls_ssl_config_free(&config);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    mbedtls_x509_crt_free(&ca);
  }

  ssize_t send(const uint8_t* data, size_t size) override {
    return mapped(mbedtls_ssl_write(&ssl, data, size));
  }
  ssize_t recv(uint8_t* buf, size_t size) override {
    const int n = mbedtls_ssl_read(&ssl, buf, size);
    // close_notify, or a server that closes without it: closed all the same.
    if (n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || n == MBEDTLS_ERR_SSL_CONN_EOF) return 0;
    return mapped(n);
  }
  bool pending() const override { return mbedtls_ssl_get_bytes_avail(&ssl) > 0; }

  int fd;  // the caller's socket; the bio callbacks get its address
  mbedtls_ssl_context ssl;
  mbedtls_ssl_config config;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_entropy_context entropy;
  mbedtls_x509_crt ca;
  bool established = false;

 private:
  static ssize_t mapped(int n) {
    if (n >= 0) return n;
    errno = n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE ? EAGAIN : EPROTO;
    return -1;
  }
};

}  // namespace

bool tlsClientAvailable() { return true; }
const char* tlsClientLibrary() { return "mbedTLS"; }

hal::Result<std::unique_ptr<TlsClient>> startTlsClient(int fd, const std::string& host,
                                                       std::chrono::milliseconds timeout, int wakeFd,
                                                       const TlsOptions& options) {
  auto fail = [&host](hal::Errc code, const std::string& what) {
    return hal::Error{code, 0, "TLS with " + host + ": " + what};
  };
  auto client = std::make_unique<MbedtlsClient>(fd);
  static constexpr unsigned char kPersonalization[] = "printcast tls client";
  int rc = mbedtls_ctr_drbg_seed(&client->drbg, mbedtls_entropy_func, &client->entropy, kPersonalization,
                                 sizeof kPersonalization - 1);
  if (rc != 0) return fail(hal::Errc::Io, "random generator: " + mbedtlsError(rc));
  rc = mbedtls_ssl_config_defaults(&client->config, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                   MBEDTLS_SSL_PRESET_DEFAULT);
  if (rc != 0) return fail(hal::Errc::Io, mbedtlsError(rc));
  mbedtls_ssl_conf_rng(&client->config, mbedtls_ctr_drbg_random, &client->drbg);
  const bool verify = options.verify != TlsVerify::None;
  if (verify) {
    CaFileChoice ca = caFileToTrust(options);
    if (ca.path.empty()) ca = {kSystemCaBundle, std::string("the system's trust store ") + kSystemCaBundle};
    // > 0: that many certificates of the file could not be parsed; the others are trusted.
    rc = mbedtls_x509_crt_parse_file(&client->ca, ca.path.c_str());
    if (rc < 0 || client->ca.version == 0) {
      return fail(hal::Errc::Io, "no trusted CA certificate from " + ca.where +
                                     (rc < 0 ? ": " + mbedtlsError(rc) : std::string()));
    }
    mbedtls_ssl_conf_ca_chain(&client->config, &client->ca, nullptr);
  }
  mbedtls_ssl_conf_authmode(&client->config, verify ? MBEDTLS_SSL_VERIFY_REQUIRED : MBEDTLS_SSL_VERIFY_NONE);
  rc = mbedtls_ssl_setup(&client->ssl, &client->config);
  if (rc != 0) return fail(hal::Errc::Io, mbedtlsError(rc));
  // The expected name (TlsVerify::Full) and SNI. mbedTLS 2.28 matches DNS names only: a server
  // reached by IP address is checked by its chain (ChainOnly) or not at all.
  if (options.verify == TlsVerify::Full) {
    rc = mbedtls_ssl_set_hostname(&client->ssl, host.c_str());
    if (rc != 0) return fail(hal::Errc::Io, mbedtlsError(rc));
  }
  mbedtls_ssl_set_bio(&client->ssl, &client->fd, &sendOnSocket, &recvOnSocket, nullptr);

  const auto deadline = Clock::now() + timeout;
  while ((rc = mbedtls_ssl_handshake(&client->ssl)) != 0) {
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
      std::array<char, 512> why{};
      const uint32_t flags = mbedtls_ssl_get_verify_result(&client->ssl);
      (void)mbedtls_x509_crt_verify_info(why.data(), why.size(), "", flags);
      std::string text = why.data();
      while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
      for (auto& ch : text) ch = ch == '\n' ? ';' : ch;
      return fail(hal::Errc::PermissionDenied, "the server's certificate is refused: " + text);
    }
    if (rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE)
      return fail(hal::Errc::Io, mbedtlsError(rc));
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return fail(hal::Errc::Timeout, "no handshake");
    pollfd p[2] = {{fd, static_cast<short>(rc == MBEDTLS_ERR_SSL_WANT_WRITE ? POLLOUT : POLLIN), 0},
                   {wakeFd, POLLIN, 0}};
    (void)::poll(p, wakeFd >= 0 ? 2 : 1, static_cast<int>(left));
    if ((p[1].revents & POLLIN) != 0) return fail(hal::Errc::Timeout, "stopped");
  }
  client->established = true;
  return std::unique_ptr<TlsClient>(std::move(client));
}

}  // namespace printcast::transport
