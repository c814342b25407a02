// SPDX-License-Identifier: MIT
// What a publisher into a media server (RTSP, RTMP) reports in /status.
#pragma once

#include <cstdint>
#include <string>

namespace printcast::transport {

struct PublishStatus {
  std::string url;         // without secrets: no credentials, an RTMP stream key as "***"
  std::string state;       // "connecting", "publishing", "retrying in N s: <reason>"
  uint64_t sessions = 0;   // sessions the server took (RECORD, publish)
  uint64_t failures = 0;   // sessions that failed or were lost
  uint64_t bytesSent = 0;  // all sessions
  std::string lastError;
};

}  // namespace printcast::transport
