// SPDX-License-Identifier: MIT
// MJPEG multipart/x-mixed-replace: the byte builders a server sends and a strict incremental parser.
#include "printcast/transport/mjpeg.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <utility>

#include "text.h"

namespace printcast::transport::mjpeg {
namespace {

using text::iequals;

constexpr std::string_view kCrlf = "\r\n";
// Part headers are a few short lines; anything longer is not this stream shape (and must not make
// the parser buffer without bound while it waits for the blank line).
constexpr size_t kMaxPartHeaderBytes = 4096;

std::string_view trimWhitespace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A Content-Length value: decimal digits only (RFC 9110 8.6), no sign, no overflow.
std::optional<size_t> parseLength(std::string_view s) {
  if (s.empty()) return std::nullopt;
  size_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<size_t>(c - '0');
    if (value > (SIZE_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

// True when `have` is a prefix of `want` or the other way round: the bytes seen so far do not yet
// contradict what must come.
bool consistentPrefix(std::string_view have, std::string_view want) {
  const size_t n = std::min(have.size(), want.size());
  return have.substr(0, n) == want.substr(0, n);
}

// Printable form of a delimiter for error messages ("\r\n--TOKEN\r\n").
std::string escaped(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string contentType(std::string_view boundary) {
  return fmt::format("multipart/x-mixed-replace;boundary={}", boundary);
}

std::string preamble(std::string_view boundary) { return fmt::format("--{}\r\n", boundary); }

std::string partHeader(size_t jpegSize, hal::Timestamp captureTime) {
  // Whole microseconds, floored; a time before the clock's epoch (only a default Timestamp could
  // be) is sent as 0 rather than as a malformed negative fraction.
  const auto us = std::max<int64_t>(
      0, std::chrono::floor<std::chrono::microseconds>(captureTime.time_since_epoch()).count());
  return fmt::format("Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {}.{:06}\r\n\r\n",
                     jpegSize, us / 1000000, us % 1000000);
}

std::string partTrailer(std::string_view boundary) { return fmt::format("\r\n--{}\r\n", boundary); }

std::string advancePartHeader() { return "Content-Type: image/jpeg\r\n\r\n"; }

Parser::Parser(std::string boundary) : boundary_(std::move(boundary)) {}

bool Parser::feed(std::span<const uint8_t> bytes) {
  if (!error_.empty()) return false;
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
  return parse();
}

std::vector<std::vector<uint8_t>> Parser::takeParts() { return std::exchange(parts_, {}); }

std::vector<Parser::Headers> Parser::takePartHeaders() { return std::exchange(partHeaders_, {}); }

// Stream shape: "--B\r\n" once, then parts of  header lines, "\r\n", Content-Length body bytes,
// "\r\n--B\r\n". Every decision depends only on the bytes, never on where a chunk ended, so any
// chunking gives the same parts and the same error. The state between calls is `started_` plus
// the buffer, which always begins at the preamble (before start) or at a part's first header line.
bool Parser::parse() {
  const std::string opening = preamble(boundary_);
  const std::string trailer = partTrailer(boundary_);
  std::string_view data(reinterpret_cast<const char*>(buffer_.data()), buffer_.size());
  size_t pos = 0;
  auto fail = [&](std::string message) {
    error_ = std::move(message);
    buffer_.clear();
    return false;
  };

  if (!started_) {
    if (!consistentPrefix(data, opening)) {
      return fail(fmt::format("stream does not start with the boundary \"{}\"", escaped(opening)));
    }
    if (data.size() < opening.size()) return true;
    started_ = true;
    pos = opening.size();
  }

  for (;;) {
    // Header lines up to the blank line; each complete line is checked as soon as it is seen.
    const std::string_view rest = data.substr(pos);
    const std::string_view window = rest.substr(0, kMaxPartHeaderBytes);
    std::optional<size_t> contentLength;
    std::optional<size_t> bodyStart;
    Headers headers;
    size_t lineStart = 0;
    for (;;) {
      const size_t eol = window.find(kCrlf, lineStart);
      if (eol == std::string_view::npos) break;
      const std::string_view line = window.substr(lineStart, eol - lineStart);
      lineStart = eol + kCrlf.size();
      if (line.empty()) {
        bodyStart = lineStart;
        break;
      }
      if (std::any_of(line.begin(), line.end(), [](char c) {
            return (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7F;
          })) {
        return fail("control character in a part header line");
      }
      const size_t colon = line.find(':');
      const std::string_view name = line.substr(0, colon);
      if (colon == std::string_view::npos || name.empty() ||
          name.find_first_of(" \t") != std::string_view::npos) {
        return fail(fmt::format("malformed part header line \"{}\"", line));
      }
      const std::string_view value = trimWhitespace(line.substr(colon + 1));
      if (keepHeaders_) headers.emplace_back(std::string(name), std::string(value));
      if (iequals(name, "Content-Length")) {
        const std::optional<size_t> length = parseLength(value);
        if (!length) return fail(fmt::format("invalid Content-Length \"{}\"", value));
        if (contentLength && *contentLength != *length) return fail("conflicting Content-Length headers");
        contentLength = length;
      } else if (iequals(name, "Content-Type") && !iequals(value, "image/jpeg")) {
        return fail(fmt::format("part Content-Type is \"{}\", not image/jpeg", value));
      }
    }
    if (!bodyStart) {
      if (rest.size() >= kMaxPartHeaderBytes) {
        return fail(fmt::format("part headers longer than {} bytes", kMaxPartHeaderBytes));
      }
      break;  // wait for the rest of the headers
    }
    // Body, then the trailer that closes this part and opens the next one. Without
    // Content-Length (headers sent ahead of their JPEG) the body ends at the first trailer.
    const std::string_view afterHeaders = rest.substr(*bodyStart);
    if (!contentLength) {
      const size_t end = afterHeaders.find(trailer);
      if (end == std::string_view::npos) break;
      contentLength = end;
    }
    if (afterHeaders.size() < *contentLength) break;
    const std::string_view tail = afterHeaders.substr(*contentLength);
    if (!consistentPrefix(tail, trailer)) {
      return fail(fmt::format("{}-byte part body not followed by \"{}\" (wrong Content-Length or boundary)",
                              *contentLength, escaped(trailer)));
    }
    if (tail.size() < trailer.size()) break;
    const auto* body = buffer_.data() + pos + *bodyStart;
    parts_.emplace_back(body, body + *contentLength);
    if (keepHeaders_) partHeaders_.push_back(std::move(headers));
    pos += *bodyStart + *contentLength + trailer.size();
  }

  buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(pos));
  return true;
}

}  // namespace printcast::transport::mjpeg
