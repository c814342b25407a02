// SPDX-License-Identifier: MIT
// The Range header (RFC 9110 section 14) on byte ranges: see http_range.h.
#include "printcast/transport/http_range.h"

#include <cstdio>
#include <ctime>

#include <algorithm>
#include <optional>

#include "text.h"

namespace printcast::transport {

namespace {

using text::iequals;

bool isOws(char c) { return c == ' ' || c == '\t'; }

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && isOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && isOws(s.back())) s.remove_suffix(1);
  return s;
}

// 1*DIGIT, saturating at UINT64_MAX; nullopt when empty or not all digits.
std::optional<uint64_t> parseDigits(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto d = static_cast<uint64_t>(c - '0');
    v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
  }
  return v;
}

struct Spec {
  bool suffix = false;
  uint64_t first = 0;          // int-range
  uint64_t last = UINT64_MAX;  // int-range; UINT64_MAX when open-ended
  uint64_t suffixLength = 0;   // suffix-range
};

std::optional<Spec> parseSpec(std::string_view s) {
  const size_t dash = s.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  Spec spec;
  if (dash == 0) {
    auto n = parseDigits(s.substr(1));
    if (!n) return std::nullopt;
    spec.suffix = true;
    spec.suffixLength = *n;
    return spec;
  }
  auto first = parseDigits(s.substr(0, dash));
  if (!first) return std::nullopt;
  spec.first = *first;
  const std::string_view rest = s.substr(dash + 1);
  if (!rest.empty()) {
    auto last = parseDigits(rest);
    if (!last || *last < *first) return std::nullopt;  // invalid range-spec (14.1.1)
    spec.last = *last;
  }
  return spec;
}

}  // namespace

ByteRangeAnswer parseByteRange(std::string_view header, uint64_t size) {
  using Kind = ByteRangeAnswer::Kind;
  const ByteRangeAnswer full{};
  header = trimOws(header);
  const size_t eq = header.find('=');
  if (eq == std::string_view::npos || !iequals(header.substr(0, eq), "bytes")) return full;
  std::string_view set = header.substr(eq + 1);

  std::optional<ByteRangeAnswer> chosen;
  bool any = false;
  bool emptySuffix = false;  // a non-zero suffix-range on a 0-byte representation
  while (true) {
    const size_t comma = set.find(',');
    const std::string_view element = trimOws(set.substr(0, comma));
    if (!element.empty()) {
      auto spec = parseSpec(element);
      if (!spec) return full;  // one invalid range-spec makes the whole header invalid
      any = true;
      if (!chosen) {
        if (spec->suffix) {
          if (spec->suffixLength > 0 && size == 0) emptySuffix = true;
          if (spec->suffixLength > 0 && size > 0) {
            const uint64_t length = std::min(spec->suffixLength, size);
            chosen = ByteRangeAnswer{Kind::Partial, size - length, length};
          }
        } else if (spec->first < size) {
          const uint64_t last = std::min(spec->last, size - 1);
          chosen = ByteRangeAnswer{Kind::Partial, spec->first, last - spec->first + 1};
        }
      }
    }
    if (comma == std::string_view::npos) break;
    set.remove_prefix(comma + 1);
  }
  if (!any) return full;  // "bytes=" or "bytes=,,": no range-spec at all
  if (chosen) return *chosen;
  if (emptySuffix) return full;
  return ByteRangeAnswer{Kind::Unsatisfiable, 0, 0};
}

std::string contentRangeValue(const ByteRangeAnswer& answer, uint64_t size) {
  switch (answer.kind) {
    case ByteRangeAnswer::Kind::Partial:
      return "bytes " + std::to_string(answer.first) + "-" +
             std::to_string(answer.first + answer.length - 1) + "/" + std::to_string(size);
    case ByteRangeAnswer::Kind::Unsatisfiable: return "bytes */" + std::to_string(size);
    case ByteRangeAnswer::Kind::Full: break;
  }
  return {};
}

std::string fileEtag(uint64_t size, int64_t modifiedUnix, int64_t modifiedNs) {
  const auto ns = static_cast<uint64_t>(modifiedUnix) * 1000000000ULL + static_cast<uint64_t>(modifiedNs);
  char out[48];
  std::snprintf(out, sizeof out, "\"%llx-%llx\"", static_cast<unsigned long long>(size),  // NOLINT
                static_cast<unsigned long long>(ns));
  return out;
}

std::string httpDate(int64_t unixSeconds) {
  const auto t = static_cast<time_t>(unixSeconds);
  tm utc{};
  if (gmtime_r(&t, &utc) == nullptr) return {};
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char out[40];
  std::snprintf(out, sizeof out, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[utc.tm_wday],
                utc.tm_mday,  // NOLINT
                kMonths[utc.tm_mon], utc.tm_year + 1900, utc.tm_hour, utc.tm_min, utc.tm_sec);
  return out;
}

bool ifRangeAllows(std::string_view ifRange, std::string_view etag, std::string_view lastModified) {
  while (!ifRange.empty() && (ifRange.front() == ' ' || ifRange.front() == '\t')) ifRange.remove_prefix(1);
  while (!ifRange.empty() && (ifRange.back() == ' ' || ifRange.back() == '\t')) ifRange.remove_suffix(1);
  if (ifRange.empty()) return true;
  if (ifRange.front() == '"') return !etag.empty() && ifRange == etag;
  if (ifRange.rfind("W/", 0) == 0) return false;  // a weak tag never matches here
  return !lastModified.empty() && ifRange == lastModified;
}

}  // namespace printcast::transport
