// SPDX-License-Identifier: MIT
// Syscalls: the seam between device backends and the kernel. Backends (V4L2, fbdev, DRM, evdev)
// make every device call through this interface, so unit tests run the real backend code
// against a scripted fake kernel (Chromium media/capture does the same), and the lab runs it
// against real kernel devices.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace printcast::hal {

// Same contracts as the libc calls of the same names: -1 (or MAP_FAILED) and errno on failure.
// Thread-safety: the real implementation is stateless; fakes document their own rules.
class Syscalls {
 public:
  virtual ~Syscalls() = default;
  virtual int open(const char* path, int flags) = 0;
  virtual int close(int fd) = 0;
  virtual int ioctl(int fd, unsigned long request, void* arg) = 0;  // NOLINT(google-runtime-int)
  virtual void* mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset) = 0;
  virtual int munmap(void* addr, size_t length) = 0;
  virtual int poll(pollfd* fds, nfds_t count, int timeoutMs) = 0;
  virtual ssize_t read(int fd, void* buf, size_t count) = 0;
  virtual ssize_t write(int fd, const void* buf, size_t count) = 0;
};

// The process-wide real implementation (libc). Never null; lives for the whole program.
Syscalls& realSyscalls();

}  // namespace printcast::hal
