// SPDX-License-Identifier: MIT
// MJPEG multipart: exact bytes of the builders, the strict Parser at any chunking, framing errors.
#include "printcast/transport/mjpeg.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace mjpeg = printcast::transport::mjpeg;
using printcast::hal::Timestamp;
using Bytes = std::vector<uint8_t>;
using namespace std::chrono_literals;

namespace {

void append(Bytes& out, std::string_view text) { out.insert(out.end(), text.begin(), text.end()); }
void append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

// Fake JPEGs: SOI, some bytes that look like framing on purpose, EOI.
std::vector<Bytes> testJpegs() {
  Bytes a{0xFF, 0xD8, 0x01, 0x02, 0x03, 0xFF, 0xD9};
  Bytes b{0xFF, 0xD8};
  append(b, std::string_view("\r\n--printcastboundary\r\n\r\n"));  // a boundary inside the body
  b.push_back(0x00);
  b.push_back(0xFF);
  b.push_back(0xD9);
  Bytes c{0xFF, 0xD8};
  for (int i = 0; i < 5000; ++i) c.push_back(static_cast<uint8_t>(i * 31));
  c.push_back(0xFF);
  c.push_back(0xD9);
  return {a, b, c};
}

Bytes buildStream(const std::vector<Bytes>& jpegs, std::string_view boundary = mjpeg::kBoundary) {
  Bytes out;
  append(out, mjpeg::preamble(boundary));
  Timestamp t{};
  for (const Bytes& jpeg : jpegs) {
    t += 200ms;
    append(out, mjpeg::partHeader(jpeg.size(), t));
    append(out, jpeg);
    append(out, mjpeg::partTrailer(boundary));
  }
  return out;
}

struct FeedResult {
  bool ok = true;
  std::string error;
  std::vector<Bytes> parts;
};

FeedResult feedInChunks(const Bytes& stream, size_t chunk,
                        std::string boundary = std::string(mjpeg::kBoundary)) {
  mjpeg::Parser parser(std::move(boundary));
  FeedResult result;
  for (size_t pos = 0; pos < stream.size(); pos += chunk) {
    const size_t n = std::min(chunk, stream.size() - pos);
    result.ok = parser.feed(std::span<const uint8_t>(stream.data() + pos, n)) && result.ok;
    for (Bytes& part : parser.takeParts()) result.parts.push_back(std::move(part));
  }
  result.error = parser.error();
  return result;
}

}  // namespace

TEST(Mjpeg, ContentTypeIsUnquotedWithoutSpaces) {
  const std::string type = mjpeg::contentType();
  EXPECT_EQ(type, "multipart/x-mixed-replace;boundary=printcastboundary");
  EXPECT_EQ(type.find('"'), std::string::npos);
  EXPECT_EQ(type.find(' '), std::string::npos);
  EXPECT_EQ(mjpeg::contentType("abc"), "multipart/x-mixed-replace;boundary=abc");
}

TEST(Mjpeg, PreambleHeaderAndTrailerBytes) {
  EXPECT_EQ(mjpeg::preamble(), "--printcastboundary\r\n");
  EXPECT_EQ(mjpeg::preamble("xyz"), "--xyz\r\n");
  EXPECT_EQ(mjpeg::partTrailer(), "\r\n--printcastboundary\r\n");
  EXPECT_EQ(mjpeg::partTrailer("xyz"), "\r\n--xyz\r\n");
  EXPECT_EQ(mjpeg::partHeader(12345, Timestamp{12345678901us}),
            "Content-Type: image/jpeg\r\nContent-Length: 12345\r\nX-Timestamp: 12345.678901\r\n\r\n");
}

TEST(Mjpeg, TimestampIsSecondsWithSixDecimalsFloored) {
  auto stamp = [](Timestamp t) {
    const std::string header = mjpeg::partHeader(0, t);
    const size_t at = header.find("X-Timestamp: ");
    return header.substr(at + 13, header.find('\r', at) - at - 13);
  };
  EXPECT_EQ(stamp(Timestamp{}), "0.000000");
  EXPECT_EQ(stamp(Timestamp{5ms}), "0.005000");
  EXPECT_EQ(stamp(Timestamp{1234567890ns}), "1.234567");  // nanoseconds are floored
  EXPECT_EQ(stamp(Timestamp{86400s + 1us}), "86400.000001");
  EXPECT_EQ(stamp(Timestamp{-5s}), "0.000000");
}

TEST(Mjpeg, ParserReturnsThePartsAtAnyChunkSize) {
  const std::vector<Bytes> jpegs = testJpegs();
  const Bytes stream = buildStream(jpegs);
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{4096}, stream.size()}) {
    const FeedResult result = feedInChunks(stream, chunk);
    EXPECT_TRUE(result.ok) << "chunk " << chunk << ": " << result.error;
    EXPECT_EQ(result.error, "") << "chunk " << chunk;
    EXPECT_EQ(result.parts, jpegs) << "chunk " << chunk;
  }
}

TEST(Mjpeg, ParserReadsPartsWhoseHeadersWereSentAhead) {
  // Framing::AdvanceHeaders: no Content-Length, so a body ends at the first trailer (the test JPEG
  // that holds a boundary on purpose cannot be sent this way).
  std::vector<Bytes> jpegs = testJpegs();
  jpegs.erase(jpegs.begin() + 1);
  Bytes stream;
  append(stream, mjpeg::preamble());
  append(stream, mjpeg::advancePartHeader());
  for (const Bytes& jpeg : jpegs) {
    append(stream, jpeg);
    append(stream, mjpeg::partTrailer());
    append(stream, mjpeg::advancePartHeader());
  }
  EXPECT_EQ(mjpeg::advancePartHeader(), "Content-Type: image/jpeg\r\n\r\n");
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{4096}, stream.size()}) {
    const FeedResult result = feedInChunks(stream, chunk);
    EXPECT_TRUE(result.ok) << "chunk " << chunk << ": " << result.error;
    EXPECT_EQ(result.parts, jpegs) << "chunk " << chunk;
  }
}

TEST(Mjpeg, ParserWithAnotherBoundary) {
  const std::vector<Bytes> jpegs = testJpegs();
  const FeedResult result = feedInChunks(buildStream(jpegs, "frame"), 3, "frame");
  EXPECT_TRUE(result.ok) << result.error;
  EXPECT_EQ(result.parts, jpegs);
}

TEST(Mjpeg, ParserHoldsBackAPartUntilItsTrailerArrives) {
  const Bytes jpeg{0xFF, 0xD8, 0xFF, 0xD9};
  Bytes stream;
  append(stream, mjpeg::preamble());
  append(stream, mjpeg::partHeader(jpeg.size(), Timestamp{}));
  append(stream, jpeg);
  const std::string trailer = mjpeg::partTrailer();
  mjpeg::Parser parser;
  ASSERT_TRUE(parser.feed(stream));
  EXPECT_TRUE(parser.takeParts().empty());
  ASSERT_TRUE(parser.feed(std::span(reinterpret_cast<const uint8_t*>(trailer.data()), trailer.size() - 1)));
  EXPECT_TRUE(parser.takeParts().empty());
  ASSERT_TRUE(
      parser.feed(std::span(reinterpret_cast<const uint8_t*>(trailer.data()) + trailer.size() - 1, 1)));
  EXPECT_EQ(parser.takeParts(), std::vector<Bytes>{jpeg});
  EXPECT_TRUE(parser.takeParts().empty());  // moved out
}

TEST(Mjpeg, ParserHeaderNamesAreCaseInsensitive) {
  const Bytes jpeg{0xFF, 0xD8, 0xFF, 0xD9};
  Bytes stream;
  append(stream, mjpeg::preamble());
  append(stream, std::string_view("content-type:image/JPEG\r\nCONTENT-LENGTH:   4 \r\nX-Other: x\r\n\r\n"));
  append(stream, jpeg);
  append(stream, mjpeg::partTrailer());
  const FeedResult result = feedInChunks(stream, 1);
  EXPECT_TRUE(result.ok) << result.error;
  EXPECT_EQ(result.parts, std::vector<Bytes>{jpeg});
}

TEST(Mjpeg, ParserKeepsPartHeadersOnlyWhenAsked) {
  const std::vector<Bytes> jpegs = testJpegs();
  const Bytes stream = buildStream(jpegs);
  mjpeg::Parser plain;
  ASSERT_TRUE(plain.feed(stream));
  EXPECT_EQ(plain.takeParts().size(), jpegs.size());
  EXPECT_TRUE(plain.takePartHeaders().empty());

  for (size_t chunk : {size_t{1}, size_t{5}, stream.size()}) {
    mjpeg::Parser parser;
    parser.keepHeaders(true);
    std::vector<mjpeg::Parser::Headers> headers;
    size_t parts = 0;
    for (size_t pos = 0; pos < stream.size(); pos += chunk) {
      ASSERT_TRUE(parser.feed(std::span(stream.data() + pos, std::min(chunk, stream.size() - pos))));
      parts += parser.takeParts().size();
      for (auto& h : parser.takePartHeaders()) headers.push_back(std::move(h));
      EXPECT_EQ(parts, headers.size()) << "chunk " << chunk;
    }
    ASSERT_EQ(headers.size(), jpegs.size()) << "chunk " << chunk;
    const mjpeg::Parser::Headers second{{"Content-Type", "image/jpeg"},
                                        {"Content-Length", std::to_string(jpegs[1].size())},
                                        {"X-Timestamp", "0.400000"}};
    EXPECT_EQ(headers[1], second) << "chunk " << chunk;
    EXPECT_TRUE(parser.takePartHeaders().empty());  // moved out
  }
}

TEST(Mjpeg, ParserReportsFramingErrors) {
  const Bytes jpeg{0xFF, 0xD8, 0x11, 0x22, 0xFF, 0xD9};
  auto streamWithHeaders = [&](std::string_view headers, std::string_view boundary = mjpeg::kBoundary) {
    Bytes stream;
    append(stream, mjpeg::preamble());
    append(stream, headers);
    append(stream, jpeg);
    append(stream, mjpeg::partTrailer(boundary));
    return stream;
  };
  struct Case {
    const char* name;
    Bytes stream;
    std::string_view errorContains;
  };
  const std::vector<Case> cases = {
      {"length one short", streamWithHeaders("Content-Type: image/jpeg\r\nContent-Length: 5\r\n\r\n"),
       "5-byte part body not followed by"},
      {"length one long", streamWithHeaders("Content-Type: image/jpeg\r\nContent-Length: 7\r\n\r\n"),
       "7-byte part body not followed by"},
      {"wrong trailer boundary",
       streamWithHeaders("Content-Type: image/jpeg\r\nContent-Length: 6\r\n\r\n", "otherboundary"),
       "not followed by \"\\r\\n--printcastboundary\\r\\n\""},
      {"wrong opening boundary", buildStream({jpeg}, "otherboundary"), "does not start with the boundary"},
      {"junk before the boundary",
       [&] {
         Bytes s{'\r', '\n'};
         append(s, buildStream({jpeg}));
         return s;
       }(),
       "does not start with the boundary"},
      {"non-numeric length", streamWithHeaders("Content-Length: 6x\r\n\r\n"), "invalid Content-Length"},
      {"negative length", streamWithHeaders("Content-Length: -6\r\n\r\n"), "invalid Content-Length"},
      {"conflicting lengths", streamWithHeaders("Content-Length: 6\r\nContent-Length: 7\r\n\r\n"),
       "conflicting Content-Length"},
      {"not a JPEG part", streamWithHeaders("Content-Type: text/plain\r\nContent-Length: 6\r\n\r\n"),
       "not image/jpeg"},
      {"line without colon", streamWithHeaders("Content-Length 6\r\n\r\n"), "malformed part header"},
      {"bare LF", streamWithHeaders("Content-Length: 6\nX: y\r\n\r\n"), "control character"},
      {"endless headers", streamWithHeaders(std::string(5000, 'a')), "part headers longer than"},
  };
  for (const Case& c : cases) {
    std::string firstError;
    for (size_t chunk : {size_t{1}, size_t{7}, size_t{4096}}) {
      const FeedResult result = feedInChunks(c.stream, chunk);
      EXPECT_FALSE(result.ok) << c.name << ", chunk " << chunk;
      EXPECT_NE(result.error.find(c.errorContains), std::string::npos)
          << c.name << ", chunk " << chunk << ": \"" << result.error << "\"";
      EXPECT_TRUE(result.parts.empty()) << c.name;
      // The same bytes give the same error whatever the chunking.
      if (firstError.empty()) firstError = result.error;
      EXPECT_EQ(result.error, firstError) << c.name << ", chunk " << chunk;
    }
  }
}

TEST(Mjpeg, ParserKeepsEarlierPartsAndStaysFailed) {
  const std::vector<Bytes> jpegs = testJpegs();
  Bytes stream = buildStream(jpegs);
  append(stream, std::string_view("Content-Type: text/plain\r\n\r\n"));  // fourth part, not a JPEG
  mjpeg::Parser parser;
  EXPECT_FALSE(parser.feed(stream));
  const std::string error = "part Content-Type is \"text/plain\", not image/jpeg";
  EXPECT_EQ(parser.error(), error);
  EXPECT_EQ(parser.takeParts(), jpegs);
  // A failed parser ignores further bytes, even a valid stream.
  EXPECT_FALSE(parser.feed(buildStream(jpegs)));
  EXPECT_TRUE(parser.takeParts().empty());
  EXPECT_EQ(parser.error(), error);
}

TEST(Mjpeg, ParserSurvivesRandomBytesAndTruncations) {
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<int> byte(0, 255);
  // Never returns more payload bytes than it was given, whatever the input.
  auto check = [&](const Bytes& input) {
    mjpeg::Parser parser;
    size_t fed = 0;
    size_t out = 0;
    std::uniform_int_distribution<size_t> chunkSize(1, 64);
    bool ok = true;
    for (size_t pos = 0; pos < input.size();) {
      const size_t n = std::min(chunkSize(rng), input.size() - pos);
      const bool fedOk = parser.feed(std::span<const uint8_t>(input.data() + pos, n));
      // Once failed, it stays failed and says why.
      if (!ok) {
        ASSERT_FALSE(fedOk);
      }
      ok = fedOk;
      ASSERT_EQ(ok, parser.error().empty());
      pos += n;
      fed += n;
      for (const Bytes& part : parser.takeParts()) out += part.size();
      ASSERT_LE(out, fed);
    }
  };

  std::uniform_int_distribution<size_t> length(0, 512);
  const std::string opening = mjpeg::preamble();
  for (int i = 0; i < 2000; ++i) {
    Bytes input(length(rng));
    for (uint8_t& b : input) b = static_cast<uint8_t>(byte(rng));
    // Half start with a valid boundary so random header lines are exercised too.
    if (i % 2 == 0 && input.size() >= opening.size())
      std::copy(opening.begin(), opening.end(), input.begin());
    check(input);
  }

  const Bytes valid = buildStream(testJpegs());
  std::uniform_int_distribution<size_t> cut(0, valid.size());
  for (int i = 0; i < 2000; ++i) {
    Bytes input(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(cut(rng)));
    if (i % 3 == 0 && !input.empty()) {
      input[std::uniform_int_distribution<size_t>(0, input.size() - 1)(rng)] =
          static_cast<uint8_t>(byte(rng));
    }
    check(input);
  }
}
