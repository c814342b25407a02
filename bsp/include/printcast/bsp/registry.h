// SPDX-License-Identifier: MIT
// The board registry (generated at configure time from the bsp/ folders: no static
// self-registration, which static linking silently drops) and board detection.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "printcast/bsp/board.h"
#include "printcast/hal/result.h"

namespace printcast::bsp {

// Every board built in, sorted by id. Pointers stay valid for the life of the program.
std::span<const Board* const> allBoards();

// The board with this id. Errors: InvalidArgument naming the id and listing the known ones.
hal::Result<const Board*> findBoard(std::string_view id);

// The default location of the Anycubic firmware's config file holding `modelId`.
inline constexpr std::string_view kAnycubicApiConfig = "/userdata/app/gk/config/api.cfg";

struct DetectionResult {
  const Board* board = nullptr;
  std::string reason;  // what was found, or why it fell back ("modelId 99999 is unknown ...")
  bool fellBack = false;
};

// Pick the board: `overrideId` (the --board flag) when not empty; otherwise the Anycubic model
// id from `apiConfig` (JSON; "cloud": {"modelId": "20025"} as the firmware writes it, or a
// top-level "modelId"; a string or an integer; // comments allowed); otherwise generic-linux.
// No file: generic-linux, fellBack = false (not an Anycubic printer). An unreadable file, bad
// JSON, no or malformed modelId, or an unknown model id: generic-linux, fellBack = true, with a
// reason naming the path and the value.
// Errors: InvalidArgument only for an unknown overrideId.
hal::Result<DetectionResult> detectBoard(
    std::string_view overrideId,
    const std::filesystem::path& apiConfig = std::filesystem::path(kAnycubicApiConfig));

}  // namespace printcast::bsp
