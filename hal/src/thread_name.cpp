// SPDX-License-Identifier: MIT
#include "printcast/hal/thread_name.h"

#include <sys/prctl.h>

#include <algorithm>
#include <array>

namespace printcast::hal {

void nameThisThread(std::string_view name) noexcept {
  std::array<char, 16> comm{};  // TASK_COMM_LEN: 15 bytes and the terminator
  const size_t n = std::min(name.size(), comm.size() - 1);
  std::copy_n(name.data(), n, comm.data());
  (void)prctl(PR_SET_NAME, comm.data(), 0, 0, 0);  // NOLINT(cppcoreguidelines-pro-type-vararg)
}

}  // namespace printcast::hal
