// SPDX-License-Identifier: MIT
// libFuzzer target: application/x-www-form-urlencoded request bodies (POST /api/touch).
#include <cstddef>
#include <cstdint>
#include <string>

#include "printcast/transport/http_server.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  (void)printcast::transport::parseFormUrlEncoded(body);
  return 0;
}
