// SPDX-License-Identifier: MIT
// Timelapse recording: the layer/hyperlapse trigger, output fps, names and sequence numbers,
// assembly checked with ffprobe/ffmpeg, orphan recovery, a full disk, and whole prints driven by
// a fake Moonraker (unix socket and WebSocket) through the real client.
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../fake_moonraker.h"
#include "moonraker_client.h"
#include "printcast/codecs/jpeg.h"
#include "printcast/transport/mp4.h"
#include "timelapse_assembly.h"
#include "timelapse_recorder.h"

namespace fs = std::filesystem;
using namespace printcast;
using namespace printcast::streamer;
using namespace std::chrono_literals;
using Kind = TriggerEvent::Kind;
using SteadyClock = std::chrono::steady_clock;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/printcast-timelapse-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A JPEG of `size`: a grey level from `seed`, the left half bright (to see flips), and with
// `noise` random pixels (big, hard-to-compress frames).
std::vector<uint8_t> makeJpeg(hal::Size size, int seed, bool noise = false) {
  auto pool = *hal::FramePool::create(hal::fourcc::kI420, size, 1);
  auto w = *pool->acquire();
  uint32_t rnd = static_cast<uint32_t>(seed) * 2654435761u + 1;
  for (int y = 0; y < size.height; ++y) {
    for (int x = 0; x < size.width; ++x) {
      uint8_t v = x < size.width / 2 ? 220 : static_cast<uint8_t>(30 + (seed * 7) % 60);
      if (noise) {
        rnd = rnd * 1664525u + 1013904223u;
        v = static_cast<uint8_t>(rnd >> 24);
      }
      w.data(0)[y * w.stride(0) + x] = v;
    }
  }
  for (int p = 1; p < 3; ++p)
    for (int y = 0; y < size.height / 2; ++y) std::memset(w.data(p) + y * w.stride(p), 128, size.width / 2);
  auto frame = std::move(w).publish(hal::Clock::now(), static_cast<uint64_t>(seed));
  auto enc = codecs::createJpegEncoder();
  hal::EncoderConfig c;
  c.jpegQuality = 85;
  EXPECT_TRUE(enc->configure(c).ok());
  auto packet = enc->encode(frame);
  EXPECT_TRUE(packet.ok());
  return (*packet)->data;
}

void writeBytes(const fs::path& p, const std::vector<uint8_t>& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

std::string run(const std::string& cmd, int* status = nullptr) {
  std::string out;
  FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
  if (f == nullptr) return out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  const int rc = ::pclose(f);
  if (status != nullptr) *status = rc;
  return out;
}

struct Probe {
  int frames = -1;
  std::string fps;
  int width = 0, height = 0;
  std::string codec;
  bool decodes = false;
  bool moovFirst = false;
};

// What ffprobe says (frames counted by decoding), whether ffmpeg decodes it without a word, and
// whether moov comes before mdat (our own box parser).
Probe probe(const fs::path& mp4) {
  Probe p;
  const std::string out =
      run(fmt::format("ffprobe -v error -select_streams v:0 -count_frames -show_entries "
                      "stream=codec_name,width,height,avg_frame_rate,nb_read_frames -of json '{}'",
                      mp4.string()));
  const auto j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_object() && j.contains("streams") && !j["streams"].empty()) {
    const auto& s = j["streams"][0];
    p.frames = std::stoi(s.value("nb_read_frames", "-1"));
    p.fps = s.value("avg_frame_rate", "");
    p.width = s.value("width", 0);
    p.height = s.value("height", 0);
    p.codec = s.value("codec_name", "");
  }
  int status = -1;
  const std::string decodeErrors =
      run(fmt::format("ffmpeg -v error -i '{}' -f null -", mp4.string()), &status);
  p.decodes = status == 0 && decodeErrors.empty();
  std::ifstream in(mp4, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  int moov = -1, mdat = -1, i = 0;
  for (const auto& box : transport::mp4::parseBoxes(bytes)) {
    if (box.type == "moov") moov = i;
    if (box.type == "mdat") mdat = i;
    ++i;
  }
  p.moovFirst = moov >= 0 && mdat > moov;
  return p;
}

std::vector<std::string> namesIn(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A folder of `n` frames as the recorder leaves it.
fs::path makeFrameFolder(const fs::path& outputDir, const std::string& filename, int n, hal::Size size,
                         bool noise = false) {
  auto folder = createFrameFolder(outputDir, gcodeBaseName(filename), filename);
  EXPECT_TRUE(folder.ok());
  for (int i = 1; i <= n; ++i) writeBytes(*folder / frameFileName(i), makeJpeg(size, i, noise));
  return *folder;
}

PrintStatus printing(const std::string& file, std::optional<int> layer) {
  return PrintStatus{"printing", file, layer, 40};
}

bool waitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (!done()) {
    if (SteadyClock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

}  // namespace

// ----------------------------------------------------------------------------- trigger

TEST(TimelapseTrigger, LayerModeCapturesEachLayerChangeAfterTheDelay) {
  TimelapseTrigger t(TimelapseMode::Layer, 30s, 200ms);
  const auto t0 = SteadyClock::now();
  auto ev = t.onStatus(printing("cube.gcode", 0), t0);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, Kind::Start);
  EXPECT_EQ(ev[0].filename, "cube.gcode");
  int captures = 0;
  for (int layer = 1; layer <= 40; ++layer) {
    const auto now = t0 + std::chrono::seconds(layer);
    ev = t.onStatus(printing("cube.gcode", layer), now);
    ASSERT_EQ(ev.size(), 1u) << layer;
    EXPECT_EQ(ev[0].kind, Kind::Capture);
    EXPECT_EQ(ev[0].layer, layer);
    EXPECT_EQ(ev[0].at, now + 200ms);
    ++captures;
    // The same layer again (another field changed): no frame.
    EXPECT_TRUE(t.onStatus(printing("cube.gcode", layer), now + 1ms).empty());
  }
  EXPECT_EQ(captures, 40);
  EXPECT_FALSE(t.nextTick().has_value());
  ev = t.onStatus(PrintStatus{"complete", "cube.gcode", 40, 40}, t0 + 50s);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, Kind::Finish);
  EXPECT_EQ(ev[0].reason, "complete");
  EXPECT_FALSE(t.active());
  // A later standby changes nothing.
  EXPECT_TRUE(t.onStatus(PrintStatus{"standby", "", std::nullopt, std::nullopt}, t0 + 60s).empty());
}

TEST(TimelapseTrigger, CancelErrorUnknownStateAndANewFile) {
  TimelapseTrigger t(TimelapseMode::Layer, 30s, 0ms);
  const auto now = SteadyClock::now();
  EXPECT_TRUE(t.onStatus(PrintStatus{"standby", "", std::nullopt, std::nullopt}, now).empty());
  ASSERT_EQ(t.onStatus(printing("a.gcode", 3), now).size(), 2u);  // start + layer 3
  // Moonraker restarting: state unknown, nothing ends.
  EXPECT_TRUE(t.onStatus(PrintStatus{"", "", std::nullopt, std::nullopt}, now).empty());
  EXPECT_TRUE(t.active());
  // Paused: no layer frames.
  EXPECT_TRUE(t.onStatus(PrintStatus{"paused", "a.gcode", 4, 40}, now).empty());
  // Another file while active: the old one finishes.
  auto ev = t.onStatus(printing("b.gcode", 1), now);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0].kind, Kind::Finish);
  EXPECT_EQ(ev[0].reason, "new print");
  EXPECT_EQ(ev[1].kind, Kind::Start);
  EXPECT_EQ(ev[1].filename, "b.gcode");
  EXPECT_EQ(ev[2].kind, Kind::Capture);
  ev = t.onStatus(PrintStatus{"cancelled", "b.gcode", 1, 40}, now);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].reason, "cancelled");
  t.onStatus(printing("c.gcode", 1), now);
  ev = t.onStatus(PrintStatus{"error", "c.gcode", 1, 40}, now);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].reason, "error");
}

TEST(TimelapseTrigger, HyperlapseEveryIntervalNotWhilePaused) {
  TimelapseTrigger t(TimelapseMode::Hyperlapse, 30s, 0ms);
  const auto t0 = SteadyClock::now();
  auto ev = t.onStatus(printing("h.gcode", std::nullopt), t0);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[1].kind, Kind::Capture);
  EXPECT_TRUE(t.onTick(t0 + 29s).empty());
  EXPECT_EQ(t.onTick(t0 + 30s).size(), 1u);
  EXPECT_EQ(*t.nextTick(), t0 + 60s);
  // Layer changes do not capture in hyperlapse mode.
  EXPECT_TRUE(t.onStatus(printing("h.gcode", 5), t0 + 31s).empty());
  t.onStatus(PrintStatus{"paused", "h.gcode", 5, 40}, t0 + 40s);
  EXPECT_FALSE(t.nextTick().has_value());
  EXPECT_TRUE(t.onTick(t0 + 100s).empty());
  t.onStatus(printing("h.gcode", 5), t0 + 200s);
  EXPECT_EQ(*t.nextTick(), t0 + 230s);
  // Far behind (a stall): one frame, not a burst.
  EXPECT_EQ(t.onTick(t0 + 400s).size(), 1u);
  EXPECT_TRUE(t.onTick(t0 + 401s).empty());
}

// ----------------------------------------------------------------------------- pure helpers

TEST(TimelapseAssembly, VariableFpsIsFramesOverTargetLengthClamped) {
  AssemblyOptions o;
  EXPECT_EQ(outputFps(300, o), 30);  // fixed
  o.fps = 24;
  EXPECT_EQ(outputFps(5, o), 24);
  o.variableFps = true;  // target 10 s, [5, 60]
  EXPECT_EQ(outputFps(300, o), 30);
  EXPECT_EQ(outputFps(10, o), 5);     // 1 fps -> min
  EXPECT_EQ(outputFps(2000, o), 60);  // 200 fps -> max
  EXPECT_EQ(outputFps(155, o), 16);   // 15.5 rounds up
  o.targetLengthS = 20;
  o.minFps = 10;
  o.maxFps = 12;
  EXPECT_EQ(outputFps(220, o), 11);
}

TEST(TimelapseAssembly, NamesAndSequenceNumbers) {
  EXPECT_EQ(gcodeBaseName("cube.gcode"), "cube");
  EXPECT_EQ(gcodeBaseName("parts/My Part v2.gcode"), "My_Part_v2");
  EXPECT_EQ(gcodeBaseName("../../etc/passwd"), "passwd");
  EXPECT_EQ(gcodeBaseName(".hidden.gcode"), "hidden");
  EXPECT_EQ(gcodeBaseName(""), "timelapse");
  EXPECT_EQ(gcodeBaseName("a;rm -rf.gcode"), "a_rm_-rf");
  EXPECT_EQ(gcodeBaseName("Benchy_PLA_0.2.gcode"), "Benchy_PLA_0.2");
  // A base name sanitised again (print.json of a working folder) keeps its dots.
  EXPECT_EQ(safeBaseName("Benchy_PLA_0.2"), "Benchy_PLA_0.2");
  EXPECT_EQ(safeBaseName("../x y"), "_x_y");
  EXPECT_EQ(safeBaseName(""), "timelapse");
  EXPECT_EQ(frameFileName(42), "frame000042.jpg");

  TempDir dir;
  EXPECT_EQ(nextSequence(dir.path, "cube"), 1);
  writeBytes(dir.path / "cube_1.mp4", {1});
  writeBytes(dir.path / "cube_1_40.jpg", {1});
  EXPECT_EQ(nextSequence(dir.path, "cube"), 2);
  writeBytes(dir.path / "cube_7_12.jpg", {1});  // a thumbnail whose video was deleted still counts
  EXPECT_EQ(nextSequence(dir.path, "cube"), 8);
  writeBytes(dir.path / "cube_2_1.mp4", {1});  // the video of "cube_2", not of "cube"
  writeBytes(dir.path / "cube_x.mp4", {1});
  writeBytes(dir.path / "cubes_9.mp4", {1});
  EXPECT_EQ(nextSequence(dir.path, "cube"), 8);
  EXPECT_EQ(nextSequence(dir.path, "cube_2"), 2);
}

TEST(TimelapseAssembly, PrintStatusPrefersVirtualSdcardLayer) {
  auto s = printStatusFrom(nlohmann::json::parse(R"({
    "print_stats": {"state": "printing", "filename": "a.gcode", "info": {"current_layer": 7, "total_layer": 50}},
    "virtual_sdcard": {"current_layer": 9, "total_layer": 40}})"));
  EXPECT_EQ(s.state, "printing");
  EXPECT_EQ(s.filename, "a.gcode");
  EXPECT_EQ(s.currentLayer, 9);
  EXPECT_EQ(s.totalLayer, 40);
  s = printStatusFrom(nlohmann::json::parse(R"({
    "print_stats": {"state": "printing", "filename": "a.gcode", "info": {"current_layer": 7, "total_layer": 50}},
    "virtual_sdcard": {"current_layer": null}})"));
  EXPECT_EQ(s.currentLayer, 7);
  EXPECT_EQ(s.totalLayer, 50);
  s = printStatusFrom(nlohmann::json::parse(R"({"print_stats": {"state": "standby", "info": {}}})"));
  EXPECT_FALSE(s.currentLayer.has_value());
}

// ----------------------------------------------------------------------------- assembly

TEST(TimelapseAssembly, FramesBecomeAFastStartMp4AndAThumbnail) {
  TempDir out;
  const hal::Size size{320, 240};
  const fs::path folder = makeFrameFolder(out.path, "benchy.gcode", 24, size);
  writeBytes(out.path / "benchy_3.mp4", {0});  // sequence 4 is next
  AssemblyOptions o;
  o.fps = 12;
  o.duplicateLast = 6;
  AssemblyProgress progress;
  auto r = assembleFrames(folder, out.path, o, &progress);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->video, out.path / "benchy_4.mp4");
  EXPECT_EQ(r->thumbnail, out.path / "benchy_4_24.jpg");
  EXPECT_EQ(r->framesUsed, 24u);
  EXPECT_EQ(r->videoFrames, 30u);
  EXPECT_EQ(progress.framesDone.load(), 30u);
  EXPECT_EQ(progress.framesTotal.load(), 30u);
  EXPECT_FALSE(fs::exists(folder)) << "the working folder is removed once the video exists";
  const Probe p = probe(r->video);
  EXPECT_EQ(p.codec, "h264");
  EXPECT_EQ(p.frames, 30);
  EXPECT_EQ(p.fps, "12/1");
  EXPECT_EQ(p.width, 320);
  EXPECT_EQ(p.height, 240);
  EXPECT_TRUE(p.moovFirst);
  EXPECT_TRUE(p.decodes);
  auto thumb = codecs::inspectJpeg(std::vector<uint8_t>(
      std::istreambuf_iterator<char>(*std::make_unique<std::ifstream>(r->thumbnail, std::ios::binary)), {}));
  ASSERT_TRUE(thumb.ok());
  EXPECT_EQ(thumb->size, size);
  // Nothing else in the folder: no temp files.
  EXPECT_EQ(namesIn(out.path),
            (std::vector<std::string>{".frames", "benchy_3.mp4", "benchy_4.mp4", "benchy_4_24.jpg"}));
}

TEST(TimelapseAssembly, VariableFpsFlipAndACorruptFrame) {
  TempDir out;
  const hal::Size size{160, 120};
  const fs::path folder = makeFrameFolder(out.path, "vase.gcode", 30, size);
  writeBytes(folder / frameFileName(31), {0xFF, 0xD8, 0x00, 0x01});  // truncated JPEG: skipped
  AssemblyOptions o;
  o.variableFps = true;
  o.targetLengthS = 3;  // 31 frames / 3 s = 10 fps
  o.flipX = true;
  auto r = assembleFrames(folder, out.path, o);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->fps, 10);
  EXPECT_EQ(r->framesSkipped, 1u);
  const Probe p = probe(r->video);
  EXPECT_EQ(p.frames, 30);
  EXPECT_EQ(p.fps, "10/1");
  EXPECT_TRUE(p.decodes);
  // Flipped left-right: the bright half is now on the right (thumbnail = the last video frame).
  std::ifstream in(r->thumbnail, std::ios::binary);
  std::vector<uint8_t> jpeg((std::istreambuf_iterator<char>(in)), {});
  auto pool = *hal::FramePool::create(hal::fourcc::kI420, size, 1);
  auto frame = codecs::decodeJpegToI420(jpeg, *pool, hal::Clock::now(), 0);
  ASSERT_TRUE(frame.ok());
  const auto& y = frame->plane(0);
  EXPECT_LT(y.data[60 * y.stride + 10], 128);
  EXPECT_GT(y.data[60 * y.stride + 150], 180);
}

TEST(TimelapseAssembly, AnEmptyFolderIsRemovedAndACrashAfterTheVideoMakesNoSecondCopy) {
  TempDir out;
  auto empty = createFrameFolder(out.path, "none", "none.gcode");
  ASSERT_TRUE(empty.ok());
  auto r = assembleFrames(*empty, out.path, {});
  EXPECT_EQ(r.code(), hal::Errc::InvalidArgument);
  EXPECT_FALSE(fs::exists(*empty));

  const fs::path folder = makeFrameFolder(out.path, "x.gcode", 3, {64, 48});
  writeBytes(out.path / "x_1.mp4", {0});
  std::ofstream(folder / "assembled") << "x_1.mp4";
  r = assembleFrames(folder, out.path, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->video, out.path / "x_1.mp4");
  EXPECT_FALSE(fs::exists(folder));
  EXPECT_FALSE(fs::exists(out.path / "x_2.mp4"));
}

// A full disk: frames kept, a clear error, no MP4 and no temp file. A 64 KiB tmpfs when this
// process may mount (root with CAP_SYS_ADMIN), else RLIMIT_FSIZE (writes fail with EFBIG).
TEST(TimelapseAssembly, DiskFullKeepsTheFramesAndLeavesNoPartialFile) {
  TempDir frames, out;
  const fs::path folder = makeFrameFolder(frames.path, "big.gcode", 12, {320, 240}, /*noise=*/true);
  const bool mounted = ::mount("tmpfs", out.path.c_str(), "tmpfs", 0, "size=64k") == 0;
  rlimit old{};
  ::getrlimit(RLIMIT_FSIZE, &old);
  void (*oldHandler)(int) = nullptr;
  if (!mounted) {
    oldHandler = ::signal(SIGXFSZ, SIG_IGN);
    rlimit small = old;
    small.rlim_cur = 64 * 1024;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  }
  RecordProperty("disk_full_method", mounted ? "tmpfs 64k" : "RLIMIT_FSIZE 64k");
  auto r = assembleFrames(folder, out.path, {});
  if (mounted) {
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(namesIn(out.path).empty()) << fmt::format("{}", fmt::join(namesIn(out.path), " "));
    ::umount(out.path.c_str());
  } else {
    ::setrlimit(RLIMIT_FSIZE, &old);
    ::signal(SIGXFSZ, oldHandler);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(namesIn(out.path).empty()) << fmt::format("{}", fmt::join(namesIn(out.path), " "));
  }
  EXPECT_EQ(r.code(), hal::Errc::Io) << r.error().describe();
  EXPECT_NE(r.error().describe().find(out.path.string()), std::string::npos) << r.error().describe();
  EXPECT_TRUE(fs::exists(folder / frameFileName(12))) << "frames are kept";
  EXPECT_TRUE(fs::exists(folder / "print.json"));
}

// ----------------------------------------------------------------------------- recorder

namespace {

// The camera: a JPEG per request, its grey level counting up.
struct FakeCamera {
  std::atomic<int> shots{0};
  hal::Size size{160, 120};
  SnapshotSource source() {
    return [this](std::chrono::milliseconds) -> hal::Result<hal::PacketPtr> {
      auto p = std::make_shared<hal::Packet>();
      p->codec = hal::fourcc::kMJPEG;
      p->data = makeJpeg(size, ++shots);
      return hal::PacketPtr(p);
    };
  }
};

RecorderConfig recorderConfig(const fs::path& out, TimelapseMode mode = TimelapseMode::Layer) {
  RecorderConfig c;
  c.mode = mode;
  c.interval = 100ms;
  c.delay = 5ms;
  c.recordingFolder = [out] { return hal::Result<fs::path>(out); };
  c.assembly.fps = 10;
  return c;
}

fs::path onlyVideo(const fs::path& dir) {
  fs::path found;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".mp4") found = e.path();
  return found;
}

}  // namespace

TEST(TimelapseRecorder, OrphanedFramesAreAssembledAtStart) {
  TempDir out;
  makeFrameFolder(out.path, "crashed.gcode", 8, {160, 120});
  // What a crash in the middle of an earlier assembly left: the MP4 writer's temps.
  writeBytes(out.path / "crashed_1.mp4.part", {1, 2, 3});
  writeBytes(out.path / "crashed_1.mp4.mdat.part", {1, 2, 3});
  FakeCamera camera;
  TimelapseRecorder rec(recorderConfig(out.path), camera.source());
  rec.start();
  rec.onStatus(PrintStatus{"standby", "", std::nullopt, std::nullopt});  // Moonraker: nothing printing
  ASSERT_TRUE(waitUntil([&] { return rec.videosMade() == 1; }, 30s)) << rec.status().dump();
  EXPECT_TRUE(fs::exists(out.path / "crashed_1.mp4"));
  EXPECT_TRUE(fs::exists(out.path / "crashed_1_8.jpg"));
  EXPECT_TRUE(listFrameFolders(out.path).empty());
  EXPECT_EQ(namesIn(out.path), (std::vector<std::string>{".frames", "crashed_1.mp4", "crashed_1_8.jpg"}));
  EXPECT_EQ(probe(out.path / "crashed_1.mp4").frames, 8);
  EXPECT_EQ(camera.shots.load(), 0);
  // Linux lets any thread lower itself to SCHED_IDLE.
  EXPECT_EQ(rec.status()["assembly"]["priority"], "SCHED_IDLE");
}

TEST(TimelapseRecorder, APrintStillRunningAfterARestartContinuesInItsFolder) {
  TempDir out;
  const fs::path resumed = makeFrameFolder(out.path, "long.gcode", 5, {160, 120});
  makeFrameFolder(out.path, "other.gcode", 3, {160, 120});
  FakeCamera camera;
  TimelapseRecorder rec(recorderConfig(out.path), camera.source());
  rec.start();
  // Nothing is assembled before Moonraker says what is printing (orphanWait is 30 s).
  EXPECT_EQ(rec.status()["assembly"]["waiting_for_moonraker"], 2) << rec.status().dump();
  EXPECT_EQ(rec.status()["assembly"]["queued"], 0);
  rec.onStatus(printing("long.gcode", 6));
  ASSERT_TRUE(waitUntil([&] { return rec.framesCaptured() == 6; }, 10s)) << rec.status().dump();
  EXPECT_EQ(rec.status()["recording"]["folder"], resumed.string());
  // The other print's frames are assembled meanwhile.
  ASSERT_TRUE(waitUntil([&] { return rec.videosMade() == 1; }, 30s)) << rec.status().dump();
  EXPECT_TRUE(fs::exists(out.path / "other_1.mp4"));
  for (int layer = 7; layer <= 8; ++layer) {
    rec.onStatus(printing("long.gcode", layer));
    ASSERT_TRUE(waitUntil([&] { return rec.framesCaptured() == static_cast<uint64_t>(layer); }, 10s));
  }
  rec.onStatus(PrintStatus{"complete", "long.gcode", 8, 40});
  ASSERT_TRUE(waitUntil([&] { return rec.videosMade() == 2; }, 30s)) << rec.status().dump();
  EXPECT_EQ(probe(out.path / "long_1.mp4").frames, 8);
  EXPECT_TRUE(listFrameFolders(out.path).empty());
}

TEST(TimelapseRecorder, WithoutMoonrakerOrphansWaitOnlyOrphanWait) {
  TempDir out;
  makeFrameFolder(out.path, "alone.gcode", 2, {160, 120});
  FakeCamera camera;
  auto config = recorderConfig(out.path);
  config.orphanWait = 200ms;
  TimelapseRecorder rec(config, camera.source());
  rec.start();
  ASSERT_TRUE(waitUntil([&] { return rec.videosMade() == 1; }, 30s)) << rec.status().dump();
  EXPECT_TRUE(fs::exists(out.path / "alone_1.mp4"));
}

TEST(TimelapseRecorder, UnwritableFolderIsReportedAndNothingIsCaptured) {
  TempDir out;
  FakeCamera camera;
  TimelapseRecorder rec(recorderConfig(out.path / "file-not-folder"), camera.source());
  writeBytes(out.path / "file-not-folder", {1});
  rec.start();
  rec.onStatus(printing("a.gcode", 1));
  ASSERT_TRUE(waitUntil([&] { return !rec.status()["last_error"].get<std::string>().empty(); }, 10s));
  EXPECT_NE(rec.status()["last_error"].get<std::string>().find("cannot start recording a.gcode"),
            std::string::npos)
      << rec.status().dump();
  EXPECT_EQ(camera.shots.load(), 0);
}

// Frames onto a full disk: each failure is reported, the frames stored so far stay whole, and
// the assembly that cannot write its video leaves no MP4 and keeps the frames. A 48 KiB tmpfs when
// this process may mount, else RLIMIT_FSIZE 4 KiB (every frame is bigger: all fail).
TEST(TimelapseRecorder, DiskFullWhileRecording) {
  TempDir out;
  const bool mounted = ::mount("tmpfs", out.path.c_str(), "tmpfs", 0, "size=48k") == 0;
  rlimit old{};
  ::getrlimit(RLIMIT_FSIZE, &old);
  void (*oldHandler)(int) = nullptr;
  if (!mounted) {
    oldHandler = ::signal(SIGXFSZ, SIG_IGN);
    rlimit small = old;
    small.rlim_cur = 4 * 1024;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  }
  RecordProperty("disk_full_method", mounted ? "tmpfs 48k" : "RLIMIT_FSIZE 4k");
  std::atomic<int> shots{0};
  SnapshotSource noisy = [&](std::chrono::milliseconds) -> hal::Result<hal::PacketPtr> {
    auto p = std::make_shared<hal::Packet>();
    p->data = makeJpeg({160, 120}, ++shots, /*noise=*/true);  // ~20 KiB
    return hal::PacketPtr(p);
  };
  {
    TimelapseRecorder rec(recorderConfig(out.path), noisy);
    rec.start();
    rec.onStatus(printing("full.gcode", 0));
    for (int layer = 1; layer <= 6; ++layer) {
      rec.onStatus(printing("full.gcode", layer));
      ASSERT_TRUE(waitUntil([&] { return shots.load() == layer; }, 10s));
    }
    ASSERT_TRUE(waitUntil(
        [&] {
          return rec.status()["recording"]["capture_failures"].get<int>() +
                     static_cast<int>(rec.framesCaptured()) ==
                 6;
        },
        10s))
        << rec.status().dump();
    const auto st = rec.status();
    EXPECT_GT(st["recording"]["capture_failures"].get<int>(), 0) << st.dump();
    EXPECT_NE(st["last_error"].get<std::string>().find("frame not stored"), std::string::npos) << st.dump();
    const fs::path folder = st["recording"]["folder"].get<std::string>();
    for (uint64_t i = 1; i <= rec.framesCaptured(); ++i) {
      std::ifstream in(folder / frameFileName(i), std::ios::binary);
      std::vector<uint8_t> jpeg((std::istreambuf_iterator<char>(in)), {});
      auto pool = *hal::FramePool::create(hal::fourcc::kI420, {160, 120}, 1);
      EXPECT_TRUE(codecs::decodeJpegToI420(jpeg, *pool, hal::Clock::now(), 0).ok()) << "frame " << i;
    }
    rec.onStatus(PrintStatus{"complete", "full.gcode", 6, 6});
    if (rec.framesCaptured() > 0) {
      ASSERT_TRUE(waitUntil([&] { return rec.status()["assembly"]["failures"] == 1; }, 30s))
          << rec.status().dump();
      EXPECT_NE(rec.status()["last_error"].get<std::string>().find("assembly of full-"), std::string::npos);
      EXPECT_TRUE(fs::exists(folder / frameFileName(1))) << "frames kept";
    }
    rec.stop();
    for (const auto& name : namesIn(out.path))
      EXPECT_FALSE(name.ends_with(".mp4") || name.ends_with(".part")) << name;
  }
  if (mounted) {
    ::umount(out.path.c_str());
  } else {
    ::setrlimit(RLIMIT_FSIZE, &old);
    ::signal(SIGXFSZ, oldHandler);
  }
}

// The whole chain: fake Moonraker -> MoonrakerClient -> recorder -> MP4.
struct PrintRig {
  TempDir out;
  std::string socketPath = (out.path / "moonraker.sock").string();
  printcast::testing::FakeMoonraker moonraker;
  FakeCamera camera;
  TimelapseRecorder recorder;
  MoonrakerClient client;
  PrintRig(bool websocket, TimelapseMode mode = TimelapseMode::Layer)
      : moonraker(websocket ? "" : socketPath, websocket),
        recorder(recorderConfig(out.path / "videos", mode), camera.source()),
        client(
            [&] {
              MoonrakerConfig c;
              if (!websocket) c.socketPath = socketPath;
              c.port = moonraker.port();
              c.firstRetry = 50ms;
              c.maxRetry = 200ms;
              return c;
            }(),
            [this](const PrintStatus& s) { recorder.onStatus(s); }) {
    fs::create_directories(out.path / "videos");
    recorder.start();
    client.start();
  }
  ~PrintRig() {
    client.stop();
    recorder.stop();
  }
  void layer(int n) {
    moonraker.update({{"virtual_sdcard", {{"current_layer", n}}}});
    ASSERT_TRUE(waitUntil([&] { return recorder.framesCaptured() >= static_cast<uint64_t>(n); }, 10s))
        << "layer " << n << ": " << recorder.status().dump();
  }
};

TEST(TimelapsePrint, FortyLayersOverTheUnixSocket) {
  PrintRig rig(/*websocket=*/false);
  ASSERT_TRUE(rig.moonraker.waitForSubscribes(1, 10s));
  rig.moonraker.update({{"print_stats", {{"state", "printing"}, {"filename", "cube.gcode"}}},
                        {"virtual_sdcard", {{"current_layer", 0}, {"total_layer", 40}}}});
  for (int n = 1; n <= 40; ++n) rig.layer(n);
  rig.moonraker.update({{"print_stats", {{"state", "complete"}}}});
  ASSERT_TRUE(waitUntil([&] { return rig.recorder.videosMade() == 1; }, 30s)) << rig.recorder.status().dump();
  const fs::path videos = rig.out.path / "videos";
  EXPECT_TRUE(fs::exists(videos / "cube_1.mp4"));
  EXPECT_TRUE(fs::exists(videos / "cube_1_40.jpg"));
  const Probe p = probe(videos / "cube_1.mp4");
  EXPECT_EQ(p.frames, 40);
  EXPECT_EQ(p.fps, "10/1");
  EXPECT_EQ(p.width, 160);
  EXPECT_TRUE(p.moovFirst);
  EXPECT_TRUE(p.decodes);
  EXPECT_EQ(rig.camera.shots.load(), 40);
  const auto st = rig.client.state();
  EXPECT_EQ(st.state, "subscribed");
  EXPECT_EQ(st.print.state, "complete");
  EXPECT_EQ(rig.moonraker.calls("server.connection.identify").size(), 1u);
}

TEST(TimelapsePrint, CancelledPrintOverWebSocketKeepsAPartialVideo) {
  PrintRig rig(/*websocket=*/true);
  ASSERT_TRUE(rig.moonraker.waitForSubscribes(1, 10s));
  EXPECT_EQ(rig.client.state().endpoint, fmt::format("ws://127.0.0.1:{}/websocket", rig.moonraker.port()));
  // print_stats.info.current_layer (SET_PRINT_STATS_INFO) when virtual_sdcard has none.
  rig.moonraker.update({{"print_stats", {{"state", "printing"}, {"filename", "sub/part two.gcode"}}}});
  for (int n = 1; n <= 7; ++n) {
    rig.moonraker.update({{"print_stats", {{"info", {{"current_layer", n}, {"total_layer", 40}}}}}});
    ASSERT_TRUE(waitUntil([&] { return rig.recorder.framesCaptured() >= static_cast<uint64_t>(n); }, 10s));
  }
  rig.moonraker.update({{"print_stats", {{"state", "cancelled"}}}});
  ASSERT_TRUE(waitUntil([&] { return rig.recorder.videosMade() == 1; }, 30s)) << rig.recorder.status().dump();
  const Probe p = probe(rig.out.path / "videos" / "part_two_1.mp4");
  EXPECT_EQ(p.frames, 7);
  EXPECT_TRUE(p.decodes);
  EXPECT_TRUE(fs::exists(rig.out.path / "videos" / "part_two_1_7.jpg"));
}

TEST(TimelapsePrint, MoonrakerRestartMidPrintContinuesTheSameVideo) {
  PrintRig rig(/*websocket=*/false);
  ASSERT_TRUE(rig.moonraker.waitForSubscribes(1, 10s));
  rig.moonraker.update({{"print_stats", {{"state", "printing"}, {"filename", "tower.gcode"}}},
                        {"virtual_sdcard", {{"current_layer", 0}}}});
  for (int n = 1; n <= 5; ++n) rig.layer(n);
  rig.moonraker.restart(300ms);
  ASSERT_TRUE(waitUntil([&] { return rig.client.state().state == "disconnected"; }, 5s));
  // Klippy comes back later than Moonraker: the first subscribe is refused, then
  // notify_klippy_ready triggers another.
  rig.moonraker.setKlippyReady(false);
  ASSERT_TRUE(waitUntil([&] { return rig.client.state().klippy.rfind("not ready", 0) == 0; }, 10s))
      << rig.client.state().klippy;
  rig.moonraker.setKlippyReady(true);
  ASSERT_TRUE(rig.moonraker.waitForSubscribes(2, 10s));
  EXPECT_EQ(rig.client.state().connections, 2u);
  for (int n = 6; n <= 10; ++n) rig.layer(n);
  rig.moonraker.update({{"print_stats", {{"state", "complete"}}}});
  ASSERT_TRUE(waitUntil([&] { return rig.recorder.videosMade() == 1; }, 30s)) << rig.recorder.status().dump();
  const fs::path videos = rig.out.path / "videos";
  EXPECT_EQ(probe(videos / "tower_1.mp4").frames, 10);
  EXPECT_FALSE(fs::exists(videos / "tower_2.mp4"));
}

TEST(TimelapsePrint, Hyperlapse) {
  PrintRig rig(/*websocket=*/true, TimelapseMode::Hyperlapse);
  ASSERT_TRUE(rig.moonraker.waitForSubscribes(1, 10s));
  rig.moonraker.update({{"print_stats", {{"state", "printing"}, {"filename", "hyper.gcode"}}}});
  ASSERT_TRUE(waitUntil([&] { return rig.recorder.framesCaptured() >= 6; }, 10s))
      << rig.recorder.status().dump();
  rig.moonraker.update({{"print_stats", {{"state", "complete"}}}});
  ASSERT_TRUE(waitUntil([&] { return rig.recorder.videosMade() == 1; }, 30s)) << rig.recorder.status().dump();
  const fs::path video = onlyVideo(rig.out.path / "videos");
  ASSERT_EQ(video.filename(), "hyper_1.mp4");
  const Probe p = probe(video);
  EXPECT_GE(p.frames, 6);
  EXPECT_EQ(static_cast<uint64_t>(p.frames), rig.recorder.framesCaptured());
  EXPECT_TRUE(p.decodes);
}

TEST(MoonrakerClient, CallsAreQueuedUntilConnectedAndErrorsKept) {
  TempDir dir;
  const std::string path = (dir.path / "m.sock").string();
  MoonrakerConfig c;
  c.socketPath = path;
  c.firstRetry = 50ms;
  c.maxRetry = 100ms;
  MoonrakerClient client(c, {});
  client.start();
  client.call("server.webcams.post_item", {{"name", "printcast"}, {"service", "mjpegstreamer-adaptive"}});
  client.call("no.such.method", nlohmann::json::object());
  ASSERT_TRUE(waitUntil([&] { return client.state().state == "disconnected"; }, 5s));
  EXPECT_NE(client.state().lastError.find(path), std::string::npos) << client.state().lastError;
  printcast::testing::FakeMoonraker moonraker(path, false);
  ASSERT_TRUE(moonraker.waitForCall("server.webcams.post_item", 10s));
  EXPECT_EQ(moonraker.calls("server.webcams.post_item")[0]["service"], "mjpegstreamer-adaptive");
  ASSERT_TRUE(
      waitUntil([&] { return client.state().lastError.find("Method not found") != std::string::npos; }, 5s))
      << client.state().lastError;
}

// A Moonraker host that never answers (a blackholed address, or no route) holds neither the
// client's thread nor stop(): the connect is non-blocking and stop() wakes it.
TEST(MoonrakerClient, StopIsPromptWhileConnecting) {
  MoonrakerConfig c;
  c.host = "10.255.255.1";  // not routed: SYN goes nowhere (or fails at once without a route)
  c.port = 7125;
  MoonrakerClient client(c, {});
  client.start();
  ASSERT_TRUE(waitUntil([&] { return client.state().state != "stopped"; }, 5s));
  std::this_thread::sleep_for(100ms);  // let it enter connect() or its backoff sleep
  const auto t0 = SteadyClock::now();
  client.stop();
  EXPECT_LT(SteadyClock::now() - t0, 1s);
  EXPECT_EQ(client.state().state, "stopped");
}
