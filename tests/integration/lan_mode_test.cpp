// SPDX-License-Identifier: MIT
// go-klipper's LAN printing mode (apps/streamer/lan_mode.h) against a stand-in for the Anycubic
// firmware's local service: a TCP listener that speaks its 0x03-terminated JSON (protocols.md,
// "Anycubic firmware integration") and keeps the open/closed state, as the firmware does.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_client.h"

namespace {

using namespace std::chrono_literals;
using printcast::testing::httpRequest;
using printcast::testing::StreamerProcess;

// The firmware's LAN service: one request per connection, answered and closed. Like the firmware's,
// it serves several connections at once: in go-klipper mode the streamer also keeps a connection
// open for the firmware's timelapse requests (anycubic_rpc.h), which sends nothing.
class FakeLanService {
 public:
  explicit FakeLanService(bool open) : open_(open) {
    fd_ = printcast::testing::listenLoopback(port_, 8);
    EXPECT_GE(fd_, 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeLanService() {
    stop_ = true;
    thread_.join();
    for (auto& t : connections_) t.join();
    ::close(fd_);
  }
  FakeLanService(const FakeLanService&) = delete;
  FakeLanService& operator=(const FakeLanService&) = delete;

  uint16_t port() const { return port_; }
  bool open() const { return open_; }
  std::vector<std::string> methods() const {
    std::lock_guard lock(mutex_);
    return methods_;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      connections_.emplace_back([this, c] { answer(c); });
    }
  }
  void answer(int c) {
    {
      std::string in;
      char buf[512];
      while (in.find('\x03') == std::string::npos && !stop_) {
        pollfd p{c, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        const ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
      }
      if (in.find('\x03') == std::string::npos) {  // a listener that sent no request
        ::close(c);
        return;
      }
      const auto request = nlohmann::json::parse(in.substr(0, in.find('\x03')), nullptr, false);
      const std::string method = request.is_object() ? request.value("method", "") : "";
      {
        std::lock_guard lock(mutex_);
        methods_.push_back(method);
      }
      if (method == "Printer/OpenLanPrint") open_ = true;
      if (method == "Printer/CloseLanPrint") open_ = false;
      nlohmann::json reply{{"id", request.is_object() ? request.value("id", 0) : 0}};
      if (method == "Printer/QueryLanPrintStatus") {
        reply["result"] = {{"open", open_ ? 1 : 0}};
      } else {
        reply["result"] = "ok";
      }
      // The firmware broadcasts its own traffic to every client: a status update before the reply.
      std::string out = R"({"id":0,"method":"process_status_update","params":{"status":{}}})";
      out.push_back('\x03');
      out += reply.dump();
      out.push_back('\x03');
      (void)::write(c, out.data(), out.size());
      ::close(c);
    }
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> open_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<std::string> methods_;
  std::thread thread_;
  std::vector<std::thread> connections_;  // accept thread only
};

std::string writeConfig(const std::string& json) {
  const std::string path = ::testing::TempDir() + "/lan-mode-" + std::to_string(::getpid()) + ".json";
  std::FILE* f = std::fopen(path.c_str(), "w");
  std::fputs(json.c_str(), f);
  std::fclose(f);
  return path;
}

nlohmann::json lanStatus(uint16_t controlPort) {
  const auto r = httpRequest(controlPort, "GET", "/status");
  return nlohmann::json::parse(r.body, nullptr, false).value("lan_mode", nlohmann::json::object());
}

// Polls /status until lan_mode.state is `state` (the start-up query runs on a thread of its own).
bool waitForLanState(uint16_t controlPort, const std::string& state) {
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < end) {
    if (lanStatus(controlPort).value("state", "") == state) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

const std::map<std::string, std::string> kJson{{"Content-Type", "application/json"}};

// autolanmode: the streamer asks at start, finds LAN printing closed and opens it; the control API
// closes and opens it again, and /status follows.
TEST(LanMode, AutolanmodeOpensItAtStartAndTheControlApiSwitchesIt) {
  FakeLanService firmware(false);
  const std::string config = writeConfig(R"({"mode": "go-klipper", "autolanmode": true, "lan_mode_port": )" +
                                         std::to_string(firmware.port()) + "}");
  StreamerProcess p(PRINTCAST_STREAMER_BIN, {"--board", "virtual", "--config", config, "--resolution",
                                             "320x240", "--no-display", "--no-ring"});
  ASSERT_TRUE(p.ok()) << p.log();
  ASSERT_TRUE(waitForLanState(p.controlPort(), "open")) << lanStatus(p.controlPort()).dump() << p.log();
  EXPECT_TRUE(firmware.open());
  EXPECT_EQ(firmware.methods(),
            (std::vector<std::string>{"Printer/QueryLanPrintStatus", "Printer/OpenLanPrint",
                                      "Printer/QueryLanPrintStatus"}));
  EXPECT_EQ(lanStatus(p.controlPort())["auto"], true);

  auto r = httpRequest(p.controlPort(), "POST", "/api/lan_mode", R"({"open": false})", kJson);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["state"], "closed");
  EXPECT_FALSE(firmware.open());
  EXPECT_EQ(lanStatus(p.controlPort())["state"], "closed");
  r = httpRequest(p.controlPort(), "GET", "/api/lan_mode");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["state"], "closed");

  // Bad requests change nothing: a body without "open", a form post.
  r = httpRequest(p.controlPort(), "POST", "/api/lan_mode", R"({"open": "yes"})", kJson);
  EXPECT_EQ(r.status, 400) << r.body;
  r = httpRequest(p.controlPort(), "POST", "/api/lan_mode", "open=true",
                  {{"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(r.status, 415) << r.body;
  EXPECT_FALSE(firmware.open());
}

// Without the firmware's service (it stopped, or this is not the firmware) the state says why and
// the API answers 502; in vanilla-klipper nothing is asked at all and the API answers 409.
TEST(LanMode, AMissingServiceIsReportedAndVanillaKlipperLeavesItAlone) {
  const uint16_t nobody = printcast::testing::freeTcpPort();
  const std::string config =
      writeConfig(R"({"mode": "go-klipper", "lan_mode_port": )" + std::to_string(nobody) + "}");
  StreamerProcess p(PRINTCAST_STREAMER_BIN, {"--board", "virtual", "--config", config, "--resolution",
                                             "320x240", "--no-display", "--no-ring"});
  ASSERT_TRUE(p.ok()) << p.log();
  ASSERT_TRUE(waitForLanState(p.controlPort(), "unavailable")) << lanStatus(p.controlPort()).dump();
  EXPECT_NE(lanStatus(p.controlPort())["error"].get<std::string>().find(std::to_string(nobody)),
            std::string::npos)
      << lanStatus(p.controlPort()).dump();
  auto r = httpRequest(p.controlPort(), "POST", "/api/lan_mode", R"({"open": true})", kJson);
  EXPECT_EQ(r.status, 502) << r.body;

  FakeLanService firmware(false);
  const std::string vanillaConfig =
      writeConfig(R"({"mode": "vanilla-klipper", "autolanmode": true, "lan_mode_port": )" +
                  std::to_string(firmware.port()) + "}");
  StreamerProcess vanilla(PRINTCAST_STREAMER_BIN, {"--board", "virtual", "--config", vanillaConfig,
                                                   "--resolution", "320x240", "--no-display", "--no-ring"});
  ASSERT_TRUE(vanilla.ok()) << vanilla.log();
  const auto status = lanStatus(vanilla.controlPort());
  EXPECT_EQ(status["enabled"], false) << status.dump();
  EXPECT_EQ(status["state"], "off");
  r = httpRequest(vanilla.controlPort(), "POST", "/api/lan_mode", R"({"open": true})", kJson);
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_TRUE(firmware.methods().empty());
}

// The lines the stand-in gkcam appended to its state file: one "<pid> <cwd> <LD_LIBRARY_PATH>" per start.
std::vector<std::vector<std::string>> gkcamStarts(const std::string& exe) {
  std::vector<std::vector<std::string>> starts;
  std::ifstream in(exe + ".state");
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::vector<std::string> fields(3);
    words >> fields[0] >> fields[1] >> fields[2];
    starts.push_back(fields);
  }
  return starts;
}

bool waitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

bool running(int pid, const std::string& exe) {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec) == exe;
}

// go-klipper: the streamer stops the stock camera service (found by its executable, exactly) at
// start, and it runs again after the streamer exits: on SIGTERM, and after kill -9, from the same
// working folder with the same LD_LIBRARY_PATH.
TEST(GkcamHandover, StoppedAtStartAndRunningAgainAfterExitAndAfterKill9) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / ("gkcam-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "lib");
  const std::string exe = (dir / "gkcam").string();
  fs::copy_file(PRINTCAST_FAKE_GKCAM_BIN, exe);
  // Started as the firmware's start.sh does: from its folder, with its libraries on the path.
  pid_t original = 0;
  {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
    std::string lib = "LD_LIBRARY_PATH=" + (dir / "lib").string();
    char* argv[] = {const_cast<char*>(exe.c_str()), nullptr};
    char* envp[] = {lib.data(), nullptr};
    ASSERT_EQ(::posix_spawn(&original, exe.c_str(), &actions, nullptr, argv, envp), 0);
    posix_spawn_file_actions_destroy(&actions);
  }
  ASSERT_TRUE(waitUntil([&] { return gkcamStarts(exe).size() == 1; }, 5s));
  const std::string config = writeConfig(nlohmann::json{
      {"mode", "go-klipper"},
      {"gkcam_path", exe},
      {"lan_mode_port", printcast::testing::freeTcpPort()},
      {"timelapse_folder",
       (dir / "videos").string()}}.dump());
  const std::vector<std::string> args{"--board",      "virtual", "--config",     config,
                                      "--resolution", "320x240", "--no-display", "--no-ring"};
  int restarted = 0;
  {
    StreamerProcess p(PRINTCAST_STREAMER_BIN, args);
    ASSERT_TRUE(p.ok()) << p.log();
    // Stopped by the streamer (our child: reap it).
    ASSERT_TRUE(waitUntil([&] { return ::waitpid(original, nullptr, WNOHANG) == original; }, 10s)) << p.log();
    const auto status =
        nlohmann::json::parse(httpRequest(p.controlPort(), "GET", "/status").body)["anycubic"]["gkcam"];
    EXPECT_EQ(status["stopped"], nlohmann::json::array({original})) << status.dump();
    EXPECT_EQ(status["restarts_on_exit"], true);
    EXPECT_EQ(gkcamStarts(exe).size(), 1u);  // nothing restarted it while the streamer runs
    EXPECT_EQ(p.terminate(10s), 0) << p.log();
    ASSERT_TRUE(waitUntil([&] { return gkcamStarts(exe).size() == 2; }, 10s)) << p.log();
    const auto again = gkcamStarts(exe)[1];
    restarted = std::stoi(again[0]);
    EXPECT_TRUE(running(restarted, exe));
    EXPECT_EQ(again[1], dir.string());
    EXPECT_EQ(again[2], (dir / "lib").string());
  }
  {
    StreamerProcess p(PRINTCAST_STREAMER_BIN, args);
    ASSERT_TRUE(p.ok()) << p.log();
    ASSERT_TRUE(waitUntil([&] { return !running(restarted, exe); }, 10s)) << p.log();
    ASSERT_EQ(::kill(p.pid(), SIGKILL), 0);
    ASSERT_TRUE(waitUntil([&] { return gkcamStarts(exe).size() == 3; }, 10s)) << p.log();
    restarted = std::stoi(gkcamStarts(exe)[2][0]);
    EXPECT_TRUE(running(restarted, exe));
    EXPECT_EQ(gkcamStarts(exe)[2][1], dir.string());
  }
  ::kill(restarted, SIGKILL);
  fs::remove_all(dir);
}

}  // namespace
