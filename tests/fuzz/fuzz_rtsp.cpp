// SPDX-License-Identifier: MIT
// libFuzzer target: what comes in on an RTSP TCP connection, a server's responses to our client
// and a client's requests to our server, both read by RtspReader (transport/rtsp_client.h).
// Input: the first byte splits the rest into two feeds at (byte * rest / 256), as bytes arrive in
// any pieces; the rest goes through RtspReader (small limits: 512-byte heads, 1 KiB bodies), and
// every message's Session field through parseRtspSession, its Content-Base through
// resolveRtspControl. Oracles: a parsed message is a response (status 100..999, no method) or a
// request (a method, status 0); bodies fit the limit; interleaved data is at most 65535 bytes;
// a parsed Session has an id and a timeout in 1..3600 s; once feed() failed it stays failed; a
// second reader with a data sink (the RTSP pull's way) hands over the same packets in the same
// order, keeps the same messages as items, and fails the same way.
#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "printcast/transport/rtsp_client.h"

using namespace printcast::transport;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t split = static_cast<size_t>(data[0]) * (size - 1) / 256;
  ++data;
  --size;
  RtspReader::Limits limits;
  limits.maxHeadBytes = 512;
  limits.maxBodyBytes = 1024;
  RtspReader reader(limits);
  auto first = reader.feed(std::span<const uint8_t>(data, split));
  auto second = reader.feed(std::span<const uint8_t>(data + split, size - split));
  assert(first.ok() || !second.ok());

  std::vector<std::vector<uint8_t>> sunk;
  RtspReader sinking(limits);
  sinking.setDataSink([&](uint8_t channel, std::span<const uint8_t> packet) {
    std::vector<uint8_t> p{channel};
    p.insert(p.end(), packet.begin(), packet.end());
    sunk.push_back(std::move(p));
  });
  const bool sinkOk = sinking.feed(std::span<const uint8_t>(data, split)).ok() &&
                      sinking.feed(std::span<const uint8_t>(data + split, size - split)).ok();
  assert(sinkOk == (first.ok() && second.ok()));
  (void)sinkOk;
  size_t nextSunk = 0;

  RtspReader::Item item;
  while (reader.pop(item)) {
    if (item.kind == RtspReader::Item::Kind::Data) {
      assert(item.data.size() <= 65535);
      assert(
          nextSunk < sunk.size() && sunk[nextSunk][0] == item.channel &&
          std::equal(item.data.begin(), item.data.end(), sunk[nextSunk].begin() + 1, sunk[nextSunk].end()));
      ++nextSunk;
      continue;
    }
    RtspReader::Item same;
    assert(sinking.pop(same) && same.kind == RtspReader::Item::Kind::Message &&
           same.message.status == item.message.status && same.message.body == item.message.body);
    (void)same;
    const RtspMessage& m = item.message;
    assert((m.status >= 100 && m.status <= 999 && m.method.empty()) || (m.status == 0 && !m.method.empty()));
    assert(m.body.size() <= limits.maxBodyBytes);
    (void)m.cseq();
    if (const std::string* session = m.field("Session")) {
      if (auto s = parseRtspSession(*session)) {
        assert(!s->id.empty());
        assert(s->timeoutSeconds >= 1 && s->timeoutSeconds <= 3600);
      }
    }
    if (const std::string* base = m.field("Content-Base")) (void)resolveRtspControl(*base, m.reason);
  }
  assert(nextSunk == sunk.size());
  RtspReader::Item left;
  assert(!sinking.pop(left));
  (void)left;
  return 0;
}
