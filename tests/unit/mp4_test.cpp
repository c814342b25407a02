// SPDX-License-Identifier: MIT
// MP4 boxes (ISO/IEC 14496-12/-15): the fMP4 init segment and fragments read back with our box
// parser and with ffprobe/ffmpeg, the fMP4 fan-out (clients start at an IDR, tfdt from capture
// time, new parameter sets end a stream), and the progressive FileWriter (moov first, atomic).
#include "printcast/transport/mp4.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "hls_test_support.h"
#include "printcast/codecs/h264.h"
#include "printcast/codecs/x264_encoder.h"
#include "printcast/hal/frame.h"
#include "printcast/transport/fanout.h"

using namespace printcast;
namespace mp4 = transport::mp4;
namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

uint32_t be32(std::span<const uint8_t> b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | b[at + 3];
}
uint64_t be64(std::span<const uint8_t> b, size_t at) {
  return (uint64_t{be32(b, at)} << 32) | be32(b, at + 4);
}

std::vector<std::string> types(const std::vector<mp4::Box>& boxes) {
  std::vector<std::string> t;
  for (const auto& b : boxes) t.push_back(b.type);
  return t;
}

const mp4::Box* find(const std::vector<mp4::Box>& boxes, const std::string& type) {
  for (const auto& b : boxes)
    if (b.type == type) return &b;
  return nullptr;
}

// Descend a path of container boxes ("moov/trak/mdia") and return the last one's children.
std::vector<mp4::Box> childrenAt(std::span<const uint8_t> bytes, const std::vector<std::string>& path) {
  auto level = mp4::parseBoxes(bytes);
  for (const auto& type : path) {
    const mp4::Box* b = find(level, type);
    if (b == nullptr) return {};
    // stsd and dref have a FullBox header and an entry count; avc1 a 78-byte visual entry.
    size_t skip = 0;
    if (type == "stsd" || type == "dref") skip = 8;
    if (type == "avc1") skip = 78;
    level = mp4::parseBoxes(b->payload.subspan(skip));
  }
  return level;
}

// A moving 320x240 picture encoded by x264 (GOP `gop`), 33 ms apart, as the streamer makes it.
class Encoded {
 public:
  explicit Encoded(int gop) : encoder_(codecs::createX264Encoder()) {
    hal::EncoderConfig c;
    c.size = {320, 240};
    c.fps = 30;
    c.bitrateKbps = 500;
    c.gopFrames = gop;
    EXPECT_TRUE(encoder_->configure(c).ok());
    auto pool = hal::FramePool::create(hal::fourcc::kI420, c.size, 2);
    EXPECT_TRUE(pool.ok());
    pool_ = *pool;
  }
  hal::PacketPtr next() {
    auto w = pool_->acquire();
    EXPECT_TRUE(w.ok());
    for (int p = 0; p < 3; ++p) {
      const int h = p == 0 ? 240 : 120;
      const int wd = p == 0 ? 320 : 160;
      for (int y = 0; y < h; ++y) {
        uint8_t* row = w->data(p) + static_cast<ptrdiff_t>(y) * w->stride(p);
        for (int x = 0; x < wd; ++x) row[x] = static_cast<uint8_t>(p == 0 ? (x + y + n_ * 4) & 0xff : 128);
      }
    }
    auto frame = std::move(*w).publish(hal::Timestamp(std::chrono::milliseconds(5000 + n_ * 33)), n_);
    ++n_;
    auto packet = encoder_->encode(frame);
    EXPECT_TRUE(packet.ok());
    return packet.ok() ? *packet : nullptr;
  }

 private:
  std::unique_ptr<hal::Encoder> encoder_;
  std::shared_ptr<hal::FramePool> pool_;
  int n_ = 0;
};

Bytes drain(transport::ClientQueue& q) {
  Bytes out;
  uint8_t buf[4096];
  for (;;) {
    const size_t n = q.read(buf, sizeof buf, {});
    if (n == 0 || n == transport::ClientQueue::kEnd) break;
    out.insert(out.end(), buf, buf + n);
  }
  return out;
}

fs::path tempDir() {
  auto dir = fs::temp_directory_path() / ("printcast-mp4-test-" + std::to_string(getpid()));
  fs::create_directories(dir);
  return dir;
}

void writeFile(const fs::path& p, const Bytes& b) {
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

}  // namespace

TEST(Mp4, BoxWriterPatchesNestedSizes) {
  mp4::BoxWriter w;
  const size_t outer = w.begin("moov");
  const size_t inner = w.beginFull("mvhd", 1, 0x000003);
  w.u64(0x0102030405060708);
  w.end(inner);
  w.end(outer);
  const Bytes b = w.take();
  ASSERT_EQ(b.size(), 8u + 12u + 8u);
  EXPECT_EQ(be32(b, 0), 28u);
  EXPECT_EQ(be32(b, 8), 20u);
  EXPECT_EQ(be32(b, 16), 0x01000003u);  // version 1, flags 3
  EXPECT_EQ(be64(b, 20), 0x0102030405060708u);
}

TEST(Mp4, ParseBoxesHandlesLargesizeAndStopsAtAPartialBox) {
  Bytes b = {0, 0, 0, 8, 'f', 'r', 'e', 'e',  0,    0, 0, 1, 'm', 'd', 'a', 't', 0,
             0, 0, 0, 0, 0,   0,   18,  0xAA, 0xBB, 0, 0, 0, 99,  'm', 'o', 'o', 'v'};
  const auto boxes = mp4::parseBoxes(b);
  ASSERT_EQ(types(boxes), (std::vector<std::string>{"free", "mdat"}));
  EXPECT_EQ(boxes[1].size, 18u);
  ASSERT_EQ(boxes[1].payload.size(), 2u);
  EXPECT_EQ(boxes[1].payload[0], 0xAA);
}

TEST(Mp4, InitSegmentCarriesTheRealParameterSets) {
  Encoded enc(30);
  const auto idr = enc.next();
  ASSERT_TRUE(idr && idr->keyframe && idr->config);
  auto track = mp4::trackInfo(*idr->config);
  ASSERT_TRUE(track.ok()) << track.error().describe();
  EXPECT_EQ(track->size, (hal::Size{320, 240}));
  // profile/compat/level from the SPS bytes 1..3, never hard-coded
  char expected[16];
  std::snprintf(expected, sizeof expected, "avc1.%02X%02X%02X", idr->config->sps[1], idr->config->sps[2],
                idr->config->sps[3]);
  EXPECT_EQ(track->codecString, expected);

  const Bytes init = mp4::initSegment(*track);
  EXPECT_EQ(types(mp4::parseBoxes(init)), (std::vector<std::string>{"ftyp", "moov"}));
  EXPECT_EQ(types(childrenAt(init, {"moov"})), (std::vector<std::string>{"mvhd", "trak", "mvex"}));
  const auto avc1 = childrenAt(init, {"moov", "trak", "mdia", "minf", "stbl", "stsd", "avc1"});
  ASSERT_EQ(types(avc1), std::vector<std::string>{"avcC"});
  const auto record = codecs::h264::avcDecoderConfigurationRecord(*idr->config);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(Bytes(avc1[0].payload.begin(), avc1[0].payload.end()), *record);
  const auto stbl = childrenAt(init, {"moov", "trak", "mdia", "minf", "stbl"});
  EXPECT_EQ(types(stbl), (std::vector<std::string>{"stsd", "stts", "stsc", "stsz", "stco"}));
}

TEST(Mp4, FragmentHeaderOffsetsPointAtTheSamples) {
  const mp4::Sample samples[] = {{1000, 3000, true}, {200, 3003, false}};
  const Bytes h = mp4::fragmentHeader(7, 0x1'0000'0000ull, samples);
  const auto top = mp4::parseBoxes(h);
  ASSERT_EQ(types(top), (std::vector<std::string>{"moof"}));  // mdat is only a header here
  const size_t moofSize = top[0].size;
  ASSERT_EQ(h.size(), moofSize + 8);
  EXPECT_EQ(be32(h, moofSize), 8u + 1200u);
  EXPECT_EQ(std::string(h.begin() + static_cast<ptrdiff_t>(moofSize) + 4, h.end()), "mdat");
  const auto moof = childrenAt(h, {"moof"});
  ASSERT_EQ(types(moof), (std::vector<std::string>{"mfhd", "traf"}));
  EXPECT_EQ(be32(moof[0].payload, 4), 7u);
  const auto traf = childrenAt(h, {"moof", "traf"});
  ASSERT_EQ(types(traf), (std::vector<std::string>{"tfhd", "tfdt", "trun"}));
  EXPECT_EQ(be32(traf[0].payload, 0), 0x00020000u);  // default-base-is-moof
  EXPECT_EQ(traf[1].payload[0], 1);                  // version 1: 64-bit time
  EXPECT_EQ(be64(traf[1].payload, 4), 0x1'0000'0000ull);
  const auto& trun = traf[2].payload;
  EXPECT_EQ(be32(trun, 4), 2u);            // sample_count
  EXPECT_EQ(be32(trun, 8), moofSize + 8);  // data_offset: from moof to the first sample
  EXPECT_EQ(be32(trun, 12), 3000u);
  EXPECT_EQ(be32(trun, 16), 1000u);
  EXPECT_EQ(be32(trun, 20), 0x02000000u);  // sync
  EXPECT_EQ(be32(trun, 32), 0x01010000u);  // non-sync, depends on others
}

TEST(Mp4, TicksFromNanoseconds) {
  EXPECT_EQ(mp4::ticksFromNs(33'333'333, 90000), 2999u);
  EXPECT_EQ(mp4::ticksFromNs(-5, 90000), 0u);
  EXPECT_EQ(mp4::ticksFromNs(int64_t{86400} * 365 * 1'000'000'000, 90000), uint64_t{86400} * 365 * 90000);
}

TEST(Fmp4Stream, AClientStartsAtAnIdrAndFfmpegDecodesTheStream) {
  Encoded enc(15);
  transport::Fmp4Stream stream(30);
  std::shared_ptr<transport::ClientQueue> early, late;
  early = stream.subscribe({1000, 64u << 20});
  for (int i = 0; i < 60; ++i) {
    if (i == 5) late = stream.subscribe({1000, 64u << 20});  // joins mid-GOP
    stream.publish(enc.next());
  }
  stream.closeAll();
  const auto dir = tempDir();
  for (const auto& [name, queue, frames] : {std::tuple{"early", early, 60}, std::tuple{"late", late, 45}}) {
    const Bytes bytes = drain(*queue);
    const auto top = mp4::parseBoxes(bytes);
    ASSERT_GE(top.size(), 3u);
    EXPECT_EQ(top[0].type, "ftyp");
    EXPECT_EQ(top[1].type, "moov");
    // one moof + mdat per access unit, mfhd sequence 1, 2, 3...; tfdt from 0 in capture time
    ASSERT_EQ(top.size(), 2u + 2u * static_cast<size_t>(frames)) << name;
    for (int f = 0; f < frames; ++f) {
      const auto& moof = top[2 + 2 * static_cast<size_t>(f)];
      ASSERT_EQ(moof.type, "moof");
      const auto kids = mp4::parseBoxes(moof.payload);
      EXPECT_EQ(be32(kids[0].payload, 4), static_cast<uint32_t>(f + 1));
      const auto traf = mp4::parseBoxes(kids[1].payload);
      EXPECT_EQ(be64(traf[1].payload, 4), static_cast<uint64_t>(f) * 33 * 90) << name << " fragment " << f;
    }
    const fs::path file = dir / (std::string(name) + ".mp4");
    writeFile(file, bytes);
    const auto probe = printcast::testing::runShell(
        "ffprobe -v error -select_streams v:0 -show_entries packet=pts,flags -of csv=p=0 " + file.string() +
        " 2>&1");
    ASSERT_EQ(probe.first, 0) << probe.second;
    std::vector<std::string> lines;
    for (size_t at = 0, nl; (nl = probe.second.find('\n', at)) != std::string::npos; at = nl + 1)
      lines.push_back(probe.second.substr(at, nl - at));
    ASSERT_EQ(lines.size(), static_cast<size_t>(frames)) << probe.second;
    EXPECT_NE(lines[0].find(",K"), std::string::npos) << "first packet is a keyframe: " << lines[0];
    long previous = -1;
    for (const auto& l : lines) {
      const long pts = std::stol(l);
      EXPECT_GT(pts, previous) << probe.second;
      previous = pts;
    }
    const auto decode =
        printcast::testing::runShell("ffmpeg -v error -i " + file.string() + " -f null - 2>&1");
    EXPECT_EQ(decode.first, 0);
    EXPECT_EQ(decode.second, "");
  }
  fs::remove_all(dir);
}

TEST(Fmp4Stream, NewParameterSetsEndTheStreamsThatCannotCarryThem) {
  transport::Fmp4Stream stream(30);
  Encoded small(10);
  auto queue = stream.subscribe();
  for (int i = 0; i < 12; ++i) stream.publish(small.next());
  // The "no signal" encoder (another configuration) takes over at its IDR.
  auto other = codecs::createX264Encoder();
  hal::EncoderConfig c;
  c.size = {160, 120};
  ASSERT_TRUE(other->configure(c).ok());
  auto pool = hal::FramePool::create(hal::fourcc::kI420, c.size, 1);
  ASSERT_TRUE(pool.ok());
  auto w = (*pool)->acquire();
  ASSERT_TRUE(w.ok());
  auto frame = std::move(*w).publish(hal::Timestamp(std::chrono::seconds(9)), 0);
  auto idr = other->encode(frame);
  ASSERT_TRUE(idr.ok());
  stream.publish(*idr);
  const Bytes bytes = drain(*queue);
  uint8_t buf[16];
  EXPECT_EQ(queue->read(buf, sizeof buf, {}), transport::ClientQueue::kEnd);
  EXPECT_EQ(mp4::parseBoxes(bytes).size(), 2u + 2u * 12u);  // nothing of the new configuration
  // A new client starts on the new parameter sets.
  auto fresh = stream.subscribe();
  stream.publish(*idr);
  stream.closeAll();
  const Bytes again = drain(*fresh);
  const auto avc1 = childrenAt(again, {"moov", "trak", "mdia", "minf", "stbl", "stsd", "avc1"});
  ASSERT_EQ(avc1.size(), 1u);
  const auto record = codecs::h264::avcDecoderConfigurationRecord(*(*idr)->config);
  EXPECT_EQ(Bytes(avc1[0].payload.begin(), avc1[0].payload.end()), *record);
}

TEST(Mp4FileWriter, WritesAFastStartFileFfprobeReads) {
  Encoded enc(10);
  const auto dir = tempDir();
  const fs::path path = dir / "benchy_1.mp4";
  std::optional<mp4::FileWriter> writer;
  for (int i = 0; i < 45; ++i) {
    const auto au = enc.next();
    if (!writer) {
      auto track = mp4::trackInfo(*au->config, 30000);
      ASSERT_TRUE(track.ok());
      auto w = mp4::FileWriter::create(path, *track);
      ASSERT_TRUE(w.ok()) << w.error().describe();
      writer.emplace(std::move(*w));
    }
    const Bytes sample = codecs::h264::annexBToLengthPrefixed(au->data, true);
    ASSERT_TRUE(writer->addSample(sample, 1000, au->keyframe).ok());
  }
  EXPECT_FALSE(fs::exists(path));  // nothing at the final name before finish()
  ASSERT_TRUE(writer->finish().ok());
  EXPECT_TRUE(fs::exists(path));
  EXPECT_FALSE(fs::exists(dir / "benchy_1.mp4.part"));
  EXPECT_FALSE(fs::exists(dir / "benchy_1.mp4.mdat.part"));

  std::ifstream in(path, std::ios::binary);
  const Bytes file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(types(mp4::parseBoxes(file)), (std::vector<std::string>{"ftyp", "moov", "mdat"}));
  const auto probe = printcast::testing::runShell(
      "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
      "stream=nb_read_frames,r_frame_rate,width,height:format=duration -of default=nw=1 " +
      path.string() + " 2>&1");
  ASSERT_EQ(probe.first, 0) << probe.second;
  EXPECT_NE(probe.second.find("nb_read_frames=45"), std::string::npos) << probe.second;
  EXPECT_NE(probe.second.find("r_frame_rate=30/1"), std::string::npos) << probe.second;
  EXPECT_NE(probe.second.find("width=320"), std::string::npos) << probe.second;
  EXPECT_NE(probe.second.find("duration=1.500000"), std::string::npos) << probe.second;
  const auto decode = printcast::testing::runShell("ffmpeg -v error -i " + path.string() + " -f null - 2>&1");
  EXPECT_EQ(decode.first, 0);
  EXPECT_EQ(decode.second, "");
  fs::remove_all(dir);
}

TEST(Mp4FileWriter, FailuresLeaveNothingBehind) {
  Encoded enc(10);
  const auto au = enc.next();
  auto track = mp4::trackInfo(*au->config, 30000);
  ASSERT_TRUE(track.ok());

  auto missing = mp4::FileWriter::create("/nonexistent-printcast-dir/x.mp4", *track);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent-printcast-dir/x.mp4"), std::string::npos);

  const auto dir = tempDir();
  {
    auto empty = mp4::FileWriter::create(dir / "empty.mp4", *track);
    ASSERT_TRUE(empty.ok());
    const auto st = empty->finish();
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, hal::Errc::InvalidArgument);
  }
  {
    auto abandoned = mp4::FileWriter::create(dir / "abandoned.mp4", *track);
    ASSERT_TRUE(abandoned.ok());
    ASSERT_TRUE(abandoned->addSample(codecs::h264::annexBToLengthPrefixed(au->data, true), 1000, true).ok());
  }  // destroyed unfinished
  EXPECT_TRUE(fs::is_empty(dir)) << "temporary files were left behind";
  fs::remove_all(dir);
}

#if defined(__linux__)
// A full disk: a file size limit makes write() fail with EFBIG the way ENOSPC would.
TEST(Mp4FileWriter, ADiskErrorIsReportedWithThePathAndNoFileAppears) {
  const auto dir = tempDir();
  const fs::path path = dir / "full.mp4";
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    signal(SIGXFSZ, SIG_IGN);
    rlimit limit{4096, 4096};
    setrlimit(RLIMIT_FSIZE, &limit);
    Encoded enc(10);  // in the child: x264's threads do not survive fork()
    auto au = enc.next();
    auto track = mp4::trackInfo(*au->config, 30000);
    auto w = mp4::FileWriter::create(path, *track);
    if (!w.ok()) _exit(10);
    bool failed = false;
    for (int i = 0; i < 30 && !failed; ++i) {
      failed = !w->addSample(codecs::h264::annexBToLengthPrefixed(au->data, true), 1000, au->keyframe).ok();
      au = enc.next();
    }
    const auto st = w->finish();
    failed = failed || !st.ok();
    if (!st.ok() && st.error().message.find(path.string()) == std::string::npos) _exit(11);
    _exit(failed ? 0 : 12);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(fs::is_empty(dir));
  fs::remove_all(dir);
}
#endif
