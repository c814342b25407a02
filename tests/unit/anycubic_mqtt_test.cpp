// SPDX-License-Identifier: MIT
// Anycubic MQTT video responder without a network (anycubic_mqtt.h): the account file, api.cfg,
// the topics and what is answered to which message. The broker itself: tests/integration.
#include "anycubic_mqtt.h"

#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace printcast::streamer {
namespace {

using json = nlohmann::json;

TEST(AnycubicMqtt, DeviceAccount) {
  auto a = parseDeviceAccount(R"({"deviceId":"6e37df18","username":"user1","password":"s3cret","other":1})");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->deviceId, "6e37df18");
  EXPECT_EQ(a->username, "user1");
  EXPECT_EQ(a->password, "s3cret");
  for (const auto* bad :
       {"", "[]", R"({"deviceId":"d","username":"u"})", R"({"deviceId":"d","username":"u","password":""})",
        R"({"deviceId":1,"username":"u","password":"p"})"}) {
    const auto r = parseDeviceAccount(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.code(), hal::Errc::InvalidArgument);
  }
  // The password never appears in an error.
  const auto r = parseDeviceAccount(R"({"deviceId":"d","password":"hunter2"})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message.find("hunter2"), std::string::npos);
}

TEST(AnycubicMqtt, DeviceAccountFile) {
  const auto missing = loadDeviceAccount("/nonexistent/device_account.json");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.code(), hal::Errc::NoDevice);
  const std::string path =
      ::testing::TempDir() + "printcast_device_account_" + std::to_string(::getpid()) + ".json";
  { std::ofstream(path) << R"({"deviceId":"dev","username":"u","password":"p"})"; }
  const auto ok = loadDeviceAccount(path);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->deviceId, "dev");
  { std::ofstream(path) << "{broken"; }
  const auto bad = loadDeviceAccount(path);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.code(), hal::Errc::InvalidArgument);
  EXPECT_NE(bad.error().message.find(path), std::string::npos);
  ::unlink(path.c_str());
}

TEST(AnycubicMqtt, ApiConfigModelId) {
  EXPECT_EQ(*parseApiConfigModelId(R"({"cloud":{"modelId":"20025","x":1}})"), "20025");
  EXPECT_EQ(*parseApiConfigModelId("{\"cloud\":{\"modelId\":20024}}"), "20024");
  for (const auto* bad :
       {"", "{}", R"({"cloud":{}})", R"({"cloud":{"modelId":"../x"}})", R"({"cloud":{"modelId":-1}})"}) {
    EXPECT_FALSE(parseApiConfigModelId(bad)) << bad;
  }
}

TEST(AnycubicMqtt, Topics) {
  const auto t = anycubicVideoTopics("20025", "abc");
  EXPECT_EQ(t.web, "anycubic/anycubicCloud/v1/web/printer/20025/abc/video");
  EXPECT_EQ(t.slicer, "anycubic/anycubicCloud/v1/slicer/printer/20025/abc/video");
  EXPECT_EQ(t.report, "anycubic/anycubicCloud/v1/printer/public/20025/abc/video/report");
}

struct Harness {
  int64_t now = 1700000000000;
  int ids = 0;
  std::vector<bool> captures;
  AnycubicVideoTopics topics = anycubicVideoTopics("20025", "dev");
  AnycubicMqttVideoLogic logic{topics,
                               {[this] { return now; }, [this] { return "ours-" + std::to_string(++ids); },
                                [this](bool s) { captures.push_back(s); }}};
};

std::string command(const std::string& action, const std::string& msgid) {
  return json{{"type", "video"}, {"action", action}, {"timestamp", 1}, {"msgid", msgid}, {"data", nullptr}}
      .dump();
}

TEST(AnycubicMqtt, AnswersStartAndStopLikeGkcam) {
  Harness h;
  auto out = h.logic.onMessage(h.topics.slicer, command("startCapture", "m1"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].topic, h.topics.report);
  EXPECT_EQ(json::parse(out[0].payload), json::parse(R"({"type":"video","action":"startCapture",
    "timestamp":1700000000000,"msgid":"ours-1","state":"initSuccess","code":200,"msg":"","data":null})"));
  EXPECT_TRUE(h.logic.stats().streaming);
  out = h.logic.onMessage(h.topics.web, command("stopCapture", "m2"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(json::parse(out[0].payload).at("state"), "pushStopped");
  EXPECT_EQ(json::parse(out[0].payload).at("action"), "stopCapture");
  EXPECT_EQ(h.captures, (std::vector<bool>{true, false}));
  EXPECT_EQ(h.logic.stats().requests, 2u);
}

TEST(AnycubicMqtt, DuplicatesAndNoiseAreIgnored) {
  Harness h;
  EXPECT_EQ(h.logic.onMessage(h.topics.web, command("startCapture", "same")).size(), 1u);
  EXPECT_TRUE(h.logic.onMessage(h.topics.slicer, command("startCapture", "same")).empty());  // redelivered
  EXPECT_TRUE(
      h.logic.onMessage("anycubic/anycubicCloud/v1/web/printer/20025/dev/light", command("startCapture", "x"))
          .empty());
  EXPECT_TRUE(h.logic.onMessage(h.topics.web, "not json").empty());
  EXPECT_TRUE(h.logic.onMessage(h.topics.web, R"({"type":"video","action":"rotate","msgid":"y"})").empty());
  EXPECT_TRUE(h.logic.onMessage(h.topics.web, R"({"type":"light","action":"startCapture"})").empty());
  EXPECT_TRUE(h.logic.onMessage(h.topics.web, "[1,2]").empty());
  EXPECT_EQ(h.logic.stats().requests, 1u);
  EXPECT_EQ(h.logic.stats().ignored, 6u);
}

TEST(AnycubicMqtt, CountersTheFirmwaresSpuriousStopWhileStreaming) {
  Harness h;
  // Not streaming: a stop report is left alone.
  EXPECT_TRUE(h.logic.onMessage(h.topics.report, command("stopCapture", "fw-1")).empty());
  auto out = h.logic.onMessage(h.topics.slicer, command("startCapture", "m1"));
  ASSERT_EQ(out.size(), 1u);
  // Our own report comes back from the broker: ignored.
  EXPECT_TRUE(h.logic.onMessage(h.topics.report, out[0].payload).empty());
  // The firmware's stop report while the slicer watches: answered with initSuccess.
  h.now += 5000;
  out = h.logic.onMessage(h.topics.report, command("stopCapture", "fw-2"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(json::parse(out[0].payload).at("state"), "initSuccess");
  EXPECT_EQ(json::parse(out[0].payload).at("action"), "startCapture");
  // At most once a second.
  h.now += 100;
  EXPECT_TRUE(h.logic.onMessage(h.topics.report, command("stopCapture", "fw-3")).empty());
  h.now += 1000;
  EXPECT_EQ(h.logic.onMessage(h.topics.report, command("stopCapture", "fw-4")).size(), 1u);
  EXPECT_EQ(h.logic.stats().countered, 2u);
  // The slicer stops: the firmware's stop reports are not countered any more.
  (void)h.logic.onMessage(h.topics.slicer, command("stopCapture", "m2"));
  h.now += 5000;
  EXPECT_TRUE(h.logic.onMessage(h.topics.report, command("stopCapture", "fw-5")).empty());
}

TEST(AnycubicMqtt, CounteringCanBeTurnedOff) {
  AnycubicVideoTopics t = anycubicVideoTopics("1", "d");
  AnycubicMqttVideoLogic logic(t, {}, /*counterSpuriousStop=*/false);
  EXPECT_EQ(logic.onMessage(t.web, command("startCapture", "a")).size(), 1u);
  EXPECT_TRUE(logic.onMessage(t.report, command("stopCapture", "b")).empty());
}

TEST(AnycubicMqtt, ResponderWithoutModelIdOrAccountRefusesToStart) {
  auto r = createAnycubicMqttResponder({});
  if (!r) {
    // Built without libmosquitto: says so.
    EXPECT_EQ(r.code(), hal::Errc::Unsupported);
    return;
  }
  EXPECT_EQ((*r)->start().code(), hal::Errc::InvalidArgument);
  AnycubicMqttConfig c;
  c.modelId = "20025";
  c.accountFile = "/nonexistent/device_account.json";
  auto r2 = createAnycubicMqttResponder(c);
  ASSERT_TRUE(r2);
  EXPECT_EQ((*r2)->start().code(), hal::Errc::NoDevice);
  EXPECT_EQ((*r2)->state().state, "stopped");
}

}  // namespace
}  // namespace printcast::streamer
