// SPDX-License-Identifier: MIT
// HTTP MJPEG pull (see mjpeg_pull.h): URL parsing, the response reader, and the pull capture.
#include "printcast/transport/mjpeg_pull.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

#include "network_capture.h"
#include "printcast/transport/http_digest.h"
#include "printcast/transport/tcp_connect.h"
#include "text.h"

namespace printcast::transport {

namespace {

using text::iequals;
using text::lower;
using text::trim;

using hal::Errc;
using Clock = std::chrono::steady_clock;

// Calls f(name, value) for each "Name: value" line of a header block (lines end in LF or CRLF).
template <typename F>
bool forEachField(std::string_view block, F&& f) {
  while (!block.empty()) {
    const size_t eol = block.find('\n');
    std::string_view line = block.substr(0, eol);
    block = eol == std::string_view::npos ? std::string_view{} : block.substr(eol + 1);
    line = trim(line);
    if (line.empty()) continue;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    f(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
  }
  return true;
}

std::optional<long long> parseLength(std::string_view v) {
  long long n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || n < 0) return std::nullopt;
  return n;
}

// The boundary parameter of a multipart Content-Type, unquoted and without leading '-'.
std::string boundaryOf(std::string_view contentType) {
  const std::string l = lower(contentType);
  size_t at = l.find("boundary=");
  if (at == std::string::npos) return {};
  std::string_view v = contentType.substr(at + 9);
  std::string b;
  if (!v.empty() && v.front() == '"') {
    v.remove_prefix(1);
    b = std::string(v.substr(0, v.find('"')));
  } else {
    b = std::string(trim(v.substr(0, v.find_first_of("; \t"))));
  }
  const size_t first = b.find_first_not_of('-');
  return first == std::string::npos ? std::string{} : b.substr(first);
}

}  // namespace

// ----------------------------------------------------------------------------- response reader

std::span<const uint8_t> findJpeg(std::span<const uint8_t> bytes) {
  size_t soi = bytes.size();
  for (size_t i = 0; i + 2 < bytes.size(); ++i) {
    if (bytes[i] == 0xFF && bytes[i + 1] == 0xD8 && bytes[i + 2] == 0xFF) {
      soi = i;
      break;
    }
  }
  // The EOI comes after the SOI marker and the first byte of the next marker: at least 5 bytes.
  for (size_t end = bytes.size(); soi < bytes.size() && end >= soi + 5; --end) {
    if (bytes[end - 2] == 0xFF && bytes[end - 1] == 0xD9) return bytes.subspan(soi, end - soi);
  }
  return {};
}

MjpegResponseReader::MjpegResponseReader(Limits limits) : limits_(limits) {}

hal::Status MjpegResponseReader::fail(Errc code, std::string message) {
  failed_ = hal::Status(code, std::move(message));
  return failed_;
}

hal::Status MjpegResponseReader::feed(std::span<const uint8_t> bytes) {
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
      if (head_.size() > limits_.maxHeadBytes) {
        return fail(Errc::InvalidArgument, fmt::format("response head above {} bytes", limits_.maxHeadBytes));
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
  return chunked_ ? decodeChunked(p, n) : onBody(p, n);
}

hal::Status MjpegResponseReader::parseHead() {
  headDone_ = true;
  if (head_.size() > limits_.maxHeadBytes) {
    return fail(Errc::InvalidArgument, fmt::format("response head above {} bytes", limits_.maxHeadBytes));
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
      forEachField(eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 1),
                   [&](std::string_view name, std::string_view value) {
                     if (iequals(name, "content-type")) {
                       contentType_ = std::string(value);
                     } else if (iequals(name, "content-length")) {
                       if (auto v = parseLength(value)) contentLength_ = *v;
                     } else if (iequals(name, "transfer-encoding")) {
                       chunked_ = lower(value).find("chunked") != std::string::npos;
                     } else if (iequals(name, "location")) {
                       location = std::string(value);
                     } else if (iequals(name, "www-authenticate")) {
                       wwwAuthenticate_.emplace_back(value);
                     }
                   });
  if (!fieldsOk) return fail(Errc::InvalidArgument, "malformed response header field");
  if (status_ == 401 || status_ == 403) {
    return fail(Errc::PermissionDenied,
                fmt::format("HTTP {}: {}", status_,
                            status_ == 401 ? "the camera wants credentials (user:password@ in the URL)"
                                           : "the camera refused these credentials"));
  }
  if (status_ != 200) {
    std::string reason(trim(statusLine.substr(12)));
    if (!location.empty()) reason += " (Location: " + location + "; use that URL)";
    return fail(Errc::Unsupported, fmt::format("HTTP {} {}", status_, reason));
  }
  const std::string type = lower(contentType_.substr(0, contentType_.find(';')));
  if (type.rfind("multipart/", 0) == 0) {
    multipart_ = true;
    boundary_ = boundaryOf(contentType_);
  } else if (trim(type).empty() || trim(type) == "application/octet-stream") {
    sniff_ = true;  // ffmpeg's -listen server says octet-stream: the body's first bytes decide
  } else if (trim(type) != "image/jpeg" && trim(type) != "image/jpg") {
    return fail(Errc::Unsupported,
                fmt::format("Content-Type '{}' is neither a multipart MJPEG stream nor image/jpeg",
                            contentType_.substr(0, 80)));
  }
  if (!multipart_ && contentLength_ > static_cast<long long>(limits_.maxPartBytes)) {
    return fail(Errc::InvalidArgument, fmt::format("a JPEG of {} bytes is above the {} byte limit",
                                                   contentLength_, limits_.maxPartBytes));
  }
  if (!multipart_ && contentLength_ == 0) {
    complete_ = true;
    ++droppedParts_;
  }
  head_.clear();
  head_.shrink_to_fit();
  return {};
}

// RFC 9112 7.1: chunk-size [; ext] CRLF data CRLF ... 0 CRLF trailer CRLF.
hal::Status MjpegResponseReader::decodeChunked(const uint8_t* data, size_t size) {
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
          if (!multipart_ && !sniff_) {
            if (auto st = onBody(nullptr, 0); !st) return st;
          }
        } else {
          if (value > limits_.maxPartBytes) return fail(Errc::InvalidArgument, "chunk above the part limit");
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
  if (chunk_ == Chunk::Done && !multipart_) complete_ = true;
  return {};
}

hal::Status MjpegResponseReader::onBody(const uint8_t* data, size_t size) {
  if (size > 0) body_.insert(body_.end(), data, data + size);
  if (sniff_) {
    // A body of "--boundary" lines is multipart; one starting with SOI is a single JPEG.
    const size_t first = std::min(
        body_.size(), static_cast<size_t>(std::find_if(body_.begin(), body_.end(),
                                                       [](uint8_t c) { return c != '\r' && c != '\n'; }) -
                                          body_.begin()));
    if (body_.size() - first < 2) return {};
    if (body_[first] == '-' && body_[first + 1] == '-') {
      multipart_ = true;
    } else if (!(body_[first] == 0xFF && body_[first + 1] == 0xD8)) {
      return fail(
          Errc::Unsupported,
          fmt::format("Content-Type '{}' with a body that is neither multipart nor a JPEG", contentType_));
    }
    sniff_ = false;
  }
  if (multipart_) return scanParts();
  if (body_.size() > limits_.maxPartBytes) {
    return fail(Errc::InvalidArgument, fmt::format("a JPEG above the {} byte limit", limits_.maxPartBytes));
  }
  const bool lengthDone = contentLength_ >= 0 && body_.size() >= static_cast<size_t>(contentLength_);
  const bool chunksDone = chunked_ && chunk_ == Chunk::Trailer;
  if (lengthDone || chunksDone) {
    if (lengthDone) body_.resize(static_cast<size_t>(contentLength_));
    emitPart(body_.data(), body_.size());
    body_.clear();
    complete_ = true;
  }
  return {};
}

// A multipart delimiter line: any number of '-' (at least one), the boundary, then "--" (close
// delimiter) or the end of the line (transport padding is ignored).
hal::Status MjpegResponseReader::scanParts() {
  for (;;) {
    switch (part_) {
      case Part::Delimiter: {
        // Each complete line: is it a delimiter? Bytes before one are skipped.
        size_t start = 0;
        bool found = false;
        bool close = false;
        while (start < body_.size()) {
          const auto* nl =
              static_cast<const uint8_t*>(std::memchr(body_.data() + start, '\n', body_.size() - start));
          if (nl == nullptr) break;
          const size_t end = static_cast<size_t>(nl - body_.data());
          std::string_view line(reinterpret_cast<const char*>(body_.data() + start), end - start);
          start = end + 1;
          line = trim(line);
          if (line.size() < 2 || line[0] != '-' || line[1] != '-') continue;
          if (boundary_.empty()) {
            const size_t first = line.find_first_not_of('-');
            if (first == std::string_view::npos) continue;
            boundary_ = std::string(line.substr(first));
          }
          const size_t dashes = line.find_first_not_of('-');
          if (dashes == std::string_view::npos) continue;
          const std::string_view rest = line.substr(dashes);
          if (rest.substr(0, boundary_.size()) != boundary_) continue;
          const std::string_view after = trim(rest.substr(boundary_.size()));
          if (after.empty() || after == "--") {
            found = true;
            close = after == "--";
            break;
          }
        }
        body_.erase(body_.begin(), body_.begin() + static_cast<std::ptrdiff_t>(start));
        if (!found) {
          if (body_.size() > limits_.maxHeadBytes) {
            // A line this long is no delimiter: skip it (bounded memory).
            body_.clear();
          }
          return {};
        }
        if (close) {
          complete_ = true;
          body_.clear();
          return {};
        }
        part_ = Part::Headers;
        partLength_ = -1;
        break;
      }
      case Part::Headers: {
        // The header block ends at an empty line (which may be the very first line).
        const std::string_view text(reinterpret_cast<const char*>(body_.data()), body_.size());
        size_t end = std::string_view::npos;
        size_t skip = 0;
        if (text.substr(0, 2) == "\r\n") {
          end = 0;
          skip = 2;
        } else if (text.substr(0, 1) == "\n") {
          end = 0;
          skip = 1;
        } else {
          const size_t crlf = text.find("\n\r\n");
          const size_t lf = text.find("\n\n");
          if (crlf != std::string_view::npos && (lf == std::string_view::npos || crlf < lf)) {
            end = crlf + 1;  // the header text keeps its last line's '\n'
            skip = 2;
          } else if (lf != std::string_view::npos) {
            end = lf + 1;
            skip = 1;
          }
        }
        if (end == std::string_view::npos) {
          if (body_.size() > limits_.maxHeadBytes) {
            return fail(Errc::InvalidArgument,
                        fmt::format("part headers above {} bytes", limits_.maxHeadBytes));
          }
          if (text.size() >= 2 && static_cast<uint8_t>(text[0]) == 0xFF &&
              static_cast<uint8_t>(text[1]) == 0xD8) {
            // No header block at all: the JPEG follows the delimiter line directly.
            part_ = Part::Body;
            scanFrom_ = 0;
            break;
          }
          return {};
        }
        const bool ok = forEachField(text.substr(0, end), [&](std::string_view name, std::string_view value) {
          if (iequals(name, "content-length")) {
            if (auto v = parseLength(value)) partLength_ = *v;
          }
        });
        if (!ok) {
          // Not a header block (a JPEG straight after the delimiter, or junk): read it as the body.
          partLength_ = -1;
          part_ = Part::Body;
          scanFrom_ = 0;
          break;
        }
        if (partLength_ > static_cast<long long>(limits_.maxPartBytes)) {
          return fail(Errc::InvalidArgument, fmt::format("a part of {} bytes is above the {} byte limit",
                                                         partLength_, limits_.maxPartBytes));
        }
        body_.erase(body_.begin(), body_.begin() + static_cast<std::ptrdiff_t>(end + skip));
        part_ = Part::Body;
        scanFrom_ = 0;
        break;
      }
      case Part::Body: {
        if (partLength_ >= 0) {
          if (body_.size() < static_cast<size_t>(partLength_)) return {};
          emitPart(body_.data(), static_cast<size_t>(partLength_));
          body_.erase(body_.begin(), body_.begin() + static_cast<std::ptrdiff_t>(partLength_));
          part_ = Part::Delimiter;
          break;
        }
        // No length: the part ends where a delimiter line starts ("\n" then '-'s and the boundary).
        const std::string_view text(reinterpret_cast<const char*>(body_.data()), body_.size());
        size_t at = scanFrom_;
        size_t lineStart = std::string_view::npos;
        while ((at = text.find(boundary_, at)) != std::string_view::npos) {
          size_t d = at;
          while (d > 0 && text[d - 1] == '-') --d;
          if (d < at && d > 0 && text[d - 1] == '\n') {
            lineStart = d;
            break;
          }
          ++at;
        }
        if (lineStart == std::string_view::npos) {
          if (body_.size() > limits_.maxPartBytes) {
            return fail(
                Errc::InvalidArgument,
                fmt::format("a part above the {} byte limit (no delimiter found)", limits_.maxPartBytes));
          }
          // Rescan only the tail that could hold the start of a delimiter.
          scanFrom_ = text.size() > boundary_.size() + 1 ? text.size() - boundary_.size() - 1 : 0;
          return {};
        }
        size_t end = lineStart - 1;  // the '\n'
        if (end > 0 && text[end - 1] == '\r') --end;
        emitPart(body_.data(), end);
        body_.erase(body_.begin(), body_.begin() + static_cast<std::ptrdiff_t>(lineStart));
        part_ = Part::Delimiter;
        break;
      }
    }
  }
}

void MjpegResponseReader::emitPart(const uint8_t* data, size_t size) {
  const auto jpeg = findJpeg({data, size});
  if (jpeg.empty()) {
    ++droppedParts_;
    return;
  }
  jpegs_.emplace_back(jpeg.begin(), jpeg.end());
}

hal::Status MjpegResponseReader::finish() {
  if (!failed_) return failed_;
  if (headDone_ && !multipart_ && !complete_ && contentLength_ < 0 && !chunked_) {
    sniff_ = false;
    emitPart(body_.data(), body_.size());
    body_.clear();
    complete_ = true;
  }
  return {};
}

std::vector<uint8_t> MjpegResponseReader::popJpeg() {
  if (jpegs_.empty()) return {};
  std::vector<uint8_t> out = std::move(jpegs_.front());
  jpegs_.pop_front();
  return out;
}

// ----------------------------------------------------------------------------- pull capture

namespace {

class MjpegPullCapture final : public NetworkCapture {
 public:
  MjpegPullCapture(HttpUrl url, MjpegPullOptions options)
      : NetworkCapture("http://" + url.display(), "http-mjpeg", hal::fourcc::kMJPEG, options.noDataTimeout),
        url_(std::move(url)),
        options_(std::move(options)),
        auth_(url_.user, url_.password) {}

  ~MjpegPullCapture() override { stopThread(); }

  hal::Status open() { return NetworkCapture::open(options_.openTimeout, "no JPEG"); }

  hal::Status start(const hal::CaptureConfig& config) override {
    if (config.format != hal::fourcc::kMJPEG)
      return {Errc::InvalidArgument, "an HTTP camera delivers MJPEG only"};
    const int fps = config.fps > 0 ? config.fps : 1;
    pollInterval_ = std::chrono::milliseconds(1000 / std::clamp(fps, 1, 1000));
    return {};
  }

 private:
  // One request; the connection is closed when it returns. Ok when a snapshot arrived (the
  // caller polls again); an error otherwise (a stream only ends by an error).
  hal::Status request() {
    auto fd = connectTcp(url_.host, url_.port, options_.connectTimeout, wake_);
    if (!fd) return fd.error();
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{*fd};
    std::string req = fmt::format(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept: multipart/x-mixed-replace, image/jpeg\r\n"
        "Connection: close\r\n",
        url_.target, url_.hostField(80), options_.userAgent);
    // Credentials only in answer to a challenge (the first request goes without), then with every
    // request in the scheme the camera asked for.
    if (auto a = auth_.authorization("GET", url_.target); !a.empty()) req += "Authorization: " + a + "\r\n";
    req += "\r\n";
    if (auto st = sendAll(*fd, req.data(), req.size(), options_.connectTimeout); !st) return st;

    MjpegResponseReader reader(options_.limits);
    uint64_t droppedBefore = 0;
    std::vector<uint8_t> buf(size_t{64} * 1024);
    for (;;) {
      pollfd p[2] = {{*fd, POLLIN, 0}, {wake_, POLLIN, 0}};
      const int ready = ::poll(p, 2, static_cast<int>(options_.noDataTimeout.count()));
      if (stopping_) return {Errc::Timeout, "stopped"};
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) {
        return {
            Errc::NoSignal,
            fmt::format("http://{}: no data for {} s", url_.display(),
                        std::chrono::duration_cast<std::chrono::seconds>(options_.noDataTimeout).count())};
      }
      const ssize_t n = ::recv(*fd, buf.data(), buf.size(), 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n < 0) return hal::errnoError("http://" + url_.display() + ": recv");
      auto st = n == 0 ? reader.finish() : reader.feed({buf.data(), static_cast<size_t>(n)});
      if (!st && reader.status() == 401) return answerChallenge(reader);
      if (!st) {
        hal::Error e = std::move(st).error();
        e.message = "http://" + url_.display() + ": " + e.message;
        return e;
      }
      frames_.countDropped(reader.droppedParts() - droppedBefore);
      droppedBefore = reader.droppedParts();
      // Stamped on arrival: cameras send no capture times.
      while (reader.pendingJpegs() > 0) {
        if (!frames_.deliverJpeg(reader.popJpeg(), Clock::now())) return frames_.error();
      }
      if (reader.complete() && !reader.multipart()) return {};
      if (reader.complete() || n == 0) {
        return {Errc::Disconnected,
                fmt::format("http://{}: the camera ended the {}", url_.display(),
                            reader.headComplete() ? "stream" : "connection before answering")};
      }
    }
  }

  // A 401: answer the camera's challenge on the next request, or fail when there is nothing to
  // answer with or the same credentials were already refused.
  hal::Status answerChallenge(const MjpegResponseReader& reader) {
    const std::string where = "http://" + url_.display() + ": HTTP 401: ";
    if (auto st = auth_.onChallenge(reader.wwwAuthenticate()); !st)
      return {st.code(), where + st.error().message};
    retryNow_ = true;
    return {Errc::PermissionDenied, where + "answering the challenge"};
  }

  void run() override {
    int authRetries = 0;
    while (!stopping_) {
      const auto started = Clock::now();
      auto st = request();
      if (stopping_) return;
      if (!st && retryNow_ && authRetries < 2) {  // answer the challenge at once
        retryNow_ = false;
        ++authRetries;
        continue;
      }
      if (st) authRetries = 0;
      if (!st) {
        frames_.fail(std::move(st).error());
        return;
      }
      // A snapshot URL: ask again at the frame rate.
      pollfd p{wake_, POLLIN, 0};
      const auto next = started + pollInterval_.load();
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()).count();
      if (wait > 0) (void)::poll(&p, 1, static_cast<int>(wait));
    }
  }

  const HttpUrl url_;
  const MjpegPullOptions options_;
  std::atomic<std::chrono::milliseconds> pollInterval_{std::chrono::milliseconds(1000)};
  ClientAuth auth_;  // I/O thread only
  bool retryNow_ = false;
};

}  // namespace

hal::Result<std::unique_ptr<hal::Capture>> createMjpegPullCapture(const std::string& url,
                                                                  MjpegPullOptions options) {
  auto parsed = parseHttpUrl(url);
  if (!parsed) return parsed.error();
  auto capture = std::make_unique<MjpegPullCapture>(std::move(*parsed), std::move(options));
  if (auto st = capture->open(); !st) return st.error();
  return std::unique_ptr<hal::Capture>(std::move(capture));
}

uint64_t droppedFrames(const hal::Capture& capture) {
  const auto* pull = dynamic_cast<const NetworkCapture*>(&capture);
  return pull == nullptr ? 0 : pull->dropped();
}

}  // namespace printcast::transport
