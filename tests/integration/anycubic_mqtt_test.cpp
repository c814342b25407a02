// SPDX-License-Identifier: MIT
// Anycubic go-klipper integration against real peers: a real mosquitto broker (TLS with a
// certificate made here, a password file) plays the printer's broker, this test plays the slicer
// over MQTT and the firmware service (gkapi, 0x03-terminated JSON on loopback) that sends the
// native timelapse requests. Checked: every report topic and payload, a scripted print of 20
// layers through the handler into a sink that counts frames, a broker restart mid-print, wrong
// credentials (a clear error, retries, no crash).
#include <arpa/inet.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "anycubic_mqtt.h"
#include "anycubic_rpc.h"
#include "anycubic_timelapse.h"
#include "test_client.h"

namespace printcast::streamer {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kModel = "20025";
constexpr const char* kDevice = "0123456789abcdef0123456789abcdef";
constexpr const char* kUser = "userPrintcast";
constexpr const char* kPassword = "pa55-word";

// Wait until `pred` holds, polling every 10 ms, for at most `limit`.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  const auto deadline = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

bool executable(const char* path) { return path != nullptr && path[0] == '/' && ::access(path, X_OK) == 0; }

// The tools this test needs, or why they are missing. Under CI a missing tool fails the test
// (install-deps.sh test installs them); elsewhere it is a skip that names the machine.
std::string missingTools() {
  std::string missing;
  for (const char* tool : {PRINTCAST_MOSQUITTO_BIN, PRINTCAST_MOSQUITTO_PASSWD_BIN, PRINTCAST_OPENSSL_BIN})
    if (!executable(tool)) missing += std::string(missing.empty() ? "" : ", ") + tool;
  return missing;
}

bool underCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

// A mosquitto broker on a free loopback port: TLS listener with a self-signed certificate made by
// openssl, a password file made by mosquitto_passwd, anonymous access off.
class Broker {
 public:
  Broker() {
    dir_ = fs::path(::testing::TempDir()) / ("printcast-mqtt-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    port_ = testing::freeTcpPort();
  }
  ~Broker() {
    stop();
    fs::remove_all(dir_);
  }
  fs::path dir() const { return dir_; }
  uint16_t port() const { return port_; }
  std::string caFile() const { return (dir_ / "server.crt").string(); }

  // Certificate, password file and configuration. false with the reason in `error`.
  bool prepare(std::string& error) {
    auto r = testing::runCommand(
        {PRINTCAST_OPENSSL_BIN, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=printcast-test-broker", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
         (dir_ / "server.key").string(), "-out", caFile()},
        30s);
    if (r.exitCode != 0) {
      error = "openssl: " + r.err;
      return false;
    }
    r = testing::runCommand(
        {PRINTCAST_MOSQUITTO_PASSWD_BIN, "-b", "-c", (dir_ / "passwd").string(), kUser, kPassword}, 30s);
    if (r.exitCode != 0) {
      error = "mosquitto_passwd: " + r.err;
      return false;
    }
    std::ofstream conf(dir_ / "mosquitto.conf");
    conf << "per_listener_settings false\n"
         << "allow_anonymous false\n"
         << "password_file " << (dir_ / "passwd").string() << "\n"
         << "persistence false\n"
         << "log_dest file " << (dir_ / "broker.log").string() << "\n"
         << "log_type all\n"
         << "listener " << port_ << " 127.0.0.1\n"
         << "certfile " << caFile() << "\n"
         << "keyfile " << (dir_ / "server.key").string() << "\n";
    if (::geteuid() == 0) conf << "user root\n";  // else mosquitto drops to "mosquitto" and cannot read dir_
    return static_cast<bool>(conf);
  }

  // Start it and wait until it accepts TCP connections.
  bool start() {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl(PRINTCAST_MOSQUITTO_BIN, PRINTCAST_MOSQUITTO_BIN, "-c", (dir_ / "mosquitto.conf").c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    return pid_ > 0 && eventually([&] {
             const int fd = testing::connectLoopbackFrom("", port_);
             if (fd < 0) return false;
             ::close(fd);
             return true;
           });
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  std::string log() const {
    std::ifstream in(dir_ / "broker.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  fs::path dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// The slicer: a libmosquitto client (threaded loop) that verifies the broker's certificate
// against the test's CA, publishes commands and collects the reports.
class Slicer {
 public:
  Slicer(const Broker& broker) : broker_(broker) {
    mosquitto_lib_init();
    mosq_ = mosquitto_new("test-slicer", true, this);
    mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_username_pw_set(mosq_, kUser, kPassword);
    mosquitto_tls_set(mosq_, broker.caFile().c_str(), nullptr, nullptr, nullptr, nullptr);
    mosquitto_reconnect_delay_set(mosq_, 1, 1, false);
    mosquitto_connect_callback_set(mosq_, [](mosquitto* m, void* self, int rc) {
      if (rc != 0) return;
      mosquitto_subscribe(m, nullptr, anycubicVideoTopics(kModel, kDevice).report.c_str(), 1);
      auto* s = static_cast<Slicer*>(self);
      std::lock_guard lock(s->mutex_);
      ++s->connects_;
    });
    mosquitto_subscribe_callback_set(mosq_, [](mosquitto*, void* self, int, int, const int*) {
      auto* s = static_cast<Slicer*>(self);
      std::lock_guard lock(s->mutex_);
      ++s->subscribed_;
      s->cv_.notify_all();
    });
    mosquitto_message_callback_set(mosq_, [](mosquitto*, void* self, const mosquitto_message* m) {
      auto* s = static_cast<Slicer*>(self);
      std::lock_guard lock(s->mutex_);
      s->reports_.push_back({m->topic, std::string(static_cast<const char*>(m->payload), m->payloadlen)});
      s->cv_.notify_all();
    });
  }
  ~Slicer() {
    mosquitto_disconnect(mosq_);
    mosquitto_loop_stop(mosq_, true);
    mosquitto_destroy(mosq_);
  }
  bool connect() {
    int before;
    {
      std::lock_guard lock(mutex_);
      before = subscribed_;
    }
    if (mosquitto_connect(mosq_, "127.0.0.1", broker_.port(), 30) != MOSQ_ERR_SUCCESS) return false;
    mosquitto_loop_start(mosq_);
    return waitSubscribed(before);
  }
  bool waitSubscribed(int before) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, 15s, [&] { return subscribed_ > before; });
  }
  int subscriptions() {
    std::lock_guard lock(mutex_);
    return subscribed_;
  }
  void command(const std::string& topic, const std::string& action, const std::string& msgid) {
    const std::string payload =
        json{{"type", "video"}, {"action", action}, {"timestamp", 1}, {"msgid", msgid}, {"data", nullptr}}
            .dump();
    ASSERT_EQ(mosquitto_publish(mosq_, nullptr, topic.c_str(), static_cast<int>(payload.size()),
                                payload.data(), 1, false),
              MOSQ_ERR_SUCCESS);
  }
  // The next report (deadline 10 s); {"",""} when none came.
  std::pair<std::string, std::string> nextReport(std::chrono::milliseconds limit = 10s) {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, limit, [&] { return !reports_.empty(); })) return {};
    auto r = reports_.front();
    reports_.pop_front();
    return r;
  }

 private:
  const Broker& broker_;
  mosquitto* mosq_ = nullptr;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<std::string, std::string>> reports_;
  int connects_ = 0;
  int subscribed_ = 0;
};

void writeAccount(const fs::path& file, const std::string& password) {
  std::ofstream(file) << json{{"deviceId", kDevice}, {"username", kUser}, {"password", password}}.dump();
}

std::unique_ptr<AnycubicMqttResponder> makeResponder(const Broker& broker, const fs::path& account,
                                                     std::function<void(bool)> onCapture = {}) {
  AnycubicMqttConfig c;
  c.port = broker.port();
  c.accountFile = account;
  c.modelId = kModel;
  c.firstRetry = 100ms;
  c.maxRetry = 400ms;
  auto r = createAnycubicMqttResponder(c, std::move(onCapture));
  EXPECT_TRUE(r) << r.error().describe();
  return r ? std::move(*r) : nullptr;
}

// Checks one report against gkcam's shape; returns its payload.
json expectReport(const std::pair<std::string, std::string>& report, const std::string& action,
                  const std::string& state, const std::string& requestMsgid) {
  EXPECT_EQ(report.first, anycubicVideoTopics(kModel, kDevice).report);
  const auto j = json::parse(report.second, nullptr, false);
  EXPECT_TRUE(j.is_object()) << report.second;
  if (!j.is_object()) return j;
  EXPECT_EQ(j.value("type", ""), "video");
  EXPECT_EQ(j.value("action", ""), action);
  EXPECT_EQ(j.value("state", ""), state);
  EXPECT_EQ(j.value("code", 0), 200);
  EXPECT_EQ(j.value("msg", "?"), "");
  EXPECT_TRUE(j.contains("data") && j["data"].is_null());
  EXPECT_TRUE(j["timestamp"].is_number_integer());
  EXPECT_GT(j.value("timestamp", int64_t{0}), int64_t{1600000000000});  // Unix ms, now
  EXPECT_EQ(j.value("msgid", "").size(), 36u);
  EXPECT_NE(j.value("msgid", ""), requestMsgid);
  return j;
}

// Each test's broker (TLS, a password file), and the tools check: missing tools fail under CI and
// skip elsewhere with the machine's reason.
class AnycubicMqttBroker : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const auto missing = missingTools(); !missing.empty()) {
      if (underCi())
        FAIL() << "needs mosquitto, mosquitto_passwd, openssl (scripts/install-deps.sh test): " << missing;
      GTEST_SKIP() << "machine: no mosquitto/openssl here (" << missing << ")";
    }
  }
  // The broker running, and the account file holding `password`.
  void startBroker(const std::string& password) {
    std::string error;
    ASSERT_TRUE(broker.prepare(error)) << error;
    ASSERT_TRUE(broker.start()) << broker.log();
    writeAccount(broker.dir() / "device_account.json", password);
  }
  Broker broker;
};

TEST_F(AnycubicMqttBroker, AnswersTheSlicerOnTheReportTopic) {
  ASSERT_NO_FATAL_FAILURE(startBroker(kPassword));
  std::mutex m;
  std::vector<bool> captures;
  auto responder = makeResponder(broker, broker.dir() / "device_account.json", [&](bool s) {
    std::lock_guard lock(m);
    captures.push_back(s);
  });
  ASSERT_TRUE(responder);
  ASSERT_TRUE(responder->start());
  ASSERT_TRUE(eventually([&] { return responder->state().state == "connected"; }))
      << responder->state().lastError;
  Slicer slicer(broker);
  ASSERT_TRUE(slicer.connect()) << broker.log();

  const auto topics = anycubicVideoTopics(kModel, kDevice);
  slicer.command(topics.slicer, "startCapture", "11111111-1111-4111-8111-111111111111");
  expectReport(slicer.nextReport(), "startCapture", "initSuccess", "11111111-1111-4111-8111-111111111111");
  slicer.command(topics.web, "stopCapture", "22222222-2222-4222-8222-222222222222");
  expectReport(slicer.nextReport(), "stopCapture", "pushStopped", "22222222-2222-4222-8222-222222222222");
  // The same request again (QoS 1 redelivery, or both topics): one answer only.
  slicer.command(topics.slicer, "stopCapture", "22222222-2222-4222-8222-222222222222");
  // Not for us: another printer, another kind of message.
  slicer.command(anycubicVideoTopics(kModel, "another").slicer, "startCapture",
                 "33333333-3333-4333-8333-333333333333");
  slicer.command(topics.slicer, "startCapture", "44444444-4444-4444-8444-444444444444");
  expectReport(slicer.nextReport(), "startCapture", "initSuccess", "44444444-4444-4444-8444-444444444444");
  {
    std::lock_guard lock(m);
    EXPECT_EQ(captures, (std::vector<bool>{true, false, true}));
  }
  // The firmware's own stopCapture report while the slicer watches: countered with initSuccess.
  slicer.command(topics.report, "stopCapture", "55555555-5555-4555-8555-555555555555");
  auto own = slicer.nextReport();  // the broker delivers the firmware's report to us too
  EXPECT_EQ(json::parse(own.second).value("msgid", ""), "55555555-5555-4555-8555-555555555555");
  expectReport(slicer.nextReport(), "startCapture", "initSuccess", "55555555-5555-4555-8555-555555555555");
  EXPECT_EQ(slicer.nextReport(300ms).first, "");  // and nothing else
  const auto st = responder->state();
  EXPECT_EQ(st.video.requests, 3u);
  EXPECT_EQ(st.video.countered, 1u);
  EXPECT_EQ(st.connections, 1u);
  responder->stop();
  EXPECT_EQ(responder->state().state, "stopped");
}

// The firmware service (gkapi) on loopback, sending the native timelapse requests.
class FakeGkapi {
 public:
  FakeGkapi() {
    listenFd_ = printcast::testing::listenLoopback(port_, 4);
    EXPECT_GE(listenFd_, 0);
  }
  ~FakeGkapi() {
    if (client_ >= 0) ::close(client_);
    ::close(listenFd_);
  }
  uint16_t port() const { return port_; }
  bool accept() {
    pollfd p{listenFd_, POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) return false;
    client_ = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    return client_ >= 0;
  }
  // Send one video_stream_request; return the reply's video_stream_reply (null on timeout).
  json request(int64_t id, const std::string& method, json params = json::object()) {
    std::string msg =
        json{{"id", 0},
             {"method", "process_status_update"},
             {"params",
              {{"eventtime", 0},
               {"response", ""},
               {"status", {{"video_stream_request", {{"id", id}, {"method", method}, {"params", params}}}}}}}}
            .dump();
    msg.push_back('\x03');
    if (::send(client_, msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size()))
      return nullptr;
    const auto deadline = Clock::now() + 10s;
    while (in_.find('\x03') == std::string::npos) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd p{client_, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) != 1) return nullptr;
      char buf[4096];
      const ssize_t n = ::recv(client_, buf, sizeof buf, 0);
      if (n <= 0) return nullptr;
      in_.append(buf, static_cast<size_t>(n));
    }
    const auto reply = json::parse(in_.substr(0, in_.find('\x03')), nullptr, false);
    in_.erase(0, in_.find('\x03') + 1);
    if (!reply.is_object() || reply.value("method", "") != "Video/VideoStreamReply") return nullptr;
    return reply["params"]["status"]["video_stream_reply"];
  }
  void printState(const std::string& state) {
    std::string msg = json{{"id", 0},
                           {"method", "process_status_update"},
                           {"params", {{"eventtime", 0}, {"status", {{"print_stats", {{"state", state}}}}}}}}
                          .dump();
    msg.push_back('\x03');
    ASSERT_EQ(::send(client_, msg.data(), msg.size(), MSG_NOSIGNAL), static_cast<ssize_t>(msg.size()));
  }

 private:
  int listenFd_ = -1;
  int client_ = -1;
  uint16_t port_ = 0;
  std::string in_;
};

class CountingSink : public AnycubicTimelapseSink {
 public:
  bool cameraConnected() const override { return true; }
  hal::Status openRecording(const std::string& filepath) override {
    std::lock_guard lock(mutex_);
    opened_ = filepath;
    return {};
  }
  hal::Status captureFrame() override {
    std::lock_guard lock(mutex_);
    ++frames_;
    return {};
  }
  void finishRecording(const std::string& reason) override {
    std::lock_guard lock(mutex_);
    finished_ = reason;
  }
  void setLed(bool) override {}
  int frames() {
    std::lock_guard lock(mutex_);
    return frames_;
  }
  std::string finished() {
    std::lock_guard lock(mutex_);
    return finished_;
  }
  std::string opened() {
    std::lock_guard lock(mutex_);
    return opened_;
  }

 private:
  std::mutex mutex_;
  int frames_ = 0;
  std::string opened_, finished_;
};

TEST_F(AnycubicMqttBroker, PrintOfTwentyLayersWithABrokerRestart) {
  ASSERT_NO_FATAL_FAILURE(startBroker(kPassword));
  auto responder = makeResponder(broker, broker.dir() / "device_account.json");
  ASSERT_TRUE(responder);
  ASSERT_TRUE(responder->start());
  ASSERT_TRUE(eventually([&] { return responder->state().state == "connected"; }));

  CountingSink sink;
  AnycubicTimelapseHandler handler(sink, [] { return false; });
  FakeGkapi gkapi;
  GkapiVideoConfig rc;
  rc.port = gkapi.port();
  GkapiVideoClient rpc(rc, handler);
  rpc.start();
  ASSERT_TRUE(gkapi.accept());

  Slicer slicer(broker);
  ASSERT_TRUE(slicer.connect());
  const auto topics = anycubicVideoTopics(kModel, kDevice);
  slicer.command(topics.slicer, "startCapture", "aaaaaaaa-0000-4000-8000-000000000001");
  expectReport(slicer.nextReport(), "startCapture", "initSuccess", "aaaaaaaa-0000-4000-8000-000000000001");

  // The firmware's print start (TIMELAPSE_PROTOCOL.md): SetLed, openDelayCamera, stopLanCapture,
  // then startLanCapture at start and at each layer change.
  int id = 1;
  auto ok = [&](const std::string& method, json params = json::object()) {
    const int64_t sent = id++;
    const json reply = gkapi.request(sent, method, std::move(params));
    ASSERT_TRUE(reply.is_object()) << method << " got no reply";
    EXPECT_EQ(reply, (json{{"id", sent}, {"method", method}, {"result", json::object()}}));
  };
  ok("SetLed", {{"enable", 1}});
  ok("openDelayCamera", {{"filepath", "/useremain/app/gk/gcodes/Benchy_PLA_0.2_20m.gcode"}});
  ok("stopLanCapture");
  for (int layer = 0; layer < 20; ++layer) {
    if (layer == 10) {
      // The broker restarts mid-print: the responder comes back and answers again.
      const int subs = slicer.subscriptions();
      broker.stop();
      ASSERT_TRUE(broker.start()) << broker.log();
      ASSERT_TRUE(eventually([&] { return responder->state().connections >= 2; }, 15s))
          << responder->state().lastError;
      ASSERT_TRUE(slicer.waitSubscribed(subs));
      slicer.command(topics.web, "startCapture", "aaaaaaaa-0000-4000-8000-000000000002");
      expectReport(slicer.nextReport(), "startCapture", "initSuccess",
                   "aaaaaaaa-0000-4000-8000-000000000002");
    }
    ok("SetLed", {{"enable", 1}});
    ok("startLanCapture", {{"appid", ""}, {"channel", ""}, {"uid", 0}});
  }
  gkapi.printState("complete");
  ASSERT_TRUE(eventually([&] { return sink.finished() == "complete"; }));
  EXPECT_EQ(sink.frames(), 20);
  EXPECT_EQ(sink.opened(), "/useremain/app/gk/gcodes/Benchy_PLA_0.2_20m.gcode");
  EXPECT_FALSE(responder->state().lastError.empty());  // it saw the broker go away
  rpc.stop();
  responder->stop();
}

TEST_F(AnycubicMqttBroker, WrongCredentialsAreReportedAndRetried) {
  ASSERT_NO_FATAL_FAILURE(startBroker("not-the-password"));
  auto responder = makeResponder(broker, broker.dir() / "device_account.json");
  ASSERT_TRUE(responder);
  ASSERT_TRUE(responder->start());
  ASSERT_TRUE(eventually([&] { return responder->state().failures >= 3; }, 15s))
      << responder->state().lastError;
  const auto st = responder->state();
  EXPECT_EQ(st.connections, 0u);
  EXPECT_NE(st.lastError.find("refused"), std::string::npos) << st.lastError;
  EXPECT_NE(st.lastError.find("device_account.json"), std::string::npos) << st.lastError;
  EXPECT_EQ(st.lastError.find("not-the-password"), std::string::npos);
  EXPECT_LE(st.retryIn, 400ms);  // doubled up to maxRetry, never beyond
  const auto t0 = Clock::now();
  responder->stop();
  EXPECT_LT(Clock::now() - t0, 2s);
}

TEST_F(AnycubicMqttBroker, NoBrokerKeepsRetrying) {
  // The fixture's broker is never started: nothing listens on its port.
  writeAccount(broker.dir() / "device_account.json", kPassword);
  auto responder = makeResponder(broker, broker.dir() / "device_account.json");
  ASSERT_TRUE(responder);
  ASSERT_TRUE(responder->start());
  ASSERT_TRUE(eventually([&] { return responder->state().failures >= 2; }));
  EXPECT_NE(responder->state().lastError.find("cannot connect"), std::string::npos)
      << responder->state().lastError;
  responder->stop();
}

}  // namespace
}  // namespace printcast::streamer
