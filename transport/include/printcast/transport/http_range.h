// SPDX-License-Identifier: MIT
// HTTP Range requests on byte ranges (RFC 9110 section 14): the Range header's parser and the
// Content-Range value of a 206 or 416 response.
//
// Grammar (RFC 9110 14.1.1, 14.2, list syntax 5.6.1):
//   Range = ranges-specifier = range-unit "=" range-set
//   range-unit = "bytes" (case-insensitive; any other unit is ignored)
//   range-set  = 1#range-spec   (commas with optional whitespace; empty elements are skipped)
//   range-spec = first-pos "-" [ last-pos ]   (int-range)  /  "-" suffix-length   (suffix-range)
//
// What the caller does with each answer:
//   Full:          the header is absent, malformed (including last-pos < first-pos), or for
//                  another unit: ignore it and send 200 with the whole representation (RFC 9110
//                  14.2: a server ignores a Range it cannot parse). Also for an empty (0-byte)
//                  representation asked for with a non-zero suffix-range, the one satisfiable
//                  form there (14.1.1), whose 0 bytes are the whole representation.
//   Partial:       send 206 with `first`/`length` and Content-Range: bytes first-last/size.
//   Unsatisfiable: send 416 with Content-Range: bytes */size (RFC 9110 15.5.17).
// Several ranges: printcast never sends multipart/byteranges; it serves the FIRST satisfiable
// range of the set alone as a single-part 206 (its Content-Range tells the client which), and
// answers 416 only when no range of the set is satisfiable (RFC 9110 14.1.1). Browsers and
// players only ever ask for one range.
// Numbers too large for 64 bits saturate (a last-pos past the end means "to the end", a
// first-pos past the end is unsatisfiable), so no input overflows.
//
// Threading: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace printcast::transport {

struct ByteRangeAnswer {
  enum class Kind { Full, Partial, Unsatisfiable };
  Kind kind = Kind::Full;
  uint64_t first = 0;   // Partial: offset of the first byte sent
  uint64_t length = 0;  // Partial: bytes sent (>= 1; first + length <= size)
};

// Decide what to send for a `Range` header value (the header's text, "" when absent) on a
// representation of `size` bytes. Never fails: see the kinds above.
ByteRangeAnswer parseByteRange(std::string_view header, uint64_t size);

// "bytes 0-499/1234" for a Partial answer, "bytes */1234" for Unsatisfiable, "" for Full.
std::string contentRangeValue(const ByteRangeAnswer& answer, uint64_t size);

// The validators of a file (RFC 9110 8.8): a strong entity tag from its size and modification
// time ("\"5f3a-18c9e2b4d1a3f000\"", as nginx makes them) and its Last-Modified HTTP-date
// ("Sun, 06 Dec 2026 03:46:21 GMT", IMF-fixdate, section 5.6.7).
std::string fileEtag(uint64_t size, int64_t modifiedUnix, int64_t modifiedNs);
std::string httpDate(int64_t unixSeconds);

// Whether a Range may be honoured under an If-Range header value (RFC 9110 13.1.5): absent
// (""), or equal to the current strong `etag` (an entity tag, starting with '"') or to the
// current `lastModified` date (exact match). Otherwise the representation changed (or the
// validator is weak, "W/..."): send the whole file with 200.
bool ifRangeAllows(std::string_view ifRange, std::string_view etag, std::string_view lastModified);

}  // namespace printcast::transport
