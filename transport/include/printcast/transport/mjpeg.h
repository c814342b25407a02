// SPDX-License-Identifier: MIT
// MJPEG over HTTP multipart (multipart/x-mixed-replace), as mjpg-streamer/ustreamer serve it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "printcast/hal/frame.h"

namespace printcast::transport::mjpeg {

inline constexpr std::string_view kBoundary = "printcastboundary";

// "multipart/x-mixed-replace;boundary=TOKEN": unquoted, no space (Fluidd's parser needs that).
std::string contentType(std::string_view boundary = kBoundary);

// What a stream sends once before the first part: "--TOKEN\r\n".
std::string preamble(std::string_view boundary = kBoundary);

// The headers of one part: "Content-Type: image/jpeg\r\nContent-Length: N\r\n
// X-Timestamp: S.UUUUUU\r\n\r\n" (Mainsail needs Content-Length; X-Timestamp is the capture
// time in seconds on the monotonic clock, as ustreamer sends it).
std::string partHeader(size_t jpegSize, hal::Timestamp captureTime);

// What follows each JPEG: "\r\n--TOKEN\r\n". Sending the next boundary at once lets players
// that wait for it show the frame immediately.
std::string partTrailer(std::string_view boundary = kBoundary);

// A strict parser of such a stream, for tests and tools: feed bytes as they arrive, take parts.
class Parser {
 public:
  explicit Parser(std::string boundary = std::string(kBoundary));
  // Append bytes. Returns false (and stays failed) on a framing error; error() says which.
  bool feed(std::span<const uint8_t> bytes);
  // Complete JPEG parts parsed so far (moved out).
  std::vector<std::vector<uint8_t>> takeParts();
  const std::string& error() const { return error_; }

 private:
  bool parse();
  std::string boundary_;
  std::vector<uint8_t> buffer_;
  std::vector<std::vector<uint8_t>> parts_;
  std::string error_;
  bool started_ = false;
};

}  // namespace printcast::transport::mjpeg
