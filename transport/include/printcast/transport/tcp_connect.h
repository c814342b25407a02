// SPDX-License-Identifier: MIT
// TCP client connections with a deadline: name resolution, then each address in turn.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "printcast/hal/result.h"

namespace printcast::transport {

// Resolve `host` (a name, an IPv4 address or an IPv6 address without brackets) with
// getaddrinfo() and connect to `port` on each address in turn, each attempt bounded by `timeout`.
// The socket is non-blocking and close-on-exec (callers poll before every read and write), with
// TCP_NODELAY set. When `wakeFd` >= 0, it becomes readable to abandon the attempt (another thread
// is stopping the caller): the result is then Timeout with "cancelled".
// Returns the connected socket; the caller owns it (close()).
// Errors: NoDevice (the name does not resolve), Timeout (no answer within `timeout`, or
// cancelled), Io (refused, unreachable... with the errno). The message names host:port.
// Threading: blocks the calling thread (getaddrinfo cannot be bounded): never call it on a server
// thread.
hal::Result<int> connectTcp(const std::string& host, uint16_t port, std::chrono::milliseconds timeout,
                            int wakeFd = -1);

// Write all of `size` bytes to a non-blocking socket, polling for POLLOUT up to `timeout` in all.
// Errors: Timeout, Disconnected (the peer closed: EPIPE/ECONNRESET), Io.
hal::Status sendAll(int fd, const void* data, size_t size, std::chrono::milliseconds timeout);

// The same through `write`, which has send(2)'s contract on the non-blocking socket `fd` (the
// bytes written, or -1 with errno: EAGAIN to wait for POLLOUT on `fd`, EINTR to call again, any
// other an error) and is called again with the same bytes after EAGAIN: a TLS session's records.
using SocketWrite = std::function<ssize_t(const uint8_t* data, size_t size)>;
hal::Status sendAll(int fd, const void* data, size_t size, std::chrono::milliseconds timeout,
                    const SocketWrite& write);

}  // namespace printcast::transport
