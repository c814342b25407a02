// SPDX-License-Identifier: MIT
// libFuzzer target: the reply of the Anycubic firmware's LAN mode service (lan_mode.h,
// parseLanPrintStatus), bytes from a local TCP peer. Oracles: a reply is either a state or a
// refusal that says why; a state is only ever read from result.open.
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "lan_mode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto state = printcast::streamer::parseLanPrintStatus(text);
  if (!state) {
    assert(state.code() == printcast::hal::Errc::InvalidArgument);
    assert(!state.error().message.empty());
    return 0;
  }
  const auto json = nlohmann::json::parse(text, nullptr, false);
  assert(!json.is_discarded());
  const auto& open = json.at("result").at("open");
  assert(open.is_boolean() ? open.get<bool>() == *state : (open.get<int64_t>() == 1) == *state);
  return 0;
}
