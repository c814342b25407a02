// SPDX-License-Identifier: MIT
// MJPEG over HTTP multipart (multipart/x-mixed-replace), as mjpg-streamer/ustreamer serve it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "printcast/hal/frame.h"

namespace printcast::transport::mjpeg {

inline constexpr std::string_view kBoundary = "printcastboundary";

// Threading: the free functions are pure; call from any thread. A boundary is a plain token
// (RFC 2046 bchars without space); it is not checked or quoted.

// "multipart/x-mixed-replace;boundary=TOKEN": unquoted, no space (Fluidd's parser needs that).
std::string contentType(std::string_view boundary = kBoundary);

// What a stream sends once before the first part: "--TOKEN\r\n".
std::string preamble(std::string_view boundary = kBoundary);

// The headers of one part: "Content-Type: image/jpeg\r\nContent-Length: N\r\n
// X-Timestamp: S.UUUUUU\r\n\r\n" (Mainsail needs Content-Length; X-Timestamp is the capture
// time in seconds on the monotonic clock with 6 decimals, floored, as ustreamer sends it; a time
// before the clock's epoch is sent as 0.000000).
std::string partHeader(size_t jpegSize, hal::Timestamp captureTime);

// What follows each JPEG: "\r\n--TOKEN\r\n". Sending the next boundary at once lets players
// that wait for it (Firefox, ffmpeg's mpjpeg demuxer) take the frame immediately.
std::string partTrailer(std::string_view boundary = kBoundary);

// How a stream frames its parts for one client.
//  - ContentLength (the default): each part's headers (partHeader: Content-Length, X-Timestamp) go
//    out with its JPEG, and partTrailer after it. What mjpg-streamer and ustreamer send; programs
//    that read the stream (ffmpeg, Home Assistant, Mainsail's adaptive mode via fetch) rely on it.
//  - AdvanceHeaders (ustreamer's `?advance_headers=1`): the next part's headers go out right
//    after each JPEG's trailer, before that JPEG exists, so they carry only
//    "Content-Type: image/jpeg" (no length, no timestamp: the part ends at the next boundary).
//    For browsers: Chromium shows a part only once it has parsed the *next* part's headers
//    (Blink's MultipartImageResourceParser::AppendData finds the boundary, then ParseHeaders
//    calls OnePartInMultipartReceived, which is what finishes and paints the previous image), so
//    with ContentLength framing every picture in an <img> is one frame interval late.
enum class Framing { ContentLength, AdvanceHeaders };

// The headers of a part sent ahead of its JPEG (Framing::AdvanceHeaders):
// "Content-Type: image/jpeg\r\n\r\n".
std::string advancePartHeader();

// A strict parser of exactly the stream the functions above build, for tests and tools: feed bytes
// as they arrive, take parts. Shape: "--TOKEN\r\n" once, then per part header lines ending in a
// blank line, the body, "\r\n--TOKEN\r\n". The body is exactly Content-Length bytes when the
// part has that header, and otherwise (Framing::AdvanceHeaders) everything up to the first
// "\r\n--TOKEN\r\n". Header names are case-insensitive; a Content-Type other than image/jpeg,
// a line without ':', control characters or more than 4 KiB of headers are framing errors. The
// body is not checked for being a JPEG. There is no closing "--TOKEN--": a live stream just stops, and a
// partial part at that point is simply never returned.
// Any chunking of the same bytes gives the same parts and the same error (errors are reported as
// soon as the bytes seen contradict the shape). Memory: the unparsed remainder (at most one part)
// plus the parts not yet taken.
// Thread-safety: none; one thread at a time per Parser.
class Parser {
 public:
  explicit Parser(std::string boundary = std::string(kBoundary));
  // Append bytes and parse what is complete. Returns false (and stays failed: later calls return
  // false and ignore their bytes) on a framing error; error() then says which, in words.
  bool feed(std::span<const uint8_t> bytes);
  // Complete JPEG parts parsed so far, in stream order (moved out: a second call returns only
  // newer parts).
  std::vector<std::vector<uint8_t>> takeParts();
  // Empty while the stream is well formed.
  const std::string& error() const { return error_; }

  // Optional, for tools that need a part's headers (e.g. X-Timestamp): after keepHeaders(true)
  // each part parsed from then on also records its header lines as (name, value as sent, trimmed),
  // and takePartHeaders() returns them in the same order as takeParts() returns the bodies (moved
  // out likewise). Off by default: then takePartHeaders() is always empty.
  using Headers = std::vector<std::pair<std::string, std::string>>;
  void keepHeaders(bool keep) { keepHeaders_ = keep; }
  std::vector<Headers> takePartHeaders();

 private:
  bool parse();
  std::string boundary_;
  std::vector<uint8_t> buffer_;
  std::vector<std::vector<uint8_t>> parts_;
  std::string error_;
  bool started_ = false;
  bool keepHeaders_ = false;
  std::vector<Headers> partHeaders_;
};

}  // namespace printcast::transport::mjpeg
