// SPDX-License-Identifier: MIT
// libFuzzer target: what the Anycubic firmware and slicer send the camera program, from local
// peers: gkapi messages with video_stream_requests (anycubic_timelapse.h, handleRpcMessage) and
// MQTT video commands and reports (anycubic_mqtt.h, AnycubicMqttVideoLogic). The first input byte
// picks the path. Oracles: every reply is gkcam's Video/VideoStreamReply shape for a request that
// had an integer id; every MQTT publication goes to the report topic with a known state; the
// sink never sees a capture without an open recording.
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "anycubic_mqtt.h"
#include "anycubic_timelapse.h"

namespace {

using namespace printcast;

class CheckingSink : public streamer::AnycubicTimelapseSink {
 public:
  bool cameraConnected() const override { return camera; }
  hal::Status openRecording(const std::string& filepath) override {
    assert(!filepath.empty());
    open = true;
    return {};
  }
  hal::Status captureFrame() override {
    assert(open);
    return {};
  }
  void finishRecording(const std::string& reason) override {
    assert(open && !reason.empty());
    open = false;
  }
  void setLed(bool) override {}
  bool camera = true;
  bool open = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((selector & 1) == 0) {
    CheckingSink sink;
    sink.camera = (selector & 2) == 0;
    const bool moonraker = (selector & 4) != 0;
    streamer::AnycubicTimelapseHandler handler(sink, [&] { return moonraker; });
    // The input may hold several messages separated by 0x03, as on the wire.
    size_t start = 0;
    while (start <= text.size()) {
      const size_t end = std::min(text.find('\x03', start), text.size());
      for (const auto& reply : handler.handleRpcMessage(text.substr(start, end - start))) {
        const auto j = nlohmann::json::parse(reply);
        assert(j.at("method") == "Video/VideoStreamReply");
        const auto& body = j.at("params").at("status").at("video_stream_reply");
        assert(body.at("id").is_number_integer());
        assert(body.contains("result") != body.contains("error"));
      }
      if (handler.stats().recording) assert(sink.open);
      start = end + 1;
    }
    handler.close();
    assert(!sink.open);
    return 0;
  }
  const auto topics = streamer::anycubicVideoTopics("20025", "dev");
  streamer::AnycubicMqttVideoLogic logic(topics,
                                         {[] { return int64_t{1}; }, [] { return std::string("id"); }, {}});
  const std::string topic = (selector & 6) == 0   ? topics.web
                            : (selector & 6) == 2 ? topics.slicer
                            : (selector & 6) == 4 ? topics.report
                                                  : std::string(text.substr(0, 16));
  for (const auto& p : logic.onMessage(topic, text)) {
    assert(p.topic == topics.report);
    const auto j = nlohmann::json::parse(p.payload);
    assert(j.at("state") == "initSuccess" || j.at("state") == "pushStopped");
  }
  (void)streamer::parseDeviceAccount(text);
  (void)streamer::parseApiConfigModelId(text);
  return 0;
}
