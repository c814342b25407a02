// SPDX-License-Identifier: MIT
// Streamer settings: JSON keys, comments, string-typed values, errors that name the key and range.
#include "settings.h"

#include <gtest/gtest.h>

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
}  // namespace

TEST(Settings, ReadsH264StreamerKeysWithCommentsAndStrings) {
  Settings s;
  std::vector<std::string> warnings;
  const auto st = applyConfigJson(R"({
    // Rinkhals app.json style
    "mode": "go-klipper", "bitrate": "1024", "mjpeg_fps": 15, "auto_skip": "true",
    "target_cpu": 70, "jpeg_quality": 90, "display_enabled": false, "display_fps": 2,
    "logging": 1, "timelapse_mode": "layer"
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
  EXPECT_NE(warnings[0].find("timelapse_mode"), std::string::npos);
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
  EXPECT_EQ(errorOf("[1,2]"), "app.json: the top level must be a JSON object");
  EXPECT_EQ(errorOf("{\"port\": "), "app.json: not valid JSON");
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

TEST(Settings, WsPortDefaultsToRecamerasAndCanBeTurnedOff) {
  Settings s;
  EXPECT_EQ(s.wsPort, 8765);
  std::vector<std::string> warnings;
  ASSERT_TRUE(applyConfigJson(R"({"ws_port": -1})", "app.json", s, warnings).ok());
  EXPECT_EQ(s.wsPort, -1);
  EXPECT_TRUE(warnings.empty());
  EXPECT_EQ(errorOf(R"({"ws_port": 70000})"), "app.json: ws_port = 70000: must be an integer in -1..65535");
}
