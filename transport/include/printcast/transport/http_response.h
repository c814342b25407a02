// SPDX-License-Identifier: MIT
// HttpResponseReader: the head and the body framing of one HTTP/1.x response, read as it
// arrives; the pull sources derive from it and read the body (MJPEG: mjpeg_pull.h, FLV:
// flv_pull.h).
// Spec: RFC 9112 (4 status line, 5 field lines, 6.3 message body length, 7.1 chunked transfer
// coding), with the leniencies real cameras need (bare LF line ends, a bare LF after chunk data).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "printcast/hal/result.h"

namespace printcast::transport {

// Feed it the bytes of the connection (any split). The head ("HTTP/1.x NNN", header names
// case-insensitive) is parsed once complete; a 200 is handed to onHead(), which decides on its
// Content-Type (readsStatus() may take other statuses too); the body, with Transfer-Encoding:
// chunked decoded, goes to onBody(). Content-Length is recorded (contentLength()); the derived
// reader decides what it means for its body.
// Threading: one thread at a time. Memory: the head (maxHeadBytes) and one chunk-size line.
class HttpResponseReader {
 public:
  virtual ~HttpResponseReader() = default;
  HttpResponseReader(const HttpResponseReader&) = delete;
  HttpResponseReader& operator=(const HttpResponseReader&) = delete;

  // Errors (the reader stays failed; a new response needs a new reader):
  //  PermissionDenied (401/403: credentials needed or refused), Unsupported (another status; the
  //  message names the Location of a redirect), InvalidArgument (a malformed head or chunk size,
  //  a head above maxHeadBytes, a chunk above maxChunkBytes), and what onHead()/onBody() return.
  hal::Status feed(std::span<const uint8_t> bytes);
  // The connection closed. Errors: what feed() returned before, or onClose()'s.
  hal::Status finish();

  bool headComplete() const { return headDone_; }
  int status() const { return status_; }
  const std::string& contentType() const { return contentType_; }
  // The body is over: the last chunk came, or the derived reader says so (setComplete()).
  bool complete() const { return complete_; }
  // The WWW-Authenticate values of the head (a 401's challenges), in order.
  const std::vector<std::string>& wwwAuthenticate() const { return wwwAuthenticate_; }

 protected:
  HttpResponseReader(size_t maxHeadBytes, size_t maxChunkBytes)
      : maxHeadBytes_(maxHeadBytes), maxChunkBytes_(maxChunkBytes) {}

  // The head of a response whose status readsStatus() accepts (a 200) was read: accept its
  // Content-Type (or fail, Unsupported).
  virtual hal::Status onHead() = 0;
  // The statuses whose body this reader reads (onHead(), onBody()); any other ends the response
  // with feed()'s errors. A SOAP client also reads the faults of 400 and 500 answers.
  virtual bool readsStatus(int status) const { return status == 200; }
  // Body bytes, de-chunked, in order.
  virtual hal::Status onBody(const uint8_t* data, size_t size) = 0;
  // The last chunk (chunk-size 0) of a chunked body came; its trailer may follow.
  virtual hal::Status onLastChunk() { return {}; }
  // The connection closed after the head.
  virtual hal::Status onClose() { return {}; }

  hal::Status fail(hal::Errc code, std::string message);
  void setComplete() { complete_ = true; }
  long long contentLength() const { return contentLength_; }  // -1 when absent
  bool chunked() const { return chunked_; }
  bool lastChunkSeen() const { return chunk_ == Chunk::Trailer || chunk_ == Chunk::Done; }
  size_t maxHeadBytes() const { return maxHeadBytes_; }

 private:
  hal::Status parseHead();
  hal::Status decodeChunked(const uint8_t* data, size_t size);

  enum class Chunk { Size, Data, DataEnd, Trailer, Done };

  const size_t maxHeadBytes_;
  const size_t maxChunkBytes_;
  hal::Status failed_;
  bool headDone_ = false;
  int status_ = 0;
  std::string contentType_;
  long long contentLength_ = -1;
  bool chunked_ = false;
  bool complete_ = false;
  std::string head_;
  std::vector<std::string> wwwAuthenticate_;
  Chunk chunk_ = Chunk::Size;
  std::string chunkLine_;
  size_t chunkLeft_ = 0;
};

}  // namespace printcast::transport
