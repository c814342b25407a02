// SPDX-License-Identifier: MIT
// The Anycubic Kobras' detector: the firmware's api.cfg and its modelId (anycubic_kobra.h).
#include <cerrno>
#include <charconv>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <system_error>

#include <nlohmann/json.hpp>

#include "anycubic_kobra.h"

namespace printcast::bsp::platforms {

namespace {

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

Detector::Probe problem(std::string reason) { return {0, std::move(reason), true}; }

}  // namespace

Detector::Probe probeAnycubicApiConfig(const DetectionInput& input) {
  const std::filesystem::path& apiConfig = input.anycubicApiConfig;
  const std::string path = apiConfig.string();
  std::error_code ec;
  const auto status = std::filesystem::status(apiConfig, ec);
  if (status.type() == std::filesystem::file_type::not_found) {
    return {0, "no Anycubic config at " + path + ": not an Anycubic printer", false};
  }
  if (ec) return problem("cannot read " + path + ": " + ec.message());
  if (std::filesystem::is_directory(status)) return problem(path + " is a directory");

  errno = 0;
  std::ifstream file(apiConfig, std::ios::binary);
  if (!file) {
    const int errnum = errno;
    return problem("cannot open " + path +
                   (errnum != 0 ? ": " + std::generic_category().message(errnum) : ""));
  }
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return problem("cannot read " + path);

  const nlohmann::json config =
      nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (config.is_discarded()) return problem(path + " is not valid JSON");
  if (!config.is_object()) return problem(path + " is not a JSON object");

  // Anycubic firmware keeps it under "cloud" (Rinkhals reads api_config['cloud']['modelId']);
  // a top-level "modelId" is accepted too (h264-streamer matches the key anywhere in the file).
  const nlohmann::json* value = nullptr;
  if (const auto cloud = config.find("cloud"); cloud != config.end() && cloud->is_object()) {
    if (const auto it = cloud->find("modelId"); it != cloud->end()) value = &*it;
  }
  if (value == nullptr) {
    if (const auto it = config.find("modelId"); it != config.end()) value = &*it;
  }
  if (value == nullptr) return problem(path + " has no modelId");

  std::string why;
  const int modelId = parseModelId(*value, why);
  if (modelId == 0) return problem(path + ": " + why);
  return {modelId, "modelId " + std::to_string(modelId) + " in " + path, false};
}

}  // namespace printcast::bsp::platforms
