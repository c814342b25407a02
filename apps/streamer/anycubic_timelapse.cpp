// SPDX-License-Identifier: MIT
// Anycubic native timelapse requests (video_stream_request) -> sink calls and gkcam's replies.
#include "anycubic_timelapse.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

namespace printcast::streamer {

namespace {

hal::Error invalid(const std::string& why) { return hal::Error{hal::Errc::InvalidArgument, 0, why}; }

// What a gkapi message that is not ours starts with is not known in advance, but ours always
// name the request; this saves parsing the firmware's frequent status broadcasts.
constexpr std::string_view kRequestKey = "\"video_stream_request\"";
constexpr std::string_view kPrintStatsKey = "\"print_stats\"";

}  // namespace

hal::Result<AnycubicVideoRequest> parseVideoStreamRequest(const nlohmann::json& request) {
  if (!request.is_object()) return invalid("video_stream_request is not a JSON object");
  AnycubicVideoRequest out;
  const auto id = request.find("id");
  if (id == request.end() || !id->is_number_integer())
    return invalid("video_stream_request has no integer id");
  out.id = id->get<int64_t>();
  const auto method = request.find("method");
  if (method == request.end() || !method->is_string())
    return invalid(fmt::format("video_stream_request {} has no method name", out.id));
  out.method = method->get<std::string>();
  const auto params = request.find("params");
  if (params != request.end() && !params->is_null() && !params->is_object())
    return invalid(fmt::format("video_stream_request {} ({}): params is not an object", out.id, out.method));
  if (params != request.end() && params->is_object()) {
    if (const auto fp = params->find("filepath"); fp != params->end() && fp->is_string())
      out.filepath = fp->get<std::string>();
    if (const auto en = params->find("enable"); en != params->end()) {
      if (en->is_boolean()) out.ledOn = en->get<bool>();
      if (en->is_number_integer()) out.ledOn = en->get<int64_t>() != 0;
    }
  }
  return out;
}

std::string videoStreamReplyMessage(const AnycubicVideoReply& reply) {
  nlohmann::json body{{"id", reply.id}, {"method", reply.method}};
  if (reply.errorCode.empty()) {
    body["result"] = nlohmann::json::object();
  } else {
    body["error"] = {{"code", reply.errorCode}};
  }
  const nlohmann::json msg{{"id", 0},
                           {"method", "Video/VideoStreamReply"},
                           {"params", {{"eventtime", 0}, {"status", {{"video_stream_reply", body}}}}}};
  return msg.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

AnycubicTimelapseHandler::AnycubicTimelapseHandler(AnycubicTimelapseSink& sink,
                                                   std::function<bool()> moonrakerTimelapseEnabled)
    : sink_(sink), moonrakerTimelapseEnabled_(std::move(moonrakerTimelapseEnabled)) {}

void AnycubicTimelapseHandler::fail(const hal::Error& error) {
  stats_.lastError = error.describe();
  spdlog::warn("anycubic timelapse: {}", stats_.lastError);
}

AnycubicTimelapseHandler::Outcome AnycubicTimelapseHandler::handleRequest(const nlohmann::json& request) {
  ++stats_.requests;
  Outcome out;
  auto parsed = parseVideoStreamRequest(request);
  if (!parsed) {
    ++stats_.invalid;
    fail(parsed.error());
    out.status = parsed.error();
    return out;
  }
  const AnycubicVideoRequest& req = *parsed;
  AnycubicVideoReply reply{req.id, req.method, {}};
  const bool moonraker = moonrakerTimelapseEnabled_ && moonrakerTimelapseEnabled_();

  if (req.method == "SetLed") {
    if (req.ledOn) sink_.setLed(*req.ledOn);
    out.reply = reply;
    return out;
  }
  if (req.method == "stopLanCapture") {
    // Sent at print start before the first capture: nothing to stop in a per-layer recording.
    out.reply = reply;
    return out;
  }
  if (req.method != "openDelayCamera" && req.method != "startLanCapture") {
    // gkcam's other methods (live view, RTC) are not ours; h264-streamer leaves them unanswered.
    ++stats_.invalid;
    out.status =
        hal::Error{hal::Errc::Unsupported, 0,
                   fmt::format("video_stream_request {}: unknown method \"{:.64}\"", req.id, req.method)};
    stats_.lastError = out.status.error().describe();
    spdlog::debug("anycubic timelapse: {}", stats_.lastError);
    return out;
  }
  if (moonraker) {
    ++stats_.ignored;
    out.reply = reply;
    return out;
  }
  if (!sink_.cameraConnected()) {
    reply.errorCode = std::string(kAnycubicCameraNotConnected);
    out.reply = reply;
    out.status = hal::Error{hal::Errc::NoDevice, 0, req.method + ": camera not connected (answered 11401)"};
    fail(out.status.error());
    return out;
  }
  out.reply = reply;  // success from here on: storage trouble must not block the print

  if (req.method == "openDelayCamera") {
    if (req.filepath.empty()) {
      ++stats_.invalid;
      out.status = invalid(fmt::format("openDelayCamera {}: no params.filepath", req.id));
      fail(out.status.error());
      return out;
    }
    if (stats_.recording) sink_.finishRecording("new print");
    stats_.recording = false;
    stats_.frames = 0;
    if (auto st = sink_.openRecording(req.filepath); !st) {
      out.status = st;
      fail(st.error());
      return out;
    }
    stats_.recording = true;
    ++stats_.recordings;
    spdlog::info("anycubic timelapse: recording {}", req.filepath);
    return out;
  }
  // startLanCapture
  if (!stats_.recording) {
    ++stats_.ignored;  // no openDelayCamera (or it failed): no recording to add to
    return out;
  }
  if (auto st = sink_.captureFrame(); !st) {
    out.status = st;
    fail(st.error());
    return out;
  }
  ++stats_.frames;
  return out;
}

void AnycubicTimelapseHandler::onPrintState(std::string_view state) {
  if (!stats_.recording) return;
  if (state == "complete" || state == "cancelled" || state == "error") {
    stats_.recording = false;
    spdlog::info("anycubic timelapse: print {} after {} frames", state, stats_.frames);
    sink_.finishRecording(std::string(state));
  }
}

void AnycubicTimelapseHandler::close() {
  if (!stats_.recording) return;
  stats_.recording = false;
  sink_.finishRecording("stopped");
}

std::vector<std::string> AnycubicTimelapseHandler::handleRpcMessage(std::string_view message) {
  std::vector<std::string> replies;
  const bool request = message.find(kRequestKey) != std::string_view::npos;
  const bool printStats = stats_.recording && message.find(kPrintStatsKey) != std::string_view::npos;
  if (!request && !printStats) return replies;
  const auto json = nlohmann::json::parse(message, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return replies;
  const auto method = json.find("method");
  if (method == json.end() || !method->is_string() || *method != "process_status_update") return replies;
  const auto params = json.find("params");
  if (params == json.end() || !params->is_object()) return replies;
  const auto status = params->find("status");
  if (status == params->end() || !status->is_object()) return replies;
  if (const auto vr = status->find("video_stream_request"); vr != status->end()) {
    const auto outcome = handleRequest(*vr);
    if (outcome.reply) replies.push_back(videoStreamReplyMessage(*outcome.reply));
  }
  if (const auto ps = status->find("print_stats"); ps != status->end() && ps->is_object()) {
    if (const auto st = ps->find("state"); st != ps->end() && st->is_string())
      onPrintState(st->get_ref<const std::string&>());
  }
  return replies;
}

}  // namespace printcast::streamer
