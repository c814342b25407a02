// SPDX-License-Identifier: MIT
// TlsTunnel and this build's TLS client (GnuTLS on the PC, mbedTLS in the static armhf builds)
// against a real TLS server: `openssl s_server -rev` (answers each line reversed) with a
// certificate the test makes, and against servers that are not it (another CA, plain TCP, none).
#include "printcast/transport/tls_tunnel.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace printcast::transport {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const char* kOpenssl = "/usr/bin/openssl";

// Runs argv, waits for it; true on exit status 0.
bool run(const std::vector<std::string>& argv) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));  // NOLINT
    args.push_back(nullptr);
    const int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  return pid > 0 && ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// A self-signed certificate (its own CA) with key, named `name`.pem / `name`.key in `dir`.
bool makeCertificate(const fs::path& dir, const std::string& name) {
  return run({kOpenssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", (dir / (name + ".key")).string(), "-out", (dir / (name + ".pem")).string(), "-days",
              "2", "-subj", "/CN=" + name});
}

// `openssl s_server -rev` on an ephemeral port of 127.0.0.1 (it prints "ACCEPT 127.0.0.1:PORT").
class EchoServer {
 public:
  bool start(const fs::path& cert, const fs::path& key) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return false;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      const int devnull = ::open("/dev/null", O_RDWR);
      ::dup2(devnull, 0);
      ::dup2(devnull, 2);
      ::execl(kOpenssl, kOpenssl, "s_server", "-accept", "127.0.0.1:0", "-cert", cert.c_str(), "-key",
              key.c_str(), "-rev", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    std::string text;
    const auto deadline = Clock::now() + 20s;
    while (port_ == 0 && Clock::now() < deadline) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 1000) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<size_t>(n));
      const auto at = text.find("ACCEPT 127.0.0.1:");
      const auto eol = at == std::string::npos ? at : text.find('\n', at);
      if (eol != std::string::npos)
        port_ = static_cast<uint16_t>(std::stoi(text.substr(at + 17, eol - at - 17)));
    }
    stdout_ = out[0];  // kept open: s_server writes its log there
    return port_ != 0;
  }
  ~EchoServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (stdout_ >= 0) ::close(stdout_);
  }
  uint16_t port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int stdout_ = -1;
  uint16_t port_ = 0;
};

int connectTo(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A TCP socket bound to an ephemeral port of 127.0.0.1 (listening when `listen`); -1 on failure.
int boundLoopbackSocket(bool listen, uint16_t* port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      (listen && ::listen(fd, 1) != 0) || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// Reads until a newline or the end; nullopt on neither within 20 s.
std::optional<std::string> readLine(int fd, bool* closed = nullptr) {
  std::string line;
  const auto deadline = Clock::now() + 20s;
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) continue;
    char c = 0;
    const ssize_t n = ::recv(fd, &c, 1, 0);
    if (n <= 0) {
      if (closed != nullptr) *closed = true;
      return line;
    }
    line += c;
    if (c == '\n') return line;
  }
  return std::nullopt;
}

// The tunnel's record of the connection's end, once there is one (it comes with the close).
std::optional<TlsTunnelEnd> endOf(const TlsTunnel& tunnel) {
  const auto deadline = Clock::now() + 20s;
  while (Clock::now() < deadline) {
    if (auto end = tunnel.lastEnd()) return end;
    std::this_thread::sleep_for(10ms);  // the tunnel sets it before closing: this is a short wait
  }
  return std::nullopt;
}

class TlsTunnelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string(tlsClientLibrary()).empty()) GTEST_SKIP() << "build: no TLS client (GnuTLS or mbedTLS)";
    if (::access(kOpenssl, X_OK) != 0) GTEST_SKIP() << "machine: no " << kOpenssl << " (Debian's openssl)";
    dir_ = fs::temp_directory_path() / ("printcast-tls-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    ASSERT_TRUE(makeCertificate(dir_, "server")) << "openssl req failed";
    ASSERT_TRUE(makeCertificate(dir_, "other")) << "openssl req failed";
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  std::unique_ptr<TlsTunnel> tunnelTo(uint16_t port, TlsVerify verify, const std::string& caFile = "") {
    TlsTunnelOptions options;
    options.host = "127.0.0.1";
    options.port = port;
    options.tls.verify = verify;
    options.tls.caFile = caFile;
    options.connectTimeout = 10s;
    auto tunnel = TlsTunnel::start(options);
    EXPECT_TRUE(tunnel.ok()) << (tunnel.ok() ? "" : tunnel.error().message);
    return tunnel.ok() ? std::move(*tunnel) : nullptr;
  }

  // A local connection the tunnel cannot carry: it is closed with nothing read, and the tunnel's
  // record (set before that close) says it never got a session.
  static std::string refusedConnection(const TlsTunnel& tunnel) {
    const int fd = connectTo(tunnel.port());
    EXPECT_GE(fd, 0);
    if (fd < 0) return "";
    bool closed = false;
    EXPECT_EQ(readLine(fd, &closed), "");
    EXPECT_TRUE(closed);
    ::close(fd);
    const auto end = tunnel.lastEnd();
    EXPECT_TRUE(end.has_value());
    if (!end) return "";
    EXPECT_FALSE(end->established);
    return end->error;
  }

  fs::path dir_;
};

TEST_F(TlsTunnelTest, RelaysBothWaysWithoutVerification) {
  EchoServer server;
  ASSERT_TRUE(server.start(dir_ / "server.pem", dir_ / "server.key"));
  auto tunnel = tunnelTo(server.port(), TlsVerify::None);
  ASSERT_NE(tunnel, nullptr);
  EXPECT_NE(tunnel->port(), server.port());
  const int fd = connectTo(tunnel->port());
  ASSERT_GE(fd, 0);
  for (const std::string line : {"hello printcast\n", "a second line\n"}) {
    ASSERT_EQ(::send(fd, line.data(), line.size(), MSG_NOSIGNAL), static_cast<ssize_t>(line.size()));
    std::string reversed(line.rbegin() + 1, line.rend());
    EXPECT_EQ(readLine(fd), reversed + "\n");
  }
  EXPECT_FALSE(tunnel->lastEnd().has_value());  // still open
  ::close(fd);
  const auto end = endOf(*tunnel);
  ASSERT_TRUE(end.has_value());
  EXPECT_TRUE(end->established);
  EXPECT_EQ(end->error, "");  // the client closed it
}

TEST_F(TlsTunnelTest, ChainOnlyTrustsTheGivenCa) {
  EchoServer server;
  ASSERT_TRUE(server.start(dir_ / "server.pem", dir_ / "server.key"));
  // The certificate names "server", not 127.0.0.1: ChainOnly does not look at the name.
  auto tunnel = tunnelTo(server.port(), TlsVerify::ChainOnly, (dir_ / "server.pem").string());
  ASSERT_NE(tunnel, nullptr);
  const int fd = connectTo(tunnel->port());
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::send(fd, "abc\n", 4, MSG_NOSIGNAL), 4);
  EXPECT_EQ(readLine(fd), "cba\n");
  ::close(fd);
}

TEST_F(TlsTunnelTest, RefusesACertificateOfAnotherCaAndSaysWhy) {
  EchoServer server;
  ASSERT_TRUE(server.start(dir_ / "server.pem", dir_ / "server.key"));
  auto tunnel = tunnelTo(server.port(), TlsVerify::ChainOnly, (dir_ / "other.pem").string());
  ASSERT_NE(tunnel, nullptr);
  const std::string error = refusedConnection(*tunnel);
  EXPECT_NE(error.find("certificate"), std::string::npos) << error;
  EXPECT_NE(error.find("127.0.0.1"), std::string::npos) << error;
}

TEST_F(TlsTunnelTest, AMissingCaFileIsNamed) {
  EchoServer server;
  ASSERT_TRUE(server.start(dir_ / "server.pem", dir_ / "server.key"));
  const std::string missing = (dir_ / "no-such-ca.pem").string();
  auto tunnel = tunnelTo(server.port(), TlsVerify::ChainOnly, missing);
  ASSERT_NE(tunnel, nullptr);
  const std::string error = refusedConnection(*tunnel);
  EXPECT_NE(error.find("no trusted CA certificate from " + missing), std::string::npos) << error;
}

TEST_F(TlsTunnelTest, AServerThatSpeaksNoTlsEndsTheConnection) {
  uint16_t port = 0;
  const int listener = boundLoopbackSocket(/*listen=*/true, &port);
  ASSERT_GE(listener, 0);
  std::thread plain([listener] {
    const int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0) return;
    const std::string reply = "HTTP/1.0 400 Bad Request\r\n\r\n";
    (void)::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    ::close(fd);
  });
  auto tunnel = tunnelTo(port, TlsVerify::None);
  ASSERT_NE(tunnel, nullptr);
  const std::string error = refusedConnection(*tunnel);  // nothing of the plain reply comes through
  plain.join();
  EXPECT_NE(error.find("TLS with 127.0.0.1"), std::string::npos) << error;
  ::close(listener);
}

TEST_F(TlsTunnelTest, NoServerIsACannotConnectAndTheTunnelStaysUp) {
  // A port nothing listens on: bound, not listening.
  uint16_t port = 0;
  const int holder = boundLoopbackSocket(/*listen=*/false, &port);
  ASSERT_GE(holder, 0);
  auto tunnel = tunnelTo(port, TlsVerify::None);
  ASSERT_NE(tunnel, nullptr);
  for (int attempt = 0; attempt < 2; ++attempt) {  // a client that retries gets the same answer
    const std::string error = refusedConnection(*tunnel);
    EXPECT_NE(error.find("connect 127.0.0.1:" + std::to_string(port)), std::string::npos) << error;
    EXPECT_NE(error.find("refused"), std::string::npos) << error;
  }
  ::close(holder);
}

TEST(TlsTunnelOptionsTest, NeedsAServer) {
  auto tunnel = TlsTunnel::start(TlsTunnelOptions{});
  ASSERT_FALSE(tunnel.ok());
  EXPECT_EQ(tunnel.error().code, hal::Errc::InvalidArgument);
}

}  // namespace
}  // namespace printcast::transport
