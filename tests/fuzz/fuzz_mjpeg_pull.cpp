// SPDX-License-Identifier: MIT
// libFuzzer target: what a network camera sends (transport/mjpeg_pull.h). Input: one byte of
// split size (the response arrives in pieces of 1..256 bytes, as from a socket), then the HTTP
// response: head, chunked or plain body, multipart parts or a single JPEG. The first line of the
// input is also parsed as a camera URL. Oracles: every JPEG handed out runs from SOI (FFD8FF) to
// EOI (FFD9) and fits the part limit; a failed reader stays failed; a URL's display() is host,
// port and target only (never its credentials). The response's WWW-Authenticate values (and the
// input's first line) go through the Digest client (http_digest.h): a challenge it accepts has a
// nonce, and its answer is a Digest Authorization value.
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "printcast/transport/http_digest.h"
#include "printcast/transport/mjpeg_pull.h"

using printcast::transport::MjpegResponseReader;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t step = static_cast<size_t>(data[0]) + 1;
  ++data;
  --size;

  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto url = printcast::transport::parseHttpUrl(text.substr(0, text.find('\n')))) {
    assert(!url->host.empty());
    assert(url->port != 0);
    assert(!url->target.empty() && url->target.front() == '/');
    // display() is built from host, port and target only: never the credentials.
    const std::string host = url->host.find(':') != std::string::npos ? "[" + url->host + "]" : url->host;
    assert(url->display() == host + ":" + std::to_string(url->port) + url->target);
  }

  MjpegResponseReader::Limits limits;
  limits.maxHeadBytes = 1024;
  limits.maxPartBytes = 64 * 1024;
  MjpegResponseReader reader(limits);
  bool failed = false;
  auto check = [&] {
    while (reader.pendingJpegs() > 0) {
      const auto jpeg = reader.popJpeg();
      assert(jpeg.size() >= 5 && jpeg.size() <= limits.maxPartBytes);
      assert(jpeg[0] == 0xFF && jpeg[1] == 0xD8 && jpeg[2] == 0xFF);
      assert(jpeg[jpeg.size() - 2] == 0xFF && jpeg[jpeg.size() - 1] == 0xD9);
    }
  };
  for (size_t at = 0; at < size; at += step) {
    const size_t n = size - at < step ? size - at : step;
    const bool ok = static_cast<bool>(reader.feed({data + at, n}));
    assert(!(failed && ok));  // a failed reader stays failed
    failed = failed || !ok;
    check();
  }
  const bool finished = static_cast<bool>(reader.finish());
  assert(!(failed && finished));
  check();

  // A 401's challenges (and the first line, as one) go through the Digest client.
  std::vector<std::string> challenges = reader.wwwAuthenticate();
  challenges.emplace_back(text.substr(0, text.find('\n')));
  for (const auto& value : challenges) {
    (void)printcast::transport::offersBasic(value);
    auto challenge = printcast::transport::parseDigestChallenge(value);
    if (!challenge) continue;
    assert(!challenge->nonce.empty());
    const std::string answer =
        printcast::transport::digestAuthorization(*challenge, "user", "pass", "GET", "/stream", 1, "cnonce");
    assert(answer.rfind("Digest username=\"user\"", 0) == 0);
  }
  return 0;
}
