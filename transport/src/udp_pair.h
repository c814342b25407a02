// SPDX-License-Identifier: MIT
// A pair of UDP sockets on consecutive ports for RTP and RTCP (RFC 3550 11: RTP on the even
// port, RTCP on the next), for the RTSP client and server. Internal to transport.
#pragma once

#include <cstdint>

#include "printcast/hal/result.h"

namespace printcast::transport {

// Both sockets non-blocking, close-on-exec, dual-stack (IPv6 with v4-mapped addresses), bound to
// every interface; the destructor closes them.
struct UdpPair {
  int rtp = -1;
  int rtcp = -1;
  uint16_t port = 0;  // the RTP port; RTCP is port + 1
  UdpPair() = default;
  UdpPair(const UdpPair&) = delete;
  UdpPair& operator=(const UdpPair&) = delete;
  ~UdpPair();
};

// Bind `pair` to free ports (tries 16 times for an even port with a free successor).
// Errors: Io (no socket, or no free pair), with the errno.
hal::Status bindUdpPair(UdpPair& pair);

}  // namespace printcast::transport
