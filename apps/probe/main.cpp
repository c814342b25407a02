// SPDX-License-Identifier: MIT
// printcast-probe: the bring-up probe for porters: lists cameras, displays, touch panels and
// encoders, and with --test exercises each; writes a JSON report; the exit code is a bit mask.
// With --onvif it lists the LAN's ONVIF IP cameras instead (docs/onvif.md).
#include <fstream>
#include <iostream>
#include <set>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "printcast/bsp/registry.h"
#include "probe.h"

using namespace printcast;

namespace {

// Exit code bits: one per subsystem that is not "pass" (or "skipped"). Documented in --help.
constexpr int kCameraFailed = 1;
constexpr int kDisplayFailed = 2;
constexpr int kTouchFailed = 4;
constexpr int kEncodersFailed = 8;
constexpr int kReportNotWritten = 16;
constexpr int kOnvifFailed = 32;

void printCameras(const nlohmann::json& d) {
  for (const auto& dev : d.value("devices", nlohmann::json::array())) {
    fmt::print("  {} \"{}\" ({}, {})\n", dev.value("path", ""), dev.value("card", ""),
               dev.value("driver", ""), dev.value("busInfo", ""));
    for (const auto& f : dev["formats"]) {
      std::string sizes;
      for (const auto& s : f["sizes"]) {
        sizes += " " + (s.contains("size") ? s["size"].get<std::string>()
                                           : s["min"].get<std::string>() + "-" + s["max"].get<std::string>());
        if (s.contains("fps") && !s["fps"].empty()) sizes += fmt::format("@{}", s["fps"][0].get<double>());
      }
      fmt::print("    {} {}:{}\n", f.value("fourcc", ""), f.value("description", ""), sizes);
    }
    for (const auto& c : dev.value("controls", nlohmann::json::array())) {
      fmt::print("    control {} = {} ({}..{})\n", c.value("name", ""), c["value"].dump(), c["min"].dump(),
                 c["max"].dump());
    }
  }
}

void printOnvif(const nlohmann::json& d) {
  if (d.contains("probe"))
    fmt::print("  probe: {}, answers for up to {} s\n", d["probe"].get<std::string>(), d["seconds"].dump());
  for (const auto& c : d.value("cameras", nlohmann::json::array())) {
    fmt::print("  \"{}\" {} {}\n", c.value("name", ""), c.value("hardware", ""), c.value("xaddr", ""));
    if (c.value("clock_offset_seconds", 0) != 0) {
      fmt::print("    clock: {} s from ours (applied to the UsernameToken)\n",
                 c["clock_offset_seconds"].dump());
    }
    for (const auto& p : c["profiles"]) {
      fmt::print("    {} \"{}\" {} {}x{}: {}\n", p.value("token", ""), p.value("name", ""),
                 p.value("encoding", ""), p.value("width", 0), p.value("height", 0),
                 p.value("rtsp", "").empty() ? "no stream: " + p.value("error", "") : p.value("rtsp", ""));
    }
  }
}

void printReport(const std::string& title, const probe::Report& r) {
  fmt::print("{:<9} {}\n", title + ":", r.status);
  const auto& d = r.details;
  if (d.contains("reason")) fmt::print("  {}\n", d["reason"].get<std::string>());
  if (title == "cameras") printCameras(d);
  if (title == "displays" || title == "touch") {
    for (const auto& dev : d.value("devices", nlohmann::json::array())) fmt::print("  {}\n", dev.dump());
  }
  if (title == "encoders") {
    for (const auto& [name, e] : d.items()) fmt::print("  {}: {}\n", name, e.dump());
  }
  if (title == "onvif") printOnvif(d);
  if (d.contains("test")) fmt::print("  test: {}\n", d["test"].dump());
  for (const auto& e : r.errors) fmt::print("  error: {}\n", e.get<std::string>());
}

}  // namespace

nlohmann::json probe::Report::toJson() const {
  return {{"status", status}, {"details", details}, {"errors", errors}};
}

int main(int argc, char** argv) {
  CLI::App app{
      "printcast-probe: what a new board's cameras, displays, touch panels and encoders can do.\n"
      "Exit code: 0 when every subsystem passed (or was --skip'ped); otherwise the sum of\n"
      "  1 camera, 2 display, 4 touch, 8 encoders\n"
      "for each subsystem that failed, is absent or has no backend in this build; 16 when the\n"
      "--json report could not be written.\n"
      "--onvif lists the LAN's ONVIF IP cameras instead (WS-Discovery, then each camera's profiles and\n"
      "RTSP URIs; docs/onvif.md): exit code 0 when cameras answered and every one described itself,\n"
      "32 when none answered or one failed (wrong password, timeout, not ONVIF)."};
  probe::Options o;
  std::string jsonPath, boardId, orientation, cameraSize, touchRange;
  std::vector<std::string> skip;
  bool onvifMode = false;
  app.add_flag("--test", o.test, "Exercise the devices: capture frames, grab the display, inject taps");
  app.add_option("--json", jsonPath, "Write the report as JSON to this file");
  app.add_option("--board", boardId,
                 "Take the display orientation, display node and touch name/range from a board");
  app.add_option("--skip", skip, "Subsystems to leave out: camera, display, touch, encoders")->delimiter(',');
  app.add_option("--camera", o.camera,
                 "Camera to test: node, stable name or card-name substring (default first)");
  app.add_option("--camera-format", o.cameraFormat, "FourCC to capture in --test")
      ->default_val(o.cameraFormat);
  app.add_option("--camera-size", cameraSize, "WIDTHxHEIGHT to capture in --test (default 640x480)");
  app.add_option("--camera-fps", o.cameraFps, "Frame rate to ask for in --test")->default_val(o.cameraFps);
  app.add_option("--frames", o.frames, "Frames to capture in --test")
      ->default_val(o.frames)
      ->check(CLI::Range(2, 10000));
  app.add_option("--display-node", o.displayNode,
                 "Display node (default: every /dev/dri/card*, then /dev/fb*)");
  app.add_option("--orientation", orientation, "Mount orientation turning the panel upright (rot180, ...)");
  app.add_option("--image", o.imagePath, "Where --test saves the upright display grab (JPEG)")
      ->default_val(o.imagePath);
  app.add_option("--touch-name", o.touchName,
                 "Touch panel evdev name (default: first direct multi-touch device)");
  app.add_option("--touch-range", touchRange,
                 "Panel range WIDTHxHEIGHT taps are given in (default: the ABS extent)");
  app.add_flag("--onvif", onvifMode, "Find the LAN's ONVIF IP cameras (instead of this machine's devices)");
  app.add_option("--onvif-user", o.onvifUser, "User for the cameras' services (WS-UsernameToken)");
  app.add_option("--onvif-password", o.onvifPassword, "Password for the cameras' services");
  app.add_option("--onvif-address", o.onvifAddress,
                 "Probe this camera (HOST[:PORT], port 3702 by default) instead of multicasting");
  app.add_option("--onvif-seconds", o.onvifSeconds, "How long to collect answers to the Probe")
      ->default_val(o.onvifSeconds)
      ->check(CLI::Range(0.1, 60.0));
  CLI11_PARSE(app, argc, argv);

  auto parseSize = [](const std::string& text, hal::Size& out) {
    return std::sscanf(text.c_str(), "%dx%d", &out.width, &out.height) == 2 && !out.empty();
  };
  if (!boardId.empty()) {
    auto board = bsp::findBoard(boardId);
    if (!board) {
      fmt::print(stderr, "printcast-probe: --board: {}\n", board.error().message);
      return 64;
    }
    const auto& b = **board;
    o.orientation = b.display.orientation;
    if (o.displayNode.empty()) o.displayNode = std::string(b.display.node);
    if (o.touchName.empty()) o.touchName = std::string(b.touch.deviceName);
    if (o.touchRange.empty()) o.touchRange = b.touch.range;
  }
  if (!orientation.empty()) {
    auto t = hal::Transform::fromName(orientation);
    if (!t) {
      fmt::print(stderr,
                 "printcast-probe: --orientation {}: not one of identity, rot90, rot180, rot270, hflip, "
                 "vflip, transpose, antitranspose\n",
                 orientation);
      return 64;
    }
    o.orientation = *t;
  }
  if (!cameraSize.empty() && !parseSize(cameraSize, o.cameraSize)) {
    fmt::print(stderr, "printcast-probe: --camera-size {}: not WIDTHxHEIGHT\n", cameraSize);
    return 64;
  }
  if (!touchRange.empty() && !parseSize(touchRange, o.touchRange)) {
    fmt::print(stderr, "printcast-probe: --touch-range {}: not WIDTHxHEIGHT\n", touchRange);
    return 64;
  }
  if (o.cameraFormat.size() != 4) {
    fmt::print(stderr, "printcast-probe: --camera-format {}: a FourCC has four characters\n", o.cameraFormat);
    return 64;
  }
  const std::set<std::string> skipped(skip.begin(), skip.end());

  struct Subsystem {
    const char* key;
    const char* title;
    probe::Report (*run)(const probe::Options&);
    int bit;
  };
  const std::vector<Subsystem> devices = {{"camera", "cameras", probe::probeCameras, kCameraFailed},
                                          {"display", "displays", probe::probeDisplays, kDisplayFailed},
                                          {"touch", "touch", probe::probeTouch, kTouchFailed},
                                          {"encoders", "encoders", probe::probeEncoders, kEncodersFailed}};
  const std::vector<Subsystem> onvif = {{"onvif", "onvif", probe::probeOnvif, kOnvifFailed}};
  nlohmann::json report = {{"probe", "printcast-probe"}, {"test", o.test}};
  if (!boardId.empty()) report["board"] = boardId;
  int exitCode = 0;
  for (const auto& s : onvifMode ? onvif : devices) {
    probe::Report r;
    if (skipped.count(s.key)) {
      r.status = "skipped";
    } else {
      r = s.run(o);
    }
    if (r.status != "pass" && r.status != "skipped") exitCode |= s.bit;
    printReport(s.title, r);
    report[s.key] = r.toJson();
  }
  report["exitCode"] = exitCode;
  if (!jsonPath.empty()) {
    std::ofstream out(jsonPath);
    // What cameras say (their names) need not be UTF-8: replaced, never thrown.
    out << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    if (!out) {
      fmt::print(stderr, "printcast-probe: cannot write {}\n", jsonPath);
      return exitCode | kReportNotWritten;
    }
  }
  fmt::print("result: {}\n", exitCode == 0 ? "pass" : fmt::format("fail (exit code {})", exitCode));
  return exitCode;
}
