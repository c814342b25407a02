// SPDX-License-Identifier: MIT
// libFuzzer target: the Host, Origin and Authorization headers of requests to the control port
// (the same-origin rule, transport/http_access.h; credentials, transport/http_auth.h). Input:
// Host, a NUL, Origin, a NUL, this machine's name, a NUL, Authorization.
// Oracle: a parsed host has no port, brackets or upper case; a request the rule lets through has
// a parseable Host; its own origin is always trusted for a parseable Host; a presented token
// matches its own hash and only that.
#include <cassert>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "printcast/transport/http_access.h"
#include "printcast/transport/http_auth.h"

using namespace printcast::transport;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto next = [&in]() {
    const size_t nul = in.find('\0');
    std::string_view part = in.substr(0, nul);
    in = nul == std::string_view::npos ? std::string_view() : in.substr(nul + 1);
    return std::string(part);
  };
  const std::string host = next();
  const std::string origin = next();
  const std::string machine = next();
  const std::string authorization = next();

  const std::string parsed = hostOfHostHeader(host);
  for (char c : parsed) {
    assert(c != '[' && c != ']' && c != '/' && c != '@');
    assert(!std::isupper(static_cast<unsigned char>(c)));
  }
  OriginPolicy policy;
  policy.sameOriginWrites = true;
  policy.trustedOrigins = splitList(origin);
  policy.allowedHosts = splitList(machine);
  const std::string why = checkStateChange(policy, host, origin, machine);
  if (why.empty()) assert(!parsed.empty());
  if (!parsed.empty() && !host.empty()) assert(isTrustedOrigin(policy, "http://" + host, host));
  (void)isStateChangingMethod(origin);

  const std::string token = presentedToken(authorization, origin);
  if (!token.empty()) {
    assert(tokenMatches(sha256Hex(token), token));
    assert(!tokenMatches(sha256Hex(token + "x"), token));
  }
  return 0;
}
