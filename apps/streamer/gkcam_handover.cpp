// SPDX-License-Identifier: MIT
#include "gkcam_handover.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

extern char** environ;

namespace printcast::streamer {

namespace {

using namespace std::chrono_literals;

std::string readLink(const std::string& path) {
  char buf[4096];
  const ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  if (n <= 0) return {};
  std::string target(buf, static_cast<size_t>(n));
  // The binary was replaced on disk while running: "/path (deleted)" is still that program.
  constexpr std::string_view kDeleted = " (deleted)";
  if (target.size() > kDeleted.size() && target.ends_with(kDeleted))
    target.resize(target.size() - kDeleted.size());
  return target;
}

// One variable of /proc/PID/environ ("" when absent or unreadable).
std::string environValue(const std::string& procRoot, int pid, const std::string& name) {
  std::ifstream in(fmt::format("{}/{}/environ", procRoot, pid), std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string prefix = name + "=";
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find('\0', start);
    if (end == std::string::npos) end = all.size();
    if (all.compare(start, prefix.size(), prefix) == 0)
      return all.substr(start + prefix.size(), end - start - prefix.size());
    start = end + 1;
  }
  return {};
}

bool alive(const std::string& procRoot, int pid, const std::string& executable) {
  return readLink(fmt::format("{}/{}/exe", procRoot, pid)) == executable;
}

}  // namespace

hal::Result<std::vector<int>> findProcessesByExecutable(const std::string& procRoot,
                                                        const std::string& executable) {
  DIR* dir = ::opendir(procRoot.c_str());
  if (dir == nullptr) return hal::errnoError("gkcam handover: cannot read " + procRoot);
  std::vector<int> pids;
  const int self = ::getpid();
  while (dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || pid <= 0 || pid == self) continue;
    if (alive(procRoot, static_cast<int>(pid), executable)) pids.push_back(static_cast<int>(pid));
  }
  ::closedir(dir);
  std::sort(pids.begin(), pids.end());
  return pids;
}

hal::Result<std::unique_ptr<GkcamHandover>> GkcamHandover::take(const GkcamHandoverConfig& config) {
  std::unique_ptr<GkcamHandover> h(new GkcamHandover(config));
  auto pids = findProcessesByExecutable(config.procRoot, config.executable);
  if (!pids) return pids.error();
  if (pids->empty()) return h;  // not running: nothing to stop, nothing to give back
  // How it ran, to start it again the same way (the firmware's start.sh: cd /userdata/app/gk,
  // LD_LIBRARY_PATH=/userdata/app/gk:...).
  const int first = pids->front();
  h->workingDir_ = readLink(fmt::format("{}/{}/cwd", config.procRoot, first));
  if (h->workingDir_.empty()) {
    const auto slash = config.executable.find_last_of('/');
    h->workingDir_ =
        slash == std::string::npos ? "/" : config.executable.substr(0, std::max<size_t>(slash, 1));
  }
  const std::string libraryPath = environValue(config.procRoot, first, "LD_LIBRARY_PATH");

  // The guardian first: if it cannot be started, gkcam is left alone (the camera stays gkcam's).
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return hal::errnoError("gkcam handover: pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[0], 0);  // dup2 clears O_CLOEXEC on fd 0
  // Not the streamer's stdout/stderr (a terminal, a test's pipe): the guardian's own messages go
  // where the restarted gkcam's will.
  posix_spawn_file_actions_addopen(&actions, 1, config.logFile.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);  // the streamer blocks SIGTERM/SIGINT for sigwait
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  const std::string script =
      "cat > /dev/null; cd \"$1\" || exit 1; if [ -n \"$2\" ]; then export LD_LIBRARY_PATH=\"$2\"; fi; "
      "exec \"$3\" >> \"$4\" 2>&1 < /dev/null";
  std::vector<std::string> args{
      "sh",          "-c", script, "printcast-gkcam-guardian", h->workingDir_, libraryPath, config.executable,
      config.logFile};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t guardian = 0;
  const int rc = ::posix_spawn(&guardian, "/bin/sh", &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(fds[0]);
  if (rc != 0) {
    ::close(fds[1]);
    return hal::Error{
        hal::errcFromErrno(rc), rc,
        fmt::format("gkcam handover: cannot start the guardian (/bin/sh): {}", std::strerror(rc))};
  }
  h->writeFd_ = fds[1];
  // Whatever fails from here leaves gkcam running: the guardian must not start a second one.
  auto disarm = [&] {
    ::kill(guardian, SIGKILL);
    ::waitpid(guardian, nullptr, 0);
    ::close(h->writeFd_);
    h->writeFd_ = -1;
  };

  for (int pid : *pids) {
    if (::kill(pid, SIGTERM) != 0 && errno != ESRCH) {
      const int err = errno;
      disarm();
      return hal::Error{hal::errcFromErrno(err), err, fmt::format("gkcam handover: SIGTERM to {}", pid)};
    }
  }
  auto waitGone = [&](std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (std::none_of(pids->begin(), pids->end(),
                       [&](int pid) { return alive(config.procRoot, pid, config.executable); }))
        return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  };
  if (!waitGone(config.stopTimeout)) {
    for (int pid : *pids) {
      if (alive(config.procRoot, pid, config.executable)) ::kill(pid, SIGKILL);
    }
    if (!waitGone(1s)) {
      disarm();
      return hal::Error{hal::Errc::Timeout, 0,
                        fmt::format("gkcam handover: {} still runs after SIGKILL", config.executable)};
    }
  }
  h->stopped_ = *pids;
  spdlog::info("gkcam: stopped {} (pid {}); it is started again from {} when printcast exits",
               config.executable, fmt::join(*pids, ", "), h->workingDir_);
  return h;
}

GkcamHandover::~GkcamHandover() {
  if (writeFd_ >= 0) {
    ::close(writeFd_);  // the guardian's cat ends: gkcam starts again
    spdlog::info("gkcam: given back ({} starts again)", config_.executable);
  }
}

}  // namespace printcast::streamer
