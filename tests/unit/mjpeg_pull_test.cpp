// SPDX-License-Identifier: MIT
// HTTP MJPEG pull: URL parsing and the response reader against what real servers send.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "printcast/transport/mjpeg_pull.h"

namespace printcast::transport {
namespace {

// A tiny stand-in "JPEG": SOI, APP0-ish bytes, EOI (the reader frames parts; it never decodes).
std::string fakeJpeg(char tag) {
  std::string j("\xFF\xD8\xFF\xE0", 4);
  j.append(40, tag);
  j.append("\xFF\xD9", 2);
  return j;
}

std::vector<std::string> readAll(MjpegResponseReader& reader, const std::string& wire, size_t step) {
  for (size_t i = 0; i < wire.size(); i += step) {
    const std::string piece = wire.substr(i, step);
    auto st = reader.feed({reinterpret_cast<const uint8_t*>(piece.data()), piece.size()});
    EXPECT_TRUE(st) << st.error().describe();
    if (!st) break;
  }
  std::vector<std::string> out;
  while (reader.pendingJpegs() > 0) {
    auto j = reader.popJpeg();
    out.emplace_back(j.begin(), j.end());
  }
  return out;
}

std::string chunk(const std::string& data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::string out(size);
  out.append(data);
  out.append("\r\n");
  return out;
}

TEST(HttpUrl, ParsesHostPortPathAndCredentials) {
  auto u = parseHttpUrl("http://admin:p%40ss@192.168.1.20:81/stream?x=1");
  ASSERT_TRUE(u) << u.error().describe();
  EXPECT_EQ(u->host, "192.168.1.20");
  EXPECT_EQ(u->port, 81);
  EXPECT_EQ(u->target, "/stream?x=1");
  EXPECT_EQ(u->user, "admin");
  EXPECT_EQ(u->password, "p@ss");
  EXPECT_EQ(u->display(), "192.168.1.20:81/stream?x=1");  // never the credentials

  auto v6 = parseHttpUrl("http://[::1]:8080");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 8080);
  EXPECT_EQ(v6->target, "/");

  auto plain = parseHttpUrl("HTTP://cam.local/snapshot.jpg");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->port, 80);
  EXPECT_EQ(plain->target, "/snapshot.jpg");
}

TEST(HttpUrl, RefusesWhatItCannotUseWithAReason) {
  EXPECT_EQ(parseHttpUrl("https://cam/stream").code(), hal::Errc::Unsupported);
  EXPECT_EQ(parseHttpUrl("cam:81/stream").code(), hal::Errc::InvalidArgument);
  EXPECT_EQ(parseHttpUrl("http://:81/stream").code(), hal::Errc::InvalidArgument);
  EXPECT_EQ(parseHttpUrl("http://cam:0/").code(), hal::Errc::InvalidArgument);
  EXPECT_EQ(parseHttpUrl("http://cam:99999/").code(), hal::Errc::InvalidArgument);
  EXPECT_EQ(parseHttpUrl("http://cam/a b").code(), hal::Errc::InvalidArgument);
  EXPECT_EQ(parseHttpUrl("http://u:%zz@cam/").code(), hal::Errc::InvalidArgument);
  auto bad = parseHttpUrl("http://cam:port/");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("port"), std::string::npos);
}

TEST(FindJpeg, CutsFromTheFirstSoiToTheLastEoi) {
  auto span = [](const std::string& s) {
    return std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  const std::string j = fakeJpeg('z');
  const std::string withId = "CAM2" + j + "\r\n";
  const auto found = findJpeg(span(withId));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(found.data()), found.size()), j);
  EXPECT_TRUE(findJpeg(span(j.substr(0, 20))).empty());                     // no EOI
  EXPECT_TRUE(findJpeg(span(std::string("\xFF\xD8\xFF\xD9", 4))).empty());  // SOI and EOI overlap
  EXPECT_TRUE(findJpeg(span("hello")).empty());
}

// ustreamer / printcast: unquoted boundary, Content-Length in every part.
TEST(MjpegResponseReader, ReadsPartsWithContentLengthAtAnySplit) {
  std::string wire = "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=frame\r\n\r\n";
  for (char t : {'a', 'b', 'c'}) {
    const std::string j = fakeJpeg(t);
    wire += "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " + std::to_string(j.size()) +
            "\r\nX-Timestamp: 1.0\r\n\r\n" + j + "\r\n";
  }
  for (size_t step : {size_t{1}, size_t{7}, size_t{4096}}) {
    MjpegResponseReader reader;
    const auto jpegs = readAll(reader, wire, step);
    ASSERT_EQ(jpegs.size(), 3u) << "step " << step;
    EXPECT_EQ(jpegs[0], fakeJpeg('a'));
    EXPECT_EQ(jpegs[2], fakeJpeg('c'));
    EXPECT_TRUE(reader.multipart());
    EXPECT_EQ(reader.droppedParts(), 0u);
  }
}

// mjpg-streamer style without Content-Length; a quoted boundary that already begins with "--"
// (some IP cameras) and parts with extra headers.
TEST(MjpegResponseReader, FindsPartsByTheirDelimiterWithoutContentLength) {
  std::string wire =
      "HTTP/1.0 200 OK\r\nServer: cam\r\ncontent-type: multipart/x-mixed-replace; "
      "boundary=\"--myboundary\"\r\n\r\n"
      "preamble to skip\r\n";
  for (char t : {'x', 'y'}) {
    wire += "--myboundary\r\nContent-Type: image/jpeg\r\nX-Frame: 1\r\n\r\n" + fakeJpeg(t) + "\r\n";
  }
  wire += "--myboundary\r\n";  // the third part has begun: the second is complete
  MjpegResponseReader reader;
  const auto jpegs = readAll(reader, wire, 3);
  ASSERT_EQ(jpegs.size(), 2u);
  EXPECT_EQ(jpegs[0], fakeJpeg('x'));
  EXPECT_EQ(jpegs[1], fakeJpeg('y'));
}

// Some servers declare boundary=--frame and then send "----frame" lines (RFC 2046's "--" + boundary).
TEST(MjpegResponseReader, AcceptsDelimiterWithExtraDashesAndCloseDelimiter) {
  const std::string j = fakeJpeg('q');
  std::string wire = "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=--frame\r\n\r\n";
  wire += "----frame\r\nContent-Length: " + std::to_string(j.size()) + "\r\n\r\n" + j + "\r\n----frame--\r\n";
  MjpegResponseReader reader;
  const auto jpegs = readAll(reader, wire, 5);
  ASSERT_EQ(jpegs.size(), 1u);
  EXPECT_TRUE(reader.complete());
}

TEST(MjpegResponseReader, DecodesChunkedTransferAndTakesTheBoundaryFromTheBodyWhenMissing) {
  std::string body;
  for (char t : {'1', '2'}) body += "--abc\r\nContent-Type: image/jpeg\r\n\r\n" + fakeJpeg(t) + "\r\n";
  body += "--abc--\r\n";
  std::string wire =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: multipart/x-mixed-replace\r\n\r\n";
  // Odd chunk boundaries, an extension, and the last chunk with a trailer.
  wire += chunk(body.substr(0, 10));
  wire += "1f;ext=1\r\n" + body.substr(10, 31) + "\r\n";
  wire += chunk(body.substr(41));
  wire += "0\r\nX-Trailer: 1\r\n\r\n";
  MjpegResponseReader reader;
  const auto jpegs = readAll(reader, wire, 2);
  ASSERT_EQ(jpegs.size(), 2u);
  EXPECT_EQ(jpegs[1], fakeJpeg('2'));
  EXPECT_TRUE(reader.complete());
}

// ESP32 pushers prefix an id; partial images happen; garbage parts happen: dropped and counted.
TEST(MjpegResponseReader, CutsTheJpegFromJunkAndCountsPartsWithoutOne) {
  const std::string truncated = fakeJpeg('t').substr(0, 20);
  std::string wire = "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=b\r\n\r\n";
  wire += "--b\r\n\r\nCAM2" + fakeJpeg('i') + "\r\n";
  wire += "--b\r\n\r\n" + truncated + "\r\n";
  wire += "--b\r\n\r\nnot a picture at all\r\n";
  wire += "--b\r\n";
  MjpegResponseReader reader;
  const auto jpegs = readAll(reader, wire, 11);
  ASSERT_EQ(jpegs.size(), 1u);
  EXPECT_EQ(jpegs[0], fakeJpeg('i'));
  EXPECT_EQ(reader.droppedParts(), 2u);
}

TEST(MjpegResponseReader, ReadsASnapshotByLengthOrByTheEndOfTheConnection) {
  const std::string j = fakeJpeg('s');
  {
    MjpegResponseReader reader;
    const auto jpegs =
        readAll(reader,
                "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: " + std::to_string(j.size()) +
                    "\r\n\r\n" + j,
                9);
    ASSERT_EQ(jpegs.size(), 1u);
    EXPECT_TRUE(reader.complete());
    EXPECT_FALSE(reader.multipart());
  }
  {
    MjpegResponseReader reader;
    auto jpegs = readAll(reader, "HTTP/1.0 200 OK\nContent-Type: image/jpeg\n\n" + j, 9);
    EXPECT_TRUE(jpegs.empty());
    EXPECT_FALSE(reader.complete());
    ASSERT_TRUE(reader.finish());
    EXPECT_TRUE(reader.complete());
    EXPECT_EQ(reader.pendingJpegs(), 1u);
  }
}

TEST(MjpegResponseReader, RefusesWhatIsNotAnMjpegAnswerWithTheReason) {
  auto feed = [](const std::string& wire, MjpegResponseReader::Limits limits = {}) {
    MjpegResponseReader reader(limits);
    return reader.feed({reinterpret_cast<const uint8_t*>(wire.data()), wire.size()});
  };
  EXPECT_EQ(feed("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\n\r\n").code(),
            hal::Errc::PermissionDenied);
  auto notFound = feed("HTTP/1.1 404 Not Found\r\n\r\n");
  EXPECT_EQ(notFound.code(), hal::Errc::Unsupported);
  EXPECT_NE(notFound.error().message.find("404"), std::string::npos);
  auto html = feed("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>");
  EXPECT_EQ(html.code(), hal::Errc::Unsupported);
  EXPECT_NE(html.error().message.find("text/html"), std::string::npos);
  EXPECT_EQ(feed("SSH-2.0-OpenSSH\r\n\r\n").code(), hal::Errc::InvalidArgument);
  EXPECT_EQ(feed("HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 99999999999\r\n\r\n").code(),
            hal::Errc::InvalidArgument);
  EXPECT_EQ(
      feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: image/jpeg\r\n\r\nzz\r\n").code(),
      hal::Errc::InvalidArgument);
  MjpegResponseReader::Limits small;
  small.maxHeadBytes = 64;
  EXPECT_EQ(feed("HTTP/1.1 200 OK\r\nX-Long: " + std::string(100, 'a') + "\r\n", small).code(),
            hal::Errc::InvalidArgument);
}

// ffmpeg -f mpjpeg -listen 1 answers "application/octet-stream", chunked: the body decides.
TEST(MjpegResponseReader, SniffsAnOctetStreamBody) {
  const std::string j = fakeJpeg('f');
  const std::string body =
      "--ffmpeg\r\nContent-type: image/jpeg\r\nContent-length: " + std::to_string(j.size()) + "\r\n\r\n" + j +
      "\r\n";
  MjpegResponseReader reader;
  const auto jpegs =
      readAll(reader,
              "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: "
              "chunked\r\n\r\n" +
                  chunk(body) + chunk(body),
              1);
  ASSERT_EQ(jpegs.size(), 2u);
  EXPECT_TRUE(reader.multipart());

  MjpegResponseReader single;
  ASSERT_EQ(readAll(single, "HTTP/1.0 200 OK\r\n\r\n" + j, 4).size(), 0u);
  ASSERT_TRUE(single.finish());
  EXPECT_EQ(single.pendingJpegs(), 1u);

  MjpegResponseReader html;
  const std::string page = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n<html>";
  EXPECT_EQ(html.feed({reinterpret_cast<const uint8_t*>(page.data()), page.size()}).code(),
            hal::Errc::Unsupported);
}

// A stream that never sends a delimiter again (or one part that is too big) cannot grow memory.
TEST(MjpegResponseReader, BoundsAPartWithoutAnEnd) {
  MjpegResponseReader::Limits limits;
  limits.maxPartBytes = 4096;
  MjpegResponseReader reader(limits);
  std::string wire =
      "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=b\r\n\r\n--b\r\n\r\n";
  wire += std::string("\xFF\xD8\xFF", 3);
  ASSERT_TRUE(reader.feed({reinterpret_cast<const uint8_t*>(wire.data()), wire.size()}));
  const std::string filler(1000, 'z');
  hal::Status st;
  for (int i = 0; i < 10 && st; ++i)
    st = reader.feed({reinterpret_cast<const uint8_t*>(filler.data()), filler.size()});
  EXPECT_EQ(st.code(), hal::Errc::InvalidArgument);
  // The reader stays failed.
  EXPECT_FALSE(reader.feed({reinterpret_cast<const uint8_t*>(filler.data()), 1}));
}

}  // namespace
}  // namespace printcast::transport
