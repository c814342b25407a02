// SPDX-License-Identifier: MIT
// JPEG push ingest: network cameras that are WebSocket clients (ESP32-CAM firmwares) and send
// one whole JPEG per binary message, as a hal::Capture.
//
// What such cameras do (../shared/design/protocols.md, "Network cameras"): connect to
// ws://HOST:PORT/PATH, send each JPEG as one binary message (ESP-IDF's client splits messages
// above its 1024-byte buffer into continuation frames: the hub joins them), no header, no
// timestamp; some put an ASCII id ("CAM2") before the SOI; partial JPEGs happen; Arduino sketches
// reconnect every ~500 ms. WebSocket framing: RFC 6455 (transport/websocket.h).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "printcast/hal/capture.h"
#include "printcast/hal/result.h"
#include "printcast/transport/http_server.h"

namespace printcast::transport {

struct JpegPushConfig {
  std::string name = "ws-push";  // the capture's name and the prefix of its messages
  // A message above this (all its fragments) is refused: Close 1009 (message too big), counted.
  size_t maxMessageBytes = size_t{4} << 20;
  // No picture for this long: the capture fails with NoSignal (the streamer shows NO SIGNAL).
  std::chrono::milliseconds noPictureTimeout{10000};
  // openCapture() waits this long for a picture when no camera pushed one recently.
  std::chrono::milliseconds openWait{1000};
};

struct JpegPushStats {
  size_t cameraClients = 0;  // connected pushers
  uint64_t messages = 0;     // data messages received
  uint64_t frames = 0;       // JPEGs handed to the capture
  uint64_t dropped = 0;      // messages without a JPEG, text messages, bad headers, slow consumer
  uint64_t takeovers = 0;    // a newer connection replaced the camera's older one
  uint64_t refused = 0;      // connections closed for a protocol error or a message too big
};

// Threading: accept() from HTTP server threads; messages arrive on the ingest's own WebSocket
// I/O thread; openCapture() and the capture from the camera thread; stats() from any thread.
// The ingest must outlive its captures (they hold a shared_ptr to it).
class JpegPushIngest : public std::enable_shared_from_this<JpegPushIngest> {
 public:
  // Errors: Io (the WebSocket hub's thread or eventfd).
  static hal::Result<std::shared_ptr<JpegPushIngest>> start(JpegPushConfig config);
  ~JpegPushIngest();
  JpegPushIngest(const JpegPushIngest&) = delete;
  JpegPushIngest& operator=(const JpegPushIngest&) = delete;

  // The answer to a camera's request: a plain GET gets 426 (Upgrade Required), a malformed
  // handshake 400, each with the reason; a valid one 101, and the connection becomes the camera
  // (the newest connection takes over: an older one is closed with 1001 "another camera took
  // over", so a camera that reconnects needs no time-out of its dead connection, and viewers
  // never notice).
  HttpResponse accept(const HttpRequest& request);

  // A Capture of the pushed JPEGs: format MJPEG at the first picture's size, frames stamped with
  // the arrival of their message, sequence counting frames, the DHT repair of V4L2 MJPEG, at most
  // two waiting (older ones dropped when the consumer is slow). A picture of another size, or
  // no picture for noPictureTimeout, fails it (Disconnected / NoSignal): recovery is a new
  // capture from openCapture(). One capture at a time: a new one replaces the previous.
  // Errors: NoSignal (no camera pushed a picture recently, nor within openWait), Io.
  hal::Result<std::unique_ptr<hal::Capture>> openCapture();

  JpegPushStats stats() const;
  // Close every camera connection (1001) and stop the I/O thread. Idempotent.
  void stop();

  struct Impl;

 private:
  explicit JpegPushIngest(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace printcast::transport
