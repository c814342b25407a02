// SPDX-License-Identifier: MIT
// The timelapse manager's API on a real streamer (--timelapse-folder seeded with an MP4 made by
// ffmpeg): Range requests by our client and by curl, ffprobe on the video URL, traversal attempts
// over raw HTTP, delete, storage JSON, the settings round trip, and a stalled download that
// must not hold up the API.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "test_client.h"

using namespace std::chrono_literals;
using printcast::testing::CommandResult;
using printcast::testing::HttpReply;
using printcast::testing::httpRequest;
using printcast::testing::runCommand;
using printcast::testing::StreamConnection;
using printcast::testing::StreamerProcess;
namespace fs = std::filesystem;

namespace {

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::set<std::string> filesIn(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

// Connections from local port `port` whose send queue holds unsent bytes (/proc/net/tcp
// "tx_queue"): a server socket the client has stopped reading from.
int connectionsWithFullSendQueue(uint16_t port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  int n = 0;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string sl, local, remote, state, queues;
    f >> sl >> local >> remote >> state >> queues;
    const auto colon = local.find(':');
    const auto qcolon = queues.find(':');
    if (colon == std::string::npos || qcolon == std::string::npos) continue;
    if (std::stoul(local.substr(colon + 1), nullptr, 16) != port) continue;
    if (std::stoul(queues.substr(0, qcolon), nullptr, 16) > 0) ++n;
  }
  return n;
}

class Timelapse : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/printcast-tl-it-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ / "Time-lapse-Video";
    fs::create_directories(dir_);
    fs::create_directories(root_ / "outside");
    std::ofstream(root_ / "outside" / "secret.mp4") << "not yours";
    // A real recording: 3 s of the test pattern at 30 fps (90 frames), moov first.
    const CommandResult r =
        runCommand({"ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t",
                    "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
                    (dir_ / "benchy_1.mp4").string()},
                   60s);
    ASSERT_EQ(r.exitCode, 0) << r.err;
    const CommandResult t =
        runCommand({"ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240", "-frames:v",
                    "1", (dir_ / "benchy_1_90.jpg").string()},
                   60s);
    ASSERT_EQ(t.exitCode, 0) << t.err;
    fs::create_symlink(root_ / "outside" / "secret.mp4", dir_ / "escape.mp4");
    fs::create_symlink(root_ / "outside" / "secret.mp4", dir_ / "escape_5.jpg");
    // A large file for the stalled download: sparse, so it costs no disk.
    {
      const int fd = ::open((dir_ / "big_1.mp4").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(::ftruncate(fd, 512LL << 20), 0);
      ::close(fd);
    }
    config_ = root_ / "app.json";
    std::ofstream(config_) << "{\n  \"mjpeg_fps\": 5\n}\n";
    process_ = std::make_unique<StreamerProcess>(
        PRINTCAST_STREAMER_BIN,
        std::vector<std::string>{"--board", "virtual", "--resolution", "320x240", "--desired-fps", "5",
                                 "--no-display", "--config", config_.string(), "--timelapse-folder",
                                 dir_.string()});
  }
  static void TearDownTestSuite() {
    process_.reset();
    fs::remove_all(root_);
  }
  void SetUp() override { ASSERT_TRUE(process_->ok()) << process_->log(); }

  static HttpReply get(const std::string& target, const std::map<std::string, std::string>& headers = {}) {
    return httpRequest(process_->controlPort(), "GET", target, "", headers);
  }
  static std::string url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(process_->controlPort()) + path;
  }

  static fs::path root_, dir_, config_;
  static std::unique_ptr<StreamerProcess> process_;
};
fs::path Timelapse::root_, Timelapse::dir_, Timelapse::config_;
std::unique_ptr<StreamerProcess> Timelapse::process_;

TEST_F(Timelapse, ListsTheRecordingWithItsDurationFramesAndThumbnail) {
  const HttpReply r = get("/api/timelapse/list");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto json = nlohmann::json::parse(r.body);
  const nlohmann::json* benchy = nullptr;
  for (const auto& v : json["videos"]) {
    if (v["name"] == "benchy_1") benchy = &v;
    EXPECT_NE(v["name"], "escape") << "a symbolic link is not a recording";
  }
  ASSERT_NE(benchy, nullptr) << r.body;
  EXPECT_NEAR((*benchy)["duration"].get<double>(), 3.0, 0.05);
  EXPECT_EQ((*benchy)["frames"], 90);
  EXPECT_EQ((*benchy)["size"], fs::file_size(dir_ / "benchy_1.mp4"));
  EXPECT_EQ((*benchy)["storage"], "internal");
  const HttpReply thumb = get((*benchy)["thumb"].get<std::string>());
  EXPECT_EQ(thumb.status, 200);
  EXPECT_EQ(thumb.headers.at("content-type"), "image/jpeg");
  EXPECT_EQ(thumb.body, readFile(dir_ / "benchy_1_90.jpg"));
  EXPECT_EQ(get("/api/timelapse/thumb/benchy_1").body, thumb.body);  // the page's default URL
}

TEST_F(Timelapse, VideoServesRanges) {
  const std::string file = readFile(dir_ / "benchy_1.mp4");
  const size_t n = file.size();
  const HttpReply full = get("/api/timelapse/video/benchy_1.mp4");
  ASSERT_EQ(full.status, 200);
  EXPECT_EQ(full.body, file);
  EXPECT_EQ(full.headers.at("accept-ranges"), "bytes");
  EXPECT_EQ(full.headers.at("content-type"), "video/mp4");
  EXPECT_EQ(get("/api/timelapse/video/benchy_1").body, file);  // without .mp4 too

  struct Case {
    std::string range;
    size_t first;
    size_t length;
  };
  for (const Case& c :
       {Case{"bytes=0-99", 0, 100}, Case{"bytes=1000-1999", 1000, 1000}, Case{"bytes=-500", n - 500, 500},
        Case{"bytes=" + std::to_string(n - 10) + "-", n - 10, 10},
        Case{"bytes=100-99999999", 100, n - 100}}) {
    const HttpReply r = get("/api/timelapse/video/benchy_1.mp4", {{"Range", c.range}});
    ASSERT_EQ(r.status, 206) << c.range;
    EXPECT_EQ(r.body, file.substr(c.first, c.length)) << c.range;
    EXPECT_EQ(r.headers.at("content-range"), "bytes " + std::to_string(c.first) + "-" +
                                                 std::to_string(c.first + c.length - 1) + "/" +
                                                 std::to_string(n))
        << c.range;
    EXPECT_EQ(r.headers.at("content-length"), std::to_string(c.length));
  }
  const HttpReply unsat =
      get("/api/timelapse/video/benchy_1.mp4", {{"Range", "bytes=" + std::to_string(n) + "-"}});
  EXPECT_EQ(unsat.status, 416);
  EXPECT_EQ(unsat.headers.at("content-range"), "bytes */" + std::to_string(n));
  const HttpReply garbage = get("/api/timelapse/video/benchy_1.mp4", {{"Range", "bytes=z-1"}});
  EXPECT_EQ(garbage.status, 200);  // a malformed Range is ignored
  EXPECT_EQ(garbage.body.size(), n);
  const HttpReply head = httpRequest(process_->controlPort(), "HEAD", "/api/timelapse/video/benchy_1.mp4");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers.at("content-length"), std::to_string(n));
  EXPECT_TRUE(head.body.empty());
}

// A download that stopped resumes with If-Range (RFC 9110 13.1.5): the range while the file is
// the one the client saw (by ETag or Last-Modified), the whole file when it is not.
TEST_F(Timelapse, IfRangeResumesOnlyTheSameFile) {
  const std::string file = readFile(dir_ / "benchy_1.mp4");
  const HttpReply full = get("/api/timelapse/video/benchy_1.mp4");
  ASSERT_EQ(full.status, 200);
  ASSERT_EQ(full.headers.count("etag"), 1u) << full.rawHeaders;
  ASSERT_EQ(full.headers.count("last-modified"), 1u) << full.rawHeaders;
  const std::string etag = full.headers.at("etag");
  EXPECT_EQ(etag.front(), '"') << "a strong entity tag: " << etag;
  for (const std::string& validator : {etag, full.headers.at("last-modified")}) {
    const HttpReply resumed =
        get("/api/timelapse/video/benchy_1.mp4", {{"Range", "bytes=1000-"}, {"If-Range", validator}});
    EXPECT_EQ(resumed.status, 206) << validator;
    EXPECT_EQ(resumed.body, file.substr(1000)) << validator;
  }
  for (const std::string& stale :
       {std::string("\"0-0\""), "W/" + etag, std::string("Thu, 01 Jan 1970 00:00:00 GMT")}) {
    const HttpReply whole =
        get("/api/timelapse/video/benchy_1.mp4", {{"Range", "bytes=1000-"}, {"If-Range", stale}});
    EXPECT_EQ(whole.status, 200) << stale;
    EXPECT_EQ(whole.body.size(), file.size()) << stale;
  }
}

TEST_F(Timelapse, CurlDownloadsRanges) {
  const std::string file = readFile(dir_ / "benchy_1.mp4");
  const fs::path out = root_ / "curl.out";
  CommandResult r = runCommand({"curl", "-sS", "-f", "-r", "100-4195", "-o", out.string(), "-w",
                                "%{http_code}", url("/api/timelapse/video/benchy_1.mp4")},
                               30s);
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "206");
  EXPECT_EQ(readFile(out), file.substr(100, 4096));
  // Resume a partial download (-C -): what a download manager does.
  std::ofstream(out, std::ios::binary | std::ios::trunc) << file.substr(0, 5000);
  r = runCommand(
      {"curl", "-sS", "-f", "-C", "-", "-o", out.string(), url("/api/timelapse/video/benchy_1.mp4")}, 30s);
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(readFile(out), file);
}

TEST_F(Timelapse, FfprobeReadsTheVideoUrl) {
  const CommandResult r =
      runCommand({"ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                  "stream=codec_name,width,height,nb_read_frames:format=duration", "-of", "default=nw=1",
                  url("/api/timelapse/video/benchy_1.mp4")},
                 60s);
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("codec_name=h264"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("width=320"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("nb_read_frames=90"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("duration=3.0"), std::string::npos) << r.out;
}

TEST_F(Timelapse, TraversalAttemptsGet400AndTouchNothing) {
  const auto before = filesIn(dir_);
  const auto outsideBefore = filesIn(root_ / "outside");
  const std::string attempts[] = {
      "%2e%2e%2foutside%2fsecret.mp4",
      "..%2foutside%2fsecret",
      "%2E%2E",
      "..",
      "%2e%2e%5coutside%5csecret",
      "%2fetc%2fpasswd",
      "/etc/passwd",
      "benchy_1%00.mp4",
      "benchy_1.mp4%00",
      "escape.mp4",  // a symbolic link inside the folder pointing outside
      "escape",
      ".hidden",
  };
  for (const std::string& a : attempts) {
    for (const auto& [method, prefix] : {std::pair{"GET", "/api/timelapse/video/"},
                                         {"HEAD", "/api/timelapse/video/"},
                                         {"GET", "/api/timelapse/thumb/"},
                                         {"DELETE", "/api/timelapse/delete/"}}) {
      const HttpReply r = httpRequest(process_->controlPort(), method, prefix + a);
      EXPECT_EQ(r.status, 400) << method << " " << prefix << a << ": " << r.body;
      if (std::string(method) != "HEAD") {
        EXPECT_EQ(r.body.find("not yours"), std::string::npos) << r.body;  // never the outside file's bytes
      }
    }
  }
  // Raw dot segments in the request target (no client normalised them away).
  for (const char* target :
       {"/api/timelapse/video/../../outside/secret.mp4", "/api/timelapse/delete/../outside/secret"}) {
    const HttpReply r =
        httpRequest(process_->controlPort(),
                    std::string(target).find("delete") != std::string::npos ? "DELETE" : "GET", target);
    EXPECT_EQ(r.status, 400) << target << ": " << r.body;
  }
  EXPECT_EQ(filesIn(dir_), before);
  EXPECT_EQ(filesIn(root_ / "outside"), outsideBefore);
  EXPECT_EQ(readFile(root_ / "outside" / "secret.mp4"), "not yours");
  EXPECT_TRUE(fs::is_symlink(dir_ / "escape.mp4"));
}

TEST_F(Timelapse, DeleteRemovesTheVideoAndItsThumbnailsOnly) {
  fs::copy_file(dir_ / "benchy_1.mp4", dir_ / "cube_7.mp4");
  fs::copy_file(dir_ / "benchy_1_90.jpg", dir_ / "cube_7_90.jpg");
  fs::copy_file(dir_ / "benchy_1.mp4", dir_ / "cube_7_2.mp4");  // another print sharing the prefix
  fs::copy_file(dir_ / "benchy_1_90.jpg", dir_ / "cube_7_2_30.jpg");
  std::ofstream(dir_ / "cube_7.mp4.part") << "being written";
  auto before = filesIn(dir_);
  const HttpReply wrongMethod = get("/api/timelapse/delete/cube_7");
  EXPECT_EQ(wrongMethod.status, 405);
  const HttpReply r = httpRequest(process_->controlPort(), "DELETE", "/api/timelapse/delete/cube_7");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto json = nlohmann::json::parse(r.body);
  EXPECT_EQ(json["status"], "ok");
  EXPECT_EQ(json["deleted"].get<std::set<std::string>>(),
            (std::set<std::string>{"cube_7.mp4", "cube_7_90.jpg"}));
  before.erase("cube_7.mp4");
  before.erase("cube_7_90.jpg");
  EXPECT_EQ(filesIn(dir_), before);
  const auto list = nlohmann::json::parse(get("/api/timelapse/list").body);
  for (const auto& v : list["videos"]) EXPECT_NE(v["name"], "cube_7");
  EXPECT_EQ(httpRequest(process_->controlPort(), "DELETE", "/api/timelapse/delete/cube_7").status, 404);
  EXPECT_EQ(get("/api/timelapse/video/cube_7.mp4").status, 404);
  fs::remove(dir_ / "cube_7_2.mp4");
  fs::remove(dir_ / "cube_7_2_30.jpg");
  fs::remove(dir_ / "cube_7.mp4.part");
}

TEST_F(Timelapse, StorageJson) {
  const HttpReply r = get("/api/timelapse/storage");
  ASSERT_EQ(r.status, 200);
  const auto json = nlohmann::json::parse(r.body);
  EXPECT_EQ(json["current"], "internal");
  ASSERT_EQ(json["options"].size(), 1u) << r.body;  // the folder override is the only storage
  const auto& o = json["options"][0];
  EXPECT_EQ(o["id"], "internal");
  EXPECT_EQ(o["path"], dir_.string());
  EXPECT_EQ(o["available"], true);
  EXPECT_GT(o["free_bytes"].get<uint64_t>(), 0u);
  EXPECT_TRUE(o["label"].is_string());
}

TEST_F(Timelapse, SettingsRoundTrip) {
  HttpReply r = get("/api/timelapse/settings");
  ASSERT_EQ(r.status, 200);
  auto json = nlohmann::json::parse(r.body);
  EXPECT_EQ(json["settings"]["timelapse_storage"], "internal");
  EXPECT_EQ(json["settings"]["timelapse_folder"], dir_.string());
  for (const auto& item : json["settings"].items()) {
    EXPECT_TRUE(item.key().rfind("timelapse_", 0) == 0 || item.key().rfind("moonraker_", 0) == 0)
        << item.key();
  }
  const std::string configBefore = readFile(config_);
  // Refused, naming the key, nothing written.
  for (const auto& [body, key] : {std::pair{R"({"timelapse_storage":"usb"})", "timelapse_storage"},
                                  {R"({"timelapse_storage":"cloud"})", "timelapse_storage"},
                                  {R"({"timelapse_folder":"/"})", "timelapse_folder"},
                                  {R"({"bitrate":1000})", "bitrate"},
                                  {R"(not json)", ""}}) {
    r = httpRequest(process_->controlPort(), "POST", "/api/timelapse/settings", body,
                    {{"Content-Type", "application/json"}});
    EXPECT_EQ(r.status, 400) << body << ": " << r.body;
    EXPECT_EQ(nlohmann::json::parse(r.body)["key"], key) << r.body;
  }
  EXPECT_EQ(readFile(config_), configBefore);
  r = httpRequest(process_->controlPort(), "POST", "/api/timelapse/settings",
                  R"({"timelapse_storage":"internal"})", {{"Content-Type", "application/json"}});
  ASSERT_EQ(r.status, 200) << r.body;
  json = nlohmann::json::parse(r.body);
  EXPECT_EQ(json["changed"], nlohmann::json::array({"timelapse_storage"}));
  EXPECT_EQ(json["persisted"], true);
  // Saved into the config file, its other keys kept, no temp file left beside it.
  const auto saved = nlohmann::json::parse(readFile(config_), nullptr, true, true);
  EXPECT_EQ(saved["timelapse_storage"], "internal");
  EXPECT_EQ(saved["mjpeg_fps"], 5);
  for (const auto& f : filesIn(root_)) EXPECT_NE(f.rfind(".app.json", 0), 0u) << f;
  EXPECT_EQ(nlohmann::json::parse(get("/api/timelapse/settings").body)["settings"]["timelapse_storage"],
            "internal");
}

// Descriptors of `pid` open on files under `folder` (read from /proc/<pid>/fd links). Counting
// every descriptor would also count what the streamer opens lazily after start-up.
int fdsUnder(int pid, const std::string& folder) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    const auto target = fs::read_symlink(e.path(), ec);
    if (!ec && target.string().rfind(folder, 0) == 0) ++n;
  }
  return n;
}

// Every file response closes its descriptor: full, ranged, 416, HEAD, thumbnails, refusals,
// and downloads the client abandons half-way.
TEST_F(Timelapse, FileDescriptorsAreClosed) {
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(get("/api/timelapse/video/benchy_1.mp4").status, 200);
    EXPECT_EQ(get("/api/timelapse/video/benchy_1.mp4", {{"Range", "bytes=10-20"}}).status, 206);
    EXPECT_EQ(get("/api/timelapse/video/benchy_1.mp4", {{"Range", "bytes=99999999-"}}).status, 416);
    EXPECT_EQ(httpRequest(process_->controlPort(), "HEAD", "/api/timelapse/video/benchy_1").status, 200);
    EXPECT_EQ(get("/api/timelapse/thumb/benchy_1").status, 200);
    EXPECT_EQ(get("/api/timelapse/video/escape.mp4").status, 400);
    StreamConnection abandoned(process_->controlPort(), "/api/timelapse/video/big_1.mp4", 4096);
    EXPECT_EQ(abandoned.status(), 200);
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (fdsUnder(process_->pid(), fs::canonical(root_).string()) > 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(fdsUnder(process_->pid(), fs::canonical(root_).string()), 0)
      << "file responses left descriptors open";
}

// libmicrohttpd serves the control port from one thread over non-blocking sockets and sends
// files with sendfile(): a client that stops reading a large download must not delay anyone.
TEST_F(Timelapse, StalledDownloadDoesNotBlockTheApi) {
  std::vector<std::unique_ptr<StreamConnection>> stalled;
  for (int i = 0; i < 3; ++i) {
    stalled.push_back(
        std::make_unique<StreamConnection>(process_->controlPort(), "/api/timelapse/video/big_1.mp4", 4096));
    ASSERT_TRUE(stalled.back()->ok());
    ASSERT_EQ(stalled.back()->status(), 200);
    EXPECT_EQ(stalled.back()->header("content-length"), std::to_string(512LL << 20));
    EXPECT_FALSE(stalled.back()->read(1024, 2s).empty());  // it started; now it stops reading
  }
  // Wait until the server has filled those sockets' buffers: from then on they are stalled.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (connectionsWithFullSendQueue(process_->controlPort()) < 3 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_GE(connectionsWithFullSendQueue(process_->controlPort()), 3) << "the downloads never stalled";
  std::chrono::steady_clock::duration slowest{};
  for (int i = 0; i < 20; ++i) {
    for (const char* path : {"/api/timelapse/list", "/api/timelapse/storage", "/api/stats"}) {
      const auto start = std::chrono::steady_clock::now();
      const HttpReply r = httpRequest(process_->controlPort(), "GET", path, "", {}, 2s);
      const auto took = std::chrono::steady_clock::now() - start;
      ASSERT_EQ(r.status, 200) << path << ": " << r.error;
      EXPECT_LT(took, 1s) << path;
      slowest = std::max(slowest, took);
    }
  }
  std::printf("60 API calls beside 3 stalled downloads: slowest %.2f ms\n",
              std::chrono::duration<double, std::milli>(slowest).count());
  // Another download of the same file completes meanwhile (1 MiB range).
  const HttpReply part = get("/api/timelapse/video/big_1.mp4", {{"Range", "bytes=0-1048575"}});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.body.size(), 1048576u);
  // And the stalled ones are still open, far from done (reading resumes where it stopped).
  EXPECT_FALSE(stalled.front()->read(1024, 2s).empty());
}

}  // namespace

namespace {

// Issue 15: nothing blocks the server thread. A folder of 30000 recordings makes the first
// /api/timelapse/list slow (a stat, an open and a moov read per video); while it runs on the
// control worker, the control port keeps answering other requests at once.
TEST(TimelapseLargeFolder, AFolderScanDoesNotHoldTheControlPort) {
  char tmpl[] = "/tmp/printcast-tl-big-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path root = tmpl;
  const fs::path dir = root / "Time-lapse-Video";
  fs::create_directories(dir);
  const CommandResult r = runCommand(
      {"ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=30", "-t", "1", "-c:v",
       "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", (root / "one.mp4").string()},
      60s);
  ASSERT_EQ(r.exitCode, 0) << r.err;
  constexpr int kVideos = 30000;
  for (int i = 0; i < kVideos; ++i) {  // hard links: many names, one file's blocks
    fs::create_hard_link(root / "one.mp4", dir / ("print_" + std::to_string(i) + ".mp4"));
  }
  StreamerProcess p(PRINTCAST_STREAMER_BIN, {"--board", "virtual", "--resolution", "320x240", "--desired-fps",
                                             "5", "--no-display", "--timelapse-folder", dir.string()});
  ASSERT_TRUE(p.ok()) << p.log();

  // The scan, on a connection of its own; meanwhile, other requests to the same port.
  const auto listStart = std::chrono::steady_clock::now();
  std::future<HttpReply> list = std::async(std::launch::async, [&p] {
    return httpRequest(p.controlPort(), "GET", "/api/timelapse/list", "", {}, 120s);
  });
  std::vector<double> ms;
  while (list.wait_for(0s) != std::future_status::ready) {
    for (const char* path : {"/api/stats", "/control"}) {
      const auto t0 = std::chrono::steady_clock::now();
      const HttpReply other = httpRequest(p.controlPort(), "GET", path, "", {}, 5s);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      ASSERT_EQ(other.status, 200) << path << ": " << other.error;
    }
  }
  const HttpReply listed = list.get();
  const double listMs =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - listStart).count();
  ASSERT_EQ(listed.status, 200) << listed.error;
  EXPECT_EQ(nlohmann::json::parse(listed.body)["videos"].size(), static_cast<size_t>(kVideos));
  std::sort(ms.begin(), ms.end());
  std::printf("a %d-video scan took %.0f ms; %zu requests meanwhile: median %.2f ms, slowest %.2f ms\n",
              kVideos, listMs, ms.size(), ms[ms.size() / 2], ms.back());
  // The test means something only when the scan was slow enough to tell a blocked request (it
  // waits for the whole scan) from one answered at once.
  ASSERT_GE(listMs, 400.0) << "the scan was too fast to tell: use more videos";
  ASSERT_GE(ms.size(), 10u);
  EXPECT_LT(ms.back(), 100.0) << "the slowest request during the scan, ms (a blocked one waits for the scan)";
  fs::remove_all(root);
}

}  // namespace
