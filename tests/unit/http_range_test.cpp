// SPDX-License-Identifier: MIT
// The Range header parser (RFC 9110 section 14): first bytes, middle, suffix, open-ended,
// beyond the end, overflow, whitespace, several ranges, garbage.
#include "printcast/transport/http_range.h"

#include <gtest/gtest.h>

namespace {

using printcast::transport::ByteRangeAnswer;
using printcast::transport::contentRangeValue;
using printcast::transport::parseByteRange;
using Kind = ByteRangeAnswer::Kind;

constexpr uint64_t kSize = 10000;

void expectPartial(const char* header, uint64_t first, uint64_t length, uint64_t size = kSize) {
  const ByteRangeAnswer a = parseByteRange(header, size);
  EXPECT_EQ(a.kind, Kind::Partial) << header;
  EXPECT_EQ(a.first, first) << header;
  EXPECT_EQ(a.length, length) << header;
}

void expectKind(const char* header, Kind kind, uint64_t size = kSize) {
  EXPECT_EQ(parseByteRange(header, size).kind, kind) << "'" << header << "' on " << size << " bytes";
}

TEST(HttpRange, FirstBytes) {
  expectPartial("bytes=0-499", 0, 500);
  expectPartial("bytes=0-0", 0, 1);
  EXPECT_EQ(contentRangeValue(parseByteRange("bytes=0-499", kSize), kSize), "bytes 0-499/10000");
}

TEST(HttpRange, Middle) {
  expectPartial("bytes=500-999", 500, 500);
  EXPECT_EQ(contentRangeValue(parseByteRange("bytes=500-999", kSize), kSize), "bytes 500-999/10000");
}

TEST(HttpRange, Suffix) {
  expectPartial("bytes=-500", 9500, 500);
  expectPartial("bytes=-10000", 0, 10000);
  expectPartial("bytes=-20000", 0, 10000);  // longer than the file: all of it
  expectKind("bytes=-0", Kind::Unsatisfiable);
}

TEST(HttpRange, OpenEnded) {
  expectPartial("bytes=9500-", 9500, 500);
  expectPartial("bytes=0-", 0, 10000);  // what browsers send first
  expectPartial("bytes=9999-", 9999, 1);
}

TEST(HttpRange, BeyondTheEnd) {
  expectPartial("bytes=9000-20000", 9000, 1000);  // last-pos clamped to the end
  expectKind("bytes=10000-", Kind::Unsatisfiable);
  expectKind("bytes=10000-10005", Kind::Unsatisfiable);
  expectKind("bytes=20000-30000", Kind::Unsatisfiable);
  EXPECT_EQ(contentRangeValue(parseByteRange("bytes=10000-", kSize), kSize), "bytes */10000");
}

TEST(HttpRange, EmptyRepresentation) {
  expectKind("bytes=0-", Kind::Unsatisfiable, 0);
  expectKind("bytes=0-0", Kind::Unsatisfiable, 0);
  expectKind("bytes=-0", Kind::Unsatisfiable, 0);
  expectKind("bytes=-1", Kind::Full, 0);  // the one satisfiable form: all 0 bytes, as a 200
}

TEST(HttpRange, OverflowSaturates) {
  expectPartial("bytes=0-99999999999999999999999999", 0, kSize);
  expectPartial("bytes=-99999999999999999999999999", 0, kSize);
  expectKind("bytes=99999999999999999999999999-", Kind::Unsatisfiable);
  // A last-pos that saturates is still >= first-pos: valid, clamped.
  expectPartial("bytes=5-18446744073709551616", 5, kSize - 5);
  const uint64_t huge = UINT64_MAX;
  const ByteRangeAnswer a = parseByteRange("bytes=18446744073709551614-", huge);
  EXPECT_EQ(a.kind, Kind::Partial);
  EXPECT_EQ(a.first, huge - 1);
  EXPECT_EQ(a.length, 1u);
}

TEST(HttpRange, Whitespace) {
  expectPartial("  bytes=0-9  ", 0, 10);  // around the field value
  expectPartial("bytes= 0-9", 0, 10);     // around list elements (OWS)
  expectPartial("bytes=0-9 ,\t20-29", 0, 10);
  expectKind("bytes=0 -9", Kind::Full);  // not inside a range-spec
  expectKind("bytes=0- 9", Kind::Full);
  expectKind("bytes =0-9", Kind::Full);  // nor around "="
}

TEST(HttpRange, UnitIsCaseInsensitive) {
  expectPartial("Bytes=0-9", 0, 10);
  expectPartial("BYTES=0-9", 0, 10);
  expectKind("items=0-9", Kind::Full);
}

TEST(HttpRange, SeveralRangesServeTheFirstSatisfiable) {
  expectPartial("bytes=0-9,20-29", 0, 10);
  expectPartial("bytes=20000-30000, 100-199", 100, 100);
  expectPartial("bytes=,,0-9,,", 0, 10);  // empty list elements are skipped
  expectKind("bytes=20000-, 30000-", Kind::Unsatisfiable);
  expectKind("bytes=0-9,garbage", Kind::Full);  // one bad spec invalidates the header
}

TEST(HttpRange, GarbageIsIgnored) {
  for (const char* h : {"", "bytes", "bytes=", "bytes=,", "bytes=-", "bytes=a-b", "bytes=1-a", "bytes=--1",
                        "bytes=1--2", "bytes=9-5", "bytes=0x10-20", "bytes=+1-2", "bytes=1-2-3", "=0-1",
                        "bytes:0-1", "bytes=0-1;x", "\x01\xff"}) {
    expectKind(h, Kind::Full);
  }
  EXPECT_EQ(contentRangeValue(parseByteRange("bytes=a-b", kSize), kSize), "");
}

}  // namespace

namespace {

using printcast::transport::fileEtag;
using printcast::transport::httpDate;
using printcast::transport::ifRangeAllows;

TEST(HttpValidators, EtagAndDate) {
  EXPECT_EQ(fileEtag(0x5f3a, 1, 5), "\"5f3a-3b9aca05\"");
  EXPECT_EQ(httpDate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(httpDate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");  // RFC 9110 5.6.7's example
}

TEST(HttpValidators, IfRangeHonoursTheRangeOnlyForTheSameFile) {
  const std::string etag = "\"5f3a-3b9aca05\"";
  const std::string date = "Sun, 06 Nov 1994 08:49:37 GMT";
  EXPECT_TRUE(ifRangeAllows("", etag, date));
  EXPECT_TRUE(ifRangeAllows(etag, etag, date));
  EXPECT_TRUE(ifRangeAllows(" " + etag + " ", etag, date));
  EXPECT_TRUE(ifRangeAllows(date, etag, date));
  EXPECT_FALSE(ifRangeAllows("\"other\"", etag, date));
  EXPECT_FALSE(ifRangeAllows("W/" + etag, etag, date));  // weak tags never match (RFC 9110 13.1.5)
  EXPECT_FALSE(ifRangeAllows("Mon, 07 Nov 1994 08:49:37 GMT", etag, date));
  EXPECT_FALSE(ifRangeAllows("garbage", etag, date));
}

}  // namespace
