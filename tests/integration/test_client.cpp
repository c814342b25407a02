// SPDX-License-Identifier: MIT
// Test helpers: child-process streamer, raw HTTP client, command runner.
#include "test_client.h"

#include "printcast/transport/mjpeg.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

extern char** environ;

namespace printcast::testing {

namespace {

using Clock = std::chrono::steady_clock;

int remainingMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Read whatever arrives on fd until `deadline`; false on timeout with nothing, or EOF.
bool readSome(int fd, std::string& into, Clock::time_point deadline, bool& eof) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, remainingMs(deadline)) <= 0) return false;
  char buf[65536];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  if (n <= 0) {
    eof = true;
    return false;
  }
  into.append(buf, static_cast<size_t>(n));
  return true;
}

int connectLoopback(uint16_t port, int receiveBufferBytes, const std::string& from = "") {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (receiveBufferBytes > 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receiveBufferBytes, sizeof receiveBufferBytes);
  }
  if (!from.empty()) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    if (::inet_pton(AF_INET, from.c_str(), &local.sin_addr) != 1 ||
        ::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
      ::close(fd);
      return -1;
    }
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool sendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Split "HTTP/1.1 200 OK\r\nA: b\r\n\r\n" into status and lower-case header map.
int parseHead(const std::string& head, std::string& statusLine, std::map<std::string, std::string>& headers) {
  std::istringstream in(head);
  std::getline(in, statusLine);
  if (!statusLine.empty() && statusLine.back() == '\r') statusLine.pop_back();
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(value.begin());
    headers[name] = value;
  }
  const auto sp = statusLine.find(' ');
  return sp == std::string::npos ? 0 : std::atoi(statusLine.c_str() + sp + 1);
}

std::string buildRequest(const std::string& method, const std::string& target, const std::string& body,
                         const std::map<std::string, std::string>& headers) {
  std::string req = method + " " + target + " HTTP/1.1\r\n";
  if (headers.count("Host") == 0) req += "Host: 127.0.0.1\r\n";
  req += "Connection: close\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST") req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return req + "\r\n" + body;
}

}  // namespace

StreamerProcess::StreamerProcess(const std::string& binary, const std::vector<std::string>& args) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    log_ = "pipe failed";
    return;
  }
  // Every port defaults to 0 (any free port) unless `args` sets it (a camera restarted on the
  // port it had).
  std::vector<std::string> all = {binary};
  for (const char* flag : {"--port", "--control-port", "--flv-port", "--ws-port", "--rtsp-port"}) {
    if (std::find(args.begin(), args.end(), flag) == args.end()) all.insert(all.end(), {flag, "0"});
  }
  // Shared-memory rings are host-wide names: one per streamer process of this test run, so test
  // runs (and a streamer already running on the host) never replace each other's rings.
  static int instance = 0;
  ringName_ = "printcast-test-" + std::to_string(::getpid()) + "-" + std::to_string(instance++);
  all.insert(all.end(), {"--ring-name", ringName_});
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, out[1], 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    log_ = std::string("spawn failed: ") + std::strerror(rc);
    return;
  }
  pid_ = pid;
  outFd_ = out[0];
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  bool eof = false;
  while (log_.find("Press Ctrl+C") == std::string::npos && !eof && Clock::now() < deadline) {
    readSome(outFd_, log_, deadline, eof);
  }
  std::smatch m;
  if (std::regex_search(log_, m, std::regex(R"(status\s+http://[0-9.]+:(\d+)/status)"))) {
    streamPort_ = static_cast<uint16_t>(std::stoi(m[1]));
  }
  if (std::regex_search(log_, m, std::regex(R"(stats\s+http://[0-9.]+:(\d+)/api/stats)"))) {
    controlPort_ = static_cast<uint16_t>(std::stoi(m[1]));
  }
  if (std::regex_search(log_, m, std::regex(R"(slicer FLV\s+http://[0-9.]+:(\d+)/flv)"))) {
    flvPort_ = static_cast<uint16_t>(std::stoi(m[1]));
  }
  if (std::regex_search(log_, m, std::regex(R"((?:reCamera|viewers) H.264/WS\s+ws://[0-9.]+:(\d+)/)"))) {
    wsPort_ = static_cast<uint16_t>(std::stoi(m[1]));
  }
  if (std::regex_search(log_, m, std::regex(R"(camera RTSP\s+rtsp://[0-9.]+:(\d+)/stream)"))) {
    rtspPort_ = static_cast<uint16_t>(std::stoi(m[1]));
  }
  if (std::regex_search(log_, m, std::regex(R"(camera ingest\s+ws://[0-9.]+:(\d+)/\n)"))) {
    ingestPort_ = static_cast<uint16_t>(std::stoi(m[1]));
  }
  // Keep draining its output so the child never blocks on a full pipe.
  ::fcntl(outFd_, F_SETFL, O_NONBLOCK);
}

StreamerProcess::~StreamerProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  // A killed streamer leaves its rings in /dev/shm (a clean stop unlinks them).
  if (!ringName_.empty()) {
    for (const char* stream : {"-h264", "-jpeg"}) ::shm_unlink(("/" + ringName_ + stream).c_str());
  }
  if (outFd_ >= 0) ::close(outFd_);
}

long StreamerProcess::rssKiB() const {
  std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

int StreamerProcess::terminate(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    // Drain output so a chatty shutdown cannot block on the pipe.
    char buf[4096];
    while (::read(outFd_, buf, sizeof buf) > 0) {
    }
    pollfd p{outFd_, POLLIN, 0};
    ::poll(&p, 1, 20);
  }
  return -1;
}

int connectLoopbackFrom(const std::string& from, uint16_t port) { return connectLoopback(port, 0, from); }

namespace {
HttpReply request(const std::string& from, uint16_t port, const std::string& method,
                  const std::string& target, const std::string& body,
                  const std::map<std::string, std::string>& headers, std::chrono::milliseconds timeout);
}  // namespace

HttpReply httpRequest(uint16_t port, const std::string& method, const std::string& target,
                      const std::string& body, const std::map<std::string, std::string>& headers,
                      std::chrono::milliseconds timeout) {
  return request("", port, method, target, body, headers, timeout);
}

HttpReply httpRequestFrom(const std::string& from, uint16_t port, const std::string& method,
                          const std::string& target, std::chrono::milliseconds timeout) {
  return request(from, port, method, target, "", {}, timeout);
}

namespace {
HttpReply request(const std::string& from, uint16_t port, const std::string& method,
                  const std::string& target, const std::string& body,
                  const std::map<std::string, std::string>& headers, std::chrono::milliseconds timeout) {
  HttpReply reply;
  const int fd = connectLoopback(port, 0, from);
  if (fd < 0) {
    reply.error = "connect failed";
    return reply;
  }
  const auto deadline = Clock::now() + timeout;
  if (!sendAll(fd, buildRequest(method, target, body, headers))) {
    ::close(fd);
    reply.error = "send failed";
    return reply;
  }
  std::string data;
  bool eof = false;
  size_t headEnd = std::string::npos;
  while (!eof && Clock::now() < deadline) {
    if (!readSome(fd, data, deadline, eof)) continue;
    if (headEnd == std::string::npos) {
      headEnd = data.find("\r\n\r\n");
      if (headEnd != std::string::npos) {
        reply.rawHeaders = data.substr(0, headEnd + 4);
        reply.status = parseHead(reply.rawHeaders, reply.statusLine, reply.headers);
      }
    }
    if (headEnd != std::string::npos && reply.headers.count("content-length") != 0) {
      const size_t want = std::stoull(reply.headers["content-length"]);
      if (data.size() - (headEnd + 4) >= want) break;
    }
  }
  ::close(fd);
  if (headEnd == std::string::npos) {
    reply.error = "no complete response head";
    return reply;
  }
  reply.body = data.substr(headEnd + 4);
  return reply;
}
}  // namespace

StreamConnection::StreamConnection(uint16_t port, const std::string& target, int receiveBufferBytes,
                                   const std::string& from,
                                   const std::map<std::string, std::string>& headers) {
  fd_ = connectLoopback(port, receiveBufferBytes, from);
  if (fd_ < 0 || !sendAll(fd_, buildRequest("GET", target, "", headers))) return;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  std::string data;
  bool eof = false;
  while (!eof && Clock::now() < deadline) {
    readSome(fd_, data, deadline, eof);
    const auto end = data.find("\r\n\r\n");
    if (end != std::string::npos) {
      rawHeaders_ = data.substr(0, end + 4);
      std::string statusLine;
      status_ = parseHead(rawHeaders_, statusLine, headers_);
      pending_ = data.substr(end + 4);
      return;
    }
  }
}

StreamConnection::~StreamConnection() {
  if (fd_ >= 0) ::close(fd_);
}

std::string StreamConnection::header(const std::string& lowerName) const {
  auto it = headers_.find(lowerName);
  return it == headers_.end() ? std::string() : it->second;
}

std::string StreamConnection::read(size_t max, std::chrono::milliseconds timeout) {
  if (!pending_.empty()) {
    std::string out = pending_.substr(0, max);
    pending_.erase(0, out.size());
    return out;
  }
  std::string out;
  bool eof = false;
  readSome(fd_, out, Clock::now() + timeout, eof);
  if (out.size() > max) {
    pending_ = out.substr(max);
    out.resize(max);
  }
  return out;
}

bool StreamConnection::waitForEnd(std::chrono::milliseconds timeout) {
  pending_.clear();
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    std::string out;
    bool eof = false;
    readSome(fd_, out, deadline, eof);
    if (eof) return true;
  }
  return false;
}

size_t countMjpegParts(uint16_t port, std::chrono::milliseconds duration, const std::string& from,
                       const std::string& target) {
  StreamConnection c(port, target, 0, from);
  if (!c.ok() || c.status() != 200) return 0;
  transport::mjpeg::Parser parser;
  size_t parts = 0;
  const auto end = Clock::now() + duration;
  while (Clock::now() < end) {
    const std::string chunk = c.read(1 << 20, std::chrono::milliseconds(200));
    if (!parser.feed({reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size()})) return 0;
    parts += parser.takeParts().size();
  }
  return parts;
}

CommandResult runCommand(const std::vector<std::string>& args, std::chrono::seconds limit) {
  CommandResult result;
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return result;
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, copy[0].c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    result.err = std::string("cannot run ") + copy[0] + ": " + std::strerror(rc);
    return result;
  }
  const auto deadline = Clock::now() + limit;
  bool outOpen = true;
  bool errOpen = true;
  while ((outOpen || errOpen) && Clock::now() < deadline) {
    pollfd fds[2] = {{outOpen ? out[0] : -1, POLLIN, 0}, {errOpen ? err[0] : -1, POLLIN, 0}};
    if (::poll(fds, 2, remainingMs(deadline)) <= 0) continue;
    char buf[65536];
    if ((fds[0].revents & (POLLIN | POLLHUP)) != 0) {
      const ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0)
        outOpen = false;
      else
        result.out.append(buf, static_cast<size_t>(n));
    }
    if ((fds[1].revents & (POLLIN | POLLHUP)) != 0) {
      const ssize_t n = ::read(err[0], buf, sizeof buf);
      if (n <= 0)
        errOpen = false;
      else
        result.err.append(buf, static_cast<size_t>(n));
    }
  }
  if (outOpen || errOpen) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(out[0]);
  ::close(err[0]);
  result.exitCode = (!outOpen && !errOpen && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
  return result;
}

CommandResult ffmpegDecode(const std::string& input, int seconds,
                           const std::vector<std::string>& inputOptions, const std::string& outputFormat) {
  std::vector<std::string> argv{"ffmpeg", "-nostdin", "-v", "error"};
  argv.insert(argv.end(), inputOptions.begin(), inputOptions.end());
  argv.insert(argv.end(), {"-i", input, "-t", std::to_string(seconds), "-fps_mode", "passthrough",
                           "-enc_time_base", "-1", "-f", outputFormat, "-"});
  return runCommand(argv, std::chrono::seconds(60));
}

// A TCP port nobody listens on right now (bound and released: the kernel does not hand it out
// again at once).
uint16_t freeTcpPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

int listenLoopback(uint16_t& port, int backlog) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, backlog) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return -1;
  }
  port = ntohs(addr.sin_port);
  return fd;
}

std::optional<std::pair<int, int>> jpegSize(const std::string& jpeg) {
  if (jpeg.size() < 4 || static_cast<uint8_t>(jpeg[0]) != 0xFF || static_cast<uint8_t>(jpeg[1]) != 0xD8)
    return std::nullopt;
  for (size_t i = 2; i + 9 < jpeg.size();) {
    if (static_cast<uint8_t>(jpeg[i]) != 0xFF) return std::nullopt;
    const auto marker = static_cast<uint8_t>(jpeg[i + 1]);
    const size_t length = (static_cast<uint8_t>(jpeg[i + 2]) << 8) | static_cast<uint8_t>(jpeg[i + 3]);
    if (marker == 0xC0 || marker == 0xC1 || marker == 0xC2) {
      const int h = (static_cast<uint8_t>(jpeg[i + 5]) << 8) | static_cast<uint8_t>(jpeg[i + 6]);
      const int w = (static_cast<uint8_t>(jpeg[i + 7]) << 8) | static_cast<uint8_t>(jpeg[i + 8]);
      return std::make_pair(w, h);
    }
    i += 2 + length;
  }
  return std::nullopt;
}

}  // namespace printcast::testing
