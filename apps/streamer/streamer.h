// SPDX-License-Identifier: MIT
// Streamer: the reference app's engine. Wires a board's camera, screen and touch panel to the
// encoders and to the HTTP endpoints of h264-streamer (ports 8080, 8081, 18088).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "printcast/bsp/board.h"
#include "printcast/hal/result.h"
#include "settings.h"

namespace printcast::streamer {

// Threads: a camera thread (capture, JPEG and H.264 encoding on demand), a display thread
// (grabs only while someone watches the display), a touch worker, a housekeeping thread (CPU
// sampling, auto frame skip, snapshot timeouts) and one libmicrohttpd thread per port.
// start() and stop() are called from one thread (main).
class Streamer {
 public:
  // Errors: whatever opening the devices and listening on the ports returns, with the device or
  // port named (a missing display or touch panel is logged, not fatal).
  static hal::Result<std::unique_ptr<Streamer>> start(const Settings& settings, const bsp::Board& board);
  ~Streamer();
  Streamer(const Streamer&) = delete;
  Streamer& operator=(const Streamer&) = delete;

  uint16_t streamPort() const;
  uint16_t controlPort() const;
  uint16_t flvPort() const;     // 0 when off
  uint16_t wsPort() const;      // reCamera-style WebSocket port; 0 when off
  uint16_t rtspPort() const;    // the RTSP server's port; 0 when off
  uint16_t ingestPort() const;  // where pushing cameras connect (Settings::ingestPort); 0 when off
  // The shared-memory rings' object names ("printcast-h264", "printcast-jpeg"); empty when off.
  std::vector<std::string> ringNames() const;

  // Close every stream, answer waiting requests, join threads. Idempotent.
  void stop();

  struct Impl;

 private:
  explicit Streamer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace printcast::streamer
