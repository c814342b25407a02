// SPDX-License-Identifier: MIT
// printcast-fanout-load: N loopback clients of one H.264 output at once, for the fan-out benchmark
// (bench/fanout.sh).
//
//   printcast-fanout-load --port 8080 --path /stream.mp4 --clients 100 [--kind fmp4|flv|ws]
//                         [--pid PID] [--warmup 2] [--duration 8]
//
// Opens --clients connections (HTTP/1.0 GET, or a WebSocket handshake for --kind ws), reads them
// all from one epoll loop and counts, per client, the access units delivered: `moof` boxes of a
// fragmented MP4 stream, video tags of FLV, binary messages of WebSocket (one access unit each).
// Counting starts after --warmup seconds. With --pid it reads that process's CPU time
// (utime+stime) at the window's ends and its VmRSS/VmHWM at the end. Prints `key=value` lines:
//   clients connected frames fps_per_client bytes mbit_per_s [cpu_percent cpu_us_per_delivered_frame
//   rss_kb hwm_kb] reader_cpu_percent
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

using SteadyClock = std::chrono::steady_clock;

namespace {

[[noreturn]] void fail(const std::string& message) {
  fmt::print(stderr, "printcast-fanout-load: {}\n", message);
  std::exit(1);
}

enum class Kind { Fmp4, Flv, Ws };

// One client: the HTTP head is skipped, then the body is parsed just enough to count units.
struct Client {
  int fd = -1;
  bool inHead = true;
  std::string head;
  std::vector<uint8_t> pending;  // unparsed body bytes (only the header part of each unit is kept)
  uint64_t skip = 0;             // body bytes of the current unit still to discard
  uint64_t units = 0;
  uint64_t bytes = 0;
  bool flvHeaderDone = false;
};

// Consume what can be parsed from `c.pending`, counting units. Payloads are skipped, not stored.
void parse(Client& c, Kind kind) {
  size_t pos = 0;
  auto& p = c.pending;
  while (true) {
    if (c.skip > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(c.skip, p.size() - pos));
      pos += n;
      c.skip -= n;
      if (c.skip > 0) break;
    }
    const size_t avail = p.size() - pos;
    const uint8_t* b = p.data() + pos;
    if (kind == Kind::Fmp4) {  // ISO/IEC 14496-12 4.2: 32-bit size + type
      if (avail < 8) break;
      const uint64_t size = (uint64_t{b[0]} << 24) | (uint64_t{b[1]} << 16) | (uint64_t{b[2]} << 8) | b[3];
      if (size < 8) fail("fmp4: box size < 8 (64-bit sizes are not expected in a live stream)");
      if (std::memcmp(b + 4, "moof", 4) == 0) ++c.units;
      pos += 8;
      c.skip = size - 8;
    } else if (kind == Kind::Flv) {  // FLV header (9) + PreviousTagSize0 (4), then tags
      if (!c.flvHeaderDone) {
        if (avail < 13) break;
        pos += 13;
        c.flvHeaderDone = true;
        continue;
      }
      // Tag header (11 bytes), then for video: frame type/codec byte, AVCPacketType (1 = NALU).
      if (avail < 13) break;
      const uint64_t dataSize = (uint64_t{b[1]} << 16) | (uint64_t{b[2]} << 8) | b[3];
      if (b[0] == 9 && dataSize > 5 && b[12] == 1) ++c.units;
      pos += 11;
      c.skip = dataSize + 4;
    } else {  // RFC 6455 5.2, server frames: unmasked
      if (avail < 2) break;
      uint64_t len = b[1] & 0x7f;
      size_t headerLen = 2;
      if (len == 126) {
        if (avail < 4) break;
        len = (uint64_t{b[2]} << 8) | b[3];
        headerLen = 4;
      } else if (len == 127) {
        if (avail < 10) break;
        len = 0;
        for (int i = 0; i < 8; ++i) len = (len << 8) | b[2 + i];
        headerLen = 10;
      }
      if ((b[0] & 0x0f) == 0x2 || ((b[0] & 0x0f) == 0x0 && (b[0] & 0x80) != 0)) {
        if ((b[0] & 0x80) != 0) ++c.units;  // FIN: a whole binary message
      }
      pos += headerLen;
      c.skip = len;
    }
  }
  p.erase(p.begin(), p.begin() + static_cast<ptrdiff_t>(pos));
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

double ownCpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double processCpuSeconds(int pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(in, line)) fail(fmt::format("cannot read /proc/{}/stat", pid));
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  if (fields.size() < 13) fail(fmt::format("/proc/{}/stat: too few fields", pid));
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
}

// A "VmRSS:" style line of /proc/PID/status, in kB.
long statusKb(int pid, const std::string& key) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"printcast-fanout-load: many loopback clients of one H.264 output"};
  std::string host = "127.0.0.1";
  std::string path = "/stream.mp4";
  std::string kindName = "fmp4";
  int port = 0;
  int clients = 1;
  int pid = 0;
  double warmup = 2;
  double duration = 8;
  app.add_option("--host", host, "Numeric IPv4 address of the streamer");
  app.add_option("-p,--port", port, "Port")->required()->check(CLI::Range(1, 65535));
  app.add_option("--path", path, "Request path");
  app.add_option("--kind", kindName, "What the stream is: fmp4, flv or ws")
      ->check(CLI::IsMember({"fmp4", "flv", "ws"}));
  app.add_option("-n,--clients", clients, "Connections")->check(CLI::Range(1, 4000));
  app.add_option("--pid", pid, "Streamer process to measure")->check(CLI::Range(1, 1 << 30));
  app.add_option("--warmup", warmup, "Seconds before counting")->check(CLI::Range(0.0, 600.0));
  app.add_option("--duration", duration, "Seconds counted")->check(CLI::Range(0.1, 3600.0));
  CLI11_PARSE(app, argc, argv);
  const Kind kind = kindName == "fmp4" ? Kind::Fmp4 : kindName == "flv" ? Kind::Flv : Kind::Ws;

  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) fail("epoll_create1");
  std::vector<Client> all(static_cast<size_t>(clients));
  for (size_t i = 0; i < all.size(); ++i) {
    Client& c = all[i];
    c.fd = connectTo(host, port);
    const std::string req =
        kind == Kind::Ws
            ? fmt::format(
                  "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                  path, host)
            : fmt::format("GET {} HTTP/1.0\r\nHost: {}\r\n\r\n", path, host);
    if (::send(c.fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) fail("send");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev) != 0) fail("epoll_ctl");
  }

  const auto start = SteadyClock::now();
  const auto toDur = [](double s) {
    return std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(s));
  };
  const auto windowStart = start + toDur(warmup);
  const auto windowEnd = windowStart + toDur(duration);
  bool counting = false;
  double cpu0 = 0, own0 = 0;
  std::vector<uint64_t> units0(all.size()), bytes0(all.size());
  size_t open = all.size();
  std::vector<uint8_t> chunk(256 * 1024);
  std::vector<epoll_event> events(256);
  while (open > 0) {
    const auto now = SteadyClock::now();
    if (!counting && now >= windowStart) {
      counting = true;
      if (pid != 0) cpu0 = processCpuSeconds(pid);
      own0 = ownCpuSeconds();
      for (size_t i = 0; i < all.size(); ++i) {
        units0[i] = all[i].units;
        bytes0[i] = all[i].bytes;
      }
    }
    if (now >= windowEnd) break;
    const auto waitMs =
        std::chrono::duration_cast<std::chrono::milliseconds>((counting ? windowEnd : windowStart) - now);
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()),
                               static_cast<int>(std::max<int64_t>(1, waitMs.count())));
    for (int e = 0; e < n; ++e) {
      Client& c = all[events[static_cast<size_t>(e)].data.u64];
      const ssize_t got = ::recv(c.fd, chunk.data(), chunk.size(), MSG_DONTWAIT);
      if (got <= 0) {
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        ::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        --open;
        continue;
      }
      c.bytes += static_cast<uint64_t>(got);
      const uint8_t* data = chunk.data();
      size_t len = static_cast<size_t>(got);
      if (c.inHead) {
        c.head.append(reinterpret_cast<const char*>(data), len);
        const auto end = c.head.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        const std::string status = c.head.substr(0, c.head.find("\r\n"));
        if (status.find(kind == Kind::Ws ? " 101" : " 200") == std::string::npos) fail("response: " + status);
        c.pending.assign(c.head.begin() + static_cast<ptrdiff_t>(end + 4), c.head.end());
        c.inHead = false;
      } else {
        c.pending.insert(c.pending.end(), data, data + len);
      }
      parse(c, kind);
    }
  }
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - windowStart).count();
  uint64_t frames = 0, bytes = 0;
  size_t connected = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    frames += all[i].units - units0[i];
    bytes += all[i].bytes - bytes0[i];
    if (!all[i].inHead) ++connected;
  }
  fmt::print("clients={}\nconnected={}\nframes={}\nfps_per_client={:.2f}\nbytes={}\nmbit_per_s={:.2f}\n",
             clients, connected, frames, static_cast<double>(frames) / seconds / clients, bytes,
             static_cast<double>(bytes) * 8 / seconds / 1e6);
  if (pid != 0) {
    const double cpu = processCpuSeconds(pid) - cpu0;
    fmt::print("cpu_percent={:.1f}\ncpu_us_per_delivered_frame={:.1f}\nrss_kb={}\nhwm_kb={}\n",
               100 * cpu / seconds, frames > 0 ? cpu * 1e6 / static_cast<double>(frames) : 0.0,
               statusKb(pid, "VmRSS"), statusKb(pid, "VmHWM"));
  }
  fmt::print("reader_cpu_percent={:.1f}\n", 100 * (ownCpuSeconds() - own0) / seconds);
  for (auto& c : all) ::close(c.fd);
  return 0;
}
