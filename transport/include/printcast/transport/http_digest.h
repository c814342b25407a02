// SPDX-License-Identifier: MIT
// HTTP Digest access authentication, the client side (RFC 7616; RFC 2617's MD5 and the older
// RFC 2069 form without qop): what IP cameras ask of an MJPEG or RTSP client (RTSP reuses HTTP's
// scheme, RFC 2326 / 7826). Threading: pure functions. Needs nettle (MD5, SHA-256).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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

// The client side of one authentication exchange, for the credentials of a camera URL (HTTP
// MJPEG pull, RTSP pull). The first request goes without credentials; a 401's challenges are
// answered with Digest when offered (a Digest camera never sees the password), else Basic; later
// requests reuse the scheme. Threading: one thread at a time.
class ClientAuth {
 public:
  ClientAuth(std::string user, std::string password)
      : user_(std::move(user)), password_(std::move(password)) {}

  // The Authorization header value for the next request of `method` on `uri` (the request
  // target as sent), or "" while no challenge was answered.
  std::string authorization(std::string_view method, std::string_view uri);

  // A 401 answered the last request with these WWW-Authenticate values. Ok: retry the request
  // (authorization() now answers the challenge; a stale nonce is renewed). PermissionDenied
  // otherwise, saying why: no credentials in the URL ("wants credentials"), the same credentials
  // refused ("refused these credentials"), or no challenge this client can answer.
  hal::Status onChallenge(const std::vector<std::string>& wwwAuthenticate);

 private:
  enum class Scheme { None, Basic, Digest };
  std::string user_, password_;
  Scheme scheme_ = Scheme::None;
  DigestChallenge challenge_;
  uint32_t nonceCount_ = 0;
};

}  // namespace printcast::transport
