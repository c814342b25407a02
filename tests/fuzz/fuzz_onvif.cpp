// SPDX-License-Identifier: MIT
// libFuzzer target: what an ONVIF camera (or anything on the LAN) sends back to discovery
// (transport/onvif.h): a ProbeMatches datagram and the SOAP answers of the device and media
// services, each read by its parser. Oracles: every answer is a value or an error with a code
// the discovery knows and a message; what a value holds is bounded and well-formed (profile
// sizes in range, a clock after 1970, no empty token, XAddr chosen among those offered).
#include <algorithm>
#include <cassert>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "printcast/transport/onvif.h"

namespace onvif = printcast::transport::onvif;
using printcast::hal::Errc;

namespace {

template <typename R>
void checkError(const R& r) {
  if (r) return;
  const Errc code = r.code();
  assert(code == Errc::InvalidArgument || code == Errc::PermissionDenied || code == Errc::Unsupported);
  assert(!r.error().message.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view xml(reinterpret_cast<const char*>(data), size);

  auto matches = onvif::parseProbeMatches(xml);
  checkError(matches);
  if (matches) {
    assert(matches->size() <= 64);
    for (const auto& m : *matches) {
      assert(!m.endpoint.empty() || !m.xaddrs.empty());
      assert(m.xaddrs.size() <= 64 && m.scopes.size() <= 64 && m.types.size() <= 64);
      for (const auto& x : m.xaddrs) assert(!x.empty() && x.find(' ') == std::string::npos);
      (void)onvif::parseScopes(m.scopes);
      const std::string chosen = onvif::chooseXAddr(m.xaddrs, "192.0.2.7");
      if (!chosen.empty()) assert(std::find(m.xaddrs.begin(), m.xaddrs.end(), chosen) != m.xaddrs.end());
    }
  }

  auto time = onvif::parseSystemDateAndTime(xml);
  checkError(time);
  if (time) {
    assert(time->time_since_epoch().count() >= 0);
    assert(onvif::xsdDateTime(*time).size() >= 20);
  }

  auto media = onvif::parseMediaXAddr(xml);
  checkError(media);
  if (media) assert(!media->empty());

  auto profiles = onvif::parseProfiles(xml);
  checkError(profiles);
  if (profiles) {
    assert(profiles->size() <= 64);
    for (const auto& p : *profiles) {
      assert(!p.token.empty());
      assert(p.width >= 0 && p.width <= 65535 && p.height >= 0 && p.height <= 65535);
      assert((p.width == 0) == (p.height == 0));
    }
  }

  auto uri = onvif::parseStreamUri(xml);
  checkError(uri);
  if (uri) assert(!uri->empty());
  return 0;
}
