// SPDX-License-Identifier: MIT
// Token credentials (http_auth.h): SHA-256 and base64 from nettle.
#include "printcast/transport/http_auth.h"

#include <nettle/base64.h>
#include <nettle/sha2.h>

#include <cctype>
#include <cstdint>
#include <vector>

#include "text.h"

namespace printcast::transport {

namespace {

using text::trim;

// `value` starts with the auth scheme `scheme` (case-insensitive) and a space: the rest, trimmed.
bool credentialsOf(std::string_view value, std::string_view scheme, std::string_view& rest) {
  if (value.size() <= scheme.size() || (value[scheme.size()] != ' ' && value[scheme.size()] != '\t'))
    return false;
  for (size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(value[i])) !=
        std::tolower(static_cast<unsigned char>(scheme[i])))
      return false;
  }
  rest = trim(value.substr(scheme.size()));
  return !rest.empty();
}

}  // namespace

std::string sha256Hex(std::string_view text) {
  sha256_ctx ctx;
  sha256_init(&ctx);
  sha256_update(&ctx, text.size(), reinterpret_cast<const uint8_t*>(text.data()));
  uint8_t digest[SHA256_DIGEST_SIZE];
  sha256_digest(&ctx, sizeof digest, digest);
  return text::hex(digest);
}

bool isSha256Hex(std::string_view text) {
  if (text.size() != 2 * SHA256_DIGEST_SIZE) return false;
  for (char c : text) {
    if (std::isxdigit(static_cast<unsigned char>(c)) == 0) return false;
  }
  return true;
}

std::string presentedToken(std::string_view authorization, std::string_view queryToken) {
  authorization = trim(authorization);
  if (authorization.empty()) return std::string(queryToken);
  std::string_view rest;
  if (credentialsOf(authorization, "Bearer", rest)) return std::string(rest);
  if (!credentialsOf(authorization, "Basic", rest)) return {};
  std::vector<uint8_t> decoded(BASE64_DECODE_LENGTH(rest.size()) + 1);
  base64_decode_ctx ctx;
  base64_decode_init(&ctx);
  size_t length = decoded.size();
  if (base64_decode_update(&ctx, &length, decoded.data(), rest.size(), rest.data()) == 0 ||
      base64_decode_final(&ctx) == 0) {
    return {};
  }
  const std::string userPass(reinterpret_cast<const char*>(decoded.data()), length);
  const size_t colon = userPass.find(':');
  return colon == std::string::npos ? std::string() : userPass.substr(colon + 1);
}

bool tokenMatches(std::string_view tokenSha256, std::string_view presented) {
  if (presented.empty() || !isSha256Hex(tokenSha256)) return false;
  const std::string got = sha256Hex(presented);
  unsigned diff = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff |= static_cast<unsigned>(got[i] ^ std::tolower(static_cast<unsigned char>(tokenSha256[i])));
  }
  return diff == 0;
}

}  // namespace printcast::transport
