// SPDX-License-Identifier: MIT
// The real Syscalls: straight to libc.
#include "printcast/hal/syscalls.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cerrno>

namespace printcast::hal {

namespace {
class RealSyscalls final : public Syscalls {
 public:
  int open(const char* path, int flags) override { return ::open(path, flags | O_CLOEXEC); }
  int close(int fd) override { return ::close(fd); }
  int ioctl(int fd, unsigned long request, void* arg) override {  // NOLINT(google-runtime-int)
    int r = 0;
    do {
      r = ::ioctl(fd, request, arg);
    } while (r == -1 && errno == EINTR);
    return r;
  }
  void* mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset) override {
    return ::mmap(addr, length, prot, flags, fd, offset);
  }
  int munmap(void* addr, size_t length) override { return ::munmap(addr, length); }
  int poll(pollfd* fds, nfds_t count, int timeoutMs) override { return ::poll(fds, count, timeoutMs); }
  ssize_t read(int fd, void* buf, size_t count) override { return ::read(fd, buf, count); }
  ssize_t write(int fd, const void* buf, size_t count) override { return ::write(fd, buf, count); }
};
}  // namespace

Syscalls& realSyscalls() {
  static RealSyscalls instance;
  return instance;
}

}  // namespace printcast::hal
