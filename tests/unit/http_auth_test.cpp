// SPDX-License-Identifier: MIT
// Token credentials (transport/http_auth.h): SHA-256 of the token, the three ways to present it,
// malformed headers, constant-time match against the stored hash.
#include "printcast/transport/http_auth.h"

#include <gtest/gtest.h>

namespace {

using printcast::transport::isSha256Hex;
using printcast::transport::presentedToken;
using printcast::transport::sha256Hex;
using printcast::transport::tokenMatches;

TEST(HttpAuth, Sha256OfKnownText) {
  // FIPS 180-2 appendix B.1 ("abc") and the empty string.
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_TRUE(isSha256Hex(sha256Hex("x")));
  EXPECT_TRUE(isSha256Hex("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
  EXPECT_FALSE(isSha256Hex("ba7816bf"));
  EXPECT_FALSE(isSha256Hex(std::string(64, 'g')));
}

TEST(HttpAuth, TheThreeWaysToPresentTheToken) {
  EXPECT_EQ(presentedToken("Bearer s3cret", ""), "s3cret");
  EXPECT_EQ(presentedToken("bearer   s3cret  ", ""), "s3cret");
  EXPECT_EQ(presentedToken("Basic YW55OnMzY3JldA==", ""), "s3cret");  // any:s3cret
  EXPECT_EQ(presentedToken("Basic OnMzYzpyZXQ=", ""), "s3c:ret");     // empty user, ':' in the password
  EXPECT_EQ(presentedToken("", "s3cret"), "s3cret");                  // ?token=
  EXPECT_EQ(presentedToken("Bearer header", "query"), "header");      // the header wins
}

TEST(HttpAuth, MalformedCredentialsPresentNothing) {
  for (const char* bad : {"Bearer", "Bearer ", "Basic", "Basic !!!!", "Basic bm9jb2xvbg==" /* nocolon */,
                          "Digest username=x", "Bearers x", "BasicYW55OnMzY3JldA=="}) {
    EXPECT_EQ(presentedToken(bad, ""), "") << bad;
  }
}

TEST(HttpAuth, MatchesOnlyTheHashedToken) {
  const std::string hash = sha256Hex("s3cret");
  EXPECT_TRUE(tokenMatches(hash, "s3cret"));
  std::string upper = hash;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(tokenMatches(upper, "s3cret"));
  EXPECT_FALSE(tokenMatches(hash, "s3cret "));
  EXPECT_FALSE(tokenMatches(hash, ""));
  EXPECT_FALSE(tokenMatches("", "s3cret"));
  EXPECT_FALSE(tokenMatches("not-a-hash", "s3cret"));
}

}  // namespace
