// SPDX-License-Identifier: MIT
// UniqueFd: the owning wrapper every hal backend keeps its file descriptors in.
#pragma once

#include <unistd.h>

#include <utility>

#include "printcast/hal/syscalls.h"

namespace printcast::hal {

// Closes its descriptor on destruction; move-only, so an fd has exactly one owner.
// A descriptor that came from a Syscalls seam is given that seam, so that it is closed through
// it too (a fake kernel's descriptors are not the process's; ::close on them would close a real
// file). The seam must outlive the UniqueFd.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(int fd, Syscalls& sys) : fd_(fd), sys_(&sys) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), sys_(std::exchange(other.sys_, nullptr)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
      sys_ = std::exchange(other.sys_, nullptr);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) {
      if (sys_ != nullptr) {
        sys_->close(fd_);
      } else {
        ::close(fd_);
      }
    }
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  Syscalls* sys_ = nullptr;
};

}  // namespace printcast::hal
