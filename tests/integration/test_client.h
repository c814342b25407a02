// SPDX-License-Identifier: MIT
// Test helpers: run the streamer as a child process, a raw HTTP/1.1 client, shell commands.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace printcast::testing {

// The streamer running as a child process on free ports (port 0), parsed from its banner.
class StreamerProcess {
 public:
  // Starts `binary` with `args` (plus --port 0 --control-port 0 --flv-port 0 --ws-port 0 --rtsp-port 0 for
  // those `args` does not set) and waits for the banner. On failure `ok()` is false and `log()` says why.
  StreamerProcess(const std::string& binary, const std::vector<std::string>& args);
  ~StreamerProcess();
  bool ok() const { return pid_ > 0 && streamPort_ != 0; }
  int pid() const { return pid_; }
  uint16_t streamPort() const { return streamPort_; }
  uint16_t controlPort() const { return controlPort_; }
  uint16_t flvPort() const { return flvPort_; }
  uint16_t wsPort() const { return wsPort_; }          // the reCamera-style WebSocket port
  uint16_t ingestPort() const { return ingestPort_; }  // --ingest-port (pushing cameras); 0 when off
  uint16_t rtspPort() const { return rtspPort_; }      // the RTSP server; 0 when off
  const std::string& log() const { return log_; }
  // Prefix of its shared-memory rings (--ring-name, unique per process): <prefix>-h264, -jpeg.
  const std::string& ringName() const { return ringName_; }
  // Resident memory in KiB (/proc/PID/status VmRSS).
  long rssKiB() const;
  // SIGTERM and wait up to `timeout`; returns the exit status (-1 on timeout/signal).
  int terminate(std::chrono::milliseconds timeout);

 private:
  int pid_ = -1;
  int outFd_ = -1;
  uint16_t streamPort_ = 0, controlPort_ = 0, flvPort_ = 0, wsPort_ = 0, ingestPort_ = 0, rtspPort_ = 0;
  std::string log_;
  std::string ringName_;
};

struct HttpReply {
  int status = 0;
  std::string statusLine;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string rawHeaders;
  std::string body;
  std::string error;  // transport error, empty on success
};

// One request on a fresh connection to 127.0.0.1:port; reads the whole reply (Content-Length or
// until close), at most `timeout` in all.
HttpReply httpRequest(uint16_t port, const std::string& method, const std::string& target,
                      const std::string& body = "", const std::map<std::string, std::string>& headers = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds(10));
// The same from another loopback address (`from`, e.g. "127.0.0.2": the whole of 127.0.0.0/8 is
// the loopback interface), for tests of per-address limits.
HttpReply httpRequestFrom(const std::string& from, uint16_t port, const std::string& method,
                          const std::string& target,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A TCP connection to 127.0.0.1:port from `from` ("" = the kernel's choice); -1 on failure.
int connectLoopbackFrom(const std::string& from, uint16_t port);

// An open streaming connection: sends a GET and reads headers; read() returns body bytes.
class StreamConnection {
 public:
  StreamConnection(uint16_t port, const std::string& target, int receiveBufferBytes = 0,
                   const std::string& from = "", const std::map<std::string, std::string>& headers = {});
  ~StreamConnection();
  bool ok() const { return fd_ >= 0 && status_ != 0; }
  int status() const { return status_; }
  const std::string& rawHeaders() const { return rawHeaders_; }
  std::string header(const std::string& lowerName) const;
  // Read up to `max` bytes, waiting at most `timeout`; empty on timeout or close.
  std::string read(size_t max, std::chrono::milliseconds timeout);
  // Read and discard until the server ends the stream (true) or `timeout` passes (false).
  bool waitForEnd(std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
  int status_ = 0;
  std::string rawHeaders_;
  std::map<std::string, std::string> headers_;
  std::string pending_;  // body bytes read together with the headers
};

// MJPEG parts (transport/mjpeg.h's parser) read from `target` (/stream) in `duration` by a client
// at `from` ("" = the kernel's choice); 0 when the stream does not open or does not parse.
size_t countMjpegParts(uint16_t port, std::chrono::milliseconds duration, const std::string& from = "",
                       const std::string& target = "/stream");

// A JPEG's width and height from its SOF0/1/2 segment (baseline, extended, progressive), or
// nullopt when `jpeg` is not a JPEG or has none before its end.
std::optional<std::pair<int, int>> jpegSize(const std::string& jpeg);

struct CommandResult {
  int exitCode = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Run argv (no shell) with a time limit; kills it when the limit passes (exitCode -1).
CommandResult runCommand(const std::vector<std::string>& argv, std::chrono::seconds limit);

// ffmpeg decodes `seconds` of `input` (after `inputOptions`, e.g. -rtsp_transport tcp): exit 0
// and nothing on stderr (-v error) is a clean decode. With -fps_mode passthrough -enc_time_base
// -1: when the SPS's VUI gives a rate, ffmpeg's CLI would put the capture-time timestamps, with
// their real jitter under load, on a 1/fps grid where two can collide ("non monotonically
// increasing dts" from its own null muxer, not from the stream).
// `outputFormat` "framecrc" writes one line per decoded picture to `out` ("0, dts, pts, duration,
// size, crc": size is width * height * 1.5 for 4:2:0).
CommandResult ffmpegDecode(const std::string& input, int seconds,
                           const std::vector<std::string>& inputOptions = {},
                           const std::string& outputFormat = "null");

// A TCP port on 127.0.0.1 nobody listens on right now (bound and released: the kernel does not
// hand it out again at once).
uint16_t freeTcpPort();

// A TCP socket listening on 127.0.0.1 at a port the kernel chose (`port` gets it), with `backlog`;
// -1 when that fails. For the tests' stand-ins of outside services. The caller closes it.
int listenLoopback(uint16_t& port, int backlog = 8);

}  // namespace printcast::testing
