// SPDX-License-Identifier: MIT
// The ONVIF cameras a discovery found (transport/onvif.h) as JSON, one shape for
// `printcast-probe --onvif --json` and the streamer's POST /api/cameras/discover:
// an array of {"name", "hardware", "xaddr", "endpoint", "clock_offset_seconds",
// "profiles": [{"token", "name", "width", "height", "encoding", "rtsp", "error"}], "error"},
// in the order the cameras answered. Credentials are never in it: an xaddr or RTSP URI the
// camera gave with user:password@ loses them. Header-only (both apps link nlohmann-json).
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "printcast/transport/onvif.h"
#include "printcast/transport/url.h"

namespace printcast::apps {

inline nlohmann::json onvifCamerasJson(const std::vector<transport::onvif::Camera>& cameras) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : cameras) {
    nlohmann::json profiles = nlohmann::json::array();
    for (const auto& p : c.profiles) {
      profiles.push_back({{"token", p.token},
                          {"name", p.name},
                          {"width", p.width},
                          {"height", p.height},
                          {"encoding", p.encoding},
                          {"rtsp", transport::withoutUserinfo(p.rtspUri)},
                          {"error", p.error}});
    }
    out.push_back({{"name", c.name},
                   {"hardware", c.hardware},
                   {"xaddr", transport::withoutUserinfo(c.xaddr)},
                   {"endpoint", c.endpoint},
                   {"clock_offset_seconds", c.clockOffset.count()},
                   {"profiles", profiles},
                   {"error", c.error}});
  }
  return out;
}

}  // namespace printcast::apps
