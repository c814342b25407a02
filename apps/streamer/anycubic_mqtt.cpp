// SPDX-License-Identifier: MIT
// Anycubic MQTT video responder: account and topics, and what to answer (see anycubic_mqtt.h).
#include "anycubic_mqtt.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace printcast::streamer {

namespace {

constexpr size_t kRememberedMsgIds = 64;
constexpr size_t kMaxAccountFileBytes = 64 * 1024;

hal::Error invalid(std::string why) { return hal::Error{hal::Errc::InvalidArgument, 0, std::move(why)}; }

}  // namespace

hal::Result<AnycubicDeviceAccount> parseDeviceAccount(std::string_view text) {
  const auto json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded() || !json.is_object()) return invalid("device account: not a JSON object");
  AnycubicDeviceAccount out;
  const auto field = [&](const char* key, std::string& into) -> bool {
    const auto it = json.find(key);
    if (it == json.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) return false;
    into = it->get<std::string>();
    return true;
  };
  if (!field("deviceId", out.deviceId)) return invalid("device account: no deviceId");
  if (!field("username", out.username)) return invalid("device account: no username");
  if (!field("password", out.password)) return invalid("device account: no password");
  return out;
}

hal::Result<AnycubicDeviceAccount> loadDeviceAccount(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    const int e = errno;
    const auto code = e == ENOENT   ? hal::Errc::NoDevice
                      : e == EACCES ? hal::Errc::PermissionDenied
                                    : hal::Errc::Io;
    return hal::Error{code, e, fmt::format("{}: {}", file.string(), std::strerror(e))};
  }
  std::string text(kMaxAccountFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxAccountFileBytes) return invalid(file.string() + ": larger than 64 KiB");
  auto account = parseDeviceAccount(text);
  if (!account) return invalid(file.string() + ": " + account.error().message);
  return account;
}

hal::Result<std::string> parseApiConfigModelId(std::string_view text) {
  const auto json = nlohmann::json::parse(text, nullptr, false, /*ignore_comments=*/true);
  if (json.is_discarded() || !json.is_object()) return invalid("api.cfg: not a JSON object");
  const auto cloud = json.find("cloud");
  if (cloud == json.end() || !cloud->is_object()) return invalid("api.cfg: no cloud object");
  const auto id = cloud->find("modelId");
  if (id == cloud->end()) return invalid("api.cfg: no cloud.modelId");
  std::string out;
  if (id->is_number_unsigned()) out = std::to_string(id->get<uint64_t>());
  if (id->is_string()) out = id->get<std::string>();
  if (out.empty() || out.size() > 16 || out.find_first_not_of("0123456789") != std::string::npos)
    return invalid("api.cfg: cloud.modelId is not a model number");
  return out;
}

AnycubicVideoTopics anycubicVideoTopics(std::string_view modelId, std::string_view deviceId) {
  return {fmt::format("anycubic/anycubicCloud/v1/web/printer/{}/{}/video", modelId, deviceId),
          fmt::format("anycubic/anycubicCloud/v1/slicer/printer/{}/{}/video", modelId, deviceId),
          fmt::format("anycubic/anycubicCloud/v1/printer/public/{}/{}/video/report", modelId, deviceId)};
}

AnycubicMqttVideoLogic::AnycubicMqttVideoLogic(AnycubicVideoTopics topics, Hooks hooks,
                                               bool counterSpuriousStop)
    : topics_(std::move(topics)), hooks_(std::move(hooks)), counterSpuriousStop_(counterSpuriousStop) {}

bool AnycubicMqttVideoLogic::seen(const std::string& msgid) {
  for (const auto& m : msgids_)
    if (m == msgid) return true;
  msgids_.push_back(msgid);
  while (msgids_.size() > kRememberedMsgIds) msgids_.pop_front();
  return false;
}

std::string AnycubicMqttVideoLogic::reportPayload(std::string_view action, std::string_view state,
                                                  const std::string& msgid) const {
  const int64_t now = hooks_.nowMs ? hooks_.nowMs() : 0;
  const nlohmann::json report{{"type", "video"}, {"action", action}, {"timestamp", now}, {"msgid", msgid},
                              {"state", state},  {"code", 200},      {"msg", ""},        {"data", nullptr}};
  return report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<AnycubicMqttVideoLogic::Publish> AnycubicMqttVideoLogic::onMessage(std::string_view topic,
                                                                               std::string_view payload) {
  std::vector<Publish> out;
  const bool request = topic == topics_.web || topic == topics_.slicer;
  const bool report = topic == topics_.report;
  if (!request && !report) {
    ++stats_.ignored;
    return out;
  }
  const auto json = nlohmann::json::parse(payload, nullptr, false);
  const auto str = [&](const char* key) -> std::string {
    if (!json.is_object()) return {};
    const auto it = json.find(key);
    return it != json.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const std::string type = str("type");
  const std::string action = str("action");
  const std::string msgid = str("msgid");
  if (json.is_discarded() || !json.is_object() || type != "video" ||
      (action != "startCapture" && action != "stopCapture")) {
    ++stats_.ignored;
    return out;
  }
  const auto newId = [&] {
    std::string id = hooks_.newMsgId ? hooks_.newMsgId() : std::string();
    if (!id.empty()) (void)seen(id);  // our own report comes back to us: never counter it
    return id;
  };
  if (request) {
    if (!msgid.empty() && seen(msgid)) {
      ++stats_.ignored;
      return out;
    }
    const bool start = action == "startCapture";
    stats_.streaming = start;
    ++stats_.requests;
    if (hooks_.onCapture) hooks_.onCapture(start);
    out.push_back({topics_.report, reportPayload(action, start ? "initSuccess" : "pushStopped", newId())});
    return out;
  }
  // A report: only the firmware's own stopCapture while the slicer watches is answered.
  const int64_t now = hooks_.nowMs ? hooks_.nowMs() : 0;
  if (!counterSpuriousStop_ || action != "stopCapture" || !stats_.streaming || msgid.empty() || seen(msgid) ||
      (lastCounterMs_ >= 0 && now - lastCounterMs_ < 1000)) {
    ++stats_.ignored;
    return out;
  }
  lastCounterMs_ = now;
  ++stats_.countered;
  out.push_back({topics_.report, reportPayload("startCapture", "initSuccess", newId())});
  return out;
}

}  // namespace printcast::streamer
