// SPDX-License-Identifier: MIT
// The bring-up probe's subsystems: each lists what the machine has and, with --test, exercises it.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "printcast/hal/geometry.h"
#include "printcast/hal/transform.h"

namespace printcast::probe {

// What a subsystem found. `status` is one of:
//   "pass"      listed (and with --test: exercised) without a problem
//   "fail"      a device was found but listing or the test failed (see "errors")
//   "absent"    this machine has no such device
//   "not-built" this build has no backend for it (no stub is claimed as working)
//   "skipped"   the user asked to skip it (--skip)
struct Report {
  std::string status = "pass";
  nlohmann::json details = nlohmann::json::object();
  nlohmann::json errors = nlohmann::json::array();  // strings naming the device and the reason

  void fail(const std::string& message) {
    status = "fail";
    errors.push_back(message);
  }
  nlohmann::json toJson() const;
};

struct Options {
  bool test = false;
  // Camera: which one ("" = first), and what to ask it for in --test.
  std::string camera;
  std::string cameraFormat = "YUYV";
  hal::Size cameraSize{640, 480};
  int cameraFps = 25;
  int frames = 30;
  // Display: node ("" = every DRM card, then every fbdev node), the mount orientation that
  // turns the panel upright, and where --test saves the upright grab (JPEG).
  std::string displayNode;
  hal::Transform orientation;
  std::string imagePath = "probe-display.jpg";
  // Touch: the panel's evdev name ("" = first direct multi-touch device) and the panel range
  // taps are given in (empty = the device's ABS extent).
  std::string touchName;
  hal::Size touchRange;
  std::chrono::milliseconds tapHold{30};
  // ONVIF (--onvif): the LAN's IP cameras instead of this machine's devices. Credentials for their
  // services, a unicast address ("host[:port]", "" = the multicast Probe) and the window.
  std::string onvifUser;
  std::string onvifPassword;
  std::string onvifAddress;
  double onvifSeconds = 5;
};

Report probeCameras(const Options& options);
Report probeDisplays(const Options& options);
Report probeTouch(const Options& options);
Report probeEncoders(const Options& options);
// "pass": cameras found and every one answered; "absent": none answered the Probe; "fail": one
// did not describe itself (errors name it and why); "not-built": no ONVIF in this build.
Report probeOnvif(const Options& options);

}  // namespace printcast::probe
