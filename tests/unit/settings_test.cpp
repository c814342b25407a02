// SPDX-License-Identifier: MIT
// Streamer settings: JSON keys, comments, string-typed values, errors that name the key and range.
#include "settings.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "printcast/bsp/registry.h"

using printcast::streamer::applyConfigJson;
using printcast::streamer::finalizeSettings;
using printcast::streamer::parseResolution;
using printcast::streamer::Settings;

namespace {
std::string errorOf(const std::string& json) {
  Settings s;
  std::vector<std::string> warnings;
  auto st = applyConfigJson(json, "app.json", s, warnings);
  return st ? "" : st.error().message;
}
// `json` applied and finalized for the virtual board: the settings, and the error ("" when none).
std::pair<Settings, std::string> finalized(const std::string& json) {
  auto board = printcast::bsp::findBoard("virtual");
  if (!board) return {Settings{}, board.error().message};
  Settings s;
  std::vector<std::string> warnings;
  auto st = applyConfigJson(json, "app.json", s, warnings);
  if (st) st = finalizeSettings(s, **board);
  return {s, st ? std::string() : st.error().message};
}
}  // namespace

TEST(Settings, ReadsH264StreamerKeysWithCommentsAndStrings) {
  Settings s;
  std::vector<std::string> warnings;
  const auto st = applyConfigJson(R"({
    // Rinkhals app.json style
    "mode": "go-klipper", "bitrate": "1024", "mjpeg_fps": 15, "auto_skip": "true",
    "target_cpu": 70, "jpeg_quality": 90, "display_enabled": false, "display_fps": 2,
    "logging": 1, "some_future_key": "layer"
  })",
                                  "app.json", s, warnings);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(s.mode, "go-klipper");
  EXPECT_EQ(s.bitrateKbps, 1024);
  EXPECT_EQ(s.mjpegFps, 15);
  EXPECT_TRUE(s.autoSkip);
  EXPECT_EQ(s.targetCpu, 70);
  EXPECT_EQ(s.jpegQuality, 90);
  EXPECT_FALSE(s.displayEnabled);
  EXPECT_EQ(s.displayFps, 2);
  EXPECT_TRUE(s.logging);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("some_future_key"), std::string::npos);
}

TEST(Settings, BadValuesNameTheKeyAndTheAllowedRange) {
  EXPECT_EQ(errorOf(R"({"bitrate": 50})"), "app.json: bitrate = 50: must be an integer in 100..20000");
  EXPECT_EQ(errorOf(R"({"target_cpu": "high"})"),
            "app.json: target_cpu = \"high\": must be an integer in 20..95");
  EXPECT_EQ(errorOf(R"({"jpeg_quality": 80.5})"),
            "app.json: jpeg_quality = 80.5: must be an integer in 1..100");
  EXPECT_EQ(errorOf(R"({"mode": "marlin"})"),
            "app.json: mode = \"marlin\": must be one of go-klipper, vanilla-klipper");
  EXPECT_EQ(errorOf(R"({"auto_skip": "yes"})"), "app.json: auto_skip = \"yes\": must be true or false");
  EXPECT_EQ(errorOf(R"({"resolution": "big"})"),
            "app.json: resolution = \"big\": must be WIDTHxHEIGHT, e.g. 1280x720");
  // Numbers beyond every integer type (found by fuzz_settings) are refused, not cast.
  EXPECT_EQ(errorOf(R"({"port": 808088888888888888888888888888888888})"),
            "app.json: port = 8.080888888888889e+35: must be an integer in 0..65535");
  EXPECT_EQ(errorOf(R"({"port": 18446744073709551615})"),
            "app.json: port = 18446744073709551615: must be an integer in 0..65535");
  EXPECT_EQ(errorOf(R"({"port": -1e300})"), "app.json: port = -1e+300: must be an integer in 0..65535");
  EXPECT_EQ(errorOf("[1,2]"), "app.json: the top level must be a JSON object");
  EXPECT_EQ(errorOf("{\"port\": "), "app.json: not valid JSON");
}

TEST(Settings, CameraRotationFlipsAndOutputSizes) {
  EXPECT_EQ(errorOf(R"({"camera_rotation": 45})"),
            "app.json: camera_rotation = 45: must be 0, 90, 180 or 270 (degrees clockwise)");
  EXPECT_EQ(errorOf(R"({"camera_rotation": 360})"),
            "app.json: camera_rotation = 360: must be an integer in 0..270");
  EXPECT_EQ(errorOf(R"({"camera_flip_x": "left"})"),
            "app.json: camera_flip_x = \"left\": must be true or false");
  EXPECT_EQ(errorOf(R"({"encoder_type": "nvenc"})")
                .find("app.json: encoder_type = \"nvenc\": must be one of auto, x264, "
                      "v4l2m2m, vaapi"),
            0u);
  EXPECT_EQ(errorOf(R"({"stream_resolution": "small"})"),
            "app.json: stream_resolution = \"small\": must be WIDTHxHEIGHT, e.g. 640x360, or \"camera\"");
  {
    Settings sized;
    std::vector<std::string> w;
    ASSERT_TRUE(applyConfigJson(R"({"stream_resolution": "640x360", "snapshot_resolution": "camera"})",
                                "app.json", sized, w)
                    .ok());
    EXPECT_EQ(sized.streamSize, (printcast::hal::Size{640, 360}));
    EXPECT_TRUE(sized.snapshotSize.empty());
    sized.snapshotSize = {641, 360};
    const auto board = printcast::bsp::findBoard("virtual");
    ASSERT_TRUE(board.ok());
    const auto st = finalizeSettings(sized, **board);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("snapshot_resolution = 641x360: must be even"), std::string::npos)
        << st.error().message;
  }
  using printcast::hal::Transform;
  Settings s;
  std::vector<std::string> warnings;
  ASSERT_TRUE(
      applyConfigJson(R"({"camera_rotation": 90, "camera_flip_x": true})", "app.json", s, warnings).ok());
  EXPECT_EQ(printcast::streamer::cameraTransform(s), Transform::rot90().then(Transform::hflip()));
  EXPECT_EQ(printcast::streamer::cameraTransform(s), Transform::transpose());
  s = Settings{};
  EXPECT_EQ(printcast::streamer::cameraTransform(s), Transform::identity());
  s.cameraRotation = 180;
  s.cameraFlipY = true;
  EXPECT_EQ(printcast::streamer::cameraTransform(s), Transform::hflip())
      << "upside down, then upside down again";
}

TEST(Settings, FinalizeFillsBoardDefaultsAndChecksLimits) {
  auto board = printcast::bsp::findBoard("virtual");
  ASSERT_TRUE(board.ok());
  Settings s;
  ASSERT_TRUE(finalizeSettings(s, **board).ok());
  EXPECT_EQ(s.width, (*board)->camera.defaultSize.width);
  EXPECT_EQ(s.fps, (*board)->camera.defaultFps);
  EXPECT_EQ(s.gopFrames, 2 * s.fps);

  Settings odd;
  odd.width = 641;
  odd.height = 480;
  auto st = finalizeSettings(odd, **board);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("resolution = 641x480"), std::string::npos) << st.error().message;

  Settings fast;
  fast.displayFps = 60;
  st = finalizeSettings(fast, **board);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("display_fps = 60"), std::string::npos) << st.error().message;
}

TEST(Settings, ParseResolution) {
  EXPECT_EQ(*parseResolution("1280x720"), (printcast::hal::Size{1280, 720}));
  EXPECT_EQ(*parseResolution("640X480"), (printcast::hal::Size{640, 480}));
  EXPECT_FALSE(parseResolution("1280").ok());
  EXPECT_FALSE(parseResolution("x720").ok());
  EXPECT_FALSE(parseResolution("12a0x720").ok());
  EXPECT_FALSE(parseResolution("0x0").ok());
}

TEST(Settings, DeviceOverridesForABenchOrTheLab) {
  Settings s;
  std::vector<std::string> warnings;
  const auto st = applyConfigJson(R"({"device": "/dev/video0", "display_node": "/dev/dri/card0",
                                      "touch_name": "hyn_ts"})",
                                  "app.json", s, warnings);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(s.device, "/dev/video0");
  EXPECT_EQ(s.displayNode, "/dev/dri/card0");
  EXPECT_EQ(s.touchName, "hyn_ts");
  EXPECT_TRUE(warnings.empty());
  EXPECT_NE(errorOf(R"({"touch_name": 5})").find("touch_name"), std::string::npos);
}

TEST(Settings, SourceNamesTheCameraAndDeviceIsItsOlderName) {
  auto board = printcast::bsp::findBoard("virtual");
  ASSERT_TRUE(board);
  EXPECT_EQ(finalized(R"({"device": "/dev/video2"})").first.source, "/dev/video2");
  EXPECT_EQ(finalized(R"({"device": "/dev/video2", "source": "test-pattern"})").first.source, "test-pattern");
  EXPECT_EQ(finalized(R"({"source": "ws-push", "ingest_max_message_kb": 512})").first.ingestMaxMessageKb,
            512);
  EXPECT_NE(finalized(R"({"ingest_max_message_kb": 8})").second.find("ingest_max_message_kb"),
            std::string::npos);
  const auto [http, ok] = finalized(R"({"source": "http://user:pw@cam.local:81/stream"})");
  EXPECT_EQ(ok, "");
  EXPECT_EQ(http.source, "http://user:pw@cam.local:81/stream");
  EXPECT_EQ(finalized(R"({"source": "rtsp://admin:pw@cam/stream1", "rtsp_transport": "udp"})").second, "");
  EXPECT_NE(finalized(R"({"rtsp_transport": "http"})").second.find("rtsp_transport"), std::string::npos);
  EXPECT_NE(finalized(R"({"rtsp_auth": true})").second.find("rtsp_auth"), std::string::npos)
      << "needs a token";
  EXPECT_NE(finalized(R"({"publish": "rtmp://x/live"})").second.find("publish"), std::string::npos);
  EXPECT_EQ(finalized(R"({"publish": "rtsp://u:p@mediamtx:8554/printer1"})").second, "");
  // Several targets: a list; each is checked and a bad one is named.
  const auto [two, twoOk] =
      finalized(R"({"publish": ["rtsp://mediamtx:8554/printer1", "rtmp://go2rtc/live/key"]})");
  EXPECT_EQ(twoOk, "");
  EXPECT_EQ(two.publish.size(), 2u);
  const std::string badSecond =
      finalized(R"({"publish": ["rtsp://mediamtx:8554/p1", "rtmp://x/live"]})").second;
  EXPECT_NE(badSecond.find("publish = \"rtmp://x/live\""), std::string::npos) << badSecond;
  EXPECT_NE(finalized(R"({"publish": [1]})").second.find("a list of URLs"), std::string::npos);
  EXPECT_TRUE(finalized(R"({"publish": ""})").first.publish.empty());
  // Refusals name the key and say what is accepted.
  const std::string rtmp = finalized(R"({"source": "rtmp://cam/live"})").second;
  EXPECT_NE(rtmp.find("source"), std::string::npos) << rtmp;
  EXPECT_NE(rtmp.find("rtsp://"), std::string::npos) << rtmp;
  const std::string rtsps = finalized(R"({"source": "rtsp://cam:0/x"})").second;
  EXPECT_NE(rtsps.find("source"), std::string::npos) << rtsps;
  const std::string badPort = finalized(R"({"source": "http://cam:99999/"})").second;
  EXPECT_NE(badPort.find("source"), std::string::npos) << badPort;
  EXPECT_NE(badPort.find("port"), std::string::npos) << badPort;
  // Only the test pattern runs unpaced.
  Settings unpaced;
  unpaced.source = "http://cam/stream";
  unpaced.unpaced = true;
  EXPECT_FALSE(finalizeSettings(unpaced, **board));
}

TEST(Settings, TheEsp32RelayProfileSetsTheRelaysLayoutAndFlagsStillWin) {
  Settings s;
  ASSERT_TRUE(printcast::streamer::applyProfile("esp32-relay", s));
  EXPECT_EQ(s.source, "ws-push");
  EXPECT_EQ(s.ingestPort, 8765);
  EXPECT_EQ(s.wsPort, 8766);
  EXPECT_FALSE(s.wsPortTimestamps);
  EXPECT_EQ(s.flvPort, -1);
  EXPECT_EQ(s.port, 8080);
  std::vector<std::string> warnings;
  ASSERT_TRUE(applyConfigJson(R"({"ingest_port": 9000})", "app.json", s, warnings));
  EXPECT_EQ(s.ingestPort, 9000);
  auto board = printcast::bsp::findBoard("virtual");
  ASSERT_TRUE(board);
  EXPECT_TRUE(finalizeSettings(s, **board));

  Settings printer;
  ASSERT_TRUE(printcast::streamer::applyProfile("printer", printer));
  EXPECT_EQ(printer.wsPort, 8765);
  EXPECT_TRUE(printer.wsPortTimestamps);
  auto unknown = printcast::streamer::applyProfile("esp8266", printer);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("--profile"), std::string::npos);
  // An ingest port without ws-push has nothing to take: refused by name.
  Settings lone;
  lone.ingestPort = 8765;
  auto st = finalizeSettings(lone, **board);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("ingest_port"), std::string::npos);
}

TEST(Settings, WsPortDefaultsToRecamerasAndCanBeTurnedOff) {
  Settings s;
  EXPECT_EQ(s.wsPort, 8765);
  std::vector<std::string> warnings;
  ASSERT_TRUE(applyConfigJson(R"({"ws_port": -1})", "app.json", s, warnings).ok());
  EXPECT_EQ(s.wsPort, -1);
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(errorOf(R"({"ws_port": 70000})"), "app.json: ws_port = 70000: must be an integer in -1..65535");
}

// ---- the control API: GET/POST /api/settings validation and the atomic config file write ----

namespace {
using printcast::streamer::saveSettingsFile;
using printcast::streamer::skipIntervalForPercent;
using printcast::streamer::validateSettingsChange;

const printcast::bsp::Board& virtualBoard() {
  auto board = printcast::bsp::findBoard("virtual");
  EXPECT_TRUE(board.ok());
  return **board;
}

std::vector<std::string> folderEntries(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string readAll(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream b;
  b << in.rdbuf();
  return b.str();
}

struct TempDir {
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "printcast-settings-XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::filesystem::path path;
};
}  // namespace

TEST(SettingsApi, AValidChangeAppliesEveryKeyGiven) {
  Settings current;
  current.fps = 15;
  Settings next;
  std::vector<std::string> keys;
  std::string errorKey;
  const auto st = validateSettingsChange(
      R"({"bitrate": 1500, "h264_framerate": 50, "auto_skip": true, "target_cpu": 70, "jpeg_quality": 60,
          "mjpeg_fps": 5, "display_fps": 2, "h264_enabled": false, "display_enabled": false})",
      virtualBoard(), current, next, keys, errorKey);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(next.bitrateKbps, 1500);
  EXPECT_EQ(next.h264FrameratePercent, 50);
  EXPECT_TRUE(next.autoSkip);
  EXPECT_EQ(next.targetCpu, 70);
  EXPECT_EQ(next.jpegQuality, 60);
  EXPECT_EQ(next.mjpegFps, 5);
  EXPECT_EQ(next.displayFps, 2);
  EXPECT_FALSE(next.h264Enabled);
  EXPECT_FALSE(next.displayEnabled);
  EXPECT_EQ(keys.size(), 9u);
  EXPECT_TRUE(errorKey.empty());
}

TEST(SettingsApi, ABadValueNamesTheKeyAndChangesNothing) {
  Settings current;
  current.fps = 15;
  Settings next = current;
  next.bitrateKbps = 777;  // must stay untouched on error
  std::vector<std::string> keys;
  std::string errorKey;
  const auto st = validateSettingsChange(R"({"jpeg_quality": 50, "bitrate": 50})", virtualBoard(), current,
                                         next, keys, errorKey);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(errorKey, "bitrate");
  EXPECT_EQ(st.error().message, "settings: bitrate = 50: must be an integer in 100..20000");
  EXPECT_EQ(next.bitrateKbps, 777);
  EXPECT_EQ(next.jpegQuality, current.jpegQuality);

  // The board's limit (the virtual board's display runs at most its maxFps).
  const int tooFast = virtualBoard().display.maxFps + 1;
  const auto st2 = validateSettingsChange(fmt::format(R"({{"display_fps": {}}})", tooFast), virtualBoard(),
                                          current, next, keys, errorKey);
  ASSERT_FALSE(st2.ok());
  EXPECT_EQ(errorKey, "display_fps");
  // MJPEG can't outrun the camera.
  const auto st3 =
      validateSettingsChange(R"({"mjpeg_fps": 30})", virtualBoard(), current, next, keys, errorKey);
  ASSERT_FALSE(st3.ok());
  EXPECT_EQ(errorKey, "mjpeg_fps");
}

TEST(SettingsApi, StartupOnlyAndUnknownKeysAreRefusedByName) {
  Settings current;
  Settings next;
  std::vector<std::string> keys;
  std::string errorKey;
  auto st = validateSettingsChange(R"({"port": 9000})", virtualBoard(), current, next, keys, errorKey);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(errorKey, "port");
  EXPECT_NE(st.error().message.find("cannot be changed from the control API"), std::string::npos);
  st = validateSettingsChange(R"({"warp_drive": 1})", virtualBoard(), current, next, keys, errorKey);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(errorKey, "warp_drive");
  EXPECT_NE(st.error().message.find("unknown key"), std::string::npos);
  st = validateSettingsChange("[1,2]", virtualBoard(), current, next, keys, errorKey);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(errorKey.empty());
}

TEST(SettingsApi, FramerateSliderMapsToASkipInterval) {
  EXPECT_EQ(skipIntervalForPercent(100), 1);
  EXPECT_EQ(skipIntervalForPercent(50), 2);
  EXPECT_EQ(skipIntervalForPercent(34), 3);
  EXPECT_EQ(skipIntervalForPercent(25), 4);
  EXPECT_EQ(skipIntervalForPercent(10), 10);
  EXPECT_EQ(skipIntervalForPercent(1), 10);
  EXPECT_EQ(skipIntervalForPercent(0), 10);
  EXPECT_EQ(skipIntervalForPercent(250), 1);
  for (int p = 1; p < 100; ++p) EXPECT_GE(skipIntervalForPercent(p), skipIntervalForPercent(p + 1)) << p;
}

TEST(SettingsApi, SaveKeepsOtherKeysReplacesAtomicallyAndLeavesNoTempFile) {
  TempDir dir;
  const auto file = dir.path / "app.json";
  {
    std::ofstream out(file);
    out << R"({ // Rinkhals
      "mode": "go-klipper", "bitrate": 512, "timelapse_mode": "layer" })";
  }
  ASSERT_TRUE(saveSettingsFile(file, R"({"bitrate": 2048, "h264_framerate": 40})").ok());
  EXPECT_EQ(folderEntries(dir.path), std::vector<std::string>{"app.json"});
  const auto saved = nlohmann::json::parse(readAll(file));
  EXPECT_EQ(saved["bitrate"], 2048);
  EXPECT_EQ(saved["h264_framerate"], 40);
  EXPECT_EQ(saved["mode"], "go-klipper");
  EXPECT_EQ(saved["timelapse_mode"], "layer");  // unknown keys survive
  // What was saved reads back through the loader.
  Settings s;
  std::vector<std::string> warnings;
  ASSERT_TRUE(applyConfigJson(readAll(file), "app.json", s, warnings).ok());
  EXPECT_EQ(s.bitrateKbps, 2048);
  EXPECT_EQ(s.h264FrameratePercent, 40);
}

TEST(SettingsApi, SavingADocumentedKeyDropsItsOlderAliasAndKeepsUnknownKeys) {
  TempDir dir;
  const auto file = dir.path / "app.json";
  std::ofstream(file) << R"({"timelapse_fps": 20, "timelapse_min_fps": 4, "some_future_key": [1, 2]})";
  ASSERT_TRUE(saveSettingsFile(file, R"({"timelapse_output_fps": 25})").ok());
  const auto saved = nlohmann::json::parse(readAll(file));
  EXPECT_EQ(saved["timelapse_output_fps"], 25);
  EXPECT_FALSE(saved.contains("timelapse_fps")) << saved.dump();
  EXPECT_EQ(saved["timelapse_min_fps"], 4);  // not saved: stays as written
  EXPECT_EQ(saved["some_future_key"], nlohmann::json::array({1, 2}));
  Settings s;
  std::vector<std::string> warnings;
  ASSERT_TRUE(applyConfigJson(readAll(file), "app.json", s, warnings).ok());
  EXPECT_EQ(s.timelapseFps, 25);
  EXPECT_EQ(s.timelapseMinFps, 4);
}

TEST(SettingsApi, SaveCreatesAMissingFile) {
  TempDir dir;
  const auto file = dir.path / "new.json";
  ASSERT_TRUE(saveSettingsFile(file, R"({"jpeg_quality": 70})").ok());
  EXPECT_EQ(nlohmann::json::parse(readAll(file))["jpeg_quality"], 70);
  EXPECT_EQ(folderEntries(dir.path), std::vector<std::string>{"new.json"});
}

TEST(SettingsApi, ACorruptFileIsNotOverwrittenAndNothingIsLeftBehind) {
  TempDir dir;
  const auto file = dir.path / "app.json";
  {
    std::ofstream out(file);
    out << "{ half-written";
  }
  const auto st = saveSettingsFile(file, R"({"bitrate": 2048})");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("not overwriting"), std::string::npos) << st.error().message;
  EXPECT_EQ(readAll(file), "{ half-written");
  EXPECT_EQ(folderEntries(dir.path), std::vector<std::string>{"app.json"});
}

// Saves into a folder this process cannot write to. Root ignores folder permissions, so under
// root (CI runs as root) the save runs in a child process that has dropped to nobody first.
TEST(SettingsApi, AnUnwritableFolderIsAnIoErrorAndTheFileIsUnchanged) {
  TempDir dir;
  const auto file = dir.path / "app.json";
  {
    std::ofstream out(file);
    out << R"({"bitrate": 512})";
  }
  namespace fs = std::filesystem;
  // Readable and searchable by everyone (nobody must reach the file), writable by no one.
  fs::permissions(dir.path, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                                fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(
      file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
  if (::geteuid() != 0) {
    const auto st = saveSettingsFile(file, R"({"bitrate": 2048})");
    EXPECT_FALSE(st.ok());
  } else {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      constexpr uid_t kNobody = 65534;
      if (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) ::_exit(3);
      const auto st = saveSettingsFile(file, R"({"bitrate": 2048})");
      ::_exit(st.ok() ? 1 : 0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_NE(WEXITSTATUS(status), 3) << "could not drop to uid 65534";
    EXPECT_EQ(WEXITSTATUS(status), 0) << "the save into a read-only folder succeeded";
  }
  fs::permissions(dir.path, fs::perms::owner_all);
  EXPECT_EQ(readAll(file), R"({"bitrate": 512})");
  EXPECT_EQ(folderEntries(dir.path), std::vector<std::string>{"app.json"});
}

TEST(Settings, RingKeysAndTheirErrors) {
  Settings s;
  std::vector<std::string> warnings;
  ASSERT_TRUE(applyConfigJson(R"({"ring": false, "ring_name": "cam2", "ring_size_mb": "16"})", "app.json", s,
                              warnings)
                  .ok());
  EXPECT_FALSE(s.ring);
  EXPECT_EQ(s.ringName, "cam2");
  EXPECT_EQ(s.ringSizeMb, 16);
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(errorOf(R"({"ring_size_mb": 0})"), "app.json: ring_size_mb = 0: must be an integer in 1..256");
  EXPECT_EQ(errorOf(R"({"ring": "maybe"})"), "app.json: ring = \"maybe\": must be true or false");
  auto board = printcast::bsp::findBoard("virtual");
  ASSERT_TRUE(board.ok());
  Settings bad;
  bad.ringName = "../etc/x";
  auto st = finalizeSettings(bad, **board);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("ring_name = \"../etc/x\""), std::string::npos) << st.error().message;
}

TEST(Settings, HlsKeysTheirDefaultsAndErrors) {
  Settings defaults;
  EXPECT_DOUBLE_EQ(defaults.hlsSegmentSeconds, 1.0);
  EXPECT_EQ(defaults.hlsFormat, "fmp4");
  EXPECT_DOUBLE_EQ(defaults.hlsPartSeconds, 0.1);
  Settings s;
  std::vector<std::string> warnings;
  ASSERT_TRUE(applyConfigJson(R"({"hls_segment_seconds": "2.5", "hls_format": "ts", "hls_part_seconds": 0})",
                              "app.json", s, warnings)
                  .ok());
  EXPECT_DOUBLE_EQ(s.hlsSegmentSeconds, 2.5);
  EXPECT_EQ(s.hlsFormat, "ts");
  EXPECT_DOUBLE_EQ(s.hlsPartSeconds, 0.0);
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(errorOf(R"({"hls_segment_seconds": 0.1})"),
            "app.json: hls_segment_seconds = 0.1: must be a number of seconds in 0.5..10");
  EXPECT_EQ(errorOf(R"({"hls_segment_seconds": 0})"),
            "app.json: hls_segment_seconds = 0: must be a number of seconds in 0.5..10");
  EXPECT_EQ(errorOf(R"({"hls_part_seconds": 0.05})"),
            "app.json: hls_part_seconds = 0.05: must be a number of seconds in 0.1..5, or 0 for off");
  EXPECT_EQ(errorOf(R"({"hls_part_seconds": "fast"})"),
            "app.json: hls_part_seconds = \"fast\": must be a number of seconds in 0.1..5, or 0 for off");
  EXPECT_EQ(errorOf(R"({"hls_format": "webm"})"), "app.json: hls_format = \"webm\": must be one of fmp4, ts");
  auto board = printcast::bsp::findBoard("virtual");
  ASSERT_TRUE(board.ok());
  Settings bad;
  bad.hlsSegmentSeconds = 1;
  bad.hlsPartSeconds = 0.8;
  auto st = finalizeSettings(bad, **board);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("hls_part_seconds = 0.8: must be at most half of hls_segment_seconds"),
            std::string::npos)
      << st.error().message;
}

// --- timelapse recording keys (feat-tlrec) ---

TEST(TimelapseSettings, DefaultsFromProductMd) {
  const Settings s;
  EXPECT_FALSE(s.timelapseEnabled);
  EXPECT_EQ(s.timelapseMode, "layer");
  EXPECT_EQ(s.timelapseIntervalS, 30);
  EXPECT_EQ(s.timelapseCrf, 23);
  EXPECT_EQ(s.timelapseFps, 30);
  EXPECT_EQ(s.timelapseTargetLengthS, 10);
  EXPECT_EQ(s.timelapseMinFps, 5);
  EXPECT_EQ(s.timelapseMaxFps, 60);
  EXPECT_EQ(s.moonrakerHost, "127.0.0.1");
  EXPECT_EQ(s.moonrakerPort, 7125);
}

TEST(TimelapseSettings, ReadsEveryKey) {
  Settings s;
  std::vector<std::string> warnings;
  const auto st = applyConfigJson(R"({
    "timelapse_enabled": true, "timelapse_mode": "hyperlapse", "timelapse_hyperlapse_interval": "60",
    "timelapse_stream_delay": 0.2, "timelapse_crf": 28, "timelapse_output_fps": 24,
    "timelapse_variable_fps": "true", "timelapse_target_length": 20, "timelapse_variable_fps_min": 10,
    "timelapse_variable_fps_max": 50, "timelapse_flip_x": 1, "timelapse_flip_y": true,
    "timelapse_duplicate_last_frame": 5, "moonraker_host": "printer.local", "moonraker_port": 7126,
    "moonraker_socket": "/home/pi/printer_data/comms/moonraker.sock",
    "moonraker_register_webcam": true, "timelapse_storage": "usb" })",
                                  "app.json", s, warnings);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_TRUE(warnings.empty());
  EXPECT_TRUE(s.timelapseEnabled);
  EXPECT_EQ(s.timelapseMode, "hyperlapse");
  EXPECT_EQ(s.timelapseIntervalS, 60);
  EXPECT_EQ(s.timelapseStreamDelayMs, 200);
  EXPECT_EQ(s.timelapseCrf, 28);
  EXPECT_EQ(s.timelapseFps, 24);
  EXPECT_TRUE(s.timelapseVariableFps);
  EXPECT_EQ(s.timelapseTargetLengthS, 20);
  EXPECT_EQ(s.timelapseMinFps, 10);
  EXPECT_EQ(s.timelapseMaxFps, 50);
  EXPECT_TRUE(s.timelapseFlipX);
  EXPECT_TRUE(s.timelapseFlipY);
  EXPECT_EQ(s.timelapseDuplicateLast, 5);
  EXPECT_EQ(s.moonrakerHost, "printer.local");
  EXPECT_EQ(s.moonrakerPort, 7126);
  EXPECT_EQ(s.moonrakerSocket, "/home/pi/printer_data/comms/moonraker.sock");
  EXPECT_TRUE(s.moonrakerRegisterWebcam);
}

TEST(TimelapseSettings, BadValuesNameTheKey) {
  EXPECT_EQ(errorOf(R"({"timelapse_hyperlapse_interval": 4})"),
            "app.json: timelapse_hyperlapse_interval = 4: must be an integer in 5..300");
  // An alias is named as the file wrote it.
  EXPECT_EQ(errorOf(R"({"timelapse_interval": 301})"),
            "app.json: timelapse_interval = 301: must be an integer in 5..300");
  // Seconds, as h264-streamer writes it; milliseconds from an older printcast file get a hint.
  EXPECT_EQ(
      errorOf(R"({"timelapse_stream_delay": 500})"),
      "app.json: timelapse_stream_delay = 500: is in seconds (h264-streamer's unit), 0..10: 500 ms is 0.5");
  EXPECT_NE(errorOf(R"({"timelapse_stream_delay": -1})").find("timelapse_stream_delay"), std::string::npos);
  EXPECT_EQ(errorOf(R"({"timelapse_crf": 52})"), "app.json: timelapse_crf = 52: must be an integer in 0..51");
  EXPECT_EQ(errorOf(R"({"timelapse_fps": 0})"), "app.json: timelapse_fps = 0: must be an integer in 1..120");
  EXPECT_EQ(errorOf(R"({"timelapse_mode": "frames"})"),
            "app.json: timelapse_mode = \"frames\": must be one of layer, hyperlapse");
  EXPECT_EQ(errorOf(R"({"timelapse_flip_x": "maybe"})"),
            "app.json: timelapse_flip_x = \"maybe\": must be true or false");
  EXPECT_EQ(errorOf(R"({"moonraker_port": 0})"),
            "app.json: moonraker_port = 0: must be an integer in 1..65535");
  EXPECT_EQ(errorOf(R"({"timelapse_variable_fps_max": 121})"),
            "app.json: timelapse_variable_fps_max = 121: must be an integer in 1..120");

  auto board = printcast::bsp::findBoard("virtual");
  ASSERT_TRUE(board.ok());
  Settings s;
  s.timelapseMinFps = 40;
  s.timelapseMaxFps = 30;
  auto st = finalizeSettings(s, **board);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message,
            "settings: timelapse_variable_fps_min = 40: must not exceed timelapse_variable_fps_max (30)");
  Settings rel;
  rel.timelapseFolder = "videos";
  st = finalizeSettings(rel, **board);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("timelapse_folder"), std::string::npos) << st.error().message;
}

// An app.json as h264-streamer documents and writes it (product.md) starts printcast unchanged
// and means the same; printcast's earlier names still read.
TEST(TimelapseSettings, H264StreamerAppJsonIsADropIn) {
  Settings s;
  std::vector<std::string> warnings;
  const auto st = applyConfigJson(R"({
    "mode": "go-klipper", "encoder_type": "rkmpi-yuyv", "autolanmode": true, "auto_skip": false,
    "target_cpu": 60, "bitrate": 512, "mjpeg_fps": 10, "port": 8080, "logging": false,
    "timelapse_enabled": false, "timelapse_mode": "layer", "timelapse_hyperlapse_interval": 30,
    "timelapse_storage": "internal", "timelapse_usb_path": "/mnt/udisk/timelapse",
    "moonraker_host": "127.0.0.1", "moonraker_port": 7125, "timelapse_output_fps": 30, "timelapse_crf": 23,
    "timelapse_duplicate_last_frame": 0, "timelapse_variable_fps": false, "timelapse_target_length": 10,
    "timelapse_variable_fps_min": 5, "timelapse_variable_fps_max": 60, "timelapse_stream_delay": 0.05,
    "timelapse_flip_x": false, "timelapse_flip_y": false })",
                                  "app.json", s, warnings);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  EXPECT_EQ(s.encoderType, "rkmpi-yuyv");
  EXPECT_EQ(s.timelapseStreamDelayMs, 50);
  EXPECT_EQ(s.timelapseUsbPath, "/mnt/udisk/timelapse");
  // gkcam: the stock camera service's FLV is the camera, and its port 18088 stays gkcam's.
  {
    Settings g;
    ASSERT_TRUE(applyConfigJson(R"({"encoder_type": "gkcam"})", "app.json", g, warnings).ok());
    const auto board = printcast::bsp::findBoard("virtual");
    ASSERT_TRUE(board.ok());
    ASSERT_TRUE(finalizeSettings(g, **board).ok());
    EXPECT_EQ(g.source, "http://127.0.0.1:18088/flv");
    EXPECT_EQ(g.flvPort, -1);
  }
  for (const char* encoder : {"rkmpi", "gkcam", "x264", "auto"}) {
    Settings e;
    EXPECT_TRUE(
        applyConfigJson(fmt::format(R"({{"encoder_type": "{}"}})", encoder), "app.json", e, warnings).ok())
        << encoder;
  }
  // Written back under the documented names and units.
  const auto json = nlohmann::json::parse(timelapseSettingsJson(s));
  EXPECT_EQ(json["timelapse_stream_delay"], 0.05);
  EXPECT_EQ(json["timelapse_output_fps"], 30);
  EXPECT_EQ(json["timelapse_duplicate_last_frame"], 0);
  EXPECT_FALSE(json.contains("timelapse_fps"));
  // The earlier names.
  Settings old;
  ASSERT_TRUE(applyConfigJson(R"({"timelapse_interval": 45, "timelapse_fps": 25, "timelapse_min_fps": 7,
                                  "timelapse_max_fps": 40, "timelapse_duplicate_last": 3})",
                              "app.json", old, warnings)
                  .ok());
  EXPECT_EQ(old.timelapseIntervalS, 45);
  EXPECT_EQ(old.timelapseFps, 25);
  EXPECT_EQ(old.timelapseMinFps, 7);
  EXPECT_EQ(old.timelapseMaxFps, 40);
  EXPECT_EQ(old.timelapseDuplicateLast, 3);
}

TEST(TimelapseSettings, RecordingKeysRoundTripThroughTheirJson) {
  Settings s;
  s.timelapseMode = "hyperlapse";
  s.timelapseCrf = 30;
  s.moonrakerSocket = "/run/moonraker.sock";
  const std::string json = printcast::streamer::timelapseRecordingSettingsJson(s);
  Settings back;
  std::vector<std::string> warnings;
  ASSERT_TRUE(applyConfigJson(json, "settings", back, warnings).ok());
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(printcast::streamer::timelapseRecordingSettingsJson(back), json);
  EXPECT_EQ(nlohmann::json::parse(json).size(), 17u);
}

// "cameras": the first enabled entry becomes the top-level camera; settingsForCamera() gives each
// further camera its own source, size, fps and bitrate, without camera 0's rings and ingest.
TEST(Settings, CamerasListFoldsTheFirstIntoTheTopLevelAndDerivesTheOthers) {
  auto board = printcast::bsp::findBoard("virtual");
  ASSERT_TRUE(board.ok());
  Settings s;
  std::vector<std::string> warnings;
  ASSERT_TRUE(applyConfigJson(R"({"fps": 20, "bitrate": 800, "cameras": [
      {"id": "off", "source": "test-pattern", "enabled": false},
      {"id": "printer", "name": "Printer", "source": "test-pattern", "resolution": "320x240"},
      {"id": "room", "source": "rtsp://user:pw@10.0.0.9/live", "resolution": "1280x720", "fps": 10, "bitrate": 2000}]})",
                              "app.json", s, warnings)
                  .ok());
  ASSERT_TRUE(finalizeSettings(s, **board).ok());
  EXPECT_EQ(s.source, "test-pattern");  // the first enabled entry
  EXPECT_EQ(s.width, 320);
  EXPECT_EQ(s.height, 240);
  EXPECT_EQ(s.fps, 20);
  EXPECT_EQ(s.bitrateKbps, 800);
  ASSERT_EQ(s.cameras.size(), 3u);
  EXPECT_EQ(s.cameras[1].name, "Printer");
  EXPECT_EQ(s.cameras[2].name, "room");  // the id when no name is given
  const Settings room = printcast::streamer::settingsForCamera(s, s.cameras[2]);
  EXPECT_EQ(room.source, "rtsp://user:pw@10.0.0.9/live");
  EXPECT_EQ(room.width, 1280);
  EXPECT_EQ(room.fps, 10);
  EXPECT_EQ(room.bitrateKbps, 2000);
  EXPECT_EQ(room.gopFrames, 20);  // the default GOP (2 s) at its own rate
  EXPECT_LE(room.mjpegFps, 10);
  EXPECT_FALSE(room.ring);
  EXPECT_EQ(room.ingestPort, -1);
  EXPECT_TRUE(room.cameras.empty());

  EXPECT_NE(errorOf(R"({"cameras": {"id": "a"}})").find("cameras"), std::string::npos);
  EXPECT_NE(errorOf(R"({"cameras": [{"id": "a", "fps": 0}]})").find("cameras[0].fps = 0"), std::string::npos);
  Settings none;
  ASSERT_TRUE(applyConfigJson(R"({"cameras": [{"id": "a", "source": "test-pattern", "enabled": false}]})",
                              "app.json", none, warnings)
                  .ok());
  const auto st = finalizeSettings(none, **board);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("no entry is enabled"), std::string::npos) << st.error().message;
  Settings push;
  ASSERT_TRUE(applyConfigJson(R"({"cameras": [{"id": "a", "source": "test-pattern"},
                                               {"id": "b", "source": "ws-push"}]})",
                              "app.json", push, warnings)
                  .ok());
  EXPECT_NE(finalizeSettings(push, **board).error().message.find("cameras[1].source"), std::string::npos);
}

// A camera's "publish" (a URL or a list, as the top-level key): its own media-server targets,
// given to its settings; camera 0's join the top-level ones. A bad URL, too many, or a URL another
// camera already pushes to is refused with the entry and the key named.
TEST(Settings, EachCameraOfTheListPublishesToItsOwnTargets) {
  const auto [s, ok] = finalized(R"({"publish": "rtsp://mediamtx:8554/printer1", "cameras": [
      {"id": "nozzle", "source": "test-pattern", "publish": "rtmp://go2rtc/live/nozzle"},
      {"id": "bed", "source": "test-pattern", "publish": ["rtsp://mediamtx:8554/printer1-cam2",
                                                         "rtmp://farm.example/live/key2"]},
      {"id": "quiet", "source": "test-pattern"}]})");
  ASSERT_EQ(ok, "");
  EXPECT_EQ(s.publish, std::vector<std::string>{"rtsp://mediamtx:8554/printer1"});  // the top level's
  EXPECT_EQ(s.cameras[0].publish, std::vector<std::string>{"rtmp://go2rtc/live/nozzle"});
  const Settings bed = printcast::streamer::settingsForCamera(s, s.cameras[1]);
  EXPECT_EQ(bed.publish, (std::vector<std::string>{"rtsp://mediamtx:8554/printer1-cam2",
                                                   "rtmp://farm.example/live/key2"}));
  EXPECT_TRUE(printcast::streamer::settingsForCamera(s, s.cameras[2]).publish.empty());

  const std::string bad = finalized(R"({"cameras": [{"id": "a", "source": "test-pattern"},
      {"id": "b", "source": "test-pattern", "publish": "rtmp://x/live"}]})")
                              .second;
  EXPECT_EQ(bad.rfind("settings: cameras[1].publish = \"rtmp://x/live\": ", 0), 0u) << bad;
  EXPECT_NE(bad.find("rtmp://host[:port]/app/streamkey"), std::string::npos) << bad;
  EXPECT_NE(errorOf(R"({"cameras": [{"id": "a", "publish": 5}]})").find("cameras[0].publish = 5"),
            std::string::npos);
  const std::string taken = finalized(R"({"cameras": [
      {"id": "a", "source": "test-pattern", "publish": "rtsp://m:8554/p1"},
      {"id": "b", "source": "test-pattern", "publish": "rtsp://m:8554/p1"}]})")
                                .second;
  EXPECT_NE(taken.find("cameras[1].publish = \"rtsp://m:8554/p1\": is already in cameras[0].publish"),
            std::string::npos)
      << taken;
  const std::string tooMany =
      finalized(R"({"publish": ["rtsp://m/1", "rtsp://m/2", "rtsp://m/3", "rtsp://m/4",
      "rtsp://m/5", "rtsp://m/6", "rtsp://m/7"], "cameras": [
      {"id": "a", "source": "test-pattern", "publish": ["rtsp://m/8", "rtsp://m/9"]}]})")
          .second;
  EXPECT_NE(tooMany.find("cameras[0].publish"), std::string::npos) << tooMany;
  EXPECT_NE(tooMany.find("at most 8"), std::string::npos) << tooMany;

  // A change saved from the control API keeps the cameras list, its publish targets included.
  TempDir dir;
  const auto file = dir.path / "app.json";
  const auto cameras = nlohmann::json::parse(R"([{"id": "a", "source": "test-pattern"},
      {"id": "b", "source": "test-pattern", "publish": ["rtsp://m:8554/b", "rtmp://m/live/b"]}])");
  std::ofstream(file) << nlohmann::json{{"bitrate", 512}, {"cameras", cameras}}.dump();
  ASSERT_TRUE(printcast::streamer::saveSettingsFile(file, R"({"bitrate": 2048})").ok());
  const auto saved = nlohmann::json::parse(readAll(file));
  EXPECT_EQ(saved["bitrate"], 2048);
  EXPECT_EQ(saved["cameras"], cameras);
  const auto [back, backOk] = finalized(readAll(file));  // and reads back through the loader
  EXPECT_EQ(backOk, "");
  EXPECT_EQ(back.cameras.at(1).publish.size(), 2u);
}

// ---- run-time changes of the cameras list (POST/PATCH/DELETE /api/cameras) ----

TEST(CamerasApi, AnEntryIsParsedAndCheckedAsInTheFileWithTheKeyNamed) {
  auto board = printcast::bsp::findBoard("virtual");
  ASSERT_TRUE(board);
  auto [s, error] = finalized(R"({"cameras": [{"id": "printer", "source": "test-pattern"},
                                              {"id": "room", "source": "test-pattern", "publish": "rtsp://m/room"}]})");
  ASSERT_EQ(error, "");
  std::vector<std::pair<std::string, const Settings::CameraEntry*>> others = {{"cameras[0]", &s.cameras[0]},
                                                                              {"cameras[1]", &s.cameras[1]}};
  auto check = [&](const std::string& body, std::string& key) {
    Settings::CameraEntry e;
    auto st = printcast::streamer::parseCameraEntry(body, "POST /api/cameras", "cameras[2]", e, key);
    if (st)
      st = printcast::streamer::checkCameraEntry(e, "cameras[2]", false, others, s, **board,
                                                 "POST /api/cameras", key);
    return std::make_pair(e, st ? std::string() : st.error().message);
  };
  std::string key;
  auto [yard, ok] =
      check(R"({"id": "yard", "source": "test-pattern", "resolution": "320x240", "fps": "10"})", key);
  EXPECT_EQ(ok, "");
  EXPECT_EQ(yard.name, "yard") << "the name defaults to the id";
  EXPECT_EQ(yard.size, (printcast::hal::Size{320, 240}));
  EXPECT_EQ(yard.fps, 10);
  for (const auto& [body, wantKey, wantText] :
       {std::tuple{R"({"id": "yard", "source": "test-pattern", "fps": 500})", "fps",
                   "POST /api/cameras: cameras[2].fps = 500: must be an integer in 1..120"},
        {R"({"id": "yard", "source": "test-pattern", "resolution": "12"})", "resolution",
         "cameras[2].resolution"},
        {R"({"id": "yard", "source": "test-pattern", "colour": 1})", "colour", "is not a camera key"},
        {R"({"id": "a b", "source": "test-pattern"})", "id", "cameras[2].id = \"a b\""},
        {R"({"id": "room", "source": "test-pattern"})", "id", "is already cameras[1]'s"},
        {R"({"id": "yard"})", "source", "cameras[2].source = \"\": is needed"},
        {R"({"id": "yard", "source": "ws-push"})", "source", "only the first camera"},
        {R"({"id": "yard", "source": "ftp://x/y"})", "source", "cameras[2] (\"yard\")"},
        {R"({"id": "yard", "source": "test-pattern", "publish": "rtsp://m/room"})", "publish",
         "is already in cameras[1].publish"},
        {R"({"id": "yard", "source": "test-pattern", "resolution": "8000x8000"})", "resolution", "up to"},
        {R"({"id": "yard", "source": "test-pattern", "format": "nv12"})", "format",
         "cameras[2].format = \"nv12\": must be one of auto, mjpeg, yuyv, h264"},
        {R"({"id": "yard", "source": "http://cam/stream", "format": "yuyv"})", "format",
         "applies to V4L2 cameras only"},
        {R"({"id": "yard", "source": "test-pattern", "h264": "no"})", "h264",
         "cameras[2].h264 = \"no\": must be true or false"},
        {R"({"id": "yard", "source": "test-pattern", "h264": false, "publish": "rtsp://m/yard"})", "h264",
         "cameras[2].h264 = false: the camera publishes H.264"},
        {R"([1, 2])", "", "the body must be a JSON object"},
        {R"({"id": "yard", "source": "test-pattern")", "", "the body must be a JSON object"}}) {
    auto [entry, text] = check(body, key);
    EXPECT_EQ(key, wantKey) << body;
    EXPECT_NE(text.find(wantText), std::string::npos) << body << "\n" << text;
  }
}

TEST(CamerasApi, EntriesAsTheFileHasThem) {
  Settings::CameraEntry e;
  e.id = "yard";
  e.name = "yard";
  e.source = "rtsp://u:p@cam/1";
  EXPECT_EQ(printcast::streamer::cameraEntryJson(e), R"({"id":"yard","source":"rtsp://u:p@cam/1"})");
  e.name = "Yard";
  e.size = {320, 240};
  e.fps = 10;
  e.enabled = false;
  e.publish = {"rtsp://m/yard"};
  const auto full = nlohmann::json::parse(printcast::streamer::cameraEntryJson(e));
  EXPECT_EQ(full["name"], "Yard");
  EXPECT_EQ(full["resolution"], "320x240");
  EXPECT_EQ(full["fps"], 10);
  EXPECT_FALSE(full.contains("bitrate"));
  EXPECT_EQ(full["enabled"], false);
  EXPECT_EQ(full["publish"], nlohmann::json::array({"rtsp://m/yard"}));
  // Read back by the config file's parser: the same entry.
  Settings s;
  std::vector<std::string> warnings;
  ASSERT_TRUE(applyConfigJson(R"({"cameras": [)" + full.dump() + "]}", "app.json", s, warnings));
  ASSERT_EQ(s.cameras.size(), 1u);
  EXPECT_EQ(s.cameras[0].name, "Yard");
  EXPECT_EQ(s.cameras[0].size, e.size);
  EXPECT_EQ(s.cameras[0].publish, e.publish);
  EXPECT_FALSE(s.cameras[0].enabled);
  EXPECT_TRUE(nlohmann::json::parse(printcast::streamer::cameraEntryJson(e, true)).contains("bitrate"));
  // "format" and "h264" are written only when they differ from the defaults, and read back.
  EXPECT_FALSE(full.contains("format"));
  EXPECT_FALSE(full.contains("h264"));
  e.format = "mjpeg";
  e.h264 = false;
  const auto mjpeg = nlohmann::json::parse(printcast::streamer::cameraEntryJson(e));
  EXPECT_EQ(mjpeg["format"], "mjpeg");
  EXPECT_EQ(mjpeg["h264"], false);
  Settings back;
  ASSERT_TRUE(applyConfigJson(R"({"cameras": [)" + mjpeg.dump() + "]}", "app.json", back, warnings));
  EXPECT_EQ(back.cameras.at(0).format, "mjpeg");
  EXPECT_FALSE(back.cameras.at(0).h264);
}

// "format" and "h264" of an entry reach its settings (camera 0's through the top level); a
// configured list keeps H.264 on every camera unless an entry says otherwise.
TEST(Settings, EachCameraOfTheListHasItsFormatAndH264) {
  const auto [s, ok] = finalized(R"({"cameras": [
      {"id": "a", "source": "/dev/video0", "format": "yuyv", "h264": false},
      {"id": "b", "source": "/dev/video2"},
      {"id": "c", "source": "/dev/video4", "format": "mjpeg"}]})");
  ASSERT_EQ(ok, "");
  EXPECT_EQ(s.cameraFormat, "yuyv");
  EXPECT_FALSE(s.h264Offered);
  const Settings b = printcast::streamer::settingsForCamera(s, s.cameras[1]);
  EXPECT_EQ(b.cameraFormat, "auto");
  EXPECT_TRUE(b.h264Offered);
  const Settings c = printcast::streamer::settingsForCamera(s, s.cameras[2]);
  EXPECT_EQ(c.cameraFormat, "mjpeg");
  EXPECT_TRUE(c.h264Offered);
  EXPECT_FALSE(s.camerasDiscovered);
  // Camera 0 without H.264 cannot publish the top-level targets either.
  const std::string bad = finalized(R"({"publish": "rtsp://m/p", "cameras": [
      {"id": "a", "source": "test-pattern", "h264": false}]})")
                              .second;
  EXPECT_NE(bad.find("cameras[0].h264 = false: the camera publishes H.264"), std::string::npos) << bad;
}

TEST(CamerasApi, EditsChangeOnlyTheirEntryOfTheFilesList) {
  using printcast::streamer::CameraListEdit;
  using printcast::streamer::editCameraList;
  const std::string file = R"({
    // comments are allowed
    "mjpeg_fps": 5,
    "cameras": [{"id": "printer", "source": "test-pattern", "fps": "15"},
                {"id": "room", "source": "/dev/video2", "name": "Room"}]})";
  auto added =
      editCameraList(file, {CameraListEdit::Kind::Add, "yard", R"({"id":"yard","source":"test-pattern"})"});
  ASSERT_TRUE(added) << added.error().describe();
  auto list = nlohmann::json::parse(*added);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0]["fps"], "15") << "other entries are kept as written";
  EXPECT_EQ(list[2]["id"], "yard");
  auto changed = editCameraList(file, {CameraListEdit::Kind::Change, "room", R"({"resolution":"320x240"})"});
  ASSERT_TRUE(changed);
  list = nlohmann::json::parse(*changed);
  EXPECT_EQ(list[1], nlohmann::json::parse(R"({"id": "room", "source": "/dev/video2", "name": "Room",
                                                "resolution": "320x240"})"));
  auto removed = editCameraList(file, {CameraListEdit::Kind::Remove, "room", ""});
  ASSERT_TRUE(removed);
  EXPECT_EQ(nlohmann::json::parse(*removed).size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(*editCameraList(file, {CameraListEdit::Kind::Remove, "nope", ""})).size(),
            2u);
  // A change of an entry the file lacks (edited by hand meanwhile) appends it.
  auto appended =
      editCameraList(file, {CameraListEdit::Kind::Change, "yard", R"({"id":"yard","source":"x"})"});
  ASSERT_TRUE(appended);
  EXPECT_EQ(nlohmann::json::parse(*appended).size(), 3u);
  EXPECT_EQ(
      nlohmann::json::parse(*editCameraList("", {CameraListEdit::Kind::Add, "a", R"({"id":"a"})"})).size(),
      1u);
  EXPECT_FALSE(editCameraList("[1]", {CameraListEdit::Kind::Add, "a", R"({"id":"a"})"}));
  EXPECT_FALSE(editCameraList(R"({"cameras": 3})", {CameraListEdit::Kind::Add, "a", R"({"id":"a"})"}));
  EXPECT_FALSE(editCameraList("{}", {CameraListEdit::Kind::Add, "a", "[]"}));
}

TEST(CamerasApi, SavingAnEditKeepsTheOtherKeysAndLeavesNoTempFile) {
  char dirTemplate[] = "/tmp/printcast-cameras-XXXXXX";
  ASSERT_NE(mkdtemp(dirTemplate), nullptr);
  const std::filesystem::path dir = dirTemplate;
  const auto file = dir / "app.json";
  std::ofstream(file)
      << R"({"bitrate": 800, "unknown_key": [1], "cameras": [{"id": "a", "source": "test-pattern"}]})";
  using printcast::streamer::CameraListEdit;
  ASSERT_TRUE(printcast::streamer::saveCameraListEdit(
      file, {CameraListEdit::Kind::Add, "b", R"({"id":"b","source":"test-pattern"})"}));
  std::stringstream text;
  text << std::ifstream(file).rdbuf();
  const auto saved = nlohmann::json::parse(text.str());
  EXPECT_EQ(saved["bitrate"], 800);
  EXPECT_EQ(saved["unknown_key"], nlohmann::json::array({1}));
  ASSERT_EQ(saved["cameras"].size(), 2u);
  EXPECT_EQ(saved["cameras"][1]["id"], "b");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()),
            1);
  std::ofstream(file) << "not json";
  EXPECT_EQ(printcast::streamer::saveCameraListEdit(file, {CameraListEdit::Kind::Remove, "a", ""}).code(),
            printcast::hal::Errc::InvalidArgument);
  std::filesystem::remove_all(dir);
}
