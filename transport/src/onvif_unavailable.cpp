// SPDX-License-Identifier: MIT
// ONVIF discovery (onvif.h) in a build without pugixml or nettle: every call says so.
#include "printcast/transport/onvif.h"

namespace printcast::transport::onvif {

using hal::Errc;

namespace {
const char* const kWhy =
    "this build has no ONVIF discovery (it needs pugixml and nettle: libpugixml-dev, nettle-dev)";
}  // namespace

bool discoveryBuilt() { return false; }
std::string probeMessage(std::string_view) { return {}; }
hal::Result<std::vector<ProbeMatch>> parseProbeMatches(std::string_view) { return {Errc::Unsupported, kWhy}; }
ScopeInfo parseScopes(const std::vector<std::string>&) { return {}; }
std::string passwordDigest(const std::vector<uint8_t>&, std::string_view, std::string_view) { return {}; }
std::string xsdDateTime(std::chrono::system_clock::time_point) { return {}; }
std::string soapRequest(std::string_view, const UsernameToken*) { return {}; }
std::string getSystemDateAndTimeBody() { return {}; }
std::string getCapabilitiesBody() { return {}; }
std::string getProfilesBody() { return {}; }
std::string getStreamUriBody(std::string_view) { return {}; }
hal::Result<std::chrono::system_clock::time_point> parseSystemDateAndTime(std::string_view) {
  return {Errc::Unsupported, kWhy};
}
hal::Result<std::string> parseMediaXAddr(std::string_view) { return {Errc::Unsupported, kWhy}; }
hal::Result<std::vector<Profile>> parseProfiles(std::string_view) { return {Errc::Unsupported, kWhy}; }
hal::Result<std::string> parseStreamUri(std::string_view) { return {Errc::Unsupported, kWhy}; }
hal::Result<std::vector<ProbeMatch>> probe(const DiscoveryOptions&) { return {Errc::Unsupported, kWhy}; }
Camera describe(const ProbeMatch& match, const DiscoveryOptions&) {
  Camera camera;
  camera.endpoint = match.endpoint;
  camera.xaddrs = match.xaddrs;
  camera.error = kWhy;
  camera.errorCode = Errc::Unsupported;
  return camera;
}
hal::Result<std::vector<Camera>> discover(const DiscoveryOptions&) { return {Errc::Unsupported, kWhy}; }
std::string chooseXAddr(const std::vector<std::string>&, std::string_view) { return {}; }

}  // namespace printcast::transport::onvif
