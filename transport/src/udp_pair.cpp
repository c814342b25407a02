// SPDX-License-Identifier: MIT
// UdpPair (see udp_pair.h).
#include "udp_pair.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace printcast::transport {

using hal::Errc;

UdpPair::~UdpPair() {
  if (rtp >= 0) ::close(rtp);
  if (rtcp >= 0) ::close(rtcp);
}

hal::Status bindUdpPair(UdpPair& pair) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    const int a = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (a < 0) return hal::errnoError("RTSP: UDP socket");
    int off = 0;
    (void)::setsockopt(a, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    int big = 1 << 20;  // a 1080p IDR arrives as a burst of packets
    (void)::setsockopt(a, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_any;
    socklen_t len = sizeof addr;
    if (::bind(a, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(a, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(a);
      return hal::errnoError("RTSP: bind a UDP port");
    }
    const uint16_t port = ntohs(addr.sin6_port);
    if (port % 2 != 0 || port == 65534) {
      ::close(a);
      continue;
    }
    const int b = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (b < 0) {
      ::close(a);
      return hal::errnoError("RTSP: UDP socket");
    }
    (void)::setsockopt(b, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    addr.sin6_port = htons(static_cast<uint16_t>(port + 1));
    if (::bind(b, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(a);
      ::close(b);
      continue;
    }
    pair.rtp = a;
    pair.rtcp = b;
    pair.port = port;
    return {};
  }
  return {Errc::Io, "RTSP: no free pair of UDP ports"};
}

}  // namespace printcast::transport
