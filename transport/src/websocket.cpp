// SPDX-License-Identifier: MIT
// RFC 6455 handshake check, frame parser and frame writers (SHA-1/base64 from nettle).
#include "printcast/transport/websocket.h"

#include <nettle/base64.h>
#include <nettle/sha1.h>

#include <algorithm>
#include <cassert>
#include <cctype>

#include "text.h"

namespace printcast::transport::ws {
namespace {

using text::lower;

constexpr size_t kMaxControlPayload = 125;  // RFC 6455 5.5

// True when the comma-separated header value lists `token` (case-insensitive, RFC 7230 7).
bool listsToken(std::string_view value, std::string_view token) {
  const std::string want = lower(token);
  size_t start = 0;
  while (start <= value.size()) {
    size_t end = value.find(',', start);
    if (end == std::string_view::npos) end = value.size();
    std::string_view item = value.substr(start, end - start);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (lower(item) == want) return true;
    start = end + 1;
  }
  return false;
}

std::string headerOf(const std::map<std::string, std::string>& headers, const std::string& name) {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

// True when `key` is the base64 encoding of exactly 16 bytes (RFC 6455 4.1 item 7): 24
// characters from the base64 alphabet ending in "==".
bool isValidKey(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  base64_decode_ctx ctx;
  base64_decode_init(&ctx);
  uint8_t decoded[BASE64_DECODE_LENGTH(24)];
  size_t length = sizeof decoded;
  if (base64_decode_update(&ctx, &length, decoded, key.size(), key.data()) == 0) return false;
  if (base64_decode_final(&ctx) == 0) return false;
  return length == 16;
}

bool isControl(uint8_t opcode) { return (opcode & 0x8) != 0; }

bool isKnownOpcode(uint8_t opcode) {
  switch (static_cast<Opcode>(opcode)) {
    case Opcode::Continuation:
    case Opcode::Text:
    case Opcode::Binary:
    case Opcode::Close:
    case Opcode::Ping:
    case Opcode::Pong: return true;
  }
  return false;
}

}  // namespace

std::string acceptKey(std::string_view secWebSocketKey) {
  sha1_ctx ctx;
  sha1_init(&ctx);
  sha1_update(&ctx, secWebSocketKey.size(), reinterpret_cast<const uint8_t*>(secWebSocketKey.data()));
  sha1_update(&ctx, kGuid.size(), reinterpret_cast<const uint8_t*>(kGuid.data()));
  uint8_t digest[SHA1_DIGEST_SIZE];
  sha1_digest(&ctx, sizeof digest, digest);
  std::string out(BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE), '\0');
  base64_encode_raw(out.data(), sizeof digest, digest);
  return out;
}

hal::Result<std::string> checkHandshake(std::string_view method,
                                        const std::map<std::string, std::string>& headers) {
  if (!listsToken(headerOf(headers, "upgrade"), "websocket")) {
    return {hal::Errc::Unsupported, "this endpoint is a WebSocket: send a GET with Upgrade: websocket"};
  }
  if (method != "GET") {
    return {hal::Errc::InvalidArgument, "a WebSocket handshake must be a GET, not " + std::string(method)};
  }
  if (!listsToken(headerOf(headers, "connection"), "upgrade")) {
    return {hal::Errc::InvalidArgument, "WebSocket handshake without 'Connection: Upgrade'"};
  }
  const std::string version = headerOf(headers, "sec-websocket-version");
  if (version.empty()) {
    return {hal::Errc::InvalidArgument, "WebSocket handshake without Sec-WebSocket-Version"};
  }
  if (version != "13") {
    return {hal::Errc::Unsupported,
            "Sec-WebSocket-Version " + version + " is not supported: only 13 (RFC 6455)"};
  }
  const std::string key = headerOf(headers, "sec-websocket-key");
  if (key.empty()) return {hal::Errc::InvalidArgument, "WebSocket handshake without Sec-WebSocket-Key"};
  if (!isValidKey(key)) {
    return {hal::Errc::InvalidArgument, "Sec-WebSocket-Key is not the base64 encoding of 16 bytes"};
  }
  return acceptKey(key);
}

bool isValidUtf8(std::span<const uint8_t> bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    const uint8_t c = bytes[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t extra = 0;
    uint32_t min = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      extra = 1;
      min = 0x80;
      cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      min = 0x800;
      cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      min = 0x10000;
      cp = c & 0x07u;
    } else {
      return false;  // a continuation byte first, or 0xF8..0xFF
    }
    if (bytes.size() - i <= extra) return false;
    for (size_t k = 1; k <= extra; ++k) {
      const uint8_t cc = bytes[i + k];
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

bool isValidCloseCode(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

std::vector<uint8_t> frameHeader(Opcode opcode, uint64_t payloadSize) {
  std::vector<uint8_t> h;
  h.reserve(10);
  h.push_back(static_cast<uint8_t>(0x80 | static_cast<uint8_t>(opcode)));
  if (payloadSize < 126) {
    h.push_back(static_cast<uint8_t>(payloadSize));
  } else if (payloadSize <= 0xFFFF) {
    h.push_back(126);
    h.push_back(static_cast<uint8_t>(payloadSize >> 8));
    h.push_back(static_cast<uint8_t>(payloadSize));
  } else {
    h.push_back(127);
    for (int shift = 56; shift >= 0; shift -= 8) h.push_back(static_cast<uint8_t>(payloadSize >> shift));
  }
  return h;
}

std::vector<uint8_t> frame(Opcode opcode, std::span<const uint8_t> payload) {
  assert((!isControl(static_cast<uint8_t>(opcode)) || payload.size() <= kMaxControlPayload) &&
         "control frame payload over 125 bytes");
  std::vector<uint8_t> out = frameHeader(opcode, payload.size());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

std::vector<uint8_t> closeFrame(uint16_t code, std::string_view reason) {
  if (code == close_code::kNoStatus) return frame(Opcode::Close, {});
  std::string_view r = reason.substr(0, std::min(reason.size(), kMaxControlPayload - 2));
  if (r.size() < reason.size()) {
    // Cut at a character boundary: drop continuation bytes and the lead byte they belong to.
    while (!r.empty() && (static_cast<uint8_t>(reason[r.size()]) & 0xC0) == 0x80) r.remove_suffix(1);
  }
  std::vector<uint8_t> payload{static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
  payload.insert(payload.end(), r.begin(), r.end());
  return frame(Opcode::Close, payload);
}

std::vector<uint8_t> maskedFrame(Opcode opcode, std::span<const uint8_t> payload, uint32_t maskingKey,
                                 bool fin) {
  std::vector<uint8_t> out = frameHeader(opcode, payload.size());
  if (!fin) out[0] &= 0x7F;
  out[1] |= 0x80;
  const uint8_t key[4] = {static_cast<uint8_t>(maskingKey >> 24), static_cast<uint8_t>(maskingKey >> 16),
                          static_cast<uint8_t>(maskingKey >> 8), static_cast<uint8_t>(maskingKey)};
  out.insert(out.end(), key, key + 4);
  for (size_t i = 0; i < payload.size(); ++i) out.push_back(static_cast<uint8_t>(payload[i] ^ key[i % 4]));
  return out;
}

// ---------------------------------------------------------------------------------------------

FrameParser::FrameParser(Role role, size_t maxMessageBytes)
    : role_(role), maxMessageBytes_(maxMessageBytes) {}

void FrameParser::feed(std::span<const uint8_t> bytes) {
  if (stopped_ || bytes.empty()) return;
  if (offset_ > 0) {  // drop what was parsed; only a partial frame is ever kept
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(offset_));
    offset_ = 0;
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

std::optional<Event> FrameParser::fail(uint16_t code, std::string reason) {
  stopped_ = true;
  buffer_.clear();
  offset_ = 0;
  message_.clear();
  Event e;
  e.kind = Event::Kind::Error;
  e.closeCode = code;
  e.reason = std::move(reason);
  return e;
}

std::optional<Event> FrameParser::next() {
  using close_code::kInvalidPayload;
  using close_code::kMessageTooBig;
  using close_code::kProtocolError;
  while (!stopped_) {
    const uint8_t* p = buffer_.data() + offset_;
    const size_t avail = buffer_.size() - offset_;
    if (avail < 2) return std::nullopt;
    const bool fin = (p[0] & 0x80) != 0;
    const uint8_t opcode = p[0] & 0x0F;
    const bool masked = (p[1] & 0x80) != 0;
    const uint8_t len7 = p[1] & 0x7F;
    if ((p[0] & 0x70) != 0) return fail(kProtocolError, "reserved bits set without a negotiated extension");
    if (!isKnownOpcode(opcode)) return fail(kProtocolError, "unknown opcode " + std::to_string(opcode));
    const bool control = isControl(opcode);
    if (control && !fin) return fail(kProtocolError, "fragmented control frame");
    if (control && len7 > kMaxControlPayload)
      return fail(kProtocolError, "control frame longer than 125 bytes");
    if (role_ == Role::Server && !masked) return fail(kProtocolError, "client frame not masked");
    if (role_ == Role::Client && masked) return fail(kProtocolError, "server frame masked");
    if (!control) {
      const bool continuation = static_cast<Opcode>(opcode) == Opcode::Continuation;
      if (continuation && !messageOpcode_)
        return fail(kProtocolError, "continuation frame without a message");
      if (!continuation && messageOpcode_) {
        return fail(kProtocolError, "new data frame inside a fragmented message");
      }
    }
    const size_t lengthBytes = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    const size_t headerSize = 2 + lengthBytes + (masked ? 4 : 0);
    if (avail < headerSize) return std::nullopt;
    uint64_t length = len7;
    if (lengthBytes > 0) {
      length = 0;
      for (size_t i = 0; i < lengthBytes; ++i) length = (length << 8) | p[2 + i];
      if ((length >> 63) != 0) return fail(kProtocolError, "payload length with the top bit set");
    }
    if (!control && (length > maxMessageBytes_ || message_.size() + length > maxMessageBytes_)) {
      return fail(kMessageTooBig, "message larger than " + std::to_string(maxMessageBytes_) + " bytes");
    }
    if (avail - headerSize < length) return std::nullopt;
    const size_t size = static_cast<size_t>(length);
    const uint8_t* key = masked ? p + 2 + lengthBytes : nullptr;
    const uint8_t* data = p + headerSize;
    std::vector<uint8_t> payload(data, data + size);
    if (key != nullptr) {
      for (size_t i = 0; i < size; ++i) payload[i] ^= key[i % 4];
    }
    offset_ += headerSize + size;

    Event e;
    e.opcode = static_cast<Opcode>(opcode);
    switch (e.opcode) {
      case Opcode::Ping:
        e.kind = Event::Kind::Ping;
        e.payload = std::move(payload);
        return e;
      case Opcode::Pong:
        e.kind = Event::Kind::Pong;
        e.payload = std::move(payload);
        return e;
      case Opcode::Close: {
        e.kind = Event::Kind::Close;
        if (payload.empty()) {
          e.closeCode = close_code::kNoStatus;
        } else if (payload.size() == 1) {
          return fail(kProtocolError, "close frame with a 1-byte payload");
        } else {
          e.closeCode = static_cast<uint16_t>(payload[0] << 8 | payload[1]);
          if (!isValidCloseCode(e.closeCode)) {
            return fail(kProtocolError, "invalid close code " + std::to_string(e.closeCode));
          }
          const std::span<const uint8_t> reason(payload.data() + 2, payload.size() - 2);
          if (!isValidUtf8(reason)) return fail(kInvalidPayload, "close reason is not UTF-8");
          e.reason.assign(reason.begin(), reason.end());
        }
        stopped_ = true;
        return e;
      }
      default: break;
    }
    if (e.opcode != Opcode::Continuation) {
      messageOpcode_ = e.opcode;
      message_ = std::move(payload);
    } else {
      message_.insert(message_.end(), payload.begin(), payload.end());
    }
    if (!fin) continue;
    e.kind = Event::Kind::Message;
    e.opcode = *messageOpcode_;
    e.payload = std::move(message_);
    message_.clear();
    messageOpcode_.reset();
    if (e.opcode == Opcode::Text && !isValidUtf8(e.payload)) {
      return fail(kInvalidPayload, "text message is not UTF-8");
    }
    return e;
  }
  return std::nullopt;
}

}  // namespace printcast::transport::ws
