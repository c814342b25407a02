// SPDX-License-Identifier: MIT
// printcast-mjpeg-latency: N clients read an MJPEG /stream; fps, server CPU per frame, latency.
//
//   printcast-mjpeg-latency --port 8080 [--host 127.0.0.1] [--path /stream] [--clients 1]
//                           [--warmup 2] [--duration 10] [--pid PID] [--header X-Timestamp]
//                           [--label NAME]
//
// Opens --clients HTTP/1.0 connections to http://HOST:PORT/PATH at once and reads them all from
// one poll loop with transport::mjpeg::Parser (the boundary comes from the response's
// Content-Type, so ustreamer's stream parses too). After --warmup seconds it counts, for
// --duration seconds, the parts each client receives. For every part the time its last byte was
// read is compared with the first part header named in --header (a comma-separated list; seconds
// with a fraction), printed as "header": the clock
// is the one of CLOCK_MONOTONIC and CLOCK_REALTIME that the first such value is within 60 s of
// (printed as "clock"). That difference is the capture-to-socket latency when the header holds
// the capture time (printcast's X-Timestamp, ustreamer's X-UStreamer-Grab-Time with
// ?extra_headers=1), or send-to-receive when it holds the send time (ustreamer's X-Timestamp).
// With --pid, that process's utime+stime from /proc/PID/stat over the window gives the CPU per
// distinct frame (parts with the same header value count once) and per delivered part.
// Prints one JSON object on stdout:
//   label clients seconds parts frames fps_per_client clock latency_p50_ms latency_p99_ms
//   latency_max_ms [cpu_s cpu_ms_per_frame cpu_ms_per_part cpu_percent] errors first_part_headers
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "printcast/transport/mjpeg.h"

using namespace printcast;

namespace {

[[noreturn]] void fail(const std::string& message) {
  fmt::print(stderr, "printcast-mjpeg-latency: {}\n", message);
  std::exit(1);
}

double clockSeconds(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
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

// utime + stime of a process, in seconds.
double processCpuSeconds(int pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(in, line)) fail(fmt::format("cannot read /proc/{}/stat", pid));
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  if (fields.size() < 13) fail(fmt::format("/proc/{}/stat: too few fields", pid));
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;  // fields 14 and 15
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// One connection: the HTTP response head first, then the multipart body through a Parser.
struct Client {
  int fd = -1;
  std::string head;
  std::optional<transport::mjpeg::Parser> parser;
  size_t parts = 0;
  bool closed = false;
};

// The boundary token of "Content-Type: multipart/x-mixed-replace;boundary=TOKEN" in a response head.
std::string boundaryOf(const std::string& head) {
  std::istringstream lines(head);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto colon = line.find(':');
    if (colon == std::string::npos || !equalsIgnoreCase(line.substr(0, colon), "Content-Type")) continue;
    const auto at = line.find("boundary=");
    if (at == std::string::npos) break;
    std::string token = line.substr(at + 9);
    token = token.substr(0, token.find_first_of("; "));
    if (token.size() >= 2 && token.front() == '"') token = token.substr(1, token.size() - 2);
    return token;
  }
  fail(fmt::format("no multipart boundary in the response: {}", head.substr(0, head.find("\r\n"))));
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return std::nan("");
  std::sort(values.begin(), values.end());
  const auto index = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size()))) - 1;
  return values[std::min(index, values.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Read an MJPEG stream with N clients: fps, server CPU per frame, capture-to-socket latency"};
  std::string host = "127.0.0.1";
  std::string path = "/stream";
  std::string header = "X-Timestamp";
  std::string label = "server";
  int port = 0;
  int clients = 1;
  int pid = 0;
  double warmup = 2;
  double duration = 10;
  app.add_option("--host", host, "numeric IPv4 address")->capture_default_str();
  app.add_option("--port", port, "HTTP port")->required();
  app.add_option("--path", path, "stream path (with query)")->capture_default_str();
  app.add_option("--clients", clients, "connections at once")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--warmup", warmup, "seconds read before counting")->capture_default_str();
  app.add_option("--duration", duration, "seconds counted")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--pid", pid, "server process whose CPU is measured over the window");
  app.add_option("--header", header,
                 "part header(s) with the frame time in seconds, comma-separated: the first present")
      ->capture_default_str();
  app.add_option("--label", label, "name in the output")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::vector<std::string> headerNames;
  {
    std::istringstream names(header);
    for (std::string name; std::getline(names, name, ',');) {
      if (!name.empty()) headerNames.push_back(name);
    }
  }
  std::string usedHeader;
  nlohmann::json firstHeaders = nlohmann::json::object();  // of the first part, for the record
  std::vector<Client> conns(static_cast<size_t>(clients));
  const std::string request =
      fmt::format("GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: printcast-mjpeg-latency\r\n\r\n", path, host);
  for (Client& c : conns) {
    c.fd = connectTo(host, port);
    sendAll(c.fd, request);
  }

  const double start = clockSeconds(CLOCK_MONOTONIC);
  const double windowStart = start + warmup;
  const double windowEnd = windowStart + duration;
  bool counting = false;
  double cpuStart = 0;
  std::optional<clockid_t> clock;
  std::vector<double> latencies;
  std::set<std::string> frames;
  size_t partsInWindow = 0;
  size_t errors = 0;
  std::vector<pollfd> fds(conns.size());
  std::vector<uint8_t> buffer(256 * 1024);

  while (true) {
    const double now = clockSeconds(CLOCK_MONOTONIC);
    if (!counting && now >= windowStart) {
      counting = true;
      if (pid > 0) cpuStart = processCpuSeconds(pid);
    }
    if (now >= windowEnd) break;
    size_t open = 0;
    for (size_t i = 0; i < conns.size(); ++i) {
      fds[i] = pollfd{conns[i].closed ? -1 : conns[i].fd, POLLIN, 0};
      if (!conns[i].closed) ++open;
    }
    if (open == 0) fail("every connection closed");
    const double until = counting ? windowEnd : windowStart;
    const int timeoutMs = std::max(1, static_cast<int>((until - now) * 1000.0) + 1);
    const int ready = ::poll(fds.data(), fds.size(), timeoutMs);
    if (ready < 0) {
      if (errno == EINTR) continue;
      fail(fmt::format("poll: {}", std::strerror(errno)));
    }
    for (size_t i = 0; i < conns.size(); ++i) {
      if (fds[i].revents == 0) continue;
      Client& c = conns[i];
      const ssize_t n = ::recv(c.fd, buffer.data(), buffer.size(), 0);
      // The receive time of these bytes, on both clocks the header may use.
      const double receivedMono = clockSeconds(CLOCK_MONOTONIC);
      const double receivedReal = clockSeconds(CLOCK_REALTIME);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        fmt::print(stderr, "printcast-mjpeg-latency: client {} closed ({})\n", i,
                   n < 0 ? std::strerror(errno) : "EOF");
        c.closed = true;
        ++errors;
        continue;
      }
      std::span<const uint8_t> bytes(buffer.data(), static_cast<size_t>(n));
      if (!c.parser) {
        c.head.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        const auto end = c.head.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        if (c.head.rfind("HTTP/1.", 0) != 0 || c.head.find(" 200 ") == std::string::npos) {
          fail(fmt::format("{}: {}", path, c.head.substr(0, c.head.find("\r\n"))));
        }
        c.parser.emplace(boundaryOf(c.head));
        c.parser->keepHeaders(true);
        const std::string body = c.head.substr(end + 4);
        bytes = std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size());
        if (!c.parser->feed(bytes)) fail(fmt::format("client {}: {}", i, c.parser->error()));
      } else if (!c.parser->feed(bytes)) {
        fail(fmt::format("client {}: {}", i, c.parser->error()));
      }
      const auto parts = c.parser->takeParts();
      const auto headers = c.parser->takePartHeaders();
      for (size_t k = 0; k < parts.size(); ++k) {
        if (parts[k].empty()) continue;  // a placeholder part without a picture
        ++c.parts;
        if (firstHeaders.empty()) {
          for (const auto& [name, v] : headers[k]) firstHeaders[name] = v;
        }
        if (!counting) continue;
        ++partsInWindow;
        // The first of the --header names the part has.
        std::optional<std::string> value;
        for (const std::string& wanted : headerNames) {
          for (const auto& [name, v] : headers[k]) {
            if (!value && equalsIgnoreCase(name, wanted)) {
              value = v;
              usedHeader = name;
            }
          }
        }
        if (!value) continue;
        frames.insert(*value);
        const double t = std::strtod(value->c_str(), nullptr);
        if (!clock) {
          if (std::abs(receivedMono - t) < 60) {
            clock = CLOCK_MONOTONIC;
          } else if (std::abs(receivedReal - t) < 60) {
            clock = CLOCK_REALTIME;
          } else {
            fail(fmt::format("{} {} is on neither CLOCK_MONOTONIC ({:.6f}) nor CLOCK_REALTIME ({:.6f})",
                             usedHeader, *value, receivedMono, receivedReal));
          }
        }
        latencies.push_back(((*clock == CLOCK_MONOTONIC ? receivedMono : receivedReal) - t) * 1000.0);
      }
    }
  }
  const double cpuEnd = pid > 0 ? processCpuSeconds(pid) : 0;
  for (Client& c : conns) ::close(c.fd);

  nlohmann::json out;
  out["label"] = label;
  out["clients"] = clients;
  out["seconds"] = duration;
  out["parts"] = partsInWindow;
  out["frames"] = frames.size();
  out["fps_per_client"] = static_cast<double>(partsInWindow) / duration / clients;
  out["clock"] = !clock ? "none" : (*clock == CLOCK_MONOTONIC ? "monotonic" : "realtime");
  out["header"] = usedHeader;
  out["latency_p50_ms"] = percentile(latencies, 50);
  out["latency_p99_ms"] = percentile(latencies, 99);
  out["latency_max_ms"] =
      latencies.empty() ? std::nan("") : *std::max_element(latencies.begin(), latencies.end());
  if (pid > 0) {
    const double cpu = cpuEnd - cpuStart;
    out["cpu_s"] = cpu;
    out["cpu_ms_per_frame"] =
        frames.empty() ? std::nan("") : cpu * 1000.0 / static_cast<double>(frames.size());
    out["cpu_ms_per_part"] =
        partsInWindow == 0 ? std::nan("") : cpu * 1000.0 / static_cast<double>(partsInWindow);
    out["cpu_percent"] = cpu / duration * 100.0;
  }
  out["errors"] = errors;
  out["first_part_headers"] = firstHeaders;
  fmt::print("{}\n", out.dump());
  return partsInWindow > 0 ? 0 : 1;
}
