// SPDX-License-Identifier: MIT
// Network camera URLs (see url.h).
#include "printcast/transport/url.h"

#include <fmt/format.h>

#include <charconv>
#include <optional>

#include "text.h"

namespace printcast::transport {

using hal::Errc;

std::string Url::display() const {
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return fmt::format("{}:{}{}", h, port, target);
}

std::string Url::hostField(uint16_t defaultPort) const {
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return port == defaultPort ? h : fmt::format("{}:{}", h, port);
}

hal::Result<Url> parseUrl(std::string_view url, std::string_view scheme, uint16_t defaultPort) {
  const size_t schemeEnd = url.find("://");
  if (schemeEnd == std::string_view::npos) {
    return hal::Error{Errc::InvalidArgument, 0,
                      fmt::format("'{}' is not a URL ({}://host[:port]/path)", url, scheme)};
  }
  if (!text::iequals(url.substr(0, schemeEnd), scheme)) {
    return hal::Error{Errc::Unsupported, 0,
                      fmt::format("'{}': only {}:// URLs are supported here (no TLS)",
                                  url.substr(0, schemeEnd + 3), scheme)};
  }
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return hal::Error{Errc::InvalidArgument, 0,
                        "a URL has no spaces or control characters (percent-encode them)"};
    }
  }
  std::string_view rest = url.substr(schemeEnd + 3);
  const size_t pathAt = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, pathAt);
  Url out;
  out.scheme = text::lower(scheme);
  out.port = defaultPort;
  if (pathAt != std::string_view::npos) {
    out.target = std::string(rest.substr(pathAt));
    if (out.target.front() == '?') out.target = "/" + out.target;
  }
  if (const size_t fragment = out.target.find('#'); fragment != std::string::npos)
    out.target.resize(fragment);
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const size_t colon = userinfo.find(':');
    auto user = text::percentDecode(userinfo.substr(0, colon));
    auto password = colon == std::string_view::npos ? std::optional<std::string>("")
                                                    : text::percentDecode(userinfo.substr(colon + 1));
    if (!user || !password)
      return hal::Error{Errc::InvalidArgument, 0, "bad percent-encoding in the URL's credentials"};
    out.user = std::move(*user);
    out.password = std::move(*password);
  }
  std::string_view portText;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos)
      return hal::Error{Errc::InvalidArgument, 0, "unclosed '[' in the URL's host"};
    out.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return hal::Error{Errc::InvalidArgument, 0, "junk after the URL's [host]"};
      portText = after.substr(1);
    }
  } else {
    const size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) portText = authority.substr(colon + 1);
  }
  if (out.host.empty()) return hal::Error{Errc::InvalidArgument, 0, fmt::format("'{}' has no host", url)};
  if (!portText.empty()) {
    unsigned port = 0;
    auto [p, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
    if (ec != std::errc() || p != portText.data() + portText.size() || port == 0 || port > 65535) {
      return hal::Error{Errc::InvalidArgument, 0, fmt::format("'{}' is not a port (1..65535)", portText)};
    }
    out.port = static_cast<uint16_t>(port);
  }
  return out;
}

std::string withoutUserinfo(std::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  const size_t hostStart = scheme + 3;
  const size_t pathStart = url.find_first_of("/?#", hostStart);
  const size_t at = url.substr(0, pathStart).rfind('@');
  if (at == std::string_view::npos || at < hostStart) return std::string(url);
  return std::string(url.substr(0, hostStart)) + std::string(url.substr(at + 1));
}

}  // namespace printcast::transport
