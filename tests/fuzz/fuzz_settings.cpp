// SPDX-License-Identifier: MIT
// libFuzzer target: the JSON settings parser (the config file and POST /api/settings bodies), and
// the cameras API's (POST /api/cameras and PATCH /api/cameras/<id> bodies, the edit of the config
// file's cameras list). Oracles: a body accepted by the control API yields settings whose runtime
// JSON is accepted again and changes nothing (a round trip); an accepted camera entry written as
// the file has it reads back to the same entry; an edited list is a JSON list; refusals always
// name the reason.
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

  // The cameras API: the input as a camera entry (a PATCH onto a running entry), and as the
  // config file whose list an add, a change and a remove edit.
  {
    streamer::Settings::CameraEntry entry;
    entry.id = "cam";
    entry.source = "test-pattern";
    std::string key;
    auto st = streamer::parseCameraEntry(text, "fuzz", "cameras[1]", entry, key);
    if (st) {
      const streamer::Settings::CameraEntry other{"printer", "printer", "test-pattern", {}, 0, 0, true, {}};
      st = streamer::checkCameraEntry(entry, "cameras[1]", false, {{"cameras[0]", &other}},
                                      streamer::Settings{}, **board, "fuzz", key);
    }
    if (st) {
      const std::string json = streamer::cameraEntryJson(entry);
      streamer::Settings::CameraEntry again;
      auto back = streamer::parseCameraEntry(json, "fuzz", "cameras[1]", again, key);
      assert(back.ok());
      if (again.name.empty()) again.name = again.id;  // what checkCameraEntry fills in
      assert(streamer::cameraEntryJson(again) == json);
      assert(again.size == entry.size && again.publish == entry.publish && again.enabled == entry.enabled);
    } else {
      assert(!st.error().message.empty());
    }
    using Kind = streamer::CameraListEdit::Kind;
    for (const Kind kind : {Kind::Add, Kind::Change, Kind::Remove}) {
      auto list = streamer::editCameraList(text, {kind, "cam", R"({"id":"cam","source":"test-pattern"})"});
      if (list) {
        const auto parsed = nlohmann::json::parse(*list);
        assert(parsed.is_array());
      } else {
        assert(!list.error().message.empty());
      }
    }
  }
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
