// SPDX-License-Identifier: MIT
// HttpResponseReader (see http_response.h): the head and the chunked transfer coding.
#include "printcast/transport/http_response.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "text.h"

namespace printcast::transport {

using hal::Errc;
using text::iequals;
using text::lower;
using text::trim;

hal::Status HttpResponseReader::fail(Errc code, std::string message) {
  failed_ = hal::Status(code, std::move(message));
  return failed_;
}

hal::Status HttpResponseReader::feed(std::span<const uint8_t> bytes) {
  if (!failed_) return failed_;
  const uint8_t* p = bytes.data();
  size_t n = bytes.size();
  if (!headDone_) {
    // Append up to the end of the head; the rest is body.
    const size_t before = head_.size();
    head_.append(reinterpret_cast<const char*>(p), n);
    size_t end = head_.find("\r\n\r\n");
    size_t sep = 4;
    if (const size_t lf = head_.find("\n\n");
        lf != std::string::npos && (end == std::string::npos || lf < end)) {
      end = lf;
      sep = 2;
    }
    if (end == std::string::npos) {
      if (head_.size() > maxHeadBytes_) {
        return fail(Errc::InvalidArgument, fmt::format("response head above {} bytes", maxHeadBytes_));
      }
      return {};
    }
    const size_t used = end + sep - before;  // bytes of this call that belong to the head
    head_.resize(end);
    if (auto st = parseHead(); !st) return st;
    p += used;
    n -= used;
  }
  if (n == 0 || complete_) return {};
  auto st = chunked_ ? decodeChunked(p, n) : onBody(p, n);
  if (!st && failed_) failed_ = st;  // the derived reader's own error sticks too
  return st;
}

hal::Status HttpResponseReader::finish() {
  if (!failed_) return failed_;
  if (!headDone_) return {};
  auto st = onClose();
  if (!st && failed_) failed_ = st;
  return st;
}

hal::Status HttpResponseReader::parseHead() {
  headDone_ = true;
  if (head_.size() > maxHeadBytes_) {
    return fail(Errc::InvalidArgument, fmt::format("response head above {} bytes", maxHeadBytes_));
  }
  const std::string_view head(head_);
  const size_t eol = head.find('\n');
  const std::string_view statusLine = trim(head.substr(0, eol));
  if (statusLine.substr(0, 7) != "HTTP/1." || statusLine.size() < 12 || statusLine[8] != ' ') {
    return fail(Errc::InvalidArgument,
                fmt::format("not an HTTP/1.x response: '{}'", statusLine.substr(0, 40)));
  }
  auto [sp, ec] = std::from_chars(statusLine.data() + 9, statusLine.data() + 12, status_);
  if (ec != std::errc() || sp != statusLine.data() + 12) {
    return fail(Errc::InvalidArgument, fmt::format("bad status line '{}'", statusLine.substr(0, 40)));
  }
  std::string location;
  const bool fieldsOk =
      text::forEachField(eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 1),
                         [&](std::string_view name, std::string_view value) {
                           if (iequals(name, "content-type")) {
                             contentType_ = std::string(value);
                           } else if (iequals(name, "content-length")) {
                             if (auto v = text::parseLength(value)) contentLength_ = *v;
                           } else if (iequals(name, "transfer-encoding")) {
                             chunked_ = lower(value).find("chunked") != std::string::npos;
                           } else if (iequals(name, "location")) {
                             location = std::string(value);
                           } else if (iequals(name, "www-authenticate")) {
                             wwwAuthenticate_.emplace_back(value);
                           }
                         });
  if (!fieldsOk) return fail(Errc::InvalidArgument, "malformed response header field");
  if (!readsStatus(status_) && (status_ == 401 || status_ == 403)) {
    return fail(Errc::PermissionDenied,
                fmt::format("HTTP {}: {}", status_,
                            status_ == 401 ? "the camera wants credentials (user:password@ in the URL)"
                                           : "the camera refused these credentials"));
  }
  if (!readsStatus(status_)) {
    std::string reason(trim(statusLine.substr(12)));
    if (!location.empty()) reason += " (Location: " + location + "; use that URL)";
    return fail(Errc::Unsupported, fmt::format("HTTP {} {}", status_, reason));
  }
  head_.clear();
  head_.shrink_to_fit();
  auto st = onHead();
  if (!st && failed_) failed_ = st;
  return st;
}

// RFC 9112 7.1: chunk-size [; ext] CRLF data CRLF ... 0 CRLF trailer CRLF.
hal::Status HttpResponseReader::decodeChunked(const uint8_t* data, size_t size) {
  while (size > 0 && !complete_) {
    switch (chunk_) {
      case Chunk::Size:
      case Chunk::Trailer: {
        const auto* nl = static_cast<const uint8_t*>(std::memchr(data, '\n', size));
        const size_t take = nl == nullptr ? size : static_cast<size_t>(nl - data) + 1;
        chunkLine_.append(reinterpret_cast<const char*>(data), take);
        data += take;
        size -= take;
        if (chunkLine_.size() > 1024) return fail(Errc::InvalidArgument, "chunk-size line above 1024 bytes");
        if (nl == nullptr) break;
        const std::string_view line = trim(std::string_view(chunkLine_).substr(0, chunkLine_.size() - 1));
        if (chunk_ == Chunk::Trailer) {
          if (line.empty()) {
            chunk_ = Chunk::Done;
            complete_ = true;
          }
          chunkLine_.clear();
          break;
        }
        const std::string_view hex = trim(line.substr(0, line.find(';')));
        size_t value = 0;
        auto [p, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), value, 16);
        if (hex.empty() || ec != std::errc() || p != hex.data() + hex.size()) {
          return fail(Errc::InvalidArgument, fmt::format("bad chunk size '{}'", hex.substr(0, 20)));
        }
        chunkLine_.clear();
        if (value == 0) {
          chunk_ = Chunk::Trailer;
          if (auto st = onLastChunk(); !st) return st;
        } else {
          if (value > maxChunkBytes_) return fail(Errc::InvalidArgument, "chunk above the part limit");
          chunkLeft_ = value;
          chunk_ = Chunk::Data;
        }
        break;
      }
      case Chunk::Data: {
        const size_t take = std::min(size, chunkLeft_);
        if (auto st = onBody(data, take); !st) return st;
        data += take;
        size -= take;
        chunkLeft_ -= take;
        if (chunkLeft_ == 0) chunk_ = Chunk::DataEnd;
        break;
      }
      case Chunk::DataEnd: {
        // The CRLF after the data (a bare LF is tolerated).
        const uint8_t c = *data;
        ++data;
        --size;
        if (c == '\n')
          chunk_ = Chunk::Size;
        else if (c != '\r')
          return fail(Errc::InvalidArgument, "chunk data not followed by CRLF");
        break;
      }
      case Chunk::Done: return {};
    }
  }
  return {};
}

}  // namespace printcast::transport
