// SPDX-License-Identifier: MIT
// HTTP Digest access authentication, the client side (RFC 7616; RFC 2617's MD5 and the older
// RFC 2069 form without qop): what IP cameras ask of an MJPEG or RTSP client (RTSP reuses HTTP's
// scheme, RFC 2326 / 7826). Threading: pure functions. Needs nettle (MD5, SHA-256).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "printcast/hal/result.h"

namespace printcast::transport {

struct DigestChallenge {
  std::string realm;
  std::string nonce;
  std::string opaque;             // echoed back when present
  std::string algorithm = "MD5";  // MD5, MD5-sess, SHA-256 or SHA-256-sess
  bool qopAuth = false;           // the server offers qop "auth" (we never use auth-int)
  bool stale = false;             // the nonce expired: retry with this one, same credentials
};

// The Digest challenge in one WWW-Authenticate header value ("Digest realm=..., nonce=..."),
// which may also hold other schemes' challenges ("Basic realm=..., Digest ..."). Parameters are
// tokens or quoted strings (backslash escapes), names case-insensitive.
// Errors: InvalidArgument (no Digest challenge, or one without realm or nonce), Unsupported (an
// algorithm other than MD5/SHA-256 and their -sess forms; a qop list without "auth").
hal::Result<DigestChallenge> parseDigestChallenge(std::string_view wwwAuthenticate);

// Whether a WWW-Authenticate value offers the Basic scheme (RFC 7617).
bool offersBasic(std::string_view wwwAuthenticate);

// The Authorization header value answering `challenge` for a request of `method` on `uri` (the
// request target as sent). `nonceCount` counts the requests made with this nonce (1 first);
// `cnonce` is the client nonce (random, per request). Without qop the RFC 2069 form is used.
std::string digestAuthorization(const DigestChallenge& challenge, std::string_view user,
                                std::string_view password, std::string_view method, std::string_view uri,
                                uint32_t nonceCount, std::string_view cnonce);

// "Basic base64(user:password)" (RFC 7617).
std::string basicAuthorization(std::string_view user, std::string_view password);

}  // namespace printcast::transport
