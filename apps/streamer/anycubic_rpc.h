// SPDX-License-Identifier: MIT
// The RPC path of Anycubic's native timelapse: a long-lived client of the firmware's local
// service (gkapi, TCP 127.0.0.1:18086, JSON messages ended by byte 0x03) that receives the
// video_stream_requests gkapi broadcasts (process_status_update), hands each message to an
// AnycubicTimelapseHandler and writes the Video/VideoStreamReply back on the same connection.
// Formats: anycubic_timelapse.h. This is where the firmware talks to its camera program; it is
// not Moonraker (h264-streamer's rpc_client.c and the gkcam captures in its TIMELAPSE_PROTOCOL.md).
//
// gkapi sends all of its status traffic to every client. Messages that do not name
// "video_stream_request" (or "print_stats" while recording) are dropped without parsing; a message
// longer than 1 MiB is skipped up to its 0x03.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "anycubic_timelapse.h"

namespace printcast::streamer {

struct GkapiVideoConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 18086;
  std::chrono::milliseconds firstRetry{1000};  // reconnect backoff: doubles up to maxRetry
  std::chrono::milliseconds maxRetry{30000};
  std::chrono::milliseconds sendTimeout{2000};  // one reply; longer means gkapi stopped reading
};

// Threading: one I/O thread of its own (start() to stop()), on which the handler and so the sink
// run. Never blocks the caller: start() and stop() return at once / after joining (stop() wakes
// the thread). state() is thread-safe.
// Ownership: the handler is borrowed and must outlive the client (or its stop()).
class GkapiVideoClient {
 public:
  GkapiVideoClient(GkapiVideoConfig config, AnycubicTimelapseHandler& handler);
  ~GkapiVideoClient();  // stop()
  GkapiVideoClient(const GkapiVideoClient&) = delete;
  GkapiVideoClient& operator=(const GkapiVideoClient&) = delete;

  void start();
  // Join the thread; the open recording (if any) is left open for the caller to finish
  // (handler.close()), after this returns. Idempotent.
  void stop();

  struct State {
    bool connected = false;
    uint64_t connections = 0;  // successful connections since start
    uint64_t messages = 0;     // 0x03-terminated messages received
    uint64_t replies = 0;      // Video/VideoStreamReply messages sent
    uint64_t oversized = 0;    // messages skipped for their size
    std::string lastError;     // why the last connection ended or failed ("" if none)
    std::chrono::milliseconds retryIn{0};
  };
  State state() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace printcast::streamer
