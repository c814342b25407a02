// SPDX-License-Identifier: MIT
// The control port's same-origin rule (transport/http_access.h): Host parsing, trusted origins,
// cross-site requests and DNS rebinding refused with a reason, scripts without Origin allowed.
#include "printcast/transport/http_access.h"

#include <gtest/gtest.h>

namespace {

using printcast::transport::checkStateChange;
using printcast::transport::hostOfHostHeader;
using printcast::transport::isStateChangingMethod;
using printcast::transport::isTrustedOrigin;
using printcast::transport::OriginPolicy;
using printcast::transport::splitList;

OriginPolicy sameOrigin() {
  OriginPolicy p;
  p.sameOriginWrites = true;
  return p;
}

TEST(HttpAccess, StateChangingMethods) {
  for (const char* m : {"POST", "PUT", "PATCH", "DELETE", "PROPFIND"})
    EXPECT_TRUE(isStateChangingMethod(m)) << m;
  for (const char* m : {"GET", "HEAD", "OPTIONS"}) EXPECT_FALSE(isStateChangingMethod(m)) << m;
}

TEST(HttpAccess, HostHeaderParsing) {
  EXPECT_EQ(hostOfHostHeader("127.0.0.1:8081"), "127.0.0.1");
  EXPECT_EQ(hostOfHostHeader("Printer.Local"), "printer.local");
  EXPECT_EQ(hostOfHostHeader("localhost.:80"), "localhost");
  EXPECT_EQ(hostOfHostHeader("[::1]:8081"), "::1");
  EXPECT_EQ(hostOfHostHeader("[fe80::1]"), "fe80::1");
  for (const char* bad :
       {"", ":8081", "[::1", "[]:80", "[::1]x", "[::1]:", "a:b:c", "host:", "host:80x", "host:123456",
        "us@er.example", "a b", "a/b", "[::1[::1]", "[nothex]:80", "a%2fb", "a\\b"}) {
    EXPECT_EQ(hostOfHostHeader(bad), "") << "'" << bad << "'";
  }
}

TEST(HttpAccess, OwnOriginAndListedOriginsAreTrusted) {
  OriginPolicy p = sameOrigin();
  EXPECT_TRUE(isTrustedOrigin(p, "http://127.0.0.1:8081", "127.0.0.1:8081"));
  EXPECT_TRUE(isTrustedOrigin(p, "HTTPS://Printer.local", "printer.local"));
  EXPECT_FALSE(isTrustedOrigin(p, "http://127.0.0.1:8080", "127.0.0.1:8081"));  // another port
  EXPECT_FALSE(isTrustedOrigin(p, "null", "127.0.0.1:8081"));
  EXPECT_FALSE(isTrustedOrigin(p, "", "127.0.0.1:8081"));
  p.trustedOrigins = {"http://mainsail.local"};
  EXPECT_TRUE(isTrustedOrigin(p, "http://Mainsail.local", "127.0.0.1:8081"));
  EXPECT_FALSE(isTrustedOrigin(p, "http://mainsail.local:81", "127.0.0.1:8081"));
  p.trustedOrigins = {"*"};
  EXPECT_TRUE(isTrustedOrigin(p, "http://anything.example", "127.0.0.1:8081"));
}

TEST(HttpAccess, CrossSiteChangesAreRefusedWithTheSettingToAllowThem) {
  const OriginPolicy p = sameOrigin();
  // A page on another site posting to the printer (a form or a text/plain fetch).
  const std::string why = checkStateChange(p, "192.168.1.50:8081", "http://evil.example", "printer");
  EXPECT_NE(why.find("http://evil.example"), std::string::npos) << why;
  EXPECT_NE(why.find("control_allow_origin"), std::string::npos) << why;
  // The printer's own page, and scripts without Origin.
  EXPECT_EQ(checkStateChange(p, "192.168.1.50:8081", "http://192.168.1.50:8081", "printer"), "");
  EXPECT_EQ(checkStateChange(p, "192.168.1.50:8081", "", "printer"), "");
  // A sandboxed frame or a file:// page sends "null".
  EXPECT_NE(checkStateChange(p, "192.168.1.50:8081", "null", "printer"), "");
  // The rule off (the stream ports): anything goes.
  EXPECT_EQ(checkStateChange(OriginPolicy{}, "evil.example", "http://evil.example", "printer"), "");
}

TEST(HttpAccess, DnsRebindingIsRefusedByTheHost) {
  OriginPolicy p = sameOrigin();
  // evil.example re-pointed at the printer: same-origin to the browser, but not our name.
  const std::string why = checkStateChange(p, "evil.example:8081", "http://evil.example:8081", "printer");
  EXPECT_NE(why.find("evil.example"), std::string::npos) << why;
  EXPECT_NE(why.find("allowed_hosts"), std::string::npos) << why;
  EXPECT_NE(checkStateChange(p, "evil.example:8081", "", "printer"), "");  // no Origin does not help
  EXPECT_NE(checkStateChange(p, "", "", "printer"), "");                   // no Host at all
  // What names this machine.
  for (const char* host :
       {"localhost:8081", "127.0.0.1", "[::1]:8081", "Printer:8081", "printer.local:8081"}) {
    EXPECT_EQ(checkStateChange(p, host, "", "printer"), "") << host;
  }
  EXPECT_NE(checkStateChange(p, "printer.lan", "", "printer"), "");
  p.allowedHosts = splitList("printer.lan, farm.example");
  EXPECT_EQ(checkStateChange(p, "printer.lan:8081", "http://printer.lan:8081", "printer"), "");
  EXPECT_EQ(checkStateChange(p, "farm.example", "", "printer"), "");
  p.allowedHosts = {"*"};
  EXPECT_EQ(checkStateChange(p, "evil.example:8081", "http://evil.example:8081", "printer"), "");
}

TEST(HttpAccess, SplitList) {
  EXPECT_EQ(splitList(" a, b,,c ,"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(splitList("").empty());
  EXPECT_TRUE(splitList(" , ").empty());
}

}  // namespace
