// SPDX-License-Identifier: MIT
// ONVIF discovery (transport/onvif.h, issue 11 section 4) against fake cameras on loopback
// (tests/integration/fake_onvif_camera.py checks the UsernameToken digest and Created against its
// own clock, for real): the unicast Probe, profiles and RTSP URIs, a wrong password, a camera
// clock two hours off, a camera that never answers SOAP, the multicast Probe inside a network
// namespace of the test's own, and the streamer's POST /api/cameras/discover.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <thread>

#include "printcast/transport/onvif.h"
#include "test_client.h"

extern char** environ;

namespace onvif = printcast::transport::onvif;
using namespace std::chrono_literals;
using printcast::hal::Errc;
using printcast::testing::httpRequest;
using printcast::testing::StreamerProcess;
using Clock = std::chrono::steady_clock;

namespace {

// The fake camera (fake_onvif_camera.py) as a child process, ready once it printed its ports.
class FakeCamera {
 public:
  explicit FakeCamera(std::vector<std::string> options) {
    std::vector<std::string> argv = {PRINTCAST_FAKE_ONVIF_CAMERA};
    argv.insert(argv.end(), options.begin(), options.end());
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    std::string line;
    for (const auto end = Clock::now() + 10s; pid_ > 0 && line.find('\n') == std::string::npos;) {
      pollfd p{out[0], POLLIN, 0};
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
      if (wait <= 0 || ::poll(&p, 1, static_cast<int>(wait)) <= 0) break;
      char buf[512];
      const ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<size_t>(n));
    }
    ::close(out[0]);
    const auto ready = nlohmann::json::parse(line, nullptr, false);
    if (ready.is_object()) {
      discoveryPort = ready.value("discovery_port", uint16_t{0});
      httpPort = ready.value("http_port", uint16_t{0});
      endpoint = ready.value("endpoint", "");
    }
  }
  ~FakeCamera() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool ok() const { return pid_ > 0 && httpPort != 0; }
  std::string address() const { return "127.0.0.1:" + std::to_string(discoveryPort); }
  std::string xaddr() const {
    return "http://127.0.0.1:" + std::to_string(httpPort) + "/onvif/device_service";
  }

  uint16_t discoveryPort = 0;
  uint16_t httpPort = 0;
  std::string endpoint;

 private:
  pid_t pid_ = -1;
};

onvif::DiscoveryOptions unicast(const std::vector<const FakeCamera*>& cameras, std::string user = "",
                                std::string password = "") {
  onvif::DiscoveryOptions o;
  for (const auto* c : cameras) o.addresses.push_back(c->address());
  o.window = 5s;
  o.user = std::move(user);
  o.password = std::move(password);
  return o;
}

const onvif::Camera* findCamera(const std::vector<onvif::Camera>& cameras, const std::string& endpoint) {
  for (const auto& c : cameras)
    if (c.endpoint == endpoint) return &c;
  return nullptr;
}

// The fake's two profiles, each with its RTSP URI.
void expectFakeProfiles(const onvif::Camera& c) {
  ASSERT_EQ(c.profiles.size(), 2u) << c.error;
  EXPECT_EQ(c.profiles[0].token, "Profile_1");
  EXPECT_EQ(c.profiles[0].name, "mainStream");
  EXPECT_EQ(c.profiles[0].encoding, "H264");
  EXPECT_EQ(c.profiles[0].width, 1920);
  EXPECT_EQ(c.profiles[0].height, 1080);
  EXPECT_EQ(c.profiles[0].rtspUri, "rtsp://127.0.0.1:8554/Profile_1?a=1&b=2");
  EXPECT_EQ(c.profiles[1].token, "Profile_2");
  EXPECT_EQ(c.profiles[1].width, 640);
  EXPECT_EQ(c.profiles[1].height, 360);
  EXPECT_EQ(c.profiles[1].rtspUri, "rtsp://127.0.0.1:8554/Profile_2?a=1&b=2");
  EXPECT_EQ(c.profiles[1].error, "");
}

TEST(OnvifDiscovery, UnicastProbeFindsTheCameraWithItsProfilesAndRtspUris) {
  FakeCamera camera(
      {"--name", "Garage cam", "--hardware", "FC 1", "--user", "admin", "--password", "s3cret"});
  ASSERT_TRUE(camera.ok());
  auto options = unicast({&camera, &camera}, "admin", "s3cret");  // asked twice: still one camera

  const auto started = Clock::now();
  auto matches = onvif::probe(options);
  const auto probeTime = Clock::now() - started;
  ASSERT_TRUE(matches) << matches.error().describe();
  ASSERT_EQ(matches->size(), 1u) << "one camera, whatever the number of answers";
  EXPECT_LT(probeTime, options.window) << "a unicast probe ends when its addresses answered";
  EXPECT_EQ((*matches)[0].sender, "127.0.0.1");

  auto cameras = onvif::discover(options);
  ASSERT_TRUE(cameras) << cameras.error().describe();
  ASSERT_EQ(cameras->size(), 1u);
  const onvif::Camera& c = (*cameras)[0];
  EXPECT_EQ(c.error, "");
  EXPECT_EQ(c.endpoint, camera.endpoint);
  EXPECT_EQ(c.name, "Garage cam") << "the Scopes' name, percent-decoded";
  EXPECT_EQ(c.hardware, "FC 1");
  EXPECT_EQ(c.xaddr, camera.xaddr());
  EXPECT_EQ(c.mediaXAddr, "http://127.0.0.1:" + std::to_string(camera.httpPort) + "/onvif/media_service");
  EXPECT_LE(std::abs(c.clockOffset.count()), 1);
  expectFakeProfiles(c);
}

TEST(OnvifDiscovery, WrongPasswordIsReportedAndOtherCamerasAreUnaffected) {
  FakeCamera good({"--name", "Good", "--user", "admin", "--password", "s3cret"});
  FakeCamera other({"--name", "Other", "--user", "admin", "--password", "different"});
  ASSERT_TRUE(good.ok() && other.ok());
  auto cameras = onvif::discover(unicast({&good, &other}, "admin", "s3cret"));
  ASSERT_TRUE(cameras) << cameras.error().describe();
  ASSERT_EQ(cameras->size(), 2u);
  const auto* g = findCamera(*cameras, good.endpoint);
  const auto* o = findCamera(*cameras, other.endpoint);
  ASSERT_TRUE(g && o);
  EXPECT_EQ(g->error, "");
  expectFakeProfiles(*g);
  EXPECT_EQ(o->name, "Other");
  EXPECT_EQ(o->error, "wrong user or password (NotAuthorized)");
  EXPECT_EQ(o->errorCode, Errc::PermissionDenied);
  EXPECT_TRUE(o->profiles.empty());
}

TEST(OnvifDiscovery, WithoutCredentialsACameraThatWantsThemSaysSo) {
  FakeCamera open({"--name", "Open"});  // no user: answers anyone
  FakeCamera locked({"--name", "Locked", "--user", "admin", "--password", "s3cret"});
  ASSERT_TRUE(open.ok() && locked.ok());
  auto cameras = onvif::discover(unicast({&open, &locked}));
  ASSERT_TRUE(cameras) << cameras.error().describe();
  const auto* o = findCamera(*cameras, open.endpoint);
  const auto* l = findCamera(*cameras, locked.endpoint);
  ASSERT_TRUE(o && l);
  EXPECT_EQ(o->error, "");
  expectFakeProfiles(*o);
  EXPECT_EQ(l->error, "needs a user and password (NotAuthorized)");
}

// The camera's clock is two hours ahead and it refuses a Created more than 5 s from it: the
// UsernameToken made with our clock is refused (shown first), the one discover() makes with the
// offset applied is taken.
TEST(OnvifDiscovery, CameraClockTwoHoursOffStillAuthenticatesWithTheOffsetApplied) {
  FakeCamera camera(
      {"--name", "Skewed", "--user", "admin", "--password", "s3cret", "--clock-offset", "7200"});
  ASSERT_TRUE(camera.ok());

  onvif::UsernameToken ours{"admin",
                            "s3cret",
                            {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6},
                            onvif::xsdDateTime(std::chrono::system_clock::now())};
  const auto refused = httpRequest(camera.httpPort, "POST", "/onvif/media_service",
                                   onvif::soapRequest(onvif::getProfilesBody(), &ours),
                                   {{"Content-Type", "application/soap+xml; charset=utf-8"}});
  EXPECT_EQ(refused.status, 400) << refused.body;
  auto parsed = onvif::parseProfiles(refused.body);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.code(), Errc::PermissionDenied) << parsed.error().message;

  auto cameras = onvif::discover(unicast({&camera}, "admin", "s3cret"));
  ASSERT_TRUE(cameras) << cameras.error().describe();
  ASSERT_EQ(cameras->size(), 1u);
  const onvif::Camera& c = (*cameras)[0];
  EXPECT_EQ(c.error, "");
  EXPECT_NEAR(static_cast<double>(c.clockOffset.count()), 7200.0, 2.0);
  expectFakeProfiles(c);
}

// A camera that accepts the connection and never answers: "timeout" within the request bound,
// while the camera asked at the same time is described.
TEST(OnvifDiscovery, CameraThatNeverAnswersSoapTimesOutWithinTheBound) {
  FakeCamera silent({"--name", "Silent", "--silent-soap"});
  FakeCamera good({"--name", "Good"});
  ASSERT_TRUE(silent.ok() && good.ok());
  auto options = unicast({&silent, &good});
  options.requestTimeout = 1000ms;
  options.cameraTimeout = 3000ms;
  auto matches = onvif::probe(options);
  ASSERT_TRUE(matches) << matches.error().describe();
  ASSERT_EQ(matches->size(), 2u);
  for (const auto& m : *matches) {
    const auto started = Clock::now();
    const onvif::Camera c = onvif::describe(m, options);
    const auto took = Clock::now() - started;
    if (m.endpoint == silent.endpoint) {
      EXPECT_EQ(c.errorCode, Errc::Timeout) << c.error;
      EXPECT_EQ(c.error.rfind("timeout: no answer to GetSystemDateAndTime from 127.0.0.1:", 0), 0u)
          << c.error;
      EXPECT_GE(took, 900ms);
      EXPECT_LT(took, 2500ms) << "bounded by the request timeout (1 s)";
    } else {
      EXPECT_EQ(c.error, "");
      expectFakeProfiles(c);
    }
  }
}

// Some firmwares put HTTP Digest in front of the services (ONVIF Core 5.9.1): the challenge is
// answered with the same credentials, on top of the UsernameToken; a wrong password says so.
TEST(OnvifDiscovery, HttpDigestInFrontOfTheServicesIsAnswered) {
  FakeCamera camera({"--name", "Digest", "--user", "admin", "--password", "s3cret", "--http-digest"});
  ASSERT_TRUE(camera.ok());
  auto cameras = onvif::discover(unicast({&camera}, "admin", "s3cret"));
  ASSERT_TRUE(cameras) << cameras.error().describe();
  ASSERT_EQ(cameras->size(), 1u);
  EXPECT_EQ((*cameras)[0].error, "");
  expectFakeProfiles((*cameras)[0]);

  auto wrong = onvif::discover(unicast({&camera}, "admin", "guess"));
  ASSERT_TRUE(wrong) << wrong.error().describe();
  ASSERT_EQ(wrong->size(), 1u);
  EXPECT_EQ((*wrong)[0].error, "wrong user or password (HTTP 401)");
  auto none = onvif::discover(unicast({&camera}));
  ASSERT_TRUE(none) << none.error().describe();
  ASSERT_EQ(none->size(), 1u);
  EXPECT_EQ((*none)[0].error, "needs a user and password (HTTP 401)");
}

// A loopback HTTP server that answers every request with `response`.
class OneShotHttp {
 public:
  explicit OneShotHttp(std::string response) {
    fd_ = printcast::testing::listenLoopback(port);
    thread_ = std::thread([this, response = std::move(response)] {
      for (;;) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        char buf[4096];
        (void)::recv(c, buf, sizeof buf, 0);
        (void)::send(c, response.data(), response.size(), MSG_NOSIGNAL);
        ::close(c);
      }
    });
  }
  ~OneShotHttp() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  uint16_t port = 0;

 private:
  int fd_ = -1;
  std::thread thread_;
};

TEST(OnvifDiscovery, AnHttpServerThatIsNotOnvifOrNothingAtAllIsNamed) {
  OneShotHttp web("HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 9\r\n\r\nnot found");
  onvif::ProbeMatch match;
  match.endpoint = "urn:uuid:web";
  match.xaddrs = {"http://127.0.0.1:" + std::to_string(web.port) + "/onvif/device_service"};
  onvif::DiscoveryOptions options;
  options.requestTimeout = 2000ms;
  const onvif::Camera c = onvif::describe(match, options);
  EXPECT_EQ(c.errorCode, Errc::InvalidArgument) << c.error;
  EXPECT_EQ(c.error,
            "not ONVIF: HTTP 404 to GetSystemDateAndTime from 127.0.0.1:" + std::to_string(web.port));

  const uint16_t nobody = printcast::testing::freeTcpPort();
  match.xaddrs = {"http://127.0.0.1:" + std::to_string(nobody) + "/onvif/device_service"};
  const onvif::Camera gone = onvif::describe(match, options);
  EXPECT_EQ(gone.errorCode, Errc::Io) << gone.error;
  EXPECT_EQ(gone.error.rfind("unreachable: ", 0), 0u) << gone.error;

  match.xaddrs = {"https://127.0.0.1/onvif/device_service"};
  EXPECT_EQ(onvif::describe(match, options).errorCode, Errc::Unsupported);
}

TEST(OnvifDiscovery, ABadAddressIsRefusedBeforeAnythingIsSent) {
  onvif::DiscoveryOptions options;
  options.addresses = {"127.0.0.1:99999"};
  EXPECT_EQ(onvif::probe(options).code(), Errc::InvalidArgument);
  options.addresses = {"no such host.invalid"};
  EXPECT_EQ(onvif::probe(options).code(), Errc::InvalidArgument);
}

// ----------------------------------------------------------------------------- multicast

// Makes the calling thread's network namespace one where 239.255.255.250 reaches a member on lo:
// lo up with multicast on, and a host route for the group through it. "" or what failed.
std::string multicastOnLoopback() {
  const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return std::string("socket: ") + std::strerror(errno);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  std::string failed;
  if (::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
    failed = std::string("SIOCGIFFLAGS lo: ") + std::strerror(errno);
  } else {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_MULTICAST);
    if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) failed = std::string("SIOCSIFFLAGS lo: ") + std::strerror(errno);
  }
  if (failed.empty()) {
    rtentry route{};
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    ::inet_pton(AF_INET, onvif::kDiscoveryGroup, &dst.sin_addr);
    sockaddr_in mask{};
    mask.sin_family = AF_INET;
    mask.sin_addr.s_addr = 0xffffffffu;
    std::memcpy(&route.rt_dst, &dst, sizeof dst);
    std::memcpy(&route.rt_genmask, &mask, sizeof mask);
    route.rt_flags = RTF_UP | RTF_HOST;
    char lo[] = "lo";
    route.rt_dev = lo;
    if (::ioctl(s, SIOCADDRT, &route) != 0)
      failed = std::string("SIOCADDRT 239.255.255.250 dev lo: ") + std::strerror(errno);
  }
  ::close(s);
  return failed;
}

TEST(OnvifDiscovery, MulticastProbeInANetworkNamespaceFindsTheCamera) {
  std::string skip;
  std::string setupError;
  bool fakeUp = false;
  std::optional<printcast::hal::Result<std::vector<onvif::Camera>>> result;
  std::string endpoint;
  std::chrono::nanoseconds took{};
  // Namespaces are per thread: this thread, the fake camera it starts and the threads of
  // discover() live in the new one; the rest of the test binary keeps the host's network.
  std::thread inside([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      skip = std::string("machine: cannot make a network namespace here (unshare(CLONE_NEWNET): ") +
             std::strerror(errno) + "; it needs root or CAP_SYS_ADMIN)";
      return;
    }
    setupError = multicastOnLoopback();
    if (!setupError.empty()) return;
    FakeCamera camera({"--multicast", "--name", "Multicast cam", "--user", "admin", "--password", "s3cret"});
    fakeUp = camera.ok();
    if (!fakeUp) return;
    endpoint = camera.endpoint;
    onvif::DiscoveryOptions options;  // no addresses: the multicast Probe
    options.window = 2s;
    options.user = "admin";
    options.password = "s3cret";
    const auto started = Clock::now();
    result = onvif::discover(options);
    took = Clock::now() - started;
  });
  inside.join();
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_EQ(setupError, "");
  ASSERT_TRUE(fakeUp);
  ASSERT_TRUE(result.has_value());
  ASSERT_TRUE(*result) << result->error().describe();
  ASSERT_EQ((*result)->size(), 1u);
  const onvif::Camera& c = (**result)[0];
  EXPECT_EQ(c.endpoint, endpoint);
  EXPECT_EQ(c.name, "Multicast cam");
  EXPECT_EQ(c.error, "");
  expectFakeProfiles(c);
  EXPECT_GE(took, 2s) << "a multicast Probe listens for the whole window";
}

// ----------------------------------------------------------------------------- the streamer

class StreamerDiscover : public ::testing::Test {
 protected:
  void SetUp() override {
    process_ = std::make_unique<StreamerProcess>(
        PRINTCAST_STREAMER_BIN, std::vector<std::string>{"--board", "virtual", "--resolution", "320x240",
                                                         "--desired-fps", "5", "--no-display"});
    ASSERT_TRUE(process_->ok()) << process_->log();
  }
  uint16_t control() const { return process_->controlPort(); }
  std::unique_ptr<StreamerProcess> process_;
};

TEST_F(StreamerDiscover, ReturnsTheCandidatesWithoutEverEchoingThePassword) {
  FakeCamera camera(
      {"--name", "Garage cam", "--hardware", "FC-1", "--user", "admin", "--password", "pa55word"});
  ASSERT_TRUE(camera.ok());
  const nlohmann::json request = {
      {"user", "admin"}, {"password", "pa55word"}, {"address", camera.address()}, {"seconds", 3}};
  const auto r = httpRequest(control(), "POST", "/api/cameras/discover", request.dump(),
                             {{"Content-Type", "application/json"}}, 30s);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.find("pa55word"), std::string::npos) << r.body;
  const auto list = nlohmann::json::parse(r.body, nullptr, false);
  ASSERT_TRUE(list.is_array()) << r.body;
  ASSERT_EQ(list.size(), 1u) << r.body;
  const auto& c = list[0];
  EXPECT_EQ(c.value("name", ""), "Garage cam");
  EXPECT_EQ(c.value("hardware", ""), "FC-1");
  EXPECT_EQ(c.value("xaddr", ""), camera.xaddr());
  EXPECT_EQ(c.value("error", "?"), "");
  ASSERT_EQ(c["profiles"].size(), 2u) << r.body;
  EXPECT_EQ(c["profiles"][0].value("token", ""), "Profile_1");
  EXPECT_EQ(c["profiles"][0].value("width", 0), 1920);
  EXPECT_EQ(c["profiles"][0].value("height", 0), 1080);
  EXPECT_EQ(c["profiles"][0].value("encoding", ""), "H264");
  EXPECT_EQ(c["profiles"][0].value("rtsp", ""), "rtsp://127.0.0.1:8554/Profile_1?a=1&b=2");

  // A wrong password is the candidate's error; still no password in the answer.
  nlohmann::json wrong = request;
  wrong["password"] = "guess-again";
  const auto w = httpRequest(control(), "POST", "/api/cameras/discover", wrong.dump(),
                             {{"Content-Type", "application/json"}}, 30s);
  ASSERT_EQ(w.status, 200) << w.body;
  EXPECT_EQ(w.body.find("guess-again"), std::string::npos) << w.body;
  const auto wl = nlohmann::json::parse(w.body, nullptr, false);
  ASSERT_EQ(wl.size(), 1u) << w.body;
  EXPECT_EQ(wl[0].value("error", ""), "wrong user or password (NotAuthorized)");
}

TEST_F(StreamerDiscover, RefusesOtherOriginsNonJsonBodiesAndBadKeys) {
  const std::string body = R"({"address":"127.0.0.1:9","seconds":1})";
  const auto cross = httpRequest(control(), "POST", "/api/cameras/discover", body,
                                 {{"Content-Type", "application/json"}, {"Origin", "http://evil.example"}});
  EXPECT_EQ(cross.status, 403) << cross.body;
  EXPECT_EQ(cross.headers.count("access-control-allow-origin"), 0u) << cross.rawHeaders;
  const auto form = httpRequest(control(), "POST", "/api/cameras/discover", "address=127.0.0.1",
                                {{"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(form.status, 415) << form.body;
  EXPECT_EQ(httpRequest(control(), "GET", "/api/cameras/discover").status, 405);
  const auto bad = httpRequest(control(), "POST", "/api/cameras/discover", R"({"seconds": 600})",
                               {{"Content-Type", "application/json"}});
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.body.find("seconds"), std::string::npos) << bad.body;
  const auto unknown = httpRequest(control(), "POST", "/api/cameras/discover", R"({"adress": "x"})",
                                   {{"Content-Type", "application/json"}});
  EXPECT_EQ(unknown.status, 400) << unknown.body;
  // Nobody at that address: an empty list after the window, not an error.
  const auto none = httpRequest(control(), "POST", "/api/cameras/discover", body,
                                {{"Content-Type", "application/json"}}, 30s);
  EXPECT_EQ(none.status, 200) << none.body;
  EXPECT_EQ(none.body, "[]");
}

}  // namespace
