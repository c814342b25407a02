// SPDX-License-Identifier: MIT
// HTTP MJPEG pull: a network camera as a hal::Capture of MJPEG frames, from a
// multipart/x-mixed-replace stream (ESP32 CameraWebServer :81/stream, Tasmota, ustreamer,
// mjpg-streamer, another printcast) or a single-JPEG snapshot URL polled at the frame rate.
//
// Formats: HTTP/1.1 (RFC 9112: status line, header fields, chunked transfer coding 7.1);
// multipart (RFC 2046 5.1.1: a delimiter line is "--" boundary, the close delimiter
// "--" boundary "--"), with the leniencies real cameras need (see MjpegResponseReader).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "printcast/hal/capture.h"
#include "printcast/hal/result.h"
#include "printcast/transport/http_response.h"
#include "printcast/transport/url.h"

namespace printcast::transport {

// An http:// camera URL (url.h): http://[user[:password]@]host[:port][/path][?query], port 80
// when absent. Errors: those of parseUrl() (https:// and other schemes are Unsupported).
using HttpUrl = Url;
inline hal::Result<HttpUrl> parseHttpUrl(std::string_view url) { return parseUrl(url, "http", 80); }

// The JPEG inside a message or part: from its first SOI (FFD8FF) to its last EOI (FFD9), at
// least 5 bytes; empty when there is none (a truncated JPEG, text). Bytes before (an id) and
// after are not part of it.
std::span<const uint8_t> findJpeg(std::span<const uint8_t> bytes);

// Incremental reader of one HTTP response that carries JPEGs (the head and chunked transfer coding:
// HttpResponseReader): feed it the bytes as they arrive from the connection (any split), pop the
// complete JPEGs. Lenient, for other servers' streams
// (mjpeg::Parser in mjpeg.h is the strict parser of printcast's own output, for tests).
//  - Head: "HTTP/1.x 200" only; header names are case-insensitive; a head above
//    Limits::maxHeadBytes is an error. Transfer-Encoding: chunked is decoded.
//  - Content-Type multipart/x-mixed-replace (or any multipart/*): the boundary parameter may be
//    quoted, and may or may not already begin with "--" (a delimiter line is any number of '-'
//    then the boundary, so both `boundary=frame` + "--frame" and `boundary=--frame` + "--frame"
//    work); without a boundary parameter the first line starting with "--" is taken as the
//    delimiter. A part's Content-Length is used when present, else the part ends at the next
//    delimiter line; other part headers are ignored. Bytes before the first delimiter (a
//    preamble) and between a part and the next delimiter are skipped.
//  - Content-Type image/jpeg (a snapshot URL): the body, up to Content-Length or the end of the
//    connection (finish()), is one part.
//  - No Content-Type, or application/octet-stream (ffmpeg's `-f mpjpeg -listen 1` server): a body
//    starting with "--" is multipart, one starting with SOI a single JPEG.
//  - A part becomes a JPEG from its first SOI (FFD8FF: an ASCII id or junk before it is dropped)
//    to its last EOI (FFD9). A part without both is dropped and counted (droppedParts()).
// Threading: one thread at a time. Memory: the buffered bytes never exceed
// maxPartBytes + maxHeadBytes, plus the JPEGs not yet popped.
class MjpegResponseReader final : public HttpResponseReader {
 public:
  struct Limits {
    size_t maxHeadBytes = size_t{16} * 1024;        // response head, and each part's header block
    size_t maxPartBytes = size_t{8} * 1024 * 1024;  // one part (one JPEG)
  };
  MjpegResponseReader() : MjpegResponseReader(Limits{}) {}
  explicit MjpegResponseReader(Limits limits);

  // feed() errors (the reader stays failed; a new response needs a new reader):
  //  PermissionDenied (401/403: credentials needed or refused), Unsupported (another status, or
  //  a Content-Type that is neither multipart nor image/jpeg), InvalidArgument (a malformed head,
  //  chunk size or part header block; a head or part above its limit).
  // finish(): the connection closed: a snapshot body without Content-Length is complete now.
  // complete(): the body is over: the snapshot is complete, the close delimiter or the last
  // chunk came.

  bool multipart() const { return multipart_; }

  // The oldest complete JPEG not yet popped, moved out; empty when there is none.
  std::vector<uint8_t> popJpeg();
  size_t pendingJpegs() const { return jpegs_.size(); }
  uint64_t droppedParts() const { return droppedParts_; }

 private:
  hal::Status onHead() override;
  hal::Status onBody(const uint8_t* data, size_t size) override;
  hal::Status onLastChunk() override;
  hal::Status onClose() override;
  hal::Status scanParts();
  void emitPart(const uint8_t* data, size_t size);

  enum class Part { Delimiter, Headers, Body };

  Limits limits_;
  bool multipart_ = false;
  bool sniff_ = false;  // no or an octet-stream Content-Type: decided by the body
  // multipart
  std::string boundary_;  // without leading '-'; empty until known
  Part part_ = Part::Delimiter;
  long long partLength_ = -1;
  size_t scanFrom_ = 0;
  std::vector<uint8_t> body_;  // undecoded part bytes (multipart) or the snapshot body
  std::deque<std::vector<uint8_t>> jpegs_;
  uint64_t droppedParts_ = 0;
};

struct MjpegPullOptions {
  std::chrono::milliseconds connectTimeout{3000};
  // The factory returns once the first JPEG arrived (its size is the capture's size), or fails
  // with Timeout after this long.
  std::chrono::milliseconds openTimeout{5000};
  // A stream that sends no byte for this long is lost (NoSignal): the no-data watchdog.
  std::chrono::milliseconds noDataTimeout{10000};
  MjpegResponseReader::Limits limits{};
  std::string userAgent = "printcast";
};

// Open an http:// camera: connect, GET the URL (User-Agent always), and wait for the first JPEG.
// Credentials in the URL answer the camera's 401 challenge: Digest (RFC 7616: MD5, SHA-256,
// -sess, qop auth or none; a stale nonce is renewed) when offered, else Basic; the first request
// goes without, later ones reuse the scheme, and refused credentials are PermissionDenied. A multipart
// response is read as it streams; an image/jpeg response is requested again every 1/fps s (CaptureConfig::fps
// of start(); 1 s before start() or when fps is 0), each time on a new connection. The Capture (info().driver
// "http-mjpeg", name and busInfo the URL without credentials) offers one format: MJPEG at the first picture's
// size, any rate (the camera's; validate() keeps the asked fps, used only to pace snapshot polling).
// validate() answers Invalid for other formats and Adjusted with the real size for another size. Frames: one
// JPEG each in plane 0 (stride 0), the standard Huffman tables inserted when the camera left them out (as
// V4L2 MJPEG), stamped with the arrival time of their last byte (cameras send no timestamps), sequence
// counting the frames handed out. A part that is not a JPEG, or whose header does not parse, is dropped
// (counted in droppedFrames()). At most two frames wait for dequeue(); older ones are dropped (counted) when
// the consumer is slow. Loss: the connection closing, a read error, no byte for noDataTimeout, or a picture
// whose size differs from the first turns every later dequeue() into an error (Disconnected; NoSignal for the
// watchdog; the message says which): recovery is a new object, as for V4L2. Threading: one I/O thread per
// object, started by the factory, joined by stop() or the destructor; pollFd() is an eventfd, readable while
// a frame or the error waits. dequeue() and stop() from the thread that drives the capture; info() from any
// thread. Errors of the factory: those of parseHttpUrl(), of connectTcp() (NoDevice, Timeout, Io), of
// MjpegResponseReader (PermissionDenied, Unsupported, InvalidArgument), Disconnected (closed
// before the first JPEG), Timeout (no JPEG within openTimeout).
hal::Result<std::unique_ptr<hal::Capture>> createMjpegPullCapture(const std::string& url,
                                                                  MjpegPullOptions options = {});

// Frames a pull capture (HTTP MJPEG or RTSP) dropped (not a JPEG, or the consumer was slow), for
// /status and tests; 0 for a Capture that is not a pull capture.
uint64_t droppedFrames(const hal::Capture& capture);

}  // namespace printcast::transport
