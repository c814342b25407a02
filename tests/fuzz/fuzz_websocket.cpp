// SPDX-License-Identifier: MIT
// libFuzzer target: the WebSocket frame parser (both roles, input split at fuzzer-chosen points)
// and the handshake check. Bytes from clients are outside input.
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "printcast/transport/websocket.h"

namespace ws = printcast::transport::ws;

namespace {

constexpr size_t kMaxMessage = 64 * 1024;

void parse(ws::FrameParser::Role role, const uint8_t* data, size_t size, size_t step) {
  ws::FrameParser parser(role, kMaxMessage);
  size_t pos = 0;
  bool stopped = false;
  while (pos < size) {
    const size_t n = std::min(step, size - pos);
    parser.feed({data + pos, n});
    pos += n;
    while (auto e = parser.next()) {
      assert(!stopped && "an event after Close/Error");
      switch (e->kind) {
        case ws::Event::Kind::Message:
          assert(e->payload.size() <= kMaxMessage);
          if (e->opcode == ws::Opcode::Text) assert(ws::isValidUtf8(e->payload));
          break;
        case ws::Event::Kind::Ping:
        case ws::Event::Kind::Pong:
          assert(e->payload.size() <= 125);
          // What the server answers must be a well-formed frame.
          (void)ws::frame(ws::Opcode::Pong, e->payload);
          break;
        case ws::Event::Kind::Close:
          assert(e->closeCode == ws::close_code::kNoStatus || ws::isValidCloseCode(e->closeCode));
          (void)ws::closeFrame(e->closeCode, e->reason);
          stopped = true;
          break;
        case ws::Event::Kind::Error:
          assert(e->closeCode == ws::close_code::kProtocolError ||
                 e->closeCode == ws::close_code::kInvalidPayload ||
                 e->closeCode == ws::close_code::kMessageTooBig);
          (void)ws::closeFrame(e->closeCode, e->reason);
          stopped = true;
          break;
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // First byte: how the input is split into reads (1..256 bytes at a time).
  const size_t step = static_cast<size_t>(data[0]) + 1;
  parse(ws::FrameParser::Role::Server, data + 1, size - 1, step);
  parse(ws::FrameParser::Role::Client, data + 1, size - 1, size);
  // The handshake: the input as "name: value" lines.
  std::map<std::string, std::string> headers;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    const size_t colon = line.find(':');
    if (colon != std::string::npos) headers[line.substr(0, colon)] = line.substr(colon + 1);
    start = end + 1;
  }
  auto r = ws::checkHandshake("GET", headers);
  if (r) assert(r->size() == 28);
  return 0;
}
