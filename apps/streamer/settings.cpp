// SPDX-License-Identifier: MIT
// Settings parsing and validation for the reference streamer.
#include "settings.h"

#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace printcast::streamer {

namespace {

using hal::Errc;
using hal::Status;

Status invalid(const std::string& source, const std::string& key, const std::string& shown,
               const std::string& rule) {
  return Status(Errc::InvalidArgument, fmt::format("{}: {} = {}: {}", source, key, shown, rule));
}

Status readInt(const nlohmann::json& v, const std::string& source, const std::string& key, int lo, int hi,
               int& out) {
  const std::string rule = fmt::format("must be an integer in {}..{}", lo, hi);
  long long value = 0;
  if (v.is_number_integer()) {
    value = v.get<long long>();
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d != static_cast<double>(static_cast<long long>(d))) return invalid(source, key, v.dump(), rule);
    value = static_cast<long long>(d);
  } else if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    const auto* end = s.data() + s.size();
    auto [ptr, ec] = std::from_chars(s.data(), end, value);
    if (ec != std::errc() || ptr != end || s.empty()) return invalid(source, key, v.dump(), rule);
  } else {
    return invalid(source, key, v.dump(), rule);
  }
  if (value < lo || value > hi) return invalid(source, key, v.dump(), rule);
  out = static_cast<int>(value);
  return {};
}

Status readBool(const nlohmann::json& v, const std::string& source, const std::string& key, bool& out) {
  if (v.is_boolean()) {
    out = v.get<bool>();
    return {};
  }
  if (v.is_number_integer() && (v.get<long long>() == 0 || v.get<long long>() == 1)) {
    out = v.get<long long>() == 1;
    return {};
  }
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (s == "true" || s == "1") {
      out = true;
      return {};
    }
    if (s == "false" || s == "0") {
      out = false;
      return {};
    }
  }
  return invalid(source, key, v.dump(), "must be true or false");
}

Status readChoice(const nlohmann::json& v, const std::string& source, const std::string& key,
                  const std::vector<std::string>& choices, std::string& out) {
  std::string allowed;
  for (const auto& c : choices) allowed += (allowed.empty() ? "" : ", ") + c;
  if (v.is_string()) {
    for (const auto& c : choices) {
      if (v.get_ref<const std::string&>() == c) {
        out = c;
        return {};
      }
    }
  }
  return invalid(source, key, v.dump(), "must be one of " + allowed);
}

Status readString(const nlohmann::json& v, const std::string& source, const std::string& key,
                  std::string& out) {
  if (!v.is_string()) return invalid(source, key, v.dump(), "must be a string");
  out = v.get<std::string>();
  return {};
}

const std::vector<std::string> kModes = {"go-klipper", "vanilla-klipper"};
const std::vector<std::string> kEncoderTypes = {"auto", "x264"};
const std::vector<std::string> kLogLevels = {"trace", "debug", "info", "warn", "error", "off"};

}  // namespace

Status applyConfigJson(const std::string& text, const std::string& source, Settings& s,
                       std::vector<std::string>& warnings) {
  const nlohmann::json root = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false,
                                                    /*ignore_comments=*/true);
  if (root.is_discarded()) return Status(Errc::InvalidArgument, source + ": not valid JSON");
  if (!root.is_object())
    return Status(Errc::InvalidArgument, source + ": the top level must be a JSON object");

  for (const auto& [key, v] : root.items()) {
    Status st;
    if (key == "mode")
      st = readChoice(v, source, key, kModes, s.mode);
    else if (key == "encoder_type")
      st = readChoice(v, source, key, kEncoderTypes, s.encoderType);
    else if (key == "autolanmode")
      st = readBool(v, source, key, s.autolanmode);
    else if (key == "auto_skip")
      st = readBool(v, source, key, s.autoSkip);
    else if (key == "target_cpu")
      st = readInt(v, source, key, 20, 95, s.targetCpu);
    else if (key == "bitrate")
      st = readInt(v, source, key, 100, 20000, s.bitrateKbps);
    else if (key == "mjpeg_fps")
      st = readInt(v, source, key, 1, 60, s.mjpegFps);
    else if (key == "jpeg_quality")
      st = readInt(v, source, key, 1, 100, s.jpegQuality);
    else if (key == "port")
      st = readInt(v, source, key, 0, 65535, s.port);
    else if (key == "logging")
      st = readBool(v, source, key, s.logging);
    else if (key == "display_enabled")
      st = readBool(v, source, key, s.displayEnabled);
    else if (key == "display_fps")
      st = readInt(v, source, key, 1, 60, s.displayFps);
    else if (key == "board")
      st = readString(v, source, key, s.board);
    else if (key == "device")
      st = readString(v, source, key, s.device);
    else if (key == "display_node")
      st = readString(v, source, key, s.displayNode);
    else if (key == "touch_name")
      st = readString(v, source, key, s.touchName);
    else if (key == "resolution") {
      std::string r;
      st = readString(v, source, key, r);
      if (st) {
        auto size = parseResolution(r);
        if (!size) return invalid(source, key, v.dump(), "must be WIDTHxHEIGHT, e.g. 1280x720");
        s.width = size->width;
        s.height = size->height;
      }
    } else if (key == "fps")
      st = readInt(v, source, key, 0, 120, s.fps);
    else if (key == "h264_gop")
      st = readInt(v, source, key, 0, 1000, s.gopFrames);
    else if (key == "host")
      st = readString(v, source, key, s.host);
    else if (key == "control_port")
      st = readInt(v, source, key, 0, 65535, s.controlPort);
    else if (key == "flv_port")
      st = readInt(v, source, key, -1, 65535, s.flvPort);
    else if (key == "allow_origin")
      st = readString(v, source, key, s.allowOrigin);
    else if (key == "ring")
      st = readBool(v, source, key, s.ring);
    else if (key == "ring_name")
      st = readString(v, source, key, s.ringName);
    else if (key == "ring_size_mb")
      st = readInt(v, source, key, 1, 256, s.ringSizeMb);
    else if (key == "log_level")
      st = readChoice(v, source, key, kLogLevels, s.logLevel);
    else
      warnings.push_back(fmt::format("{}: unknown key '{}' ignored", source, key));
    if (!st) return st;
  }
  return {};
}

Status applyConfigFile(const std::filesystem::path& path, Settings& settings,
                       std::vector<std::string>& warnings) {
  std::ifstream in(path);
  if (!in) return Status(hal::errnoError(fmt::format("cannot read config file {}", path.string())));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return applyConfigJson(buffer.str(), path.string(), settings, warnings);
}

hal::Result<hal::Size> parseResolution(const std::string& text) {
  const auto x = text.find_first_of("xX");
  if (x == std::string::npos) return {Errc::InvalidArgument, "resolution '" + text + "' is not WIDTHxHEIGHT"};
  hal::Size size;
  const char* b = text.data();
  const char* e = b + text.size();
  auto r1 = std::from_chars(b, b + x, size.width);
  auto r2 = std::from_chars(b + x + 1, e, size.height);
  if (r1.ec != std::errc() || r1.ptr != b + x || r2.ec != std::errc() || r2.ptr != e || size.empty()) {
    return {Errc::InvalidArgument, "resolution '" + text + "' is not WIDTHxHEIGHT"};
  }
  return size;
}

Status finalizeSettings(Settings& s, const bsp::Board& board) {
  const std::string src = "settings";
  if (s.width == 0 || s.height == 0) {
    s.width = board.camera.defaultSize.width;
    s.height = board.camera.defaultSize.height;
  }
  if (s.fps == 0) s.fps = board.camera.defaultFps;
  const auto& lim = board.limits;
  if (s.width < 16 || s.height < 16 || s.width > lim.maxCameraSize.width ||
      s.height > lim.maxCameraSize.height || s.width % 2 != 0 || s.height % 2 != 0) {
    return invalid(
        src, "resolution", fmt::format("{}x{}", s.width, s.height),
        fmt::format("must be even, from 16x16 up to {} on board {}", lim.maxCameraSize.str(), board.id));
  }
  if (s.fps < 1 || s.fps > lim.maxCameraFps) {
    return invalid(src, "desired-fps", std::to_string(s.fps),
                   fmt::format("must be in 1..{} on board {}", lim.maxCameraFps, board.id));
  }
  if (s.unpaced && (board.camera.kind != bsp::CameraKind::TestPattern || !s.device.empty())) {
    const char* camera = s.device.empty() ? "real camera" : "--device";
    return invalid(
        src, "unpaced", "true",
        fmt::format("only the test-pattern camera runs unpaced; board {} has a {}", board.id, camera));
  }
  if (s.displayFps > board.display.maxFps) {
    return invalid(src, "display_fps", std::to_string(s.displayFps),
                   fmt::format("must be in 1..{} on board {}", board.display.maxFps, board.id));
  }
  if (s.gopFrames == 0) s.gopFrames = 2 * s.fps;
  if (s.mjpegFps > s.fps) s.mjpegFps = s.fps;  // MJPEG can't outrun the camera
  if (s.logging && s.logLevel == "info") s.logLevel = "debug";
  for (const auto& [key, port] : {std::pair{"port", s.port}, {"control_port", s.controlPort}}) {
    if (port < 0 || port > 65535) return invalid(src, key, std::to_string(port), "must be in 0..65535");
  }
  const bool ringNameOk =
      !s.ringName.empty() && s.ringName.size() <= 180 && s.ringName != "." && s.ringName != ".." &&
      s.ringName.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
          std::string::npos;
  if (!ringNameOk) {
    return invalid(src, "ring_name", "\"" + s.ringName + "\"",
                   "must be 1..180 characters of A-Z a-z 0-9 . _ -");
  }
  if (s.ringSizeMb < 1 || s.ringSizeMb > 256) {
    return invalid(src, "ring_size_mb", std::to_string(s.ringSizeMb), "must be an integer in 1..256");
  }
  if (s.flvPort < -1 || s.flvPort > 65535) {
    return invalid(src, "flv_port", std::to_string(s.flvPort), "must be in 0..65535, or -1 for off");
  }
  return {};
}

}  // namespace printcast::streamer
