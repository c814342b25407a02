// SPDX-License-Identifier: MIT
// libFuzzer target: the JSON settings parser (the config file and POST /api/settings bodies).
// Oracles: a body accepted by the control API yields settings whose runtime JSON is accepted
// again and changes nothing (a round trip); refusals always name the reason.
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "printcast/bsp/registry.h"
#include "settings.h"

namespace streamer = printcast::streamer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  streamer::Settings fromFile;
  std::vector<std::string> warnings;
  if (auto st = streamer::applyConfigJson(text, "fuzz.json", fromFile, warnings); !st) {
    assert(!st.error().message.empty());
  }

  static const auto board = printcast::bsp::findBoard("virtual");
  assert(board.ok());
  const streamer::Settings current;
  streamer::Settings next;
  std::vector<std::string> keys;
  std::string errorKey;
  if (auto st = streamer::validateSettingsChange(text, **board, current, next, keys, errorKey); !st) {
    assert(!st.error().message.empty());
    return 0;
  }
  const std::string runtime = streamer::runtimeSettingsJson(next);
  streamer::Settings again;
  auto st = streamer::validateSettingsChange(runtime, **board, next, again, keys, errorKey);
  assert(st.ok());
  assert(streamer::runtimeSettingsJson(again) == runtime);
  return 0;
}
