// SPDX-License-Identifier: MIT
// HTTP MJPEG pull (see mjpeg_pull.h): URL parsing, the response reader, and the pull capture.
#include "printcast/transport/mjpeg_pull.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "http_pull.h"
#include "text.h"

namespace printcast::transport {

namespace {

using text::forEachField;
using text::iequals;
using text::lower;
using text::parseLength;
using text::trim;

using hal::Errc;
using Clock = std::chrono::steady_clock;

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

MjpegResponseReader::MjpegResponseReader(Limits limits)
    : HttpResponseReader(limits.maxHeadBytes, limits.maxPartBytes), limits_(limits) {}

hal::Status MjpegResponseReader::onHead() {
  const std::string type = lower(contentType().substr(0, contentType().find(';')));
  if (type.rfind("multipart/", 0) == 0) {
    multipart_ = true;
    boundary_ = boundaryOf(contentType());
  } else if (trim(type).empty() || trim(type) == "application/octet-stream") {
    sniff_ = true;  // ffmpeg's -listen server says octet-stream: the body's first bytes decide
  } else if (trim(type) != "image/jpeg" && trim(type) != "image/jpg") {
    return fail(Errc::Unsupported,
                fmt::format("Content-Type '{}' is neither a multipart MJPEG stream nor image/jpeg",
                            contentType().substr(0, 80)));
  }
  if (!multipart_ && contentLength() > static_cast<long long>(limits_.maxPartBytes)) {
    return fail(Errc::InvalidArgument, fmt::format("a JPEG of {} bytes is above the {} byte limit",
                                                   contentLength(), limits_.maxPartBytes));
  }
  if (!multipart_ && contentLength() == 0) {
    setComplete();
    ++droppedParts_;
  }
  return {};
}

hal::Status MjpegResponseReader::onLastChunk() {
  if (!multipart_ && !sniff_) return onBody(nullptr, 0);  // a chunked snapshot is complete
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
          fmt::format("Content-Type '{}' with a body that is neither multipart nor a JPEG", contentType()));
    }
    sniff_ = false;
  }
  if (multipart_) return scanParts();
  if (body_.size() > limits_.maxPartBytes) {
    return fail(Errc::InvalidArgument, fmt::format("a JPEG above the {} byte limit", limits_.maxPartBytes));
  }
  const bool lengthDone = contentLength() >= 0 && body_.size() >= static_cast<size_t>(contentLength());
  const bool chunksDone = chunked() && lastChunkSeen();
  if (lengthDone || chunksDone) {
    if (lengthDone) body_.resize(static_cast<size_t>(contentLength()));
    emitPart(body_.data(), body_.size());
    body_.clear();
    setComplete();
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
          setComplete();
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

hal::Status MjpegResponseReader::onClose() {
  if (!multipart_ && !complete() && contentLength() < 0 && !chunked()) {
    sniff_ = false;
    emitPart(body_.data(), body_.size());
    body_.clear();
    setComplete();
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

class MjpegPullCapture final : public HttpPullCapture {
 public:
  MjpegPullCapture(HttpUrl url, MjpegPullOptions options)
      : HttpPullCapture(std::move(url), "http-mjpeg", hal::fourcc::kMJPEG,
                        {options.connectTimeout, options.noDataTimeout, options.userAgent,
                         "multipart/x-mixed-replace, image/jpeg"}),
        options_(std::move(options)) {}

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
  HttpResponseReader& newResponse() override {
    reader_ = std::make_unique<MjpegResponseReader>(options_.limits);
    droppedBefore_ = 0;
    return *reader_;
  }

  hal::Status deliver() override {
    frames_.countDropped(reader_->droppedParts() - droppedBefore_);
    droppedBefore_ = reader_->droppedParts();
    // Stamped on arrival: cameras send no capture times.
    while (reader_->pendingJpegs() > 0) {
      if (!frames_.deliverJpeg(reader_->popJpeg(), Clock::now())) return frames_.error();
    }
    return {};
  }

  bool answered() const override { return !reader_->multipart(); }

  const MjpegPullOptions options_;
  // I/O thread only
  std::unique_ptr<MjpegResponseReader> reader_;
  uint64_t droppedBefore_ = 0;
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
