// SPDX-License-Identifier: MIT
// Settings parsing and validation for the reference streamer.
#include "settings.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "printcast/transport/http_auth.h"
#include "printcast/transport/mjpeg_pull.h"
#include "printcast/transport/rtmp_publish.h"
#include "printcast/transport/url.h"

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
  if (v.is_number_unsigned()) {
    const auto u = v.get<unsigned long long>();  // may be above LLONG_MAX
    if (u > static_cast<unsigned long long>(hi)) return invalid(source, key, v.dump(), rule);
    value = static_cast<long long>(u);
  } else if (v.is_number_integer()) {
    value = v.get<long long>();
  } else if (v.is_number_float()) {
    // Range first: casting a double outside long long's range is undefined behaviour.
    const double d = v.get<double>();
    if (!(d >= lo && d <= hi) || d != std::floor(d)) return invalid(source, key, v.dump(), rule);
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

// A number of seconds in lo..hi, or exactly 0 when `zeroAllowed` (a switch-off value).
Status readSeconds(const nlohmann::json& v, const std::string& source, const std::string& key, double lo,
                   double hi, bool zeroAllowed, double& out) {
  const std::string rule =
      fmt::format("must be a number of seconds in {}..{}{}", lo, hi, zeroAllowed ? ", or 0 for off" : "");
  double value = 0;
  if (v.is_number()) {
    value = v.get<double>();
  } else if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    const auto* end = s.data() + s.size();
    auto [ptr, ec] = std::from_chars(s.data(), end, value);
    if (ec != std::errc() || ptr != end || s.empty()) return invalid(source, key, v.dump(), rule);
  } else {
    return invalid(source, key, v.dump(), rule);
  }
  if (!std::isfinite(value) || ((value < lo || value > hi) && !(zeroAllowed && value == 0))) {
    return invalid(source, key, v.dump(), rule);
  }
  out = value;
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

// "publish" (top level and per camera): one URL, or a list of them ("" and [] = off). The URLs
// are checked in finalizeSettings (checkPublishTargets).
Status readUrlList(const nlohmann::json& v, const std::string& source, const std::string& key,
                   std::vector<std::string>& out) {
  out.clear();
  if (v.is_string()) {
    if (!v.get<std::string>().empty()) out.push_back(v.get<std::string>());
    return {};
  }
  if (!v.is_array()) return invalid(source, key, v.dump(), "must be a URL or a list of URLs");
  for (const auto& item : v) {
    if (!item.is_string()) return invalid(source, key, item.dump(), "must be a URL or a list of URLs");
    out.push_back(item.get<std::string>());
  }
  return {};
}

// A `cameras` entry's "format" (Settings::CameraEntry::format).
const std::vector<std::string> kCameraFormats = {"auto", "mjpeg", "yuyv", "h264"};

// One `cameras` entry (`where`: "cameras[2]") from a JSON object, onto `c`: the keys given replace
// c's values, the others stay. `errorKey` (optional) gets the entry key at fault ("fps"; "" when
// `item` is not an object).
Status readCameraEntry(const nlohmann::json& item, const std::string& source, const std::string& where,
                       Settings::CameraEntry& c, std::string* errorKey) {
  if (errorKey != nullptr) errorKey->clear();
  if (!item.is_object())
    return invalid(source, where, item.dump(), "must be an object {\"id\", \"source\", ...}");
  for (const auto& [k, value] : item.items()) {
    const std::string field = where + "." + k;
    if (errorKey != nullptr) *errorKey = k;
    Status st;
    if (k == "id") {
      st = readString(value, source, field, c.id);
    } else if (k == "name") {
      st = readString(value, source, field, c.name);
    } else if (k == "source") {
      st = readString(value, source, field, c.source);
    } else if (k == "resolution") {
      std::string text;
      st = readString(value, source, field, text);
      if (st) {
        auto size = parseResolution(text);
        if (!size) return invalid(source, field, value.dump(), size.error().message);
        c.size = *size;
      }
    } else if (k == "fps") {
      st = readInt(value, source, field, 1, 120, c.fps);
    } else if (k == "bitrate") {
      st = readInt(value, source, field, 100, 20000, c.bitrateKbps);
    } else if (k == "enabled") {
      st = readBool(value, source, field, c.enabled);
    } else if (k == "publish") {
      st = readUrlList(value, source, field, c.publish);
    } else if (k == "format") {
      st = readChoice(value, source, field, kCameraFormats, c.format);
    } else if (k == "h264") {
      st = readBool(value, source, field, c.h264);
    } else {
      return invalid(source, field, value.dump(),
                     "is not a camera key (id, name, source, resolution, fps, bitrate, enabled, publish, "
                     "format, h264)");
    }
    if (!st) return st;
  }
  if (errorKey != nullptr) errorKey->clear();
  return {};
}

const std::vector<std::string> kModes = {"go-klipper", "vanilla-klipper"};
// h264-streamer's values (product.md) are understood: the rkmpi ones name the Rockchip MPI
// hardware encoder, which needs the vendor SDK (not in this build: x264 stands in, with a
// warning at start) and pick the camera format (rkmpi-yuyv: YUYV, rkmpi: MJPEG); gkcam keeps the
// stock camera service (not implemented yet: a warning, then streaming from the camera).
const std::vector<std::string> kEncoderTypes = {"auto",  "x264",       "v4l2m2m", "vaapi",
                                                "rkmpi", "rkmpi-yuyv", "gkcam"};
const std::vector<std::string> kHlsFormats = {"fmp4", "ts"};
const std::vector<std::string> kRtspTransports = {"tcp", "udp"};
const std::vector<std::string> kLogLevels = {"trace", "debug", "info", "warn", "error", "off"};
const std::vector<std::string> kTimelapseStorages = {"internal", "usb"};

// timelapse_storage = usb needs a board with a USB folder and no timelapse_folder override.
Status checkTimelapseStorage(const std::string& source, const Settings& s, const bsp::Board& board) {
  if (s.timelapseStorage != "usb") return {};
  if (board.storage.timelapseUsb.empty() && s.timelapseUsbPath.empty())
    return invalid(source, "timelapse_storage", "\"usb\"",
                   fmt::format("board {} has no USB storage", board.id));
  if (!s.timelapseFolder.empty())
    return invalid(source, "timelapse_storage", "\"usb\"", "timelapse_folder is set: it is the only storage");
  return {};
}

// --- timelapse recording keys (feat-tlrec) ---
const std::vector<std::string> kTimelapseModes = {"layer", "hyperlapse"};

}  // namespace

const std::vector<std::pair<std::string, std::string>>& settingKeyAliases() {
  static const std::vector<std::pair<std::string, std::string>> kAliases = {
      {"timelapse_interval", "timelapse_hyperlapse_interval"},
      {"timelapse_fps", "timelapse_output_fps"},
      {"timelapse_min_fps", "timelapse_variable_fps_min"},
      {"timelapse_max_fps", "timelapse_variable_fps_max"},
      {"timelapse_duplicate_last", "timelapse_duplicate_last_frame"},
  };
  return kAliases;
}

namespace {

// The documented name of `key` (itself, or what an alias stands for).
const std::string& canonicalKey(const std::string& key) {
  for (const auto& [alias, name] : settingKeyAliases()) {
    if (key == alias) return name;
  }
  return key;
}

Status applyTimelapseKey(const std::string& key, const nlohmann::json& v, const std::string& source,
                         Settings& s, bool& known) {
  known = true;
  const std::string& name = canonicalKey(key);  // errors name `key` as the file wrote it
  if (name == "timelapse_enabled") return readBool(v, source, key, s.timelapseEnabled);
  if (name == "timelapse_mode") return readChoice(v, source, key, kTimelapseModes, s.timelapseMode);
  if (name == "timelapse_hyperlapse_interval") return readInt(v, source, key, 5, 300, s.timelapseIntervalS);
  if (name == "timelapse_stream_delay") {
    // Seconds, as h264-streamer writes it (0.05). A value above 10 is refused with a hint: it
    // would be an older printcast file in milliseconds.
    double seconds = 0;
    if (v.is_number() && v.get<double>() > 10 && v.get<double>() <= 10000) {
      return invalid(source, key, v.dump(),
                     fmt::format("is in seconds (h264-streamer's unit), 0..10: {} ms is {}", v.dump(),
                                 v.get<double>() / 1000));
    }
    if (auto st = readSeconds(v, source, key, 0, 10, true, seconds); !st) return st;
    s.timelapseStreamDelayMs = static_cast<int>(std::lround(seconds * 1000));
    return {};
  }
  if (name == "timelapse_crf") return readInt(v, source, key, 0, 51, s.timelapseCrf);
  if (name == "timelapse_output_fps") return readInt(v, source, key, 1, 120, s.timelapseFps);
  if (name == "timelapse_variable_fps") return readBool(v, source, key, s.timelapseVariableFps);
  if (name == "timelapse_target_length") return readInt(v, source, key, 1, 3600, s.timelapseTargetLengthS);
  if (name == "timelapse_variable_fps_min") return readInt(v, source, key, 1, 120, s.timelapseMinFps);
  if (name == "timelapse_variable_fps_max") return readInt(v, source, key, 1, 120, s.timelapseMaxFps);
  if (name == "timelapse_flip_x") return readBool(v, source, key, s.timelapseFlipX);
  if (name == "timelapse_flip_y") return readBool(v, source, key, s.timelapseFlipY);
  if (name == "timelapse_duplicate_last_frame")
    return readInt(v, source, key, 0, 600, s.timelapseDuplicateLast);
  if (key == "moonraker_host") return readString(v, source, key, s.moonrakerHost);
  if (key == "moonraker_port") return readInt(v, source, key, 1, 65535, s.moonrakerPort);
  if (key == "moonraker_socket") return readString(v, source, key, s.moonrakerSocket);
  if (key == "moonraker_register_webcam") return readBool(v, source, key, s.moonrakerRegisterWebcam);
  known = false;
  return {};
}

// The checks across recorder keys; `errorKey` (optional) gets the key at fault.
Status finalizeTimelapseSettings(const Settings& s, const std::string& src, std::string* errorKey = nullptr) {
  if (s.timelapseMinFps > s.timelapseMaxFps) {
    if (errorKey != nullptr) *errorKey = "timelapse_variable_fps_min";
    return invalid(src, "timelapse_variable_fps_min", std::to_string(s.timelapseMinFps),
                   fmt::format("must not exceed timelapse_variable_fps_max ({})", s.timelapseMaxFps));
  }
  if (s.moonrakerHost.empty()) {
    if (errorKey != nullptr) *errorKey = "moonraker_host";
    return invalid(src, "moonraker_host", "\"\"", "must be a host name or address");
  }
  return {};
}
// --- end of timelapse recording keys ---

// Apply one key; `known` is false for a key this streamer does not have.
Status applyKey(const std::string& key, const nlohmann::json& v, const std::string& source, Settings& s,
                bool& known) {
  known = true;
  if (key == "mode") return readChoice(v, source, key, kModes, s.mode);
  if (key == "encoder_type") return readChoice(v, source, key, kEncoderTypes, s.encoderType);
  if (key == "autolanmode") return readBool(v, source, key, s.autolanmode);
  if (key == "lan_mode_port") return readInt(v, source, key, 1, 65535, s.lanModePort);
  if (key == "gkcam_path") return readString(v, source, key, s.gkcamPath);
  if (key == "auto_skip") return readBool(v, source, key, s.autoSkip);
  if (key == "target_cpu") return readInt(v, source, key, 20, 95, s.targetCpu);
  if (key == "bitrate") return readInt(v, source, key, 100, 20000, s.bitrateKbps);
  if (key == "mjpeg_fps") return readInt(v, source, key, 1, 60, s.mjpegFps);
  if (key == "jpeg_quality") return readInt(v, source, key, 1, 100, s.jpegQuality);
  if (key == "port") return readInt(v, source, key, 0, 65535, s.port);
  if (key == "logging") return readBool(v, source, key, s.logging);
  if (key == "display_enabled") return readBool(v, source, key, s.displayEnabled);
  if (key == "display_fps") return readInt(v, source, key, 1, 60, s.displayFps);
  if (key == "h264_enabled") return readBool(v, source, key, s.h264Enabled);
  if (key == "h264_framerate") return readInt(v, source, key, 0, 100, s.h264FrameratePercent);
  if (key == "board") return readString(v, source, key, s.board);
  if (key == "device") return readString(v, source, key, s.device);
  if (key == "source") return readString(v, source, key, s.source);
  if (key == "display_node") return readString(v, source, key, s.displayNode);
  if (key == "touch_name") return readString(v, source, key, s.touchName);
  if (key == "resolution") {
    std::string r;
    if (auto st = readString(v, source, key, r); !st) return st;
    auto size = parseResolution(r);
    if (!size) return invalid(source, key, v.dump(), "must be WIDTHxHEIGHT, e.g. 1280x720");
    s.width = size->width;
    s.height = size->height;
    return {};
  }
  if (key == "fps") return readInt(v, source, key, 0, 120, s.fps);
  if (key == "camera_rotation") {
    int degrees = 0;
    if (auto st = readInt(v, source, key, 0, 270, degrees); !st) return st;
    if (degrees % 90 != 0)
      return invalid(source, key, v.dump(), "must be 0, 90, 180 or 270 (degrees clockwise)");
    s.cameraRotation = degrees;
    return {};
  }
  if (key == "stream_resolution" || key == "snapshot_resolution") {
    std::string r;
    if (auto st = readString(v, source, key, r); !st) return st;
    hal::Size& out = key == "stream_resolution" ? s.streamSize : s.snapshotSize;
    if (r.empty() || r == "camera") {
      out = {};
      return {};
    }
    auto size = parseResolution(r);
    if (!size) return invalid(source, key, v.dump(), "must be WIDTHxHEIGHT, e.g. 640x360, or \"camera\"");
    out = *size;
    return {};
  }
  if (key == "camera_flip_x") return readBool(v, source, key, s.cameraFlipX);
  if (key == "camera_flip_y") return readBool(v, source, key, s.cameraFlipY);
  if (key == "h264_gop") return readInt(v, source, key, 0, 1000, s.gopFrames);
  if (key == "host") return readString(v, source, key, s.host);
  if (key == "control_port") return readInt(v, source, key, 0, 65535, s.controlPort);
  if (key == "flv_port") return readInt(v, source, key, -1, 65535, s.flvPort);
  if (key == "ws_port") return readInt(v, source, key, -1, 65535, s.wsPort);
  if (key == "camera_port_base") return readInt(v, source, key, -1, 65533, s.cameraPortBase);
  if (key == "rtsp_port") return readInt(v, source, key, -1, 65535, s.rtspPort);
  if (key == "publish") return readUrlList(v, source, key, s.publish);
  if (key == "cameras") {
    s.cameras.clear();
    if (!v.is_array()) return invalid(source, key, v.dump(), "must be a list of camera objects");
    for (size_t i = 0; i < v.size(); ++i) {
      Settings::CameraEntry c;
      if (auto st = readCameraEntry(v[i], source, fmt::format("cameras[{}]", i), c, nullptr); !st) return st;
      s.cameras.push_back(std::move(c));
    }
    return {};
  }
  if (key == "rtsp_auth") return readBool(v, source, key, s.rtspAuth);
  if (key == "ring") return readBool(v, source, key, s.ring);
  if (key == "ring_name") return readString(v, source, key, s.ringName);
  if (key == "ring_size_mb") return readInt(v, source, key, 1, 256, s.ringSizeMb);
  if (key == "ingest_max_message_kb") return readInt(v, source, key, 64, 65536, s.ingestMaxMessageKb);
  if (key == "ingest_port") return readInt(v, source, key, -1, 65535, s.ingestPort);
  if (key == "ws_port_timestamps") return readBool(v, source, key, s.wsPortTimestamps);
  if (key == "allow_origin") return readString(v, source, key, s.allowOrigin);
  if (key == "control_allow_origin") return readString(v, source, key, s.controlAllowOrigin);
  if (key == "allowed_hosts") return readString(v, source, key, s.allowedHosts);
  if (key == "auth_token_sha256") {
    if (auto st = readString(v, source, key, s.authTokenSha256); !st) return st;
    if (!s.authTokenSha256.empty() && !transport::isSha256Hex(s.authTokenSha256))
      return invalid(source, key, v.dump(),
                     "must be the SHA-256 of the token, 64 hex digits (printcast-streamer --hash-token)");
    return {};
  }
  if (key == "connections_per_address") return readInt(v, source, key, 1, 4096, s.connectionsPerAddress);
  if (key == "stream_stall_seconds") return readInt(v, source, key, 1, 3600, s.streamStallSeconds);
  if (key == "log_level") return readChoice(v, source, key, kLogLevels, s.logLevel);
  if (key == "hls_segment_seconds") return readSeconds(v, source, key, 0.5, 10, false, s.hlsSegmentSeconds);
  if (key == "hls_part_seconds") return readSeconds(v, source, key, 0.1, 5, true, s.hlsPartSeconds);
  if (key == "hls_format") return readChoice(v, source, key, kHlsFormats, s.hlsFormat);
  if (key == "rtsp_transport") return readChoice(v, source, key, kRtspTransports, s.rtspTransport);
  // --- timelapse manager ---
  if (key == "timelapse_storage") return readChoice(v, source, key, kTimelapseStorages, s.timelapseStorage);
  if (key == "timelapse_usb_path") {
    if (auto st = readString(v, source, key, s.timelapseUsbPath); !st) return st;
    if (!s.timelapseUsbPath.empty() && s.timelapseUsbPath.front() != '/')
      return invalid(source, key, v.dump(), "must be an absolute folder path, or \"\" for the board's");
    return {};
  }
  if (key == "timelapse_folder") {
    if (auto st = readString(v, source, key, s.timelapseFolder); !st) return st;
    if (!s.timelapseFolder.empty() && s.timelapseFolder.front() != '/')
      return invalid(source, key, v.dump(), "must be an absolute folder path, or \"\" for the board's");
    return {};
  }
  // --- end timelapse manager ---
  return applyTimelapseKey(key, v, source, s, known);
}

const std::vector<std::string> kRuntimeKeys = {"h264_enabled", "bitrate",         "h264_framerate",
                                               "auto_skip",    "target_cpu",      "jpeg_quality",
                                               "mjpeg_fps",    "display_enabled", "display_fps"};

}  // namespace

Status applyConfigJson(const std::string& text, const std::string& source, Settings& s,
                       std::vector<std::string>& warnings) {
  const nlohmann::json root = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false,
                                                    /*ignore_comments=*/true);
  if (root.is_discarded()) return Status(Errc::InvalidArgument, source + ": not valid JSON");
  if (!root.is_object())
    return Status(Errc::InvalidArgument, source + ": the top level must be a JSON object");

  for (const auto& [key, v] : root.items()) {
    bool known = true;
    if (auto st = applyKey(key, v, source, s, known); !st) return st;
    if (!known) warnings.push_back(fmt::format("{}: unknown key '{}' ignored", source, key));
  }
  return {};
}

int skipIntervalForPercent(int percent) {
  percent = std::clamp(percent, 0, 100);
  if (percent == 0) return 10;
  return std::clamp(static_cast<int>(std::lround(100.0 / percent)), 1, 10);
}

const std::vector<std::string>& runtimeSettingKeys() { return kRuntimeKeys; }

std::string runtimeSettingsJson(const Settings& s) {
  return nlohmann::json{{"h264_enabled", s.h264Enabled},
                        {"bitrate", s.bitrateKbps},
                        {"h264_framerate", s.h264FrameratePercent},
                        {"auto_skip", s.autoSkip},
                        {"target_cpu", s.targetCpu},
                        {"jpeg_quality", s.jpegQuality},
                        {"mjpeg_fps", s.mjpegFps},
                        {"display_enabled", s.displayEnabled},
                        {"display_fps", s.displayFps}}
      .dump();
}

Status validateSettingsChange(const std::string& body, const bsp::Board& board, const Settings& current,
                              Settings& next, std::vector<std::string>& changedKeys, std::string& errorKey) {
  return validateSettingsChange(body, board, current, next, changedKeys, errorKey, kRuntimeKeys);
}

Status validateSettingsChange(const std::string& body, const bsp::Board& board, const Settings& current,
                              Settings& next, std::vector<std::string>& changedKeys, std::string& errorKey,
                              const std::vector<std::string>& allowedKeys) {
  const std::string source = "settings";
  errorKey.clear();
  changedKeys.clear();
  const nlohmann::json root = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object())
    return Status(Errc::InvalidArgument, source + ": the body must be a JSON object of setting keys");
  Settings candidate = current;
  for (const auto& [key, v] : root.items()) {
    errorKey = key;
    if (std::find(allowedKeys.begin(), allowedKeys.end(), canonicalKey(key)) == allowedKeys.end()) {
      bool known = true;
      Settings scratch;
      (void)applyKey(key, v, source, scratch, known);
      return Status(Errc::InvalidArgument,
                    known ? fmt::format("{}: {}: cannot be changed from the control API (edit the config "
                                        "file and restart)",
                                        source, key)
                          : fmt::format("{}: {}: unknown key", source, key));
    }
    bool known = true;
    if (auto st = applyKey(key, v, source, candidate, known); !st) return st;
    changedKeys.push_back(canonicalKey(key));
  }
  // The board's limits, with the same messages as at start-up.
  if (candidate.displayFps > board.display.maxFps) {
    errorKey = "display_fps";
    return invalid(source, "display_fps", std::to_string(candidate.displayFps),
                   fmt::format("must be in 1..{} on board {}", board.display.maxFps, board.id));
  }
  if (candidate.fps > 0 && candidate.mjpegFps > candidate.fps) {
    errorKey = "mjpeg_fps";
    return invalid(source, "mjpeg_fps", std::to_string(candidate.mjpegFps),
                   fmt::format("must be in 1..{} (the camera's rate)", candidate.fps));
  }
  if (auto st = checkTimelapseStorage(source, candidate, board); !st) {
    errorKey = "timelapse_storage";
    return st;
  }
  if (auto st = finalizeTimelapseSettings(candidate, source, &errorKey); !st) return st;
  errorKey.clear();
  next = std::move(candidate);
  return {};
}

// --- timelapse manager ---
std::string timelapseSettingsJson(const Settings& s) {
  nlohmann::json all{{"timelapse_storage", s.timelapseStorage}, {"timelapse_folder", s.timelapseFolder}};
  all.update(nlohmann::json::parse(timelapseRecordingSettingsJson(s)));  // the recorder's keys
  return all.dump();
}

const std::vector<std::string>& timelapseSettingKeys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> out;
    const nlohmann::json all = nlohmann::json::parse(timelapseSettingsJson(Settings{}));
    for (const auto& item : all.items()) {
      if (item.key() != "timelapse_folder") out.push_back(item.key());
    }
    return out;
  }();
  return keys;
}
// --- end timelapse manager ---

namespace {
// The config file's text; nullopt when there is none yet (a save creates it).
hal::Result<std::optional<std::string>> readConfigText(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<std::string>();
  std::ifstream in(path);
  if (!in) return hal::errnoError(fmt::format("cannot read config file {}", path.string()));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return std::optional<std::string>(buffer.str());
}
}  // namespace

Status saveSettingsFile(const std::filesystem::path& path, const std::string& changes) {
  const nlohmann::json delta = nlohmann::json::parse(changes, nullptr, /*allow_exceptions=*/false);
  if (delta.is_discarded() || !delta.is_object())
    return Status(Errc::InvalidArgument, "settings to save must be a JSON object");
  nlohmann::json doc = nlohmann::json::object();
  auto existing = readConfigText(path);
  if (!existing) return Status(existing.error());
  if (existing->has_value()) {
    doc = nlohmann::json::parse(**existing, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
    if (doc.is_discarded() || !doc.is_object()) {
      return Status(Errc::InvalidArgument,
                    fmt::format("{}: not a JSON object; not overwriting it", path.string()));
    }
  }
  doc.update(delta);
  // A documented key saved replaces its older alias (both would leave the file ambiguous).
  for (const auto& [alias, name] : settingKeyAliases()) {
    if (delta.contains(name)) doc.erase(alias);
  }
  const std::string text = doc.dump(2) + "\n";

  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  std::string tmpl = (dir / ("." + path.filename().string() + ".XXXXXX")).string();
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return Status(hal::errnoError(fmt::format("cannot create a temp file in {}", dir.string())));
  auto fail = [&](const std::string& what) {
    const int err = errno;
    const hal::Error e = hal::errnoError(fmt::format("{} {}", what, tmpl), err);
    ::close(fd);
    ::unlink(tmpl.c_str());
    return Status(e);
  };
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write");
    }
    done += static_cast<size_t>(n);
  }
  // Keep the old file's permissions (a fresh mkstemp file is 0600).
  struct stat old {};
  (void)::fchmod(fd, ::stat(path.c_str(), &old) == 0 ? (old.st_mode & 07777) : 0644);
  if (::fsync(fd) != 0) return fail("cannot fsync");
  if (::close(fd) != 0) {
    const hal::Error e = hal::errnoError("cannot close " + tmpl);
    ::unlink(tmpl.c_str());
    return Status(e);
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    const hal::Error e = hal::errnoError(fmt::format("cannot rename {} to {}", tmpl, path.string()));
    ::unlink(tmpl.c_str());
    return Status(e);
  }
  // The rename is durable only once the folder's entry is on disk.
  const int dirFd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd < 0) return Status(hal::errnoError("cannot open folder " + dir.string()));
  const int rc = ::fsync(dirFd);
  const int savedErrno = errno;
  ::close(dirFd);
  if (rc != 0) return Status(hal::errnoError("cannot fsync folder " + dir.string(), savedErrno));
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

std::string timelapseRecordingSettingsJson(const Settings& s) {
  return nlohmann::json{{"timelapse_enabled", s.timelapseEnabled},
                        {"timelapse_mode", s.timelapseMode},
                        {"timelapse_hyperlapse_interval", s.timelapseIntervalS},
                        {"timelapse_stream_delay", s.timelapseStreamDelayMs / 1000.0},
                        {"timelapse_crf", s.timelapseCrf},
                        {"timelapse_output_fps", s.timelapseFps},
                        {"timelapse_variable_fps", s.timelapseVariableFps},
                        {"timelapse_target_length", s.timelapseTargetLengthS},
                        {"timelapse_variable_fps_min", s.timelapseMinFps},
                        {"timelapse_variable_fps_max", s.timelapseMaxFps},
                        {"timelapse_flip_x", s.timelapseFlipX},
                        {"timelapse_flip_y", s.timelapseFlipY},
                        {"timelapse_duplicate_last_frame", s.timelapseDuplicateLast},
                        {"moonraker_host", s.moonrakerHost},
                        {"moonraker_port", s.moonrakerPort},
                        {"moonraker_socket", s.moonrakerSocket},
                        {"moonraker_register_webcam", s.moonrakerRegisterWebcam}}
      .dump();
}

hal::Transform cameraTransform(const Settings& s) {
  hal::Transform t = hal::Transform::fromDegrees(s.cameraRotation).value_or(hal::Transform::identity());
  if (s.cameraFlipX) t = t.then(hal::Transform::hflip());
  if (s.cameraFlipY) t = t.then(hal::Transform::vflip());
  return t;
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

namespace {

// One camera's publish targets (`key`: "publish" or "cameras[i].publish"): at most
// kMaxPublishTargets, each an rtsp:// URL (RECORD) or an rtmp[s]://host/app/key ingest (rtmps://
// only in builds with TLS).
Status checkPublishTargets(const std::vector<std::string>& targets, const std::string& src,
                           const std::string& key) {
  constexpr size_t kMaxPublishTargets = 8;  // each is a connection and a thread
  if (targets.size() > kMaxPublishTargets) {
    return invalid(src, key, std::to_string(targets.size()) + " URLs",
                   fmt::format("at most {} media servers", kMaxPublishTargets));
  }
  for (const auto& target : targets) {
    std::string problem;
    if (transport::isRtmpUrl(target)) {
      if (auto parsed = transport::parseRtmpUrl(target); !parsed) problem = parsed.error().message;
    } else if (auto url = transport::parseUrl(target, "rtsp", 554); !url) {
      problem = url.error().message;
    }
    if (!problem.empty()) {
      return invalid(src, key, "\"" + target + "\"",
                     problem +
                         " (an rtsp:// URL of a server that accepts RECORD, e.g. MediaMTX, or an "
                         "rtmp:// or rtmps://host/app/key ingest)");
    }
  }
  return {};
}

// `source` (or its older name `device`): the kinds of camera this build can open.
Status finalizeSource(Settings& s, const std::string& src) {
  if (s.source.empty()) s.source = s.device;
  s.device.clear();
  if (s.ingestMaxMessageKb < 64 || s.ingestMaxMessageKb > 65536) {
    return invalid(src, "ingest_max_message_kb", std::to_string(s.ingestMaxMessageKb),
                   "must be an integer in 64..65536");
  }
  if (s.ingestPort < -1 || s.ingestPort > 65535) {
    return invalid(src, "ingest_port", std::to_string(s.ingestPort), "must be in 0..65535, or -1 for off");
  }
  if (s.ingestPort >= 0 && s.source != "ws-push") {
    return invalid(src, "ingest_port", std::to_string(s.ingestPort),
                   "needs source ws-push (cameras push to it), not \"" + s.source + "\"");
  }
  if (s.rtspAuth && s.authTokenSha256.empty()) {
    return invalid(src, "rtsp_auth", "true", "needs auth_token_sha256 (the token RTSP clients present)");
  }
  if (auto st = checkPublishTargets(s.publish, src, "publish"); !st) return st;
  const size_t scheme = s.source.find("://");
  if (scheme == std::string::npos) return {};  // "", "test-pattern", "ws-push" or a V4L2 device
  const std::string kind = s.source.substr(0, scheme);
  if (kind == "http") {
    if (auto url = transport::parseHttpUrl(s.source); !url) {
      return invalid(src, "source", "\"" + s.source + "\"", url.error().message);
    }
    return {};
  }
  if (kind == "rtsp") {
    if (auto url = transport::parseUrl(s.source, "rtsp", 554); !url) {
      return invalid(src, "source", "\"" + s.source + "\"", url.error().message);
    }
    return {};
  }
  return invalid(
      src, "source", "\"" + kind + "://...\"",
      "must be test-pattern, ws-push, a V4L2 device, an http:// MJPEG or snapshot URL, or an rtsp:// "
      "URL (" +
          kind + ":// cameras are not supported)");
}

}  // namespace

Status applyProfile(const std::string& name, Settings& s) {
  s.profile = name;
  if (name == "printer") return {};
  if (name == "esp32-relay") {
    s.source = "ws-push";
    s.ingestPort = 8765;
    s.wsPort = 8766;
    s.wsPortTimestamps = false;
    s.flvPort = -1;
    return {};
  }
  return {Errc::InvalidArgument, "--profile '" + name + "' is not a profile (printer, esp32-relay)"};
}

namespace {

// One entry of the `cameras` list (`where`: "cameras[2]"), checked against the board and against
// `others` (the entries it must not clash with, each with its place). `first`: it becomes camera 0.
// Fills the default name. `errorKey` (optional) gets the entry key at fault.
Status checkEntry(Settings::CameraEntry& c, const std::string& where, bool first,
                  const std::vector<std::pair<std::string, const Settings::CameraEntry*>>& others,
                  const Settings& s, const bsp::Board& board, const std::string& src, std::string* errorKey) {
  auto fail = [&](const char* key, Status st) {
    if (errorKey != nullptr) *errorKey = key;
    return st;
  };
  const bool idOk =
      !c.id.empty() && c.id.size() <= 32 &&
      c.id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") ==
          std::string::npos;
  if (!idOk)
    return fail("id", invalid(src, where + ".id", "\"" + c.id + "\"", "must be 1..32 of A-Z a-z 0-9 _ -"));
  for (const auto& [otherWhere, other] : others) {
    if (other->id == c.id)
      return fail("id", invalid(src, where + ".id", "\"" + c.id + "\"", "is already " + otherWhere + "'s"));
  }
  if (c.name.empty()) c.name = c.id;
  if (c.name.size() > 64)
    return fail("name", invalid(src, where + ".name", "\"" + c.name + "\"", "must be at most 64 characters"));
  if (c.source.empty())
    return fail("source", invalid(src, where + ".source", "\"\"",
                                  "is needed (test-pattern, a V4L2 device, http://, rtsp://)"));
  const auto& lim = board.limits;
  if (!c.size.empty() &&
      (c.size.width < 16 || c.size.height < 16 || c.size.width > lim.maxCameraSize.width ||
       c.size.height > lim.maxCameraSize.height || c.size.width % 2 != 0 || c.size.height % 2 != 0)) {
    return fail("resolution", invalid(src, where + ".resolution", c.size.str(),
                                      fmt::format("must be even, from 16x16 up to {} on board {}",
                                                  lim.maxCameraSize.str(), board.id)));
  }
  if (c.fps > lim.maxCameraFps) {
    return fail("fps", invalid(src, where + ".fps", std::to_string(c.fps),
                               fmt::format("must be in 1..{} on board {}", lim.maxCameraFps, board.id)));
  }
  if (auto st = checkPublishTargets(c.publish, src, where + ".publish"); !st) return fail("publish", st);
  if (c.format != "auto" && (c.source.find("://") != std::string::npos || c.source == "ws-push")) {
    return fail("format", invalid(src, where + ".format", "\"" + c.format + "\"",
                                  "applies to V4L2 cameras only (this source is \"" +
                                      transport::withoutUserinfo(c.source) + "\"); use \"auto\""));
  }
  if (!c.h264 && (!c.publish.empty() || (first && c.enabled && !s.publish.empty()))) {
    return fail("h264", invalid(src, where + ".h264", "false",
                                "the camera publishes H.264 (" + std::string(first ? "publish or " : "") +
                                    where + ".publish): remove the targets or set h264 true"));
  }
  if (!c.enabled) return {};
  // Camera 0 publishes to the top-level targets and its entry's; one media-server path takes one
  // publisher, so a URL is refused when another camera (or the top level) already has it.
  if (first) {
    std::vector<std::string> both = s.publish;
    both.insert(both.end(), c.publish.begin(), c.publish.end());
    if (auto st = checkPublishTargets(both, src, where + ".publish (with publish)"); !st)
      return fail("publish", st);
  }
  for (const auto& target : c.publish) {
    std::string owner;
    if (std::find(s.publish.begin(), s.publish.end(), target) != s.publish.end()) owner = "publish";
    for (const auto& [otherWhere, other] : others) {
      if (!owner.empty()) break;
      if (other->enabled &&
          std::find(other->publish.begin(), other->publish.end(), target) != other->publish.end())
        owner = otherWhere + ".publish";
    }
    if (std::count(c.publish.begin(), c.publish.end(), target) > 1) owner = where + ".publish";
    if (!owner.empty())
      return fail("publish",
                  invalid(src, where + ".publish", "\"" + target + "\"",
                          "is already in " + owner + " (a media-server path takes one publisher)"));
  }
  if (!first && c.source == "ws-push") {
    return fail("source", invalid(src, where + ".source", "\"ws-push\"",
                                  "only the first camera can be the push ingest's"));
  }
  // The same source rules as the top-level key, named after the entry.
  Settings probe = s;
  probe.source = c.source;
  probe.device.clear();
  probe.ingestPort = -1;  // the top level's push port belongs to camera 0's source, not this one's
  if (first) probe.ingestPort = s.ingestPort;
  if (auto st = finalizeSource(probe, src); !st) {
    return fail("source",
                Status(Errc::InvalidArgument, where + " (\"" + c.id + "\"): " + st.error().message));
  }
  return {};
}

// The `cameras` list: ids, sources and sizes checked (each error names the entry and the key); the
// first enabled entry becomes the top-level camera (camera 0).
Status finalizeCameras(Settings& s, const bsp::Board& board, const std::string& src) {
  if (s.cameras.empty()) return {};
  if (s.cameras.size() > kMaxCameras)
    return invalid(src, "cameras", std::to_string(s.cameras.size()) + " entries",
                   fmt::format("at most {}", kMaxCameras));
  const Settings::CameraEntry* first = nullptr;
  std::vector<std::pair<std::string, const Settings::CameraEntry*>> before;
  for (size_t i = 0; i < s.cameras.size(); ++i) {
    auto& c = s.cameras[i];
    const std::string where = fmt::format("cameras[{}]", i);
    if (auto st = checkEntry(c, where, first == nullptr, before, s, board, src, nullptr); !st) return st;
    before.emplace_back(where, &c);
    if (c.enabled && first == nullptr) first = &c;
  }
  if (first == nullptr) return invalid(src, "cameras", "[...]", "no entry is enabled");
  s.source = first->source;
  s.device.clear();
  if (!first->size.empty()) {
    s.width = first->size.width;
    s.height = first->size.height;
  }
  if (first->fps > 0) s.fps = first->fps;
  if (first->bitrateKbps > 0) s.bitrateKbps = first->bitrateKbps;
  s.cameraFormat = first->format;
  s.h264Offered = first->h264;
  return {};
}

}  // namespace

Settings settingsForCamera(const Settings& s, const Settings::CameraEntry& camera) {
  Settings c = s;
  c.source = camera.source;
  c.device.clear();
  if (!camera.size.empty()) {
    c.width = camera.size.width;
    c.height = camera.size.height;
  }
  if (camera.fps > 0) c.fps = camera.fps;
  if (camera.bitrateKbps > 0) c.bitrateKbps = camera.bitrateKbps;
  c.publish = camera.publish;
  c.cameraFormat = camera.format;
  c.h264Offered = camera.h264;
  if (c.mjpegFps > c.fps) c.mjpegFps = c.fps;
  c.gopFrames = s.gopFrames == 2 * s.fps ? 2 * c.fps : s.gopFrames;
  c.ring = false;
  c.ingestPort = -1;
  c.cameras.clear();
  return c;
}

Status parseCameraEntry(const std::string& body, const std::string& src, const std::string& where,
                        Settings::CameraEntry& entry, std::string& errorKey) {
  errorKey.clear();
  const nlohmann::json item = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (item.is_discarded() || !item.is_object())
    return Status(Errc::InvalidArgument, src + ": the body must be a JSON object of camera keys");
  return readCameraEntry(item, src, where, entry, &errorKey);
}

Status checkCameraEntry(Settings::CameraEntry& entry, const std::string& where, bool first,
                        const std::vector<std::pair<std::string, const Settings::CameraEntry*>>& others,
                        const Settings& s, const bsp::Board& board, const std::string& src,
                        std::string& errorKey) {
  errorKey.clear();
  return checkEntry(entry, where, first, others, s, board, src, &errorKey);
}

std::string cameraEntryJson(const Settings::CameraEntry& c, bool full) {
  nlohmann::json out = {{"id", c.id}};
  if (full || c.name != c.id) out["name"] = c.name;
  out["source"] = c.source;
  if (full || !c.size.empty()) out["resolution"] = c.size.empty() ? std::string() : c.size.str();
  if (full || c.fps > 0) out["fps"] = c.fps;
  if (full || c.bitrateKbps > 0) out["bitrate"] = c.bitrateKbps;
  if (full || !c.enabled) out["enabled"] = c.enabled;
  if (full || !c.publish.empty()) out["publish"] = c.publish;
  if (full || c.format != "auto") out["format"] = c.format;
  if (full || !c.h264) out["h264"] = c.h264;
  return out.dump();
}

hal::Result<std::string> editCameraList(const std::string& config, const CameraListEdit& edit) {
  nlohmann::json doc = nlohmann::json::object();
  if (config.find_first_not_of(" \t\r\n") != std::string::npos) {
    doc = nlohmann::json::parse(config, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
    if (doc.is_discarded() || !doc.is_object())
      return hal::Error{Errc::InvalidArgument, 0, "the config file is not a JSON object; not overwriting it"};
  }
  nlohmann::json list = doc.contains("cameras") ? doc["cameras"] : nlohmann::json::array();
  if (!list.is_array())
    return hal::Error{Errc::InvalidArgument, 0,
                      "the config file's cameras is not a list; not overwriting it"};
  auto byId = [&]() {
    return std::find_if(list.begin(), list.end(), [&](const nlohmann::json& e) {
      return e.is_object() && e.contains("id") && e["id"].is_string() &&
             e["id"].get<std::string>() == edit.id;
    });
  };
  nlohmann::json entry;
  if (edit.kind != CameraListEdit::Kind::Remove) {
    entry = nlohmann::json::parse(edit.entry, nullptr, /*allow_exceptions=*/false);
    if (entry.is_discarded() || !entry.is_object())
      return hal::Error{Errc::InvalidArgument, 0, "a camera entry must be a JSON object"};
  }
  switch (edit.kind) {
    case CameraListEdit::Kind::Add: list.push_back(entry); break;
    case CameraListEdit::Kind::Change:
      if (auto it = byId(); it != list.end()) {
        it->update(entry);
      } else {
        list.push_back(entry);
      }
      break;
    case CameraListEdit::Kind::Remove:
      if (auto it = byId(); it != list.end()) list.erase(it);
      break;
  }
  return list.dump();
}

Status saveCameraListEdit(const std::filesystem::path& path, const CameraListEdit& edit) {
  auto existing = readConfigText(path);
  if (!existing) return Status(existing.error());
  auto list = editCameraList(existing->value_or(std::string()), edit);
  if (!list) return Status(Errc::InvalidArgument, path.string() + ": " + list.error().message);
  return saveSettingsFile(path, "{\"cameras\": " + *list + "}");
}

Status finalizeSettings(Settings& s, const bsp::Board& board) {
  const std::string src = "settings";
  if (s.width == 0 || s.height == 0) {
    s.width = board.camera.defaultSize.width;
    s.height = board.camera.defaultSize.height;
  }
  if (s.fps == 0) s.fps = board.camera.defaultFps;
  if (auto st = finalizeCameras(s, board, src); !st) return st;
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
  for (const auto& [key, size] :
       {std::pair{"stream_resolution", s.streamSize}, {"snapshot_resolution", s.snapshotSize}}) {
    if (size.empty()) continue;
    if (size.width < 16 || size.height < 16 || size.width > lim.maxCameraSize.width ||
        size.height > lim.maxCameraSize.height || size.width % 2 != 0 || size.height % 2 != 0) {
      return invalid(
          src, key, size.str(),
          fmt::format("must be even, from 16x16 up to {} on board {}", lim.maxCameraSize.str(), board.id));
    }
  }
  if (s.fps < 1 || s.fps > lim.maxCameraFps) {
    return invalid(src, "desired-fps", std::to_string(s.fps),
                   fmt::format("must be in 1..{} on board {}", lim.maxCameraFps, board.id));
  }
  // encoder_type gkcam (h264-streamer's gkcam mode): Anycubic's camera service keeps the camera
  // and its encoder; its FLV (:18088/flv) is the camera, and it serves the slicer on 18088 itself.
  if (s.encoderType == "gkcam") {
    if (s.source.empty()) s.source = std::string(kGkcamFlvUrl);
    if (s.flvPort == kDefaultFlvPort) s.flvPort = -1;
  }
  if (auto st = finalizeSource(s, src); !st) return st;
  const bool testPattern =
      s.source == "test-pattern" || (s.source.empty() && board.camera.kind == bsp::CameraKind::TestPattern);
  if (s.unpaced && !testPattern) {
    const char* camera = s.source.empty() ? "real camera" : "--source that is not the test pattern";
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
  if (!(s.hlsSegmentSeconds >= 0.5 && s.hlsSegmentSeconds <= 10)) {
    return invalid(src, "hls_segment_seconds", fmt::format("{}", s.hlsSegmentSeconds),
                   "must be a number of seconds in 0.5..10");
  }
  if (!(s.hlsPartSeconds == 0 || (s.hlsPartSeconds >= 0.1 && s.hlsPartSeconds <= 5))) {
    return invalid(src, "hls_part_seconds", fmt::format("{}", s.hlsPartSeconds),
                   "must be a number of seconds in 0.1..5, or 0 for off");
  }
  if (s.hlsPartSeconds > 0 && s.hlsPartSeconds > s.hlsSegmentSeconds / 2) {
    return invalid(
        src, "hls_part_seconds", fmt::format("{}", s.hlsPartSeconds),
        fmt::format("must be at most half of hls_segment_seconds ({}), or 0 for off", s.hlsSegmentSeconds));
  }
  if (s.wsPort < -1 || s.wsPort > 65535) {
    return invalid(src, "ws_port", std::to_string(s.wsPort), "must be in 0..65535, or -1 for off");
  }
  if (!s.timelapseFolder.empty() && s.timelapseFolder.front() != '/') {
    return invalid(src, "timelapse_folder", "\"" + s.timelapseFolder + "\"",
                   "must be an absolute folder path");
  }
  if (auto st = checkTimelapseStorage(src, s, board); !st) return st;
  if (auto st = finalizeTimelapseSettings(s, src); !st) return st;
  return {};
}

}  // namespace printcast::streamer
