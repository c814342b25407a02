// SPDX-License-Identifier: MIT
// printcast-probe --onvif: the LAN's ONVIF cameras (transport/onvif.h) with their profiles and
// RTSP URIs, for a porter or a user choosing a camera's source.
#include <fmt/format.h>

#include <cmath>

#include "onvif_json.h"
#include "printcast/transport/onvif.h"
#include "printcast/transport/url.h"
#include "probe.h"

namespace printcast::probe {

namespace onvif = transport::onvif;

Report probeOnvif(const Options& options) {
  Report r;
  if (!onvif::discoveryBuilt()) {
    r.status = "not-built";
    r.details["reason"] = "this build has no ONVIF discovery (it needs pugixml: libpugixml-dev)";
    return r;
  }
  onvif::DiscoveryOptions o;
  o.user = options.onvifUser;
  o.password = options.onvifPassword;
  if (!options.onvifAddress.empty()) o.addresses = {options.onvifAddress};
  o.window = std::chrono::milliseconds(std::lround(options.onvifSeconds * 1000));
  r.details["probe"] = options.onvifAddress.empty() ? std::string("multicast 239.255.255.250:3702")
                                                    : "unicast " + options.onvifAddress;
  r.details["seconds"] = options.onvifSeconds;
  auto cameras = onvif::discover(o);
  if (!cameras) {
    r.fail(cameras.error().describe());
    return r;
  }
  for (const auto& c : *cameras) {
    if (!c.error.empty())
      r.fail(fmt::format("{} ({}): {}", c.name.empty() ? c.endpoint : c.name,
                         transport::withoutUserinfo(c.xaddr), c.error));
  }
  r.details["cameras"] = apps::onvifCamerasJson(*cameras);
  if (cameras->empty()) {
    r.status = "absent";
    r.details["reason"] = fmt::format("no ONVIF camera answered within {} s", options.onvifSeconds);
  }
  return r;
}

}  // namespace printcast::probe
