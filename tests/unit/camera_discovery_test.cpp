// SPDX-License-Identifier: MIT
// POST /api/cameras/discover's body and answer (apps/streamer/camera_discovery.h): what a request
// may say, and that an answer never carries a password.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "camera_discovery.h"

using printcast::hal::Errc;
using printcast::streamer::discoverResponseJson;
using printcast::streamer::parseDiscoverRequest;
namespace onvif = printcast::transport::onvif;

namespace {

TEST(CameraDiscoveryRequest, AnEmptyBodyIsAMulticastProbeOfFiveSeconds) {
  for (const char* body : {"", "  \n", "{}"}) {
    auto o = parseDiscoverRequest(body);
    ASSERT_TRUE(o) << body << ": " << o.error().message;
    EXPECT_TRUE(o->addresses.empty());
    EXPECT_EQ(o->window, std::chrono::milliseconds(5000));
    EXPECT_EQ(o->user, "");
  }
}

TEST(CameraDiscoveryRequest, TakesCredentialsAnAddressAndTheWindow) {
  auto o =
      parseDiscoverRequest(R"({"user":"admin","password":"pw","address":"192.0.2.7:3702","seconds":2.5})");
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->user, "admin");
  EXPECT_EQ(o->password, "pw");
  EXPECT_EQ(o->addresses, (std::vector<std::string>{"192.0.2.7:3702"}));
  EXPECT_EQ(o->window, std::chrono::milliseconds(2500));
  auto empty = parseDiscoverRequest(R"({"address":""})");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->addresses.empty()) << "an empty address is the multicast Probe";
}

TEST(CameraDiscoveryRequest, RefusesWhatItCannotUseNamingTheKey) {
  const std::pair<const char*, const char*> cases[] = {
      {"[1]", "JSON object"},           {"not json", "JSON object"},       {R"({"seconds":0})", "seconds"},
      {R"({"seconds":31})", "seconds"}, {R"({"seconds":"5"})", "seconds"}, {R"({"user":1})", "'user'"},
      {R"({"adress":"x"})", "adress"},
  };
  for (const auto& [body, named] : cases) {
    auto o = parseDiscoverRequest(body);
    ASSERT_FALSE(o) << body;
    EXPECT_EQ(o.code(), Errc::InvalidArgument);
    EXPECT_NE(o.error().message.find(named), std::string::npos) << body << ": " << o.error().message;
  }
}

TEST(CameraDiscoveryAnswer, HasEveryFieldAndNoCredentials) {
  onvif::Camera c;
  c.name = "Garage cam";
  c.hardware = "IPC";
  c.endpoint = "urn:uuid:1";
  c.xaddr = "http://192.0.2.7/onvif/device_service";
  c.clockOffset = std::chrono::seconds(-3600);
  onvif::Profile p;
  p.token = "main";
  p.name = "mainStream";
  p.width = 1920;
  p.height = 1080;
  p.encoding = "H264";
  p.rtspUri = "rtsp://admin:secret@192.0.2.7:554/live?x=1";
  c.profiles = {p};
  onvif::Camera bad;
  bad.name = "\xff\xfe not UTF-8";
  bad.error = "wrong user or password (NotAuthorized)";
  const std::string text = discoverResponseJson({c, bad});
  EXPECT_EQ(text.find("secret"), std::string::npos) << text;
  const auto json = nlohmann::json::parse(text);
  ASSERT_EQ(json.size(), 2u);
  EXPECT_EQ(json[0]["name"], "Garage cam");
  EXPECT_EQ(json[0]["hardware"], "IPC");
  EXPECT_EQ(json[0]["xaddr"], c.xaddr);
  EXPECT_EQ(json[0]["endpoint"], "urn:uuid:1");
  EXPECT_EQ(json[0]["clock_offset_seconds"], -3600);
  EXPECT_EQ(json[0]["error"], "");
  const auto& profile = json[0]["profiles"][0];
  EXPECT_EQ(profile["token"], "main");
  EXPECT_EQ(profile["name"], "mainStream");
  EXPECT_EQ(profile["width"], 1920);
  EXPECT_EQ(profile["height"], 1080);
  EXPECT_EQ(profile["encoding"], "H264");
  EXPECT_EQ(profile["rtsp"], "rtsp://192.0.2.7:554/live?x=1");
  EXPECT_EQ(json[1]["error"], "wrong user or password (NotAuthorized)");
  EXPECT_TRUE(json[1]["profiles"].empty());
}

}  // namespace
