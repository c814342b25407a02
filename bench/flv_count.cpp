// SPDX-License-Identifier: MIT
// printcast-flv-count: reads an HTTP FLV stream for a while and counts the H.264 frames it carries.
//
//   printcast-flv-count --port 8080 [--control-port 8081] [--pid PID] [--warmup 1] [--duration 8]
//                       [--save FILE]
//
// Connects to http://HOST:PORT/flv (HTTP/1.0, so the body is not chunked), reads and discards
// for --warmup seconds, then counts the AVC NALU video tags (one per access unit) that arrive
// within the next --duration seconds. With --pid it reads that process's utime+stime from
// /proc/PID/stat at the window's ends; with --control-port it reads the streamer's /api/stats
// there too (frames encoded and dropped per client queue). --save writes the FLV bytes of the
// warm-up to FILE (the stream's start: x264 puts its option string in its first frame's SEI).
// Prints one `key=value` per line:
//   frames keyframes bytes seconds fps media_ms [cpu_s cpu_ms_per_frame cpu_percent]
//   [encoded camera dropped] reader_cpu_s (this tool's own CPU over the window)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "printcast/transport/flv.h"

using namespace printcast;
using SteadyClock = std::chrono::steady_clock;

namespace {

[[noreturn]] void fail(const std::string& message) {
  fmt::print(stderr, "printcast-flv-count: {}\n", message);
  std::exit(1);
}

int connectTo(const std::string& host, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(fmt::format("socket: {}", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) fail("--host must be a numeric IPv4 address");
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    fail(fmt::format("connect {}:{}: {}", host, port, std::strerror(errno)));
  }
  return fd;
}

void sendAll(int fd, const std::string& text) {
  size_t sent = 0;
  while (sent < text.size()) {
    const ssize_t n = ::send(fd, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(fmt::format("send: {}", std::strerror(errno)));
    }
    sent += static_cast<size_t>(n);
  }
}

std::string request(const std::string& host, const std::string& path) {
  return fmt::format("GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: printcast-flv-count\r\n\r\n", path, host);
}

// A whole small response body (HTTP/1.0: the server closes when done).
std::string httpGet(const std::string& host, int port, const std::string& path) {
  const int fd = connectTo(host, port);
  sendAll(fd, request(host, path));
  std::string response;
  char chunk[16384];
  while (true) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    response.append(chunk, static_cast<size_t>(n));
  }
  ::close(fd);
  const auto end = response.find("\r\n\r\n");
  if (end == std::string::npos) fail(fmt::format("GET {}: no HTTP response", path));
  return response.substr(end + 4);
}

// user + system CPU of this process, in seconds.
double ownCpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// utime + stime of a process, in seconds.
double processCpuSeconds(int pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(in, line)) fail(fmt::format("cannot read /proc/{}/stat", pid));
  // The command name (field 2) is in parentheses and may hold spaces: fields restart after ')'.
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  if (fields.size() < 13) fail(fmt::format("/proc/{}/stat: too few fields", pid));
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;  // fields 14 and 15
}

struct StreamerCounters {
  double encoded = 0;
  double camera = 0;
  double dropped = 0;
};

StreamerCounters streamerCounters(const std::string& host, int controlPort) {
  const auto stats = nlohmann::json::parse(httpGet(host, controlPort, "/api/stats"), nullptr, false);
  if (stats.is_discarded()) fail("/api/stats: not JSON");
  StreamerCounters c;
  c.encoded = stats.at("frames").at("h264").get<double>();
  c.camera = stats.at("frames").at("camera").get<double>();
  c.dropped = stats.at("streams").at("flv").at("frames_dropped").get<double>();
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"printcast-flv-count: count the H.264 frames an HTTP FLV stream delivers"};
  std::string host = "127.0.0.1";
  std::string path = "/flv";
  std::string savePath;
  int port = 0;
  int controlPort = 0;
  int pid = 0;
  double warmup = 1;
  double duration = 8;
  app.add_option("--host", host, "Numeric IPv4 address of the streamer");
  app.add_option("-p,--port", port, "Port serving the FLV stream")->required()->check(CLI::Range(1, 65535));
  app.add_option("--path", path, "Stream path");
  app.add_option("--control-port", controlPort, "Streamer control port (reads /api/stats)")
      ->check(CLI::Range(1, 65535));
  app.add_option("--pid", pid, "Process whose CPU time to measure over the window")
      ->check(CLI::Range(1, 1 << 30));
  app.add_option("--warmup", warmup, "Seconds read before counting")->check(CLI::Range(0.0, 600.0));
  app.add_option("--duration", duration, "Seconds counted")->check(CLI::Range(0.1, 3600.0));
  app.add_option("--save", savePath, "Write the FLV bytes of the warm-up to this file");
  CLI11_PARSE(app, argc, argv);

  std::ofstream save;
  if (!savePath.empty()) {
    save.open(savePath, std::ios::binary | std::ios::trunc);
    if (!save) fail(fmt::format("cannot write {}", savePath));
  }
  const int fd = connectTo(host, port);
  sendAll(fd, request(host, path));

  std::vector<uint8_t> buf;  // the FLV header, then the bytes not yet parsed
  size_t headerLen = 0;      // FLV header + PreviousTagSize0, once known
  bool inHeaders = true;
  std::string httpHead;

  const auto connected = SteadyClock::now();
  const auto windowStart =
      connected + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(warmup));
  const auto windowEnd = windowStart + std::chrono::duration_cast<SteadyClock::duration>(
                                           std::chrono::duration<double>(duration));
  bool counting = false;
  SteadyClock::time_point countedFrom{};
  double cpu0 = 0;
  double ownCpu0 = 0;
  StreamerCounters stats0;
  uint64_t frames = 0, keyframes = 0, bytes = 0;
  std::optional<uint32_t> firstMs;
  uint32_t lastMs = 0;
  std::vector<uint8_t> chunk(256 * 1024);

  while (true) {
    const auto now = SteadyClock::now();
    if (!counting && now >= windowStart) {
      counting = true;
      countedFrom = now;
      if (pid != 0) cpu0 = processCpuSeconds(pid);
      ownCpu0 = ownCpuSeconds();
      if (controlPort != 0) stats0 = streamerCounters(host, controlPort);
    }
    if (now >= windowEnd) break;
    const auto next = counting ? windowEnd : windowStart;
    const auto waitMs = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1;
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(waitMs));
    if (ready < 0 && errno != EINTR) fail(fmt::format("poll: {}", std::strerror(errno)));
    if (ready <= 0) continue;
    const ssize_t n = ::recv(fd, chunk.data(), chunk.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(fmt::format("recv: {}", std::strerror(errno)));
    if (n == 0) fail("the server closed the stream");
    const uint8_t* data = chunk.data();
    auto size = static_cast<size_t>(n);

    if (inHeaders) {
      httpHead.append(reinterpret_cast<const char*>(data), size);
      const auto end = httpHead.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      if (httpHead.compare(0, 12, "HTTP/1.0 200") != 0 && httpHead.compare(0, 12, "HTTP/1.1 200") != 0) {
        fail("unexpected response: " + httpHead.substr(0, httpHead.find("\r\n")));
      }
      buf.assign(httpHead.begin() + static_cast<ptrdiff_t>(end) + 4, httpHead.end());
      httpHead.clear();
      inHeaders = false;
      if (save.is_open())
        save.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
    } else {
      buf.insert(buf.end(), data, data + size);
      if (save.is_open() && !counting)
        save.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }

    if (headerLen == 0) {
      if (buf.size() < 9) continue;
      const uint32_t dataOffset =
          (uint32_t{buf[5]} << 24) | (uint32_t{buf[6]} << 16) | (uint32_t{buf[7]} << 8) | buf[8];
      headerLen = dataOffset + 4;
    }
    const auto parsed = transport::flv::parseStream(buf);
    if (parsed.consumed == 0) {
      if (buf.size() >= headerLen) fail("the stream does not start with an FLV header");
      continue;
    }
    if (counting) {
      for (const auto& tag : parsed.tags) {
        if (tag.type != 9 || tag.data.size() < 2 || tag.data[1] != 1) continue;  // AVC NALU tags only
        ++frames;
        keyframes += (tag.data[0] >> 4) == 1 ? 1 : 0;
        bytes += tag.data.size();
        if (!firstMs) firstMs = tag.timestampMs;
        lastMs = tag.timestampMs;
      }
    }
    buf.erase(buf.begin() + static_cast<ptrdiff_t>(headerLen),
              buf.begin() + static_cast<ptrdiff_t>(parsed.consumed));
  }
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - countedFrom).count();
  const double cpu1 = pid != 0 ? processCpuSeconds(pid) : 0;
  const double ownCpu = ownCpuSeconds() - ownCpu0;
  const StreamerCounters stats1 = controlPort != 0 ? streamerCounters(host, controlPort) : StreamerCounters{};
  ::close(fd);

  fmt::print("frames={}\nkeyframes={}\nbytes={}\nseconds={:.3f}\nfps={:.1f}\nmedia_ms={}\n", frames,
             keyframes, bytes, seconds, static_cast<double>(frames) / seconds,
             firstMs ? lastMs - *firstMs : 0);
  if (pid != 0) {
    const double cpu = cpu1 - cpu0;
    fmt::print("cpu_s={:.2f}\ncpu_ms_per_frame={:.3f}\ncpu_percent={:.0f}\n", cpu,
               frames > 0 ? 1000.0 * cpu / static_cast<double>(frames) : 0.0, 100.0 * cpu / seconds);
  }
  if (controlPort != 0) {
    fmt::print("encoded={:.0f}\ncamera={:.0f}\ndropped={:.0f}\n", stats1.encoded - stats0.encoded,
               stats1.camera - stats0.camera, stats1.dropped - stats0.dropped);
  }
  fmt::print("reader_cpu_s={:.2f}\n", ownCpu);
  return frames > 0 ? 0 : 1;
}
