// SPDX-License-Identifier: MIT
// HLS segmenter and HlsOutput: segments cut at IDRs, the window and media sequence, parts and the
// preload hint, blocking playlist reload released by a new part, discontinuities on new
// parameter sets and after a reset, and the segments of both formats decoded by ffmpeg.
#include "printcast/transport/hls.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "hls_test_support.h"
#include "printcast/transport/hls_output.h"
#include "printcast/transport/mp4.h"
#include "printcast/transport/mpegts.h"

using namespace printcast;
namespace hls = transport::hls;
using transport::HlsOutput;
using transport::HttpRequest;
using transport::HttpResponse;

namespace {

hls::Config config(hls::Format format = hls::Format::Fmp4, int partMs = 200) {
  hls::Config c;
  c.format = format;
  c.segmentTarget = std::chrono::milliseconds(1000);
  c.partTarget = std::chrono::milliseconds(partMs);
  c.windowSegments = 4;
  c.streamToken = "tok";
  return c;
}

// Feed `frames` access units, asking the encoder for an IDR whenever the segmenter says one is
// due (as the streamer does).
void feed(hls::Segmenter& s, printcast::testing::H264Source& source, int frames) {
  for (int i = 0; i < frames; ++i) {
    if (s.keyframeDue()) source.requestKeyframe();
    s.push(source.next());
  }
}

std::vector<std::string> linesWith(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) out.push_back(line);
  return out;
}

std::string bytesOf(const hls::Resource& r) {
  std::string out;
  for (const auto& c : r.chunks) out.append(reinterpret_cast<const char*>(c.bytes.data()), c.bytes.size());
  return out;
}

std::string readAll(const std::shared_ptr<transport::ClientQueue>& q) {
  std::string out;
  std::vector<uint8_t> buf(64 * 1024);
  for (;;) {
    const size_t n = q->read(buf.data(), buf.size(), [] {});
    if (n == transport::ClientQueue::kEnd || n == 0) break;
    out.append(reinterpret_cast<const char*>(buf.data()), n);
  }
  return out;
}

HttpRequest get(const std::map<std::string, std::string>& query = {}) {
  HttpRequest r;
  r.method = "GET";
  r.path = "/hls/stream.m3u8";
  r.query = query;
  return r;
}

}  // namespace

TEST(HlsSegmenter, SegmentsStartAtAnIdrAndLastAboutTheTarget) {
  hls::Segmenter s(config(hls::Format::MpegTs));
  printcast::testing::H264Source source;
  EXPECT_TRUE(s.playlist().empty()) << "no playlist before the first complete segment";
  feed(s, source, 15 * 5 + 2);
  const auto st = s.stats();
  EXPECT_GE(st.segmentsProduced, 4u);
  const std::string playlist = s.playlist();
  EXPECT_EQ(linesWith(playlist, "#EXT-X-TARGETDURATION:"),
            std::vector<std::string>{"#EXT-X-TARGETDURATION:1"});
  for (const auto& line : linesWith(playlist, "#EXTINF:")) {
    const double d = std::stod(line.substr(8));
    EXPECT_NEAR(d, 1.0, 0.07) << line;
  }
  for (uint64_t msn = st.mediaSequence; msn < st.mediaSequence + st.segments; ++msn) {
    hls::Resource r;
    ASSERT_EQ(s.find("tok/seg-" + std::to_string(msn) + ".ts", r), hls::Lookup::Found) << msn;
    EXPECT_EQ(r.contentType, "video/mp2t");
    const std::string b = bytesOf(r);
    const auto parsed = transport::mpegts::parse({reinterpret_cast<const uint8_t*>(b.data()), b.size()});
    ASSERT_FALSE(parsed.pes.empty());
    EXPECT_TRUE(parsed.havePat && parsed.havePmt) << "PAT/PMT at the start of every segment";
    EXPECT_TRUE(parsed.pes[0].randomAccess) << "segment " << msn << " starts at an IDR";
    for (size_t i = 1; i < parsed.pes.size(); ++i) EXPECT_GT(parsed.pes[i].pts, parsed.pes[i - 1].pts);
  }
}

TEST(HlsSegmenter, WindowKeepsTheLastSegmentsAndMediaSequenceAdvances) {
  hls::Segmenter s(config());
  printcast::testing::H264Source source;
  feed(s, source, 15 * 9 + 2);
  const auto st = s.stats();
  EXPECT_EQ(st.segments, 4u);
  EXPECT_EQ(st.mediaSequence, st.segmentsProduced - 4);
  const std::string playlist = s.playlist();
  EXPECT_EQ(linesWith(playlist, "#EXTINF:").size(), 4u);
  EXPECT_EQ(linesWith(playlist, "#EXT-X-MEDIA-SEQUENCE:")[0],
            "#EXT-X-MEDIA-SEQUENCE:" + std::to_string(st.mediaSequence));
  EXPECT_NE(playlist.find("tok/seg-" + std::to_string(st.mediaSequence) + ".m4s"), std::string::npos);
  hls::Resource r;
  EXPECT_EQ(s.find("tok/seg-" + std::to_string(st.mediaSequence - 1) + ".m4s", r), hls::Lookup::Gone);
  EXPECT_EQ(s.find("tok/seg-0.m4s", r), hls::Lookup::Gone);
  EXPECT_EQ(s.find("tok/seg-" + std::to_string(st.mediaSequence) + ".m4s", r), hls::Lookup::Found);
  EXPECT_EQ(s.find("tok/seg-999.m4s", r), hls::Lookup::NoSuch);
  EXPECT_EQ(s.find("tok/seg-1.ts", r), hls::Lookup::NoSuch) << "wrong extension";
  EXPECT_EQ(s.find("other/seg-1.m4s", r), hls::Lookup::Gone) << "another stream token";
  EXPECT_EQ(s.find("../../etc/passwd", r), hls::Lookup::Gone);
  EXPECT_EQ(s.find("tok/init-1.mp4", r), hls::Lookup::Found);
  EXPECT_EQ(r.contentType, "video/mp4");
  const std::string init = bytesOf(r);
  const auto boxes = transport::mp4::parseBoxes({reinterpret_cast<const uint8_t*>(init.data()), init.size()});
  ASSERT_EQ(boxes.size(), 2u);
  EXPECT_EQ(boxes[0].type, "ftyp");
  EXPECT_EQ(boxes[1].type, "moov");
}

TEST(HlsSegmenter, ByteBudgetBoundsTheWindow) {
  hls::Config c = config();
  c.windowSegments = 100;
  size_t perSegment = 0;
  {
    hls::Segmenter reference(c);
    printcast::testing::H264Source source;
    feed(reference, source, 15 * 8 + 2);
    perSegment = reference.stats().bytes / (reference.stats().segments + 1);
  }
  c.maxBytes = 3 * perSegment;  // room for about three segments
  hls::Segmenter s(c);
  printcast::testing::H264Source source;
  feed(s, source, 15 * 8 + 2);
  const auto st = s.stats();
  EXPECT_GE(st.segmentsProduced, 7u);
  EXPECT_GE(st.segments, 1u);
  EXPECT_LT(st.segments, st.segmentsProduced) << "old segments left for the byte budget";
  // The budget evicts complete segments (when one completes) down to the newest complete one,
  // never further; the segment in progress keeps growing after that eviction, and is cut at
  // half the budget. So the window is within the budget plus that half, or at its minimum.
  // (Segment sizes are x264's: they differ between builds and runs, e.g. armhf without assembly
  // or a threaded encode under TSan; the old bound without the in-progress half failed there.)
  EXPECT_TRUE(st.bytes <= c.maxBytes + c.maxBytes / 2 || st.segments == 1)
      << "window + segment in progress: " << st.bytes << " bytes in " << st.segments << " segments, budget "
      << c.maxBytes;
  EXPECT_EQ(linesWith(s.playlist(), "#EXTINF:").size(), st.segments);
  EXPECT_EQ(st.mediaSequence, st.segmentsProduced - st.segments);
}

TEST(HlsSegmenter, PartsPreloadHintAndIndependence) {
  hls::Segmenter s(config());
  printcast::testing::H264Source source;  // 15 fps: 3 frames per 0.2 s part
  feed(s, source, 15 * 2 + 5);
  const std::string playlist = s.playlist();
  EXPECT_NE(playlist.find("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.660"),
            std::string::npos)
      << playlist;
  EXPECT_NE(playlist.find("#EXT-X-PART-INF:PART-TARGET=0.220"), std::string::npos) << playlist;
  const auto parts = linesWith(playlist, "#EXT-X-PART:");
  ASSERT_GE(parts.size(), 10u);
  const std::regex partRe(
      R"(#EXT-X-PART:DURATION=([0-9.]+),URI="tok/part-(\d+)\.(\d+)\.m4s"(,INDEPENDENT=YES)?)");
  for (const auto& line : parts) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, partRe)) << line;
    EXPECT_LE(std::stod(m[1]), 0.22) << line;
    EXPECT_EQ(m[3] == "0", m[4].matched) << "INDEPENDENT=YES exactly on each segment's first part: " << line;
    hls::Resource r;
    EXPECT_EQ(s.find("tok/part-" + m[2].str() + "." + m[3].str() + ".m4s", r), hls::Lookup::Found);
    const std::string b = bytesOf(r);
    const auto boxes = transport::mp4::parseBoxes({reinterpret_cast<const uint8_t*>(b.data()), b.size()});
    ASSERT_EQ(boxes.size(), 2u) << "one moof + mdat per part";
    EXPECT_EQ(boxes[0].type, "moof");
    EXPECT_EQ(boxes[1].type, "mdat");
  }
  // The hint names the next part of the segment in progress: held, then published.
  const auto hint = linesWith(playlist, "#EXT-X-PRELOAD-HINT:");
  ASSERT_EQ(hint.size(), 1u);
  const std::string uri =
      hint[0].substr(hint[0].find("URI=\"") + 5, hint[0].size() - hint[0].find("URI=\"") - 6);
  hls::Resource r;
  EXPECT_EQ(s.find(uri, r), hls::Lookup::Pending) << uri;
  feed(s, source, 4);
  EXPECT_EQ(s.find(uri, r), hls::Lookup::Found) << uri;
  // A segment is its parts back to back.
  const auto st = s.stats();
  const std::string last = std::to_string(st.mediaSequence + st.segments - 1);
  ASSERT_EQ(s.find("tok/seg-" + last + ".m4s", r), hls::Lookup::Found);
  std::string joined;
  for (int i = 0;; ++i) {
    hls::Resource p;
    if (s.find("tok/part-" + last + "." + std::to_string(i) + ".m4s", p) != hls::Lookup::Found) break;
    joined += bytesOf(p);
  }
  EXPECT_EQ(bytesOf(r), joined);
}

TEST(HlsSegmenter, NoPartsWithoutLowLatency) {
  hls::Segmenter s(config(hls::Format::Fmp4, 0));
  printcast::testing::H264Source source;
  feed(s, source, 15 * 3 + 2);
  const std::string playlist = s.playlist();
  EXPECT_TRUE(linesWith(playlist, "#EXT-X-PART").empty()) << playlist;
  EXPECT_TRUE(linesWith(playlist, "#EXT-X-PRELOAD-HINT").empty()) << playlist;
  EXPECT_GE(linesWith(playlist, "#EXTINF:").size(), 2u);
}

TEST(HlsSegmenter, NewParameterSetsStartADiscontinuityWithANewInitSegment) {
  hls::Config c = config();
  c.windowSegments = 3;
  hls::Segmenter s(c);
  printcast::testing::H264Source source;
  feed(s, source, 15 * 2 + 2);
  source.configure({352, 288});  // new SPS: the camera was replaced
  feed(s, source, 15 * 2 + 2);
  std::string playlist = s.playlist();
  EXPECT_EQ(linesWith(playlist, "#EXT-X-DISCONTINUITY").size(), 2u) << playlist;  // + -SEQUENCE line
  const auto maps = linesWith(playlist, "#EXT-X-MAP:");
  ASSERT_EQ(maps.size(), 2u) << playlist;
  EXPECT_EQ(maps[1], "#EXT-X-MAP:URI=\"tok/init-2.mp4\"");
  EXPECT_EQ(linesWith(playlist, "#EXT-X-DISCONTINUITY-SEQUENCE:")[0], "#EXT-X-DISCONTINUITY-SEQUENCE:0");
  // Once that segment leaves the window the discontinuity sequence counts it.
  feed(s, source, 15 * 4);
  playlist = s.playlist();
  EXPECT_EQ(linesWith(playlist, "#EXT-X-DISCONTINUITY-SEQUENCE:")[0], "#EXT-X-DISCONTINUITY-SEQUENCE:1")
      << playlist;
  EXPECT_EQ(linesWith(playlist, "#EXT-X-MAP:"),
            std::vector<std::string>{"#EXT-X-MAP:URI=\"tok/init-2.mp4\""});
  hls::Resource r;
  EXPECT_EQ(s.find("tok/init-1.mp4", r), hls::Lookup::Gone) << "no segment uses it any more";
}

TEST(HlsSegmenter, ResetDropsEverythingAndNumberingContinues) {
  hls::Segmenter s(config());
  printcast::testing::H264Source source;
  feed(s, source, 15 * 2 + 2);
  const auto before = s.stats();
  s.reset();
  EXPECT_TRUE(s.playlist().empty());
  EXPECT_EQ(s.stats().bytes, 0u);
  source.requestKeyframe();
  feed(s, source, 15 * 2);
  const std::string playlist = s.playlist();
  EXPECT_EQ(linesWith(playlist, "#EXT-X-DISCONTINUITY").size(), 2u) << playlist;
  EXPECT_GT(s.stats().mediaSequence, before.mediaSequence + before.segments - 1) << playlist;
}

TEST(HlsSegmenter, DirectivesAgainstTheLiveEdge) {
  hls::Segmenter s(config());
  printcast::testing::H264Source source;
  feed(s, source, 15 * 2 + 4);
  const auto st = s.stats();
  const uint64_t current = st.mediaSequence + st.segments;  // in progress
  EXPECT_EQ(s.check(current - 1, std::nullopt), hls::Directive::Ready);
  EXPECT_EQ(s.check(current, std::nullopt), hls::Directive::Wait);
  EXPECT_EQ(s.check(current, 0), hls::Directive::Ready);
  EXPECT_EQ(s.check(current, 1), hls::Directive::Wait);
  EXPECT_EQ(s.check(current + 1, 0), hls::Directive::Wait);
  EXPECT_EQ(s.check(current + 3, std::nullopt), hls::Directive::TooFar);
  EXPECT_EQ(s.check(current, 9), hls::Directive::TooFar);
}

TEST(HlsOutput, BlockingReloadIsReleasedByTheNextPart) {
  HlsOutput out(config());
  printcast::testing::H264Source source;
  // The first request makes the output watched; before any segment the playlist is held.
  HttpResponse first = out.handle(get(), "stream.m3u8");
  ASSERT_TRUE(first.deferred);
  EXPECT_FALSE(first.deferred->completed());
  for (int i = 0; i < 15 + 2; ++i) {
    if (out.keyframeDue()) source.requestKeyframe();
    out.publish(source.next());
  }
  EXPECT_FALSE(first.deferred->completed()) << "held until two segments are there";
  for (int i = 0; i < 15; ++i) {
    if (out.keyframeDue()) source.requestKeyframe();
    out.publish(source.next());
  }
  ASSERT_TRUE(first.deferred->completed()) << "answered when the second segment completed";
  HttpResponse ready = first.deferred->takeResponse();
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.contentType, "application/vnd.apple.mpegurl");

  const auto st = out.segmenter().stats();
  const uint64_t msn = st.mediaSequence + st.segments;
  std::string hint;
  {
    const std::string pl = out.segmenter().playlist();
    hint = linesWith(pl, "#EXT-X-PRELOAD-HINT")[0];
  }
  const std::regex hintRe(R"(part-(\d+)\.(\d+)\.m4s)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(hint, m, hintRe));
  ASSERT_EQ(std::stoull(m[1]), msn);
  const std::string part = m[2];
  HttpResponse held =
      out.handle(get({{"_HLS_msn", std::to_string(msn)}, {"_HLS_part", part}}), "stream.m3u8");
  ASSERT_TRUE(held.deferred);
  EXPECT_FALSE(held.deferred->completed());
  HttpResponse heldPart = out.handle(get(), "tok/part-" + m[1].str() + "." + part + ".m4s");
  ASSERT_TRUE(heldPart.deferred) << "the preload hint waits for its part";
  EXPECT_EQ(out.waiting(), 2u);
  for (int i = 0; i < 4 && !held.deferred->completed(); ++i) out.publish(source.next());
  ASSERT_TRUE(held.deferred->completed());
  ASSERT_TRUE(heldPart.deferred->completed());
  HttpResponse answer = held.deferred->takeResponse();
  EXPECT_EQ(answer.status, 200);
  EXPECT_NE(answer.body.find("part-" + m[1].str() + "." + part + ".m4s"), std::string::npos) << answer.body;
  EXPECT_NE(answer.headers.end(),
            std::find(answer.headers.begin(), answer.headers.end(),
                      std::pair<std::string, std::string>{"Cache-Control", "no-cache"}));
  HttpResponse partAnswer = heldPart.deferred->takeResponse();
  EXPECT_EQ(partAnswer.status, 200);
  EXPECT_EQ(partAnswer.contentType, "video/mp4");
  ASSERT_TRUE(partAnswer.stream);
  const std::string body = readAll(partAnswer.stream);
  EXPECT_EQ(body.size(), partAnswer.streamSize);
  EXPECT_EQ(out.waiting(), 0u);
}

TEST(HlsOutput, BadDirectivesAndMissingResourcesAreRefusedWithAReason) {
  HlsOutput out(config());
  printcast::testing::H264Source source;
  (void)out.handle(get(), "stream.m3u8");
  for (int i = 0; i < 15 * 6; ++i) {
    if (out.keyframeDue()) source.requestKeyframe();
    out.publish(source.next());
  }
  auto status = [&](const std::map<std::string, std::string>& q) {
    return out.handle(get(q), "stream.m3u8").status;
  };
  EXPECT_EQ(status({{"_HLS_msn", "abc"}}), 400);
  EXPECT_EQ(status({{"_HLS_msn", "-1"}}), 400);
  EXPECT_EQ(status({{"_HLS_part", "1"}}), 400) << "_HLS_part needs _HLS_msn";
  EXPECT_EQ(status({{"_HLS_msn", "1000"}}), 400) << "far past the live edge";
  EXPECT_EQ(status({{"_HLS_msn", "0"}, {"_HLS_skip", "YES"}}), 200);
  EXPECT_EQ(out.handle(get(), "tok/seg-0.m4s").status, 404) << "left the window";
  HttpResponse gone = out.handle(get(), "tok/seg-0.m4s");
  EXPECT_NE(gone.body.find("left the live window"), std::string::npos) << gone.body;
  EXPECT_EQ(out.handle(get(), "tok/seg-1000.m4s").status, 404);
  EXPECT_EQ(out.handle(get(), "nothing").status, 404);
  HttpRequest post = get();
  post.method = "POST";
  EXPECT_EQ(out.handle(post, "stream.m3u8").status, 405);
  HttpResponse seg =
      out.handle(get(), "tok/seg-" + std::to_string(out.segmenter().stats().mediaSequence) + ".m4s");
  EXPECT_EQ(seg.status, 200);
  EXPECT_NE(seg.headers.end(),
            std::find(seg.headers.begin(), seg.headers.end(),
                      std::pair<std::string, std::string>{"Cache-Control", "max-age=86400"}));
  // Closing answers every held request.
  HttpResponse held = out.handle(
      get({{"_HLS_msn", std::to_string(out.segmenter().stats().mediaSequence + 5)}}), "stream.m3u8");
  ASSERT_TRUE(held.deferred);
  out.closeAll("stopping");
  ASSERT_TRUE(held.deferred->completed());
  EXPECT_EQ(held.deferred->takeResponse().status, 503);
}

TEST(HlsOutput, NothingIsKeptWhileNobodyWatches) {
  HlsOutput out(config(), std::chrono::milliseconds(1));
  printcast::testing::H264Source source;
  EXPECT_FALSE(out.watched());
  for (int i = 0; i < 40; ++i) out.publish(source.next());
  EXPECT_EQ(out.segmenter().stats().segmentsProduced, 0u);
  EXPECT_EQ(out.segmenter().stats().bytes, 0u);
}

// Both formats written out as files (playlist + token folder) and decoded by ffmpeg: what a
// player fetching the URLs gets.
class HlsOnDisk : public ::testing::TestWithParam<hls::Format> {};

TEST_P(HlsOnDisk, FfmpegDecodesThePlaylistAndItsSegments) {
  hls::Segmenter s(config(GetParam()));
  printcast::testing::H264Source source;
  feed(s, source, 15 * 4 + 2);
  const auto dir =
      std::filesystem::temp_directory_path() /
      ("printcast-hls-" + std::to_string(getpid()) + "-" + std::to_string(static_cast<int>(GetParam())));
  std::filesystem::create_directories(dir / "tok");
  const std::string playlist = s.playlist();
  // With EXT-X-ENDLIST the copy is a finished playlist: ffmpeg reads it once instead of reloading.
  std::ofstream(dir / "stream.m3u8") << playlist << "#EXT-X-ENDLIST\n";
  std::istringstream in(playlist);
  std::string line;
  std::vector<std::string> names;
  const std::regex uriRe(R"(URI="([^"]+)\")");
  while (std::getline(in, line)) {
    std::smatch m;
    if (line.rfind("tok/", 0) == 0)
      names.push_back(line);
    else if (std::regex_search(line, m, uriRe) && line.rfind("#EXT-X-PRELOAD-HINT", 0) != 0)
      names.push_back(m[1]);
  }
  for (const auto& name : names) {
    hls::Resource r;
    ASSERT_EQ(s.find(name, r), hls::Lookup::Found) << name;
    std::ofstream(dir / name, std::ios::binary) << bytesOf(r);
  }
  const std::string url = (dir / "stream.m3u8").string();
  const auto [rc, errors] = printcast::testing::runShell(
      "timeout 20 ffmpeg -v error -allowed_extensions ALL -i " + url + " -f null - 2>&1");
  EXPECT_EQ(rc, 0) << errors;
  EXPECT_EQ(errors, "");
  const auto [prc, packets] = printcast::testing::runShell(
      "timeout 20 ffprobe -v error -allowed_extensions ALL -select_streams v:0 -show_entries "
      "packet=pts_time,flags -of csv=p=0 " +
      url + " 2>&1");
  ASSERT_EQ(prc, 0) << packets;
  std::istringstream lines(packets);
  double last = -1;
  int n = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    if (n == 0) {
      EXPECT_NE(line.find('K'), std::string::npos) << "first packet is a keyframe: " << line;
    }
    const double t = std::stod(line.substr(0, line.find(',')));
    EXPECT_GT(t, last) << line;
    last = t;
    ++n;
  }
  EXPECT_GE(n, 15 * 3);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Formats, HlsOnDisk, ::testing::Values(hls::Format::Fmp4, hls::Format::MpegTs),
                         [](const auto& p) { return p.param == hls::Format::Fmp4 ? "fmp4" : "ts"; });

TEST(HlsSegmenter, ASourceWithoutIdrsCannotGrowASegmentWithoutBound) {
  hls::Segmenter s(config());
  printcast::testing::H264Source source;                        // GOP 1000: no IDR unless asked
  for (int i = 0; i < 15 * 10 + 5; ++i) s.push(source.next());  // keyframe requests ignored
  auto st = s.stats();
  EXPECT_EQ(st.segmentsProduced, 1u) << "closed at 10 s as it was";
  EXPECT_GE(st.accessUnitsDropped, 1u);
  EXPECT_TRUE(s.keyframeDue()) << "waits for an IDR";
  const size_t bytes = st.bytes;
  for (int i = 0; i < 10; ++i) s.push(source.next());
  EXPECT_EQ(s.stats().bytes, bytes) << "inter frames are dropped until the next IDR";
  source.requestKeyframe();
  feed(s, source, 15 + 2);
  const std::string playlist = s.playlist();
  EXPECT_EQ(linesWith(playlist, "#EXT-X-DISCONTINUITY").size(), 2u) << playlist;
  EXPECT_EQ(linesWith(playlist, "#EXT-X-TARGETDURATION:")[0], "#EXT-X-TARGETDURATION:10") << playlist;
}

TEST(HlsOutput, AHeldRequestIsAnswered503AfterTheHoldTime) {
  HlsOutput out(config(), std::chrono::milliseconds(0), std::chrono::milliseconds(50));
  printcast::testing::H264Source source;
  (void)out.handle(get(), "stream.m3u8");
  for (int i = 0; i < 15 * 2 + 2; ++i) {
    if (out.keyframeDue()) source.requestKeyframe();
    out.publish(source.next());
  }
  const auto st = out.segmenter().stats();
  const uint64_t next = st.mediaSequence + st.segments + 1;  // the segment after the one in progress
  HttpResponse held = out.handle(get({{"_HLS_msn", std::to_string(next)}}), "stream.m3u8");
  ASSERT_TRUE(held.deferred);
  HttpResponse heldSegment = out.handle(get(), "tok/seg-" + std::to_string(next - 1) + ".m4s");
  ASSERT_TRUE(heldSegment.deferred) << "the segment in progress is held";
  // No frames come any more (the camera stalled): both are answered 503 once the hold time passes.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!(held.deferred->completed() && heldSegment.deferred->completed()) &&
         std::chrono::steady_clock::now() < deadline) {
    out.expire();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(held.deferred->completed());
  const HttpResponse answer = held.deferred->takeResponse();
  EXPECT_EQ(answer.status, 503);
  EXPECT_NE(answer.body.find("not available within 50 ms"), std::string::npos) << answer.body;
  ASSERT_TRUE(heldSegment.deferred->completed());
  EXPECT_EQ(heldSegment.deferred->takeResponse().status, 503);
  EXPECT_EQ(out.waiting(), 0u);
}
