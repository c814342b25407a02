// SPDX-License-Identifier: MIT
// Network camera URLs: scheme://[user[:password]@]host[:port][/path][?query] (RFC 3986 3), for
// the http:// (MJPEG pull) and rtsp:// (RTSP pull, RFC 2326 3.2) sources.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "printcast/hal/result.h"

namespace printcast::transport {

// A parsed URL. `host` is an IPv6 literal without its brackets. user and password are
// percent-decoded; `target` (path and query, "/" when empty, the fragment removed) is kept as
// written, to be sent as it is.
struct Url {
  std::string scheme;  // lower case, as asked of parseUrl()
  std::string host;
  uint16_t port = 0;
  std::string target = "/";
  std::string user;
  std::string password;
  // "host:port/target" without credentials: what logs and /status show after the scheme.
  std::string display() const;
  // "scheme://host:port/target" without credentials (an RTSP request URL).
  std::string withoutCredentials() const { return scheme + "://" + display(); }
  // The authority as a Host field writes it (RFC 9112 3.2): the port only when not the default.
  std::string hostField(uint16_t defaultPort) const;
};

// Parse `url`, whose scheme must be `scheme` (any case); `defaultPort` when the URL has none.
// Errors: Unsupported (another scheme, naming it: TLS schemes are not built in),
// InvalidArgument (not a URL, no host, a bad port, spaces or control characters, bad
// percent-encoding in the credentials), each naming what is wrong.
hal::Result<Url> parseUrl(std::string_view url, std::string_view scheme, uint16_t defaultPort);

// `url` without the user:password@ of its authority ("rtsp://a:b@cam/x" -> "rtsp://cam/x"), as
// it is shown to people (/api/cameras, discovery answers); anything else as it is.
std::string withoutUserinfo(std::string_view url);

}  // namespace printcast::transport
