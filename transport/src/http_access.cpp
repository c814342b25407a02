// SPDX-License-Identifier: MIT
// The same-origin rule for state-changing requests (http_access.h).
#include "printcast/transport/http_access.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>

#include "text.h"

namespace printcast::transport {

namespace {

using text::lower;

bool allDigits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool isIpLiteral(const std::string& host) {
  in_addr v4{};
  in6_addr v6{};
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 || inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

bool contains(const std::vector<std::string>& list, std::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

}  // namespace

bool isStateChangingMethod(std::string_view method) {
  return method != "GET" && method != "HEAD" && method != "OPTIONS";
}

std::string hostOfHostHeader(std::string_view host) {
  if (host.empty()) return {};
  std::string_view name;
  std::string_view port;
  if (host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string_view::npos || close == 1) return {};
    name = host.substr(1, close - 1);
    in6_addr v6{};
    if (inet_pton(AF_INET6, std::string(name).c_str(), &v6) != 1) return {};  // "[...]" is an IPv6 literal
    std::string_view rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return {};
      port = rest.substr(1);
      if (port.empty()) return {};
    }
  } else {
    const size_t colon = host.find(':');
    name = host.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = host.substr(colon + 1);
      if (port.empty() || port.find(':') != std::string_view::npos) return {};
    }
    // A name or an IPv4 literal: letters, digits, '-', '.', '_' (what DNS and mDNS names use).
    const bool nameChars = std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.' || c == '_';
    });
    if (name.empty() || !nameChars) return {};
  }
  if (!allDigits(port) || port.size() > 5) return {};
  std::string out = lower(name);
  if (!out.empty() && out.back() == '.') out.pop_back();  // "localhost." is "localhost"
  return out;
}

bool isTrustedOrigin(const OriginPolicy& policy, std::string_view origin, std::string_view host) {
  if (contains(policy.trustedOrigins, "*")) return true;
  const std::string o = lower(origin);
  if (o.empty() || o == "null") return false;
  const std::string h = lower(host);
  if (!h.empty() && (o == "http://" + h || o == "https://" + h)) return true;
  return std::any_of(policy.trustedOrigins.begin(), policy.trustedOrigins.end(),
                     [&](const std::string& t) { return lower(t) == o; });
}

std::string checkStateChange(const OriginPolicy& policy, std::string_view host, std::string_view origin,
                             std::string_view machineName) {
  if (!policy.sameOriginWrites) return {};
  const std::string name = hostOfHostHeader(host);
  if (name.empty()) return "the request has no valid Host header";
  const std::string machine = lower(machineName);
  const bool hostOk = contains(policy.allowedHosts, "*") || isIpLiteral(name) || name == "localhost" ||
                      (!machine.empty() && (name == machine || name == machine + ".local")) ||
                      std::any_of(policy.allowedHosts.begin(), policy.allowedHosts.end(),
                                  [&](const std::string& a) { return lower(a) == name; });
  if (!hostOk) {
    return "Host '" + name +
           "' is not this machine's address or name (a DNS rebinding guard); add it to allowed_hosts "
           "to change settings through it";
  }
  if (origin.empty() || isTrustedOrigin(policy, origin, host)) return {};
  return "a page from '" + std::string(origin) +
         "' may not change anything here (same-origin rule); add that origin to control_allow_origin "
         "to trust it";
}

std::vector<std::string> splitList(std::string_view list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string_view::npos) end = list.size();
    std::string_view item = list.substr(start, end - start);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front()))) item.remove_prefix(1);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    start = end + 1;
  }
  return out;
}

}  // namespace printcast::transport
