// SPDX-License-Identifier: MIT
// printcast-ws-fanout: N loopback clients of /ws (or of /flv, the peer) on one poll() thread;
// counts the frames each receives and the streamer's CPU and RSS over the window.
//
//   printcast-ws-fanout --port 8080 --pid PID --clients 10 [--flv] [--warmup 2] [--duration 6]
//
// WebSocket clients do the RFC 6455 handshake, then walk frame headers (binary messages =
// access units) without copying payloads; --flv clients send an HTTP/1.0 GET /flv and walk FLV
// tags (video tags = access units; the one sequence header per client is not counted). The
// client side stays cheap so the streamer's numbers dominate.
// Prints one `key=value` per line: clients protocol frames frames_per_client_min fps_per_client
// bytes seconds cpu_s cpu_ms_per_delivered_frame cpu_percent rss_kib reader_cpu_s
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
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
  fmt::print(stderr, "printcast-ws-fanout: {}\n", message);
  std::exit(1);
}

double processCpuSeconds(int pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(in, line)) fail(fmt::format("cannot read /proc/{}/stat", pid));
  std::istringstream rest(line.substr(line.rfind(')') + 2));  // fields after "(comm)"
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  if (fields.size() < 13) fail("short /proc/PID/stat");
  return (std::stod(fields[11]) + std::stod(fields[12])) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

long rssKiB(int pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

double ownCpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto s = [](timeval t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(usage.ru_utime) + s(usage.ru_stime);
}

// Counts frames in a byte stream without keeping payloads.
struct Walker {
  bool flv = false;
  std::string head;  // HTTP response header (FLV) or 101 (WebSocket) until "\r\n\r\n"
  bool headDone = false;
  size_t flvPreamble = 13;  // FLV file header + PreviousTagSize0 still to skip
  uint8_t hdr[16] = {};
  size_t hdrHave = 0;
  uint64_t skip = 0;  // payload bytes of the current frame/tag still to skip
  uint64_t frames = 0;
  uint64_t bytes = 0;

  size_t hdrNeed() const {
    if (flv) return 11;
    if (hdrHave < 2) return 2;
    const uint8_t len7 = hdr[1] & 0x7F;
    return len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
  }
  void feed(const uint8_t* p, size_t n) {
    bytes += n;
    if (!headDone) {
      const size_t before = head.size();
      head.append(reinterpret_cast<const char*>(p), n);
      const size_t end = head.find("\r\n\r\n");
      if (end == std::string::npos) return;
      headDone = true;
      const size_t used = end + 4 - before;
      p += used;
      n -= used;
    }
    while (n > 0) {
      if (flv && flvPreamble > 0) {
        const size_t k = std::min(flvPreamble, n);
        flvPreamble -= k;
        p += k;
        n -= k;
        continue;
      }
      if (skip > 0) {
        const size_t k = static_cast<size_t>(std::min<uint64_t>(skip, n));
        skip -= k;
        p += k;
        n -= k;
        continue;
      }
      hdr[hdrHave++] = *p++;
      --n;
      if (hdrHave < hdrNeed()) continue;
      if (flv) {
        const uint64_t dataSize =
            static_cast<uint64_t>(hdr[1]) << 16 | static_cast<uint64_t>(hdr[2]) << 8 | hdr[3];
        if ((hdr[0] & 0x1F) == 9) ++frames;  // a video tag (the sequence header comes in the warm-up)
        skip = dataSize + 4;
      } else {
        uint64_t length = hdr[1] & 0x7F;
        if (length >= 126) {
          length = 0;
          for (size_t i = 2; i < hdrHave; ++i) length = (length << 8) | hdr[i];
        }
        if ((hdr[0] & 0x0F) == 2) ++frames;
        skip = length;
      }
      hdrHave = 0;
    }
  }
};

int connectTo(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    fail(fmt::format("connect 127.0.0.1:{}: {}", port, std::strerror(errno)));
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"printcast-ws-fanout: N /ws (or /flv) clients, streamer CPU per delivered frame"};
  int port = 8080;
  int pid = 0;
  int clients = 1;
  bool flv = false;
  double warmup = 2;
  double duration = 6;
  app.add_option("--port", port, "Streamer port")->required();
  app.add_option("--pid", pid, "Streamer process id (CPU and RSS)")->required();
  app.add_option("--clients", clients, "Number of clients")->check(CLI::Range(1, 1000));
  app.add_flag("--flv", flv, "Read /flv instead of /ws (the peer)");
  app.add_option("--warmup", warmup, "Seconds read before the window");
  app.add_option("--duration", duration, "Window, seconds");
  CLI11_PARSE(app, argc, argv);

  std::vector<int> fds;
  std::vector<Walker> walkers(static_cast<size_t>(clients));
  const std::string request =
      flv ? "GET /flv HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
          : "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  for (int i = 0; i < clients; ++i) {
    const int fd = connectTo(port);
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
      fail("send failed");
    }
    fds.push_back(fd);
    walkers[static_cast<size_t>(i)].flv = flv;
  }
  std::vector<pollfd> pfds;
  for (int fd : fds) pfds.push_back(pollfd{fd, POLLIN, 0});
  uint8_t buf[256 * 1024];
  auto pump = [&](SteadyClock::time_point until) {
    while (SteadyClock::now() < until) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(until - SteadyClock::now()).count();
      if (::poll(pfds.data(), pfds.size(), static_cast<int>(std::max<int64_t>(1, left))) <= 0) continue;
      for (size_t i = 0; i < pfds.size(); ++i) {
        if ((pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const ssize_t n = ::recv(pfds[i].fd, buf, sizeof buf, 0);
        if (n <= 0) fail(fmt::format("client {} was disconnected", i));
        walkers[i].feed(buf, static_cast<size_t>(n));
      }
    }
  };
  pump(SteadyClock::now() +
       std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(warmup)));
  for (auto& w : walkers) {
    if (!w.headDone || (!flv && w.head.find(" 101 ") == std::string::npos))
      fail("handshake failed: " + w.head);
  }
  std::vector<uint64_t> startFrames;
  uint64_t startBytes = 0;
  for (auto& w : walkers) {
    startFrames.push_back(w.frames);
    startBytes += w.bytes;
  }
  const double cpu0 = processCpuSeconds(pid);
  const double own0 = ownCpuSeconds();
  const auto t0 = SteadyClock::now();
  pump(t0 + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(duration)));
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  const double cpu = processCpuSeconds(pid) - cpu0;
  const double own = ownCpuSeconds() - own0;
  uint64_t frames = 0;
  uint64_t minFrames = UINT64_MAX;
  uint64_t bytes = 0;
  for (size_t i = 0; i < walkers.size(); ++i) {
    const uint64_t f = walkers[i].frames - startFrames[i];
    frames += f;
    minFrames = std::min(minFrames, f);
    bytes += walkers[i].bytes;
  }
  bytes -= startBytes;
  fmt::print(
      "clients={}\nprotocol={}\nframes={}\nframes_per_client_min={}\nfps_per_client={:.2f}\nbytes={}\n"
      "seconds={:.2f}\ncpu_s={:.3f}\ncpu_ms_per_delivered_frame={:.4f}\ncpu_percent={:.1f}\nrss_kib={}\n"
      "reader_cpu_s={:.3f}\n",
      clients, flv ? "flv" : "ws", frames, minFrames,
      static_cast<double>(frames) / static_cast<double>(clients) / seconds, bytes, seconds, cpu,
      frames > 0 ? 1000.0 * cpu / static_cast<double>(frames) : 0.0, 100.0 * cpu / seconds, rssKiB(pid), own);
  for (int fd : fds) ::close(fd);
  return 0;
}
