// SPDX-License-Identifier: MIT
// Optional credentials for an HTTP port (the control port, issue 15): one secret token, kept at
// rest only as its SHA-256. A client presents it as `Authorization: Bearer TOKEN` (scripts),
// as the password of HTTP Basic with any user name (RFC 7617: browsers ask once with their
// login dialog and send it with every request of the origin), or as `?token=TOKEN` (players that
// cannot set headers). The token should be random (say `openssl rand -hex 16`): a plain SHA-256
// is the right hash for a high-entropy secret, not for a word a person chose.
//
// Threading: pure functions. Needs nettle (SHA-256, base64), like the WebSocket handshake.
#pragma once

#include <string>
#include <string_view>

namespace printcast::transport {

// Lower-case hex SHA-256 of `text` (64 characters).
std::string sha256Hex(std::string_view text);

// Whether `text` looks like sha256Hex's output (64 hex digits, any case): what a config may hold.
bool isSha256Hex(std::string_view text);

// The token a request presents: from `authorization` (the Authorization header value: "Bearer
// T" or "Basic base64(user:T)", scheme case-insensitive) or else `queryToken` (?token=). "" when
// it presents none or the header is malformed.
std::string presentedToken(std::string_view authorization, std::string_view queryToken);

// Whether `presented` hashes to `tokenSha256` (hex, any case). Compares the hashes in constant
// time. False for an empty `presented` or a malformed `tokenSha256`.
bool tokenMatches(std::string_view tokenSha256, std::string_view presented);

}  // namespace printcast::transport
