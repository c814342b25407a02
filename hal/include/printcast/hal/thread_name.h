// SPDX-License-Identifier: MIT
// Names for the threads printcast starts, so `top -H`, `ps -L`, perf and gdb tell a camera's
// thread from a server's ("cam printer", "rtsp in", "http 8080").
#pragma once

#include <string_view>

namespace printcast::hal {

// Name the calling thread (Linux: prctl(PR_SET_NAME), /proc/self/task/TID/comm). Names longer
// than 15 bytes are cut to 15 (the kernel's TASK_COMM_LEN less its terminator). Never fails:
// a refusal leaves the old name. Call it first thing in the thread's function. Threads that a
// named thread starts inherit its name (a camera's x264 threads show as that camera's).
void nameThisThread(std::string_view name) noexcept;

}  // namespace printcast::hal
