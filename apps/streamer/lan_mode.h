// SPDX-License-Identifier: MIT
// Anycubic's LAN printing mode (go-klipper firmware): whether the printer takes jobs from slicers
// on the local network, asked and switched through the firmware's local service. Wire format
// (../shared/design/protocols.md, "Anycubic firmware integration"): TCP 127.0.0.1:18086, one JSON
// request per connection, each message ended by byte 0x03:
//   {"id":2016,"method":"Printer/QueryLanPrintStatus","params":null}  ->  {"result":{"open":0|1}}
//   {"id":2016,"method":"Printer/OpenLanPrint","params":null}, "Printer/CloseLanPrint".
// h264-streamer's `autolanmode` opens it at start; printcast does the same, and the control API
// (POST /api/lan_mode) switches it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "printcast/hal/result.h"

namespace printcast::streamer {

// The state in one reply of the firmware (the bytes before its 0x03): result.open as 0/1 or
// false/true. Errors: InvalidArgument (not JSON, no result.open, an "error" member: its message).
hal::Result<bool> parseLanPrintStatus(std::string_view reply);

struct LanModeConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 18086;
  std::chrono::milliseconds timeout{3000};  // connect, send and the whole reply, each call
};

// Threading: every call blocks (connect, write, read up to 0x03) for up to config.timeout: call
// it from a worker, never from a server thread. Calls may come from any thread; each makes its
// own connection.
class LanModeClient {
 public:
  explicit LanModeClient(LanModeConfig config);

  // Printer/QueryLanPrintStatus: whether LAN printing is open. Errors: Io / Timeout / NoDevice
  // (the firmware's service is not there: vanilla Klipper, a stopped firmware), InvalidArgument
  // (a reply that is not the documented one), Disconnected (closed before a full reply).
  hal::Result<bool> query() const;
  // Printer/OpenLanPrint or CloseLanPrint, then a query: the state the firmware reports after it.
  // Errors: as query().
  hal::Result<bool> setOpen(bool open) const;

 private:
  // One request (method) on a new connection: the reply without its 0x03.
  hal::Result<std::string> call(std::string_view method) const;

  LanModeConfig config_;
};

}  // namespace printcast::streamer
