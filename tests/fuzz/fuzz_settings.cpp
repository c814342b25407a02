// SPDX-License-Identifier: MIT
// libFuzzer target: the JSON settings parser (the config file and POST /api/settings bodies).
// Oracles: a body accepted by the control API yields settings whose runtime JSON is accepted
// again and changes nothing (a round trip); refusals always name the reason.
#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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
  // The timelapse settings API (POST /api/timelapse/settings) on a board with USB storage: the
  // same round trip over its changeable keys.
  static const auto kobra = printcast::bsp::findBoard("anycubic-ks1");
  assert(kobra.ok());
  const auto& tlKeys = streamer::timelapseSettingKeys();
  if (streamer::validateSettingsChange(text, **kobra, current, next, keys, errorKey, tlKeys)) {
    nlohmann::json tl = nlohmann::json::parse(streamer::timelapseSettingsJson(next));
    for (auto it = tl.begin(); it != tl.end();) {
      it = std::find(tlKeys.begin(), tlKeys.end(), it.key()) == tlKeys.end() ? tl.erase(it) : std::next(it);
    }
    streamer::Settings again;
    auto st = streamer::validateSettingsChange(tl.dump(), **kobra, next, again, keys, errorKey, tlKeys);
    assert(st.ok());
    assert(streamer::timelapseSettingsJson(again) == streamer::timelapseSettingsJson(next));
  }
  next = current;
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
