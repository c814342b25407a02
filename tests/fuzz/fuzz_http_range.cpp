// SPDX-License-Identifier: MIT
// libFuzzer target: the Range header (GET /api/timelapse/video/<name>). Input: 8 bytes of
// representation size (little-endian, taken modulo 2^40 so both tiny and huge sizes come up)
// then the header text. Oracle: a Partial answer lies inside the representation and is not
// empty; Unsatisfiable iff no range of a well-formed header could be served (checked by
// re-parsing each comma-separated element alone).
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "printcast/transport/http_range.h"

using printcast::transport::ByteRangeAnswer;
using printcast::transport::contentRangeValue;
using printcast::transport::parseByteRange;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t fileSize = 0;
  std::memcpy(&fileSize, data, 8);
  fileSize %= (uint64_t{1} << 40);
  if (data[0] & 1) fileSize %= 64;  // half the inputs on small files, where the edges are
  const std::string_view header(reinterpret_cast<const char*>(data + 8), size - 8);
  const ByteRangeAnswer a = parseByteRange(header, fileSize);
  const std::string cr = contentRangeValue(a, fileSize);
  switch (a.kind) {
    case ByteRangeAnswer::Kind::Partial:
      assert(a.length >= 1);
      assert(a.first < fileSize);
      assert(a.length <= fileSize - a.first);
      assert(cr.rfind("bytes ", 0) == 0);
      break;
    case ByteRangeAnswer::Kind::Unsatisfiable: assert(cr == "bytes */" + std::to_string(fileSize)); break;
    case ByteRangeAnswer::Kind::Full: assert(cr.empty()); break;
  }
  // 416 iff unsatisfiable: the header is well-formed (not Full) and no single element of it is
  // satisfiable on its own; and a Partial answer is exactly what its first satisfiable element
  // alone gives.
  const size_t eq = header.find('=');
  if (a.kind != ByteRangeAnswer::Kind::Full && eq != std::string_view::npos) {
    const std::string unit(header.substr(0, eq));
    std::string_view set = header.substr(eq + 1);
    bool anySatisfiable = false;
    for (;;) {
      const size_t comma = set.find(',');
      const std::string one = unit + "=" + std::string(set.substr(0, comma));
      const ByteRangeAnswer b = parseByteRange(one, fileSize);
      if (b.kind == ByteRangeAnswer::Kind::Partial) {
        if (!anySatisfiable && a.kind == ByteRangeAnswer::Kind::Partial) {
          assert(b.first == a.first && b.length == a.length);
        }
        anySatisfiable = true;
      }
      if (comma == std::string_view::npos) break;
      set.remove_prefix(comma + 1);
    }
    assert(anySatisfiable == (a.kind == ByteRangeAnswer::Kind::Partial));
  }
  return 0;
}
