// SPDX-License-Identifier: MIT
// Camera control persistence (JSON file keyed by the camera's stable name).
#include "camera_controls.h"

#include <fstream>
#include <sstream>
#include <system_error>

#include <fmt/format.h>

namespace printcast::streamer {

hal::Status CameraControlStore::load() {
  std::lock_guard lock(mutex_);
  data_ = nlohmann::json::object();
  if (path_.empty()) return {};
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec)) return {};
  std::ifstream in(path_);
  if (!in) return hal::Status(hal::Errc::Io, fmt::format("camera controls {}: cannot read", path_.string()));
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = nlohmann::json::parse(text.str(), nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return hal::Status(hal::Errc::InvalidArgument,
                       fmt::format("camera controls {}: not a JSON object; starting empty", path_.string()));
  }
  data_ = std::move(parsed);
  return {};
}

std::vector<std::string> CameraControlStore::apply(const std::string& stableName,
                                                   hal::V4l2Camera& camera) const {
  std::vector<std::string> refused;
  nlohmann::json saved;
  {
    std::lock_guard lock(mutex_);
    if (!data_.contains(stableName) || !data_[stableName].is_object()) return refused;
    saved = data_[stableName];
  }
  for (const auto& [name, entry] : saved.items()) {
    if (!entry.is_object() || !entry.contains("id") || !entry.contains("value") ||
        !entry["id"].is_number_unsigned() || !entry["value"].is_number_integer()) {
      refused.push_back(fmt::format("{}: malformed entry {}", name, entry.dump()));
      continue;
    }
    const auto id = entry["id"].get<uint32_t>();
    const auto value = entry["value"].get<int64_t>();
    if (auto st = camera.setControl(id, value); !st) {
      refused.push_back(fmt::format("{} = {}: {}", name, value, st.error().describe()));
    }
  }
  return refused;
}

hal::Status CameraControlStore::set(const std::string& stableName, hal::V4l2Camera& camera,
                                    const hal::V4l2Control& control, int64_t value) {
  if (auto st = camera.setControl(control.id, value); !st) return st;
  if (control.type == hal::V4l2Control::Type::Button) return {};  // an action, not a setting
  std::lock_guard lock(mutex_);
  data_[stableName][control.name] = {{"id", control.id}, {"value", value}};
  return save();
}

nlohmann::json CameraControlStore::saved(const std::string& stableName) const {
  std::lock_guard lock(mutex_);
  return data_.contains(stableName) ? data_[stableName] : nlohmann::json::object();
}

hal::Status CameraControlStore::save() const {
  if (path_.empty()) return {};
  const std::filesystem::path tmp = path_.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << data_.dump(2) << "\n";
    if (!out)
      return hal::Status(hal::Errc::Io, fmt::format("camera controls {}: cannot write", tmp.string()));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path_, ec);
  if (ec) {
    return hal::Status(
        hal::Error{hal::Errc::Io, ec.value(),
                   fmt::format("camera controls: rename {} -> {}", tmp.string(), path_.string())});
  }
  return {};
}

nlohmann::json controlToJson(const hal::V4l2Control& c) {
  static constexpr const char* kTypes[] = {"integer", "boolean",   "menu", "integer-menu",
                                           "button",  "integer64", "other"};
  nlohmann::json j = {{"id", c.id},
                      {"name", c.name},
                      {"type", kTypes[static_cast<int>(c.type)]},
                      {"min", c.minimum},
                      {"max", c.maximum},
                      {"step", c.step},
                      {"default", c.defaultValue},
                      {"value", c.value},
                      {"read_only", c.readOnly},
                      {"inactive", c.inactive}};
  if (!c.menu.empty()) {
    auto& menu = j["menu"] = nlohmann::json::array();
    for (const auto& m : c.menu) menu.push_back({{"index", m.index}, {"name", m.name}});
  }
  return j;
}

}  // namespace printcast::streamer
