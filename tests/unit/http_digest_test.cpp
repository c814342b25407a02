// SPDX-License-Identifier: MIT
// HTTP Digest, client side: the RFCs' own examples, and challenges as cameras send them.
#include <gtest/gtest.h>

#include "printcast/transport/http_digest.h"

namespace printcast::transport {
namespace {

// RFC 2617 3.5.
TEST(HttpDigest, ComputesRfc2617sExample) {
  auto c = parseDigestChallenge(
      R"(Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41")");
  ASSERT_TRUE(c) << c.error().describe();
  EXPECT_TRUE(c->qopAuth);
  EXPECT_EQ(c->algorithm, "MD5");
  const std::string a =
      digestAuthorization(*c, "Mufasa", "Circle Of Life", "GET", "/dir/index.html", 1, "0a4f113b");
  EXPECT_NE(a.find(R"(response="6629fae49393a05397450978507c4ef1")"), std::string::npos) << a;
  EXPECT_NE(a.find("nc=00000001"), std::string::npos) << a;
  EXPECT_NE(a.find(R"(opaque="5ccc069c403ebaf9f0171e9517f40e41")"), std::string::npos) << a;
  EXPECT_EQ(a.rfind("Digest username=\"Mufasa\"", 0), 0u) << a;
}

// RFC 7616 3.9.1: the same request answered with SHA-256 and with MD5.
TEST(HttpDigest, ComputesRfc7616sSha256AndMd5Examples) {
  const std::string params =
      R"(realm="http-auth@example.org", qop="auth, auth-int", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")";
  const std::string cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
  auto sha = parseDigestChallenge("Digest " + params + ", algorithm=SHA-256");
  ASSERT_TRUE(sha) << sha.error().describe();
  EXPECT_NE(digestAuthorization(*sha, "Mufasa", "Circle of Life", "GET", "/dir/index.html", 1, cnonce)
                .find("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
            std::string::npos);
  auto md5 = parseDigestChallenge("Digest " + params + ", algorithm=MD5");
  ASSERT_TRUE(md5);
  EXPECT_NE(digestAuthorization(*md5, "Mufasa", "Circle of Life", "GET", "/dir/index.html", 1, cnonce)
                .find("8ca523f5e9506fed4657c9700eebdbec"),
            std::string::npos);
}

// Cameras: two schemes in one header, unquoted values, RFC 2069 without qop, stale nonces.
TEST(HttpDigest, ReadsCameraChallengesAndRefusesWhatItCannotAnswer) {
  auto both = parseDigestChallenge(R"(Basic realm="IPCam", Digest realm="IPCam", nonce=abc123, stale=TRUE)");
  ASSERT_TRUE(both) << both.error().describe();
  EXPECT_EQ(both->realm, "IPCam");
  EXPECT_EQ(both->nonce, "abc123");
  EXPECT_TRUE(both->stale);
  EXPECT_FALSE(both->qopAuth);
  EXPECT_TRUE(offersBasic(R"(Basic realm="IPCam", Digest realm="IPCam", nonce=abc123)"));
  EXPECT_FALSE(offersBasic(R"(Digest realm="Basic", nonce="x")"));
  // RFC 2069: response = H(HA1:nonce:HA2), no qop/nc/cnonce in the header.
  const std::string a = digestAuthorization(*both, "admin", "pw", "DESCRIBE", "rtsp://cam/stream1", 1, "c");
  EXPECT_EQ(a.find("qop="), std::string::npos) << a;
  EXPECT_NE(a.find(R"(uri="rtsp://cam/stream1")"), std::string::npos) << a;
  const std::string quotedUser = digestAuthorization(*both, R"(a"b)", "pw", "GET", "/", 1, "c");
  EXPECT_NE(quotedUser.find(R"(username="a\"b")"), std::string::npos) << quotedUser;

  EXPECT_EQ(parseDigestChallenge(R"(Basic realm="x")").code(), hal::Errc::InvalidArgument);
  EXPECT_EQ(parseDigestChallenge(R"(Digest realm="x")").code(), hal::Errc::InvalidArgument);
  EXPECT_EQ(parseDigestChallenge(R"(Digest realm="x", nonce="n", algorithm=SHA-512-256)").code(),
            hal::Errc::Unsupported);
  EXPECT_EQ(parseDigestChallenge(R"(Digest realm="x", nonce="n", qop="auth-int")").code(),
            hal::Errc::Unsupported);
  EXPECT_EQ(basicAuthorization("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
}

// The exchange a camera client goes through: nothing before a challenge, Digest preferred over
// Basic, a stale nonce renewed, the same credentials refused once, a reason for each refusal.
TEST(ClientAuth, AnswersTheBestChallengeOnceAndSaysWhyItStops) {
  ClientAuth auth("u", "p");
  EXPECT_EQ(auth.authorization("DESCRIBE", "rtsp://cam/x"), "");
  ASSERT_TRUE(auth.onChallenge({"Basic realm=\"cam\"", "Digest realm=\"cam\", nonce=\"n1\""}).ok());
  const std::string first = auth.authorization("DESCRIBE", "rtsp://cam/x");
  EXPECT_EQ(first.rfind("Digest ", 0), 0u) << first;
  EXPECT_NE(first.find("nonce=\"n1\""), std::string::npos) << first;
  EXPECT_EQ(first.find("qop"), std::string::npos) << "RFC 2069 form when no qop is offered: " << first;
  // A stale nonce: answered again with the new one.
  ASSERT_TRUE(auth.onChallenge({"Digest realm=\"cam\", nonce=\"n2\", stale=true"}).ok());
  EXPECT_NE(auth.authorization("PLAY", "rtsp://cam/x").find("nonce=\"n2\""), std::string::npos);
  // Not stale: these credentials are wrong.
  auto refused = auth.onChallenge({"Digest realm=\"cam\", nonce=\"n3\""});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.code(), hal::Errc::PermissionDenied);
  EXPECT_NE(refused.error().message.find("refused these credentials"), std::string::npos);

  ClientAuth basic("Aladdin", "open sesame");
  ASSERT_TRUE(basic.onChallenge({"Basic realm=\"cam\""}).ok());
  EXPECT_EQ(basic.authorization("GET", "/"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
  EXPECT_FALSE(basic.onChallenge({"Basic realm=\"cam\""}).ok());

  ClientAuth none("", "");
  auto wants = none.onChallenge({"Basic realm=\"cam\""});
  ASSERT_FALSE(wants.ok());
  EXPECT_NE(wants.error().message.find("wants credentials"), std::string::npos);
  ClientAuth odd("u", "p");
  auto unknown = odd.onChallenge({"Negotiate abc"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("no challenge this client can answer"), std::string::npos);
}

}  // namespace
}  // namespace printcast::transport
