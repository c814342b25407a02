// SPDX-License-Identifier: MIT
// Board lookup by id and detection of the board this process runs on (api.cfg modelId).
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <system_error>

#include <nlohmann/json.hpp>

#include "printcast/bsp/registry.h"

namespace printcast::bsp {

namespace {

constexpr std::string_view kFallbackId = "generic-linux";

std::string knownIds() {
  std::string out;
  for (const Board* board : allBoards()) {
    if (!out.empty()) out += ", ";
    out += board->id;
  }
  return out;
}

// The model id as written in api.cfg: Anycubic firmware writes a string ("20025"); accept a
// plain integer too. Returns 0 with `why` set when the value is not a positive integer.
int parseModelId(const nlohmann::json& value, std::string& why) {
  if (value.is_number_integer()) {
    const auto id = value.get<long long>();
    if (id > 0 && id <= std::numeric_limits<int>::max()) return static_cast<int>(id);
    why = "modelId " + value.dump() + " is not a positive integer";
    return 0;
  }
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    int id = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec == std::errc() && end == text.data() + text.size() && id > 0) return id;
    why = "modelId " + value.dump() + " is not a number";
    return 0;
  }
  why = "modelId " + value.dump() + " is neither a string nor an integer";
  return 0;
}

DetectionResult fallBack(const Board* fallback, std::string reason, bool fellBack) {
  return DetectionResult{fallback, std::move(reason) + "; using " + std::string(kFallbackId), fellBack};
}

}  // namespace

hal::Result<const Board*> findBoard(std::string_view id) {
  const auto boards = allBoards();
  const auto it = std::lower_bound(boards.begin(), boards.end(), id,
                                   [](const Board* board, std::string_view key) { return board->id < key; });
  if (it != boards.end() && (*it)->id == id) return *it;
  return hal::Result<const Board*>(hal::Errc::InvalidArgument, "unknown board '" + std::string(id) +
                                                                   "' (known boards: " + knownIds() + ")");
}

hal::Result<DetectionResult> detectBoard(std::string_view overrideId,
                                         const std::filesystem::path& apiConfig) {
  if (!overrideId.empty()) {
    auto board = findBoard(overrideId);
    if (!board) return std::move(board).error();
    return DetectionResult{*board, "chosen with --board " + std::string(overrideId), false};
  }

  // generic-linux is always built in (bsp/CMakeLists.txt adds it to any PRINTCAST_BOARDS).
  auto fallbackBoard = findBoard(kFallbackId);
  if (!fallbackBoard) return std::move(fallbackBoard).error();
  const Board* fallback = *fallbackBoard;
  const std::string path = apiConfig.string();

  std::error_code ec;
  const auto status = std::filesystem::status(apiConfig, ec);
  if (status.type() == std::filesystem::file_type::not_found) {
    return fallBack(fallback, "no Anycubic config at " + path + ": not an Anycubic printer", false);
  }
  if (ec) return fallBack(fallback, "cannot read " + path + ": " + ec.message(), true);
  if (std::filesystem::is_directory(status)) return fallBack(fallback, path + " is a directory", true);

  errno = 0;
  std::ifstream file(apiConfig, std::ios::binary);
  if (!file) {
    const int errnum = errno;
    return fallBack(
        fallback, "cannot open " + path + (errnum != 0 ? ": " + std::generic_category().message(errnum) : ""),
        true);
  }
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return fallBack(fallback, "cannot read " + path, true);

  const nlohmann::json config =
      nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (config.is_discarded()) return fallBack(fallback, path + " is not valid JSON", true);
  if (!config.is_object()) return fallBack(fallback, path + " is not a JSON object", true);

  // Anycubic firmware keeps it under "cloud" (Rinkhals reads api_config['cloud']['modelId']);
  // a top-level "modelId" is accepted too (h264-streamer matches the key anywhere in the file).
  const nlohmann::json* value = nullptr;
  if (const auto cloud = config.find("cloud"); cloud != config.end() && cloud->is_object()) {
    if (const auto it = cloud->find("modelId"); it != cloud->end()) value = &*it;
  }
  if (value == nullptr) {
    if (const auto it = config.find("modelId"); it != config.end()) value = &*it;
  }
  if (value == nullptr) return fallBack(fallback, path + " has no modelId", true);

  std::string why;
  const int modelId = parseModelId(*value, why);
  if (modelId == 0) return fallBack(fallback, path + ": " + why, true);

  for (const Board* board : allBoards()) {
    if (board->detection.anycubicModelId == modelId) {
      return DetectionResult{
          board, "modelId " + std::to_string(modelId) + " in " + path + " is the " + std::string(board->name),
          false};
    }
  }
  return fallBack(fallback,
                  "modelId " + std::to_string(modelId) + " in " + path +
                      " is unknown to this build (boards: " + knownIds() + ")",
                  true);
}

}  // namespace printcast::bsp
