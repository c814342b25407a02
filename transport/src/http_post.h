// SPDX-License-Identifier: MIT
// httpPost: one blocking HTTP/1.1 POST with a deadline, its answer read by HttpResponseReader
// whatever the status (a SOAP fault comes as 400 or 500). For request/response protocols over
// HTTP (ONVIF's SOAP services). Internal to transport.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "printcast/hal/result.h"
#include "printcast/transport/url.h"

namespace printcast::transport {

struct HttpPostReply {
  int status = 0;
  std::string contentType;
  std::string body;                          // de-chunked
  std::vector<std::string> wwwAuthenticate;  // a 401's challenges
};

// POST `body` (with `contentType` and `headers`) to `url` ("Connection: close": one request per
// connection) and read the whole answer. The whole exchange (connect, send, answer) is bounded by
// `timeout`; `wakeFd` (when >= 0) readable abandons it.
// Errors: Timeout ("no answer within N ms", or "cancelled"), NoDevice (the name does not
// resolve), Io (refused, unreachable), Disconnected (closed before the answer ended),
// InvalidArgument (not HTTP, a malformed head or chunk, a body above `maxBodyBytes`).
// Threading: blocks the caller (name resolution included): never on a server thread.
hal::Result<HttpPostReply> httpPost(const Url& url, std::string_view contentType, std::string_view body,
                                    const std::vector<std::pair<std::string, std::string>>& headers,
                                    std::chrono::milliseconds timeout, int wakeFd = -1,
                                    size_t maxBodyBytes = size_t{1} << 20);

}  // namespace printcast::transport
