// SPDX-License-Identifier: MIT
// gkcam handover (go-klipper mode): Anycubic's stock camera service, gkcam
// (/userdata/app/gk/gkcam, started by the firmware's start.sh from /userdata/app/gk with
// LD_LIBRARY_PATH=/userdata/app/gk), holds the camera and port 18088. The streamer stops it at
// start and gives it back when the streamer exits, however it exits (SIGTERM, a crash, kill -9).
//
// Which processes: those whose executable (/proc/PID/exe) is exactly the configured path, never a
// match on the name in `ps` (which also hits "grep gkcam", an editor of gkcam.log or printcast's
// own command line). Giving it back: a guardian (/bin/sh, its own session) started at the
// handover waits on a pipe whose write end only the streamer holds; when the kernel closes that
// end (the streamer's exit of any kind), the guardian starts gkcam again the way it ran: the same
// executable, working folder and LD_LIBRARY_PATH, its output appended to a log.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "printcast/hal/result.h"

namespace printcast::streamer {

struct GkcamHandoverConfig {
  std::string executable = "/userdata/app/gk/gkcam";  // compared with /proc/PID/exe, exactly
  std::string procRoot = "/proc";
  // SIGTERM, and SIGKILL when it is still there after this.
  std::chrono::milliseconds stopTimeout{3000};
  // The restarted gkcam's stdout and stderr (appended). The firmware starts it without a log.
  std::string logFile = "/dev/null";
};

// The running processes of `executable` under `procRoot` (PIDs, ascending). Errors: Io when
// procRoot cannot be read.
hal::Result<std::vector<int>> findProcessesByExecutable(const std::string& procRoot,
                                                        const std::string& executable);

// Ownership: the object holds the pipe's write end; destroying it (or the process ending) lets the
// guardian restart gkcam at once. Threading: one thread (start-up and shutdown).
class GkcamHandover {
 public:
  // Stop every process of config.executable and arm the guardian. Nothing running: nothing to give
  // back (stopped() empty, no guardian). Errors: PermissionDenied (kill refused), Timeout (a
  // process outlived SIGKILL for a second), Io (no /proc, the guardian could not be spawned: then
  // gkcam is left running).
  static hal::Result<std::unique_ptr<GkcamHandover>> take(const GkcamHandoverConfig& config);
  ~GkcamHandover();
  GkcamHandover(const GkcamHandover&) = delete;
  GkcamHandover& operator=(const GkcamHandover&) = delete;

  const std::vector<int>& stopped() const { return stopped_; }  // the PIDs it stopped
  bool restartsOnExit() const { return writeFd_ >= 0; }
  const std::string& executable() const { return config_.executable; }
  const std::string& workingDir() const { return workingDir_; }  // gkcam's, as it ran

 private:
  explicit GkcamHandover(GkcamHandoverConfig config) : config_(std::move(config)) {}
  GkcamHandoverConfig config_;
  std::vector<int> stopped_;
  std::string workingDir_;
  int writeFd_ = -1;
};

}  // namespace printcast::streamer
