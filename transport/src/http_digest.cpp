// SPDX-License-Identifier: MIT
// HTTP Digest access authentication, client side (see http_digest.h).
#include "printcast/transport/http_digest.h"

#include <fmt/format.h>
#include <nettle/base64.h>
#include <nettle/md5.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <random>
#include <vector>

#include "printcast/transport/http_auth.h"
#include "text.h"

namespace printcast::transport {

namespace {

using text::lower;

using hal::Errc;

std::string md5Hex(std::string_view text) {
  md5_ctx ctx;
  md5_init(&ctx);
  md5_update(&ctx, text.size(), reinterpret_cast<const uint8_t*>(text.data()));
  uint8_t digest[MD5_DIGEST_SIZE];
  md5_digest(&ctx, sizeof digest, digest);
  return text::hex(digest);
}

// Quoted-string for a header parameter (RFC 9110 5.6.4).
std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

struct Param {
  std::string name;  // lower case
  std::string value;
};

// The auth-params after a scheme name, up to the next scheme ("Basic ..."), in `text` from `at`.
std::vector<Param> paramsFrom(std::string_view text, size_t at) {
  std::vector<Param> params;
  while (at < text.size()) {
    while (at < text.size() && (text[at] == ' ' || text[at] == '\t' || text[at] == ',')) ++at;
    size_t nameEnd = at;
    while (nameEnd < text.size() && text[nameEnd] != '=' && text[nameEnd] != ',' && text[nameEnd] != ' ')
      ++nameEnd;
    if (nameEnd >= text.size() || text[nameEnd] != '=') break;  // a new scheme, or the end
    Param p{lower(text.substr(at, nameEnd - at)), {}};
    at = nameEnd + 1;
    if (at < text.size() && text[at] == '"') {
      for (++at; at < text.size() && text[at] != '"'; ++at) {
        if (text[at] == '\\' && at + 1 < text.size()) ++at;
        p.value += text[at];
      }
      ++at;  // the closing quote
    } else {
      const size_t end = std::min(text.find(',', at), text.size());
      p.value = std::string(text.substr(at, end - at));
      while (!p.value.empty() && (p.value.back() == ' ' || p.value.back() == '\t')) p.value.pop_back();
      at = end;
    }
    params.push_back(std::move(p));
  }
  return params;
}

// Where `scheme` starts as a word in `text` (case-insensitive); npos when absent.
size_t schemeAt(std::string_view text, std::string_view scheme) {
  const std::string l = lower(text);
  const std::string s = lower(scheme);
  for (size_t at = l.find(s); at != std::string::npos; at = l.find(s, at + 1)) {
    const bool startOk = at == 0 || l[at - 1] == ' ' || l[at - 1] == ',';
    const bool endOk = at + s.size() < l.size() && (l[at + s.size()] == ' ' || l[at + s.size()] == '\t');
    if (startOk && endOk) return at;
  }
  return std::string::npos;
}

}  // namespace

bool offersBasic(std::string_view wwwAuthenticate) {
  return schemeAt(wwwAuthenticate, "Basic") != std::string::npos;
}

hal::Result<DigestChallenge> parseDigestChallenge(std::string_view text) {
  const size_t at = schemeAt(text, "Digest");
  if (at == std::string::npos) return hal::Error{Errc::InvalidArgument, 0, "no Digest challenge"};
  DigestChallenge c;
  bool qopOffered = false;
  for (const auto& p : paramsFrom(text, at + 6)) {
    if (p.name == "realm")
      c.realm = p.value;
    else if (p.name == "nonce")
      c.nonce = p.value;
    else if (p.name == "opaque")
      c.opaque = p.value;
    else if (p.name == "algorithm")
      c.algorithm = p.value;
    else if (p.name == "stale")
      c.stale = lower(p.value) == "true";
    else if (p.name == "qop") {
      qopOffered = true;
      std::string_view list = p.value;
      while (!list.empty()) {
        const size_t comma = list.find(',');
        std::string_view item = list.substr(0, comma);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (lower(item) == "auth") c.qopAuth = true;
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
      }
    }
  }
  if (c.realm.empty() && c.nonce.empty())
    return hal::Error{Errc::InvalidArgument, 0, "Digest challenge without realm and nonce"};
  if (c.nonce.empty()) return hal::Error{Errc::InvalidArgument, 0, "Digest challenge without a nonce"};
  const std::string algorithm = lower(c.algorithm);
  if (algorithm != "md5" && algorithm != "md5-sess" && algorithm != "sha-256" &&
      algorithm != "sha-256-sess") {
    return hal::Error{Errc::Unsupported, 0, "Digest algorithm " + c.algorithm + " (MD5 and SHA-256 are)"};
  }
  if (qopOffered && !c.qopAuth)
    return hal::Error{Errc::Unsupported, 0, "Digest qop without \"auth\" (auth-int only)"};
  return c;
}

std::string digestAuthorization(const DigestChallenge& c, std::string_view user, std::string_view password,
                                std::string_view method, std::string_view uri, uint32_t nonceCount,
                                std::string_view cnonce) {
  const std::string algorithm = lower(c.algorithm);
  const bool sha256 = algorithm.rfind("sha-256", 0) == 0;
  const bool sess = algorithm.size() > 5 && algorithm.substr(algorithm.size() - 5) == "-sess";
  auto h = [sha256](std::string_view s) { return sha256 ? sha256Hex(s) : md5Hex(s); };
  std::string ha1 = h(fmt::format("{}:{}:{}", user, c.realm, password));
  if (sess) ha1 = h(fmt::format("{}:{}:{}", ha1, c.nonce, cnonce));
  const std::string ha2 = h(fmt::format("{}:{}", method, uri));
  const std::string nc = fmt::format("{:08x}", nonceCount);
  const std::string response = c.qopAuth
                                   ? h(fmt::format("{}:{}:{}:{}:auth:{}", ha1, c.nonce, nc, cnonce, ha2))
                                   : h(fmt::format("{}:{}:{}", ha1, c.nonce, ha2));
  std::string out =
      fmt::format("Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}", quoted(user),
                  quoted(c.realm), quoted(c.nonce), quoted(uri), quoted(response), c.algorithm);
  if (!c.opaque.empty()) out += ", opaque=" + quoted(c.opaque);
  if (c.qopAuth) out += fmt::format(", qop=auth, nc={}, cnonce={}", nc, quoted(cnonce));
  return out;
}

std::string basicAuthorization(std::string_view user, std::string_view password) {
  const std::string plain = std::string(user) + ":" + std::string(password);
  std::string out(BASE64_ENCODE_RAW_LENGTH(plain.size()), '\0');
  base64_encode_raw(out.data(), plain.size(), reinterpret_cast<const uint8_t*>(plain.data()));
  return "Basic " + out;
}

// ----------------------------------------------------------------------------- ClientAuth

std::string ClientAuth::authorization(std::string_view method, std::string_view uri) {
  switch (scheme_) {
    case Scheme::None: return {};
    case Scheme::Basic: return basicAuthorization(user_, password_);
    case Scheme::Digest: {
      static thread_local std::mt19937_64 rng{std::random_device{}()};
      return digestAuthorization(challenge_, user_, password_, method, uri, ++nonceCount_,
                                 fmt::format("{:016x}", rng()));
    }
  }
  return {};
}

hal::Status ClientAuth::onChallenge(const std::vector<std::string>& wwwAuthenticate) {
  if (user_.empty() && password_.empty())
    return {Errc::PermissionDenied, "the camera wants credentials (user:password@ in the URL)"};
  std::optional<DigestChallenge> digest;
  bool basic = false;
  std::string digestError;
  for (const auto& value : wwwAuthenticate) {
    if (auto c = parseDigestChallenge(value); c && !digest) {
      digest = std::move(*c);
    } else if (!c && c.code() != Errc::InvalidArgument) {
      digestError = c.error().message;
    }
    basic = basic || offersBasic(value);
  }
  const Scheme before = scheme_;
  if (digest && (before != Scheme::Digest || digest->stale)) {
    scheme_ = Scheme::Digest;
    challenge_ = std::move(*digest);
    nonceCount_ = 0;
    return {};
  }
  if (!digest && basic && before == Scheme::None) {
    scheme_ = Scheme::Basic;
    return {};
  }
  if (before != Scheme::None) return {Errc::PermissionDenied, "the camera refused these credentials"};
  return {Errc::PermissionDenied,
          "no challenge this client can answer" + (digestError.empty() ? "" : " (" + digestError + ")")};
}

}  // namespace printcast::transport
