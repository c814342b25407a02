// SPDX-License-Identifier: MIT
// Anycubic native timelapse: the video_stream_request handler (anycubic_timelapse.h) with a fake
// sink, and the gkapi client (anycubic_rpc.h) against a fake firmware service on loopback.
#include "anycubic_timelapse.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "anycubic_rpc.h"

namespace printcast::streamer {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

// Records every call; thread-safe (the RPC client calls it on its own thread).
class FakeSink : public AnycubicTimelapseSink {
 public:
  bool cameraConnected() const override {
    std::lock_guard lock(mutex_);
    return camera_;
  }
  hal::Status openRecording(const std::string& filepath) override {
    std::lock_guard lock(mutex_);
    calls_.push_back("open " + filepath);
    if (failOpen_) return hal::Error{hal::Errc::Io, 0, "disk full"};
    return {};
  }
  hal::Status captureFrame() override {
    std::lock_guard lock(mutex_);
    calls_.push_back("capture");
    ++frames_;
    changed_.notify_all();
    return {};
  }
  void finishRecording(const std::string& reason) override {
    std::lock_guard lock(mutex_);
    calls_.push_back("finish " + reason);
    changed_.notify_all();
  }
  void setLed(bool on) override {
    std::lock_guard lock(mutex_);
    calls_.push_back(on ? "led on" : "led off");
  }

  void setCamera(bool on) {
    std::lock_guard lock(mutex_);
    camera_ = on;
  }
  void setFailOpen(bool f) {
    std::lock_guard lock(mutex_);
    failOpen_ = f;
  }
  std::vector<std::string> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  int frames() const {
    std::lock_guard lock(mutex_);
    return frames_;
  }
  // Wait until `pred` holds (deadline 5 s).
  template <typename Pred>
  bool waitFor(Pred pred) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 5s, [&] { return pred(calls_, frames_); });
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool camera_ = true;
  bool failOpen_ = false;
  int frames_ = 0;
  std::vector<std::string> calls_;
};

json request(int64_t id, const std::string& method, json params = json::object()) {
  return {{"id", id}, {"method", method}, {"params", std::move(params)}};
}

// The process_status_update gkapi sends (TIMELAPSE_PROTOCOL.md, from gkcam captures).
std::string statusUpdate(const json& status) {
  return json{{"id", 0},
              {"method", "process_status_update"},
              {"params", {{"eventtime", 0}, {"response", ""}, {"status", status}}}}
      .dump();
}

json replyBody(const std::string& message) {
  const auto j = json::parse(message);
  EXPECT_EQ(j.at("id"), 0);
  EXPECT_EQ(j.at("method"), "Video/VideoStreamReply");
  EXPECT_EQ(j.at("params").at("eventtime"), 0);
  return j.at("params").at("status").at("video_stream_reply");
}

TEST(AnycubicTimelapse, ReplyMessageIsGkcamsShape) {
  EXPECT_EQ(json::parse(videoStreamReplyMessage({7, "startLanCapture", ""})),
            json::parse(R"({"id":0,"method":"Video/VideoStreamReply","params":{"eventtime":0,
              "status":{"video_stream_reply":{"id":7,"method":"startLanCapture","result":{}}}}})"));
  EXPECT_EQ(json::parse(videoStreamReplyMessage({8, "openDelayCamera", "11401"})),
            json::parse(R"({"id":0,"method":"Video/VideoStreamReply","params":{"eventtime":0,
              "status":{"video_stream_reply":{"id":8,"method":"openDelayCamera","error":{"code":"11401"}}}}})"));
}

TEST(AnycubicTimelapse, ParsesRequests) {
  auto r = parseVideoStreamRequest(request(2, "openDelayCamera", {{"filepath", "/g/a.gcode"}}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 2);
  EXPECT_EQ(r->filepath, "/g/a.gcode");
  r = parseVideoStreamRequest(request(1, "SetLed", {{"enable", 1}}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->ledOn, true);
  r = parseVideoStreamRequest(json{{"id", 3}, {"method", "stopLanCapture"}});  // no params
  ASSERT_TRUE(r);
  for (const auto& bad :
       {json(nullptr), json::array(), json{{"method", "SetLed"}}, json{{"id", "1"}, {"method", "x"}},
        json{{"id", 1.5}, {"method", "x"}}, json{{"id", 1}}, json{{"id", 1}, {"method", 3}},
        json{{"id", 1}, {"method", "x"}, {"params", "p"}}}) {
    const auto p = parseVideoStreamRequest(bad);
    ASSERT_FALSE(p) << bad.dump();
    EXPECT_EQ(p.code(), hal::Errc::InvalidArgument);
    EXPECT_FALSE(p.error().message.empty());
  }
}

// The timeline of a print as the firmware sends it (TIMELAPSE_PROTOCOL.md, "Timelapse Flow").
TEST(AnycubicTimelapse, PrintOfTwentyLayersRecordsEveryLayer) {
  FakeSink sink;
  AnycubicTimelapseHandler handler(sink, [] { return false; });
  int id = 1;
  auto send = [&](const std::string& method, json params = json::object()) {
    auto out = handler.handleRequest(request(id, method, std::move(params)));
    EXPECT_TRUE(out.status) << out.status.error().describe();
    EXPECT_TRUE(out.reply);
    EXPECT_EQ(out.reply->id, id);
    EXPECT_EQ(out.reply->method, method);
    EXPECT_EQ(out.reply->errorCode, "");
    ++id;
  };
  send("SetLed", {{"enable", 1}});
  send("openDelayCamera", {{"filepath", "/useremain/app/gk/gcodes/Cube_PLA_0.2_6m.gcode"}});
  send("stopLanCapture");                                // at print start: must not end the recording
  send("startLanCapture", {{"appid", ""}, {"uid", 0}});  // the first frame
  for (int layer = 1; layer < 20; ++layer) {
    send("SetLed", {{"enable", 1}});
    send("startLanCapture");
  }
  EXPECT_TRUE(handler.stats().recording);
  EXPECT_EQ(handler.stats().frames, 20u);
  handler.onPrintState("printing");
  EXPECT_TRUE(handler.stats().recording);
  handler.onPrintState("complete");
  EXPECT_FALSE(handler.stats().recording);
  EXPECT_EQ(sink.frames(), 20);
  const auto calls = sink.calls();
  EXPECT_EQ(calls.front(), "led on");
  EXPECT_EQ(calls[1], "open /useremain/app/gk/gcodes/Cube_PLA_0.2_6m.gcode");
  EXPECT_EQ(calls.back(), "finish complete");
  // A capture after the end adds nothing (no recording) but is still acknowledged.
  auto late = handler.handleRequest(request(99, "startLanCapture"));
  ASSERT_TRUE(late.reply);
  EXPECT_EQ(sink.frames(), 20);
  EXPECT_EQ(handler.stats().ignored, 1u);
}

TEST(AnycubicTimelapse, IgnoredWhileTheMoonrakerTimelapseIsOn) {
  FakeSink sink;
  bool moonraker = true;
  AnycubicTimelapseHandler handler(sink, [&] { return moonraker; });
  for (const auto* m : {"openDelayCamera", "startLanCapture", "startLanCapture", "stopLanCapture"}) {
    auto out = handler.handleRequest(request(5, m, {{"filepath", "/g/x.gcode"}}));
    ASSERT_TRUE(out.reply);
    EXPECT_EQ(out.reply->errorCode, "");  // acknowledged, so the firmware prints normally
  }
  handler.onPrintState("complete");
  EXPECT_TRUE(sink.calls().empty());
  EXPECT_EQ(handler.stats().ignored, 3u);
  // SetLed still goes through.
  (void)handler.handleRequest(request(6, "SetLed", {{"enable", 0}}));
  EXPECT_EQ(sink.calls(), std::vector<std::string>{"led off"});
  // Switched off: the next print records.
  moonraker = false;
  (void)handler.handleRequest(request(7, "openDelayCamera", {{"filepath", "/g/y.gcode"}}));
  EXPECT_TRUE(handler.stats().recording);
}

TEST(AnycubicTimelapse, CameraNotConnectedAnswers11401) {
  FakeSink sink;
  sink.setCamera(false);
  AnycubicTimelapseHandler handler(sink, {});
  for (const auto* m : {"openDelayCamera", "startLanCapture"}) {
    auto out = handler.handleRequest(request(3, m, {{"filepath", "/g/x.gcode"}}));
    ASSERT_TRUE(out.reply);
    EXPECT_EQ(out.reply->errorCode, "11401");
    EXPECT_EQ(out.status.code(), hal::Errc::NoDevice);
    EXPECT_EQ(replyBody(videoStreamReplyMessage(*out.reply)).at("error").at("code"), "11401");
  }
  // stopLanCapture and SetLed do not need the camera.
  EXPECT_EQ(handler.handleRequest(request(4, "stopLanCapture")).reply->errorCode, "");
  EXPECT_EQ(handler.handleRequest(request(5, "SetLed", {{"enable", 1}})).reply->errorCode, "");
  EXPECT_EQ(sink.calls(), std::vector<std::string>{"led on"});
}

TEST(AnycubicTimelapse, BadInputIsRefusedWithAReason) {
  FakeSink sink;
  AnycubicTimelapseHandler handler(sink, {});
  // No usable id: nothing to answer.
  auto out = handler.handleRequest(json{{"method", "startLanCapture"}});
  EXPECT_FALSE(out.reply);
  EXPECT_EQ(out.status.code(), hal::Errc::InvalidArgument);
  // Unknown method: not answered (h264-streamer does not either).
  out = handler.handleRequest(request(9, "startRtcStream"));
  EXPECT_FALSE(out.reply);
  EXPECT_EQ(out.status.code(), hal::Errc::Unsupported);
  // openDelayCamera without a file: acknowledged (the print goes on), nothing recorded.
  out = handler.handleRequest(request(10, "openDelayCamera", {{"filepath", 12}}));
  ASSERT_TRUE(out.reply);
  EXPECT_EQ(out.reply->errorCode, "");
  EXPECT_EQ(out.status.code(), hal::Errc::InvalidArgument);
  EXPECT_FALSE(handler.stats().recording);
  EXPECT_EQ(handler.stats().invalid, 3u);
  EXPECT_NE(handler.stats().lastError.find("filepath"), std::string::npos);
  EXPECT_TRUE(sink.calls().empty());
}

TEST(AnycubicTimelapse, StorageErrorsDoNotBlockThePrint) {
  FakeSink sink;
  sink.setFailOpen(true);
  AnycubicTimelapseHandler handler(sink, {});
  auto out = handler.handleRequest(request(1, "openDelayCamera", {{"filepath", "/g/a.gcode"}}));
  ASSERT_TRUE(out.reply);
  EXPECT_EQ(out.reply->errorCode, "");
  EXPECT_EQ(out.status.code(), hal::Errc::Io);
  EXPECT_FALSE(handler.stats().recording);
  (void)handler.handleRequest(request(2, "startLanCapture"));
  EXPECT_EQ(sink.frames(), 0);
  EXPECT_NE(handler.stats().lastError.find("disk full"), std::string::npos);
}

TEST(AnycubicTimelapse, ANewPrintFinishesTheOpenRecording) {
  FakeSink sink;
  AnycubicTimelapseHandler handler(sink, {});
  (void)handler.handleRequest(request(1, "openDelayCamera", {{"filepath", "/g/a.gcode"}}));
  (void)handler.handleRequest(request(2, "startLanCapture"));
  (void)handler.handleRequest(request(3, "openDelayCamera", {{"filepath", "/g/b.gcode"}}));
  handler.onPrintState("cancelled");
  handler.close();  // nothing open any more: no second finish
  EXPECT_EQ(sink.calls(), (std::vector<std::string>{"open /g/a.gcode", "capture", "finish new print",
                                                    "open /g/b.gcode", "finish cancelled"}));
}

TEST(AnycubicTimelapse, RpcMessages) {
  FakeSink sink;
  AnycubicTimelapseHandler handler(sink, {});
  // Broadcasts that are not ours: no reply, nothing parsed into the sink.
  EXPECT_TRUE(handler.handleRpcMessage(statusUpdate({{"heater_bed", {{"temperature", 60}}}})).empty());
  EXPECT_TRUE(handler.handleRpcMessage("not json \"video_stream_request\"").empty());
  EXPECT_TRUE(
      handler
          .handleRpcMessage(
              R"({"method":"other","params":{"status":{"video_stream_request":{"id":1,"method":"SetLed"}}}})")
          .empty());
  auto replies = handler.handleRpcMessage(
      statusUpdate({{"video_stream_request", request(41, "openDelayCamera", {{"filepath", "/g/c.gcode"}})}}));
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replyBody(replies[0]), json::parse(R"({"id":41,"method":"openDelayCamera","result":{}})"));
  replies =
      handler.handleRpcMessage(statusUpdate({{"video_stream_request", request(42, "startLanCapture")}}));
  ASSERT_EQ(replies.size(), 1u);
  // The print's end arrives in the same broadcasts.
  EXPECT_TRUE(handler.handleRpcMessage(statusUpdate({{"print_stats", {{"state", "error"}}}})).empty());
  EXPECT_EQ(sink.calls().back(), "finish error");
}

// ---- the gkapi client against a fake firmware service ----

class FakeGkapi {
 public:
  FakeGkapi() {
    listenFd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int one = 1;
    ::setsockopt(listenFd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    EXPECT_EQ(::bind(listenFd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listenFd_, 4), 0);
    socklen_t len = sizeof addr;
    ::getsockname(listenFd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~FakeGkapi() {
    dropClient();
    ::close(listenFd_);
  }
  uint16_t port() const { return port_; }

  bool accept() {
    pollfd p{listenFd_, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return false;
    client_ = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    return client_ >= 0;
  }
  void dropClient() {
    if (client_ >= 0) ::close(client_);
    client_ = -1;
  }
  void send(const std::string& bytes) {
    ASSERT_EQ(::send(client_, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
  }
  // The next 0x03-terminated message from the client (deadline 5 s).
  std::string receive() {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (true) {
      const size_t etx = in_.find('\x03');
      if (etx != std::string::npos) {
        std::string m = in_.substr(0, etx);
        in_.erase(0, etx + 1);
        return m;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{client_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) return "(timeout)";
      char buf[4096];
      const ssize_t n = ::recv(client_, buf, sizeof buf, 0);
      if (n <= 0) return "(closed)";
      in_.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  int listenFd_ = -1;
  int client_ = -1;
  uint16_t port_ = 0;
  std::string in_;
};

TEST(AnycubicTimelapseRpc, AnswersOnTheConnectionAndReconnects) {
  FakeSink sink;
  AnycubicTimelapseHandler handler(sink, {});
  FakeGkapi gkapi;
  GkapiVideoConfig config;
  config.port = gkapi.port();
  config.firstRetry = 50ms;
  config.maxRetry = 200ms;
  GkapiVideoClient client(config, handler);
  client.start();
  ASSERT_TRUE(gkapi.accept());

  // Other broadcasts first, then a request split across writes with the next one in the same write.
  gkapi.send(statusUpdate({{"print_stats", {{"state", "printing"}}}}) + '\x03');
  const std::string open =
      statusUpdate({{"video_stream_request", request(2, "openDelayCamera", {{"filepath", "/g/p.gcode"}})}}) +
      '\x03';
  const std::string capture =
      statusUpdate({{"video_stream_request", request(5, "startLanCapture")}}) + '\x03';
  gkapi.send(open.substr(0, 17));
  gkapi.send(open.substr(17) + capture.substr(0, 30));
  gkapi.send(capture.substr(30));
  EXPECT_EQ(replyBody(gkapi.receive()), json::parse(R"({"id":2,"method":"openDelayCamera","result":{}})"));
  EXPECT_EQ(replyBody(gkapi.receive()), json::parse(R"({"id":5,"method":"startLanCapture","result":{}})"));

  // An oversized message is skipped, and the stream stays in step after it.
  std::string big(1500000, 'x');
  big.push_back('\x03');
  big.append(capture);
  gkapi.send(big);
  EXPECT_EQ(replyBody(gkapi.receive()).at("id"), 5);
  EXPECT_TRUE(sink.waitFor([](const auto&, int frames) { return frames == 2; }));

  // The firmware service restarts: the client comes back and the recording goes on.
  gkapi.dropClient();
  ASSERT_TRUE(gkapi.accept());
  gkapi.send(capture);
  EXPECT_EQ(replyBody(gkapi.receive()).at("id"), 5);
  gkapi.send(statusUpdate({{"print_stats", {{"state", "complete"}}}}) + '\x03');
  EXPECT_TRUE(sink.waitFor(
      [](const auto& calls, int) { return !calls.empty() && calls.back() == "finish complete"; }));
  EXPECT_EQ(sink.frames(), 3);
  const auto st = client.state();
  EXPECT_GE(st.connections, 2u);
  EXPECT_EQ(st.oversized, 1u);
  EXPECT_EQ(st.replies, 4u);
  client.stop();
}

TEST(AnycubicTimelapseRpc, NoServiceKeepsRetryingAndStopsPromptly) {
  FakeSink sink;
  AnycubicTimelapseHandler handler(sink, {});
  uint16_t port;
  {
    FakeGkapi gone;  // a port that was free a moment ago
    port = gone.port();
  }
  GkapiVideoConfig config;
  config.port = port;
  config.firstRetry = 20ms;
  config.maxRetry = 80ms;
  GkapiVideoClient client(config, handler);
  client.start();
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (client.state().lastError.empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  const auto st = client.state();
  EXPECT_FALSE(st.connected);
  EXPECT_NE(st.lastError.find(std::to_string(port)), std::string::npos) << st.lastError;
  const auto t0 = std::chrono::steady_clock::now();
  client.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
}

}  // namespace
}  // namespace printcast::streamer
