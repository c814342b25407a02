// SPDX-License-Identifier: MIT
// WebSocket (RFC 6455): the opening handshake check, an incremental frame parser and frame writers.
//
// Everything here is pure (no I/O, no shared state): call from any thread. The server side that
// owns sockets is WebSocketHub (websocket_hub.h). SHA-1 and base64 for Sec-WebSocket-Accept come
// from nettle; the framing is ours.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "printcast/hal/result.h"

namespace printcast::transport::ws {

// RFC 6455 1.3: appended to Sec-WebSocket-Key before hashing.
inline constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// Frame opcodes (RFC 6455 5.2). 0x3-0x7 and 0xB-0xF are reserved.
enum class Opcode : uint8_t {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
  Close = 0x8,
  Ping = 0x9,
  Pong = 0xA,
};

// Close status codes (RFC 6455 7.4.1) this code sends or checks.
namespace close_code {
inline constexpr uint16_t kNormal = 1000;
inline constexpr uint16_t kGoingAway = 1001;       // server stopping
inline constexpr uint16_t kProtocolError = 1002;   // a framing rule was broken
inline constexpr uint16_t kNoStatus = 1005;        // a Close frame without a code (never sent)
inline constexpr uint16_t kInvalidPayload = 1007;  // text or close reason not UTF-8
inline constexpr uint16_t kMessageTooBig = 1009;   // larger than the parser's limit
}  // namespace close_code

// Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2 step 5.4):
// base64(SHA-1(key + kGuid)). The key is used as given (no validation): see checkHandshake().
std::string acceptKey(std::string_view secWebSocketKey);

// Validate a client's opening handshake (RFC 6455 4.2.1) and return the Sec-WebSocket-Accept
// value to answer 101 with. `headers` are the request headers with lower-case names.
// Checks: method GET; `Upgrade` lists the token "websocket"; `Connection` lists "Upgrade"
// (tokens compared case-insensitively); `Sec-WebSocket-Version` is 13; `Sec-WebSocket-Key` is
// the base64 encoding of exactly 16 bytes.
// Errors (the message is the reason to send back):
//   Unsupported      not a WebSocket upgrade request at all (no Upgrade: websocket), or another
//                    protocol version: answer 426 Upgrade Required (with Sec-WebSocket-Version: 13
//                    for a version mismatch, RFC 6455 4.4)
//   InvalidArgument  an upgrade request with a missing or malformed field: answer 400
hal::Result<std::string> checkHandshake(std::string_view method,
                                        const std::map<std::string, std::string>& headers);

// True when `bytes` is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
bool isValidUtf8(std::span<const uint8_t> bytes);

// True for a status code a peer may send in a Close frame (RFC 6455 7.4.1/7.4.2 and the IANA
// registry): 1000-1003, 1007-1014, 3000-4999. 1004-1006 and 1015 are reserved, never on the wire.
bool isValidCloseCode(uint16_t code);

// --- writing (server frames are never masked, RFC 6455 5.1) ---------------------------------

// The 2-, 4- or 10-byte header of one unmasked frame with FIN set (5.2): opcode, payload length
// in the shortest form. A message is then header + payload; the payload itself is not touched,
// so one shared payload can follow a header per client.
std::vector<uint8_t> frameHeader(Opcode opcode, uint64_t payloadSize);

// A complete unmasked frame. Control frames (Close/Ping/Pong) carry at most 125 bytes: longer
// payloads are a caller bug (asserted).
std::vector<uint8_t> frame(Opcode opcode, std::span<const uint8_t> payload);

// A Close frame: 2-byte big-endian code + reason (truncated to fit 125 bytes at a UTF-8
// character boundary). `code` kNoStatus gives an empty Close frame (5.5.1).
std::vector<uint8_t> closeFrame(uint16_t code, std::string_view reason = {});

// A masked frame, as a client sends it (5.3), with the given 4-byte masking key. For tests and
// our test client. `fin` false starts/continues a fragmented message.
std::vector<uint8_t> maskedFrame(Opcode opcode, std::span<const uint8_t> payload, uint32_t maskingKey,
                                 bool fin = true);

// --- reading --------------------------------------------------------------------------------

// What the parser found: a whole data message (fragments joined and unmasked), one control
// frame, or a protocol violation after which the connection must be closed with `closeCode`.
struct Event {
  enum class Kind {
    Message,  // `opcode` Text or Binary, `payload` the whole message
    Ping,     // answer with a Pong carrying `payload`
    Pong,
    Close,  // peer's Close: `closeCode` (kNoStatus when the frame had none) and `reason`
    Error,  // violation: send closeFrame(closeCode, reason), then close; parsing has stopped
  };
  Kind kind = Kind::Message;
  Opcode opcode = Opcode::Binary;
  std::vector<uint8_t> payload;
  uint16_t closeCode = 0;
  std::string reason;
};

// Incremental frame parser (RFC 6455 5.2-5.6). Feed bytes as they arrive in any split; take
// events with next(). It enforces:
//  - frames from the peer masked (server role) or unmasked (client role), else 1002 (5.1);
//  - RSV1-3 zero (no extension is negotiated), else 1002;
//  - known opcodes only, else 1002;
//  - control frames: payload <= 125 bytes and FIN set, else 1002 (5.5);
//  - continuation frames only inside a fragmented message, and no new data frame inside one,
//    else 1002 (5.4);
//  - a 64-bit length with the most significant bit set, 1002 (5.2);
//  - a data message (all its fragments) larger than `maxMessageBytes`: 1009, detected from the
//    frame header before the payload is buffered;
//  - text messages and close reasons valid UTF-8, else 1007 (8.1);
//  - a Close payload of 1 byte or an invalid close code, 1002 (5.5.1, 7.4).
// After an Error or a Close event the parser stops (further bytes are ignored).
// Memory: at most one frame header, the current frame's payload and the fragments so far of the
// current message, so bounded by maxMessageBytes + a few bytes.
// Threading: one object per connection, used from one thread at a time.
class FrameParser {
 public:
  enum class Role { Server, Client };  // Server: parses client frames, which must be masked
  explicit FrameParser(Role role = Role::Server, size_t maxMessageBytes = 1u << 20);

  void feed(std::span<const uint8_t> bytes);
  // The next event, or nullopt when more bytes are needed (or the parser has stopped).
  std::optional<Event> next();
  // An Error or Close event was returned.
  bool stopped() const { return stopped_; }

 private:
  std::optional<Event> fail(uint16_t code, std::string reason);
  Role role_;
  size_t maxMessageBytes_;
  std::vector<uint8_t> buffer_;  // unparsed input; buffer_[offset_..] is pending
  size_t offset_ = 0;
  std::vector<uint8_t> message_;         // fragments so far of the current data message
  std::optional<Opcode> messageOpcode_;  // set while a fragmented message is in progress
  bool stopped_ = false;
};

}  // namespace printcast::transport::ws
