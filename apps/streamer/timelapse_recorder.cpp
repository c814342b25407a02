// SPDX-License-Identifier: MIT
// Timelapse recording: the layer/hyperlapse trigger, frame capture and background assembly.
#include "timelapse_recorder.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>
#include "printcast/hal/thread_name.h"

namespace printcast::streamer {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

// ----------------------------------------------------------------------------- trigger

std::vector<TriggerEvent> TimelapseTrigger::onStatus(const PrintStatus& s, SteadyClock::time_point now) {
  std::vector<TriggerEvent> out;
  const bool printing = s.state == "printing";
  const bool paused = s.state == "paused";
  const bool ended =
      s.state == "complete" || s.state == "cancelled" || s.state == "error" || s.state == "standby";
  if (printing || paused) {
    if (active_ && !s.filename.empty() && s.filename != filename_) {
      out.push_back({TriggerEvent::Kind::Finish, filename_, "new print", now});
      active_ = false;
    }
    if (!active_) {
      active_ = true;
      filename_ = s.filename;
      lastLayer_.reset();
      out.push_back({TriggerEvent::Kind::Start, filename_, "", now});
      if (mode_ == TimelapseMode::Hyperlapse) {
        if (printing) out.push_back({TriggerEvent::Kind::Capture, filename_, "", now});
        nextCapture_ = now + interval_;
      }
    }
    if (mode_ == TimelapseMode::Hyperlapse && paused_ && printing) nextCapture_ = now + interval_;
    paused_ = paused;
    if (mode_ == TimelapseMode::Layer && s.currentLayer) {
      const int layer = *s.currentLayer;
      if (printing && layer >= 1 && (!lastLayer_ || *lastLayer_ != layer)) {
        TriggerEvent e{TriggerEvent::Kind::Capture, filename_, "", now + delay_};
        e.layer = layer;
        out.push_back(e);
      }
      lastLayer_ = layer;
    }
  } else if (ended && active_) {
    out.push_back({TriggerEvent::Kind::Finish, filename_, s.state, now});
    active_ = false;
    paused_ = false;
  }
  return out;
}

std::vector<TriggerEvent> TimelapseTrigger::onTick(SteadyClock::time_point now) {
  std::vector<TriggerEvent> out;
  if (mode_ != TimelapseMode::Hyperlapse || !active_ || paused_ || now < nextCapture_) return out;
  out.push_back({TriggerEvent::Kind::Capture, filename_, "", now});
  nextCapture_ += interval_;
  if (nextCapture_ <= now) nextCapture_ = now + interval_;  // fell behind: no burst
  return out;
}

std::optional<SteadyClock::time_point> TimelapseTrigger::nextTick() const {
  if (mode_ != TimelapseMode::Hyperlapse || !active_ || paused_) return std::nullopt;
  return nextCapture_;
}

// ----------------------------------------------------------------------------- recorder

TimelapseRecorder::TimelapseRecorder(RecorderConfig config, SnapshotSource snapshot)
    : config_(std::move(config)),
      snapshot_(std::move(snapshot)),
      trigger_(config_.mode, config_.interval, config_.delay) {}

TimelapseRecorder::~TimelapseRecorder() { stop(); }

void TimelapseRecorder::start() {
  {
    std::lock_guard lock(mutex_);
    if (running_) return;
    running_ = true;
    cancelAssembly_ = false;
    failed_.clear();
    statusSeen_ = false;
    auto folder = config_.recordingFolder();
    if (!folder) lastError_ = "no folder for timelapses: " + folder.error().describe();
    const fs::path out = folder ? *folder : fs::path();
    // An assembly cut short by a crash leaves the MP4 writer's temps ("<video>.mp4.part",
    // "<video>.mp4.mdat.part"); its frames are still there and assemble again below.
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(out.empty() ? fs::path("/nonexistent") : out, ec)) {
      const std::string n = e.path().filename().string();
      if (n.ends_with(".part") && n.find(".mp4.") != std::string::npos && e.is_regular_file(ec)) {
        spdlog::info("timelapse: removing {} (an assembly interrupted by a crash)", e.path().string());
        fs::remove(e.path(), ec);
      }
    }
    orphans_ = out.empty() ? std::vector<fs::path>{} : listFrameFolders(out);
    orphanDeadline_ = SteadyClock::now() + config_.orphanWait;
    for (const auto& left : orphans_) spdlog::info("timelapse: frames left in {}", left.string());
  }
  captureThread_ = std::thread([this] {
    hal::nameThisThread("tl capture");
    captureLoop();
  });
  assemblyThread_ = std::thread([this] {
    hal::nameThisThread("tl assembly");
    assemblyLoop();
  });
}

void TimelapseRecorder::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!running_) return;
    running_ = false;
    cancelAssembly_ = true;
  }
  wake_.notify_all();
  if (captureThread_.joinable()) captureThread_.join();
  if (assemblyThread_.joinable()) assemblyThread_.join();
}

void TimelapseRecorder::releaseOrphans() {
  for (auto& folder : orphans_) {
    spdlog::info("timelapse: assembling the frames left in {}", folder.string());
    jobs_.push_back(std::move(folder));
  }
  orphans_.clear();
  wake_.notify_all();
}

namespace {

// The print file a working folder records (its print.json), "" when unreadable.
std::string recordedFilename(const fs::path& folder) {
  std::ifstream in(folder / "print.json");
  const auto j = nlohmann::json::parse(in, nullptr, false);
  return j.is_object() ? j.value("filename", std::string()) : std::string();
}

// The highest frame number in a working folder.
uint64_t lastFrameIndex(const fs::path& folder) {
  uint64_t last = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(folder, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() == 15 && n.rfind("frame", 0) == 0 && n.ends_with(".jpg")) {
      last = std::max<uint64_t>(last, std::strtoull(n.c_str() + 5, nullptr, 10));
    }
  }
  return last;
}

}  // namespace

void TimelapseRecorder::onStatus(const PrintStatus& status) {
  {
    std::lock_guard lock(mutex_);
    if (!status.state.empty()) statusSeen_ = true;
    for (auto& e : trigger_.onStatus(status, SteadyClock::now())) events_.push_back(std::move(e));
  }
  wake_.notify_all();
}

void TimelapseRecorder::submit(TriggerEvent event) {
  if (event.at == SteadyClock::time_point{}) event.at = SteadyClock::now();
  {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  wake_.notify_all();
}

void TimelapseRecorder::setError(const std::string& error) {
  spdlog::error("timelapse: {}", error);
  std::lock_guard lock(mutex_);
  lastError_ = error;
}

bool TimelapseRecorder::wakeCapture() const {
  return !running_ || !events_.empty() || (!orphans_.empty() && statusSeen_);
}

void TimelapseRecorder::captureLoop() {
  std::unique_lock lock(mutex_);
  while (running_) {
    for (auto& e : trigger_.onTick(SteadyClock::now())) events_.push_back(std::move(e));
    // Once Moonraker said what is printing (and a running print took its folder back), or
    // after orphanWait without a word, the remaining folders go to assembly.
    if (!orphans_.empty() && events_.empty() && (statusSeen_ || SteadyClock::now() >= orphanDeadline_)) {
      releaseOrphans();
    }
    if (events_.empty()) {
      auto tick = trigger_.nextTick();
      if (!orphans_.empty()) tick = tick ? std::min(*tick, orphanDeadline_) : orphanDeadline_;
      if (tick) {
        wake_.wait_until(lock, *tick, [this] { return wakeCapture(); });
      } else {
        wake_.wait(lock, [this] { return wakeCapture(); });
      }
      continue;
    }
    TriggerEvent e = std::move(events_.front());
    events_.pop_front();
    if (e.kind == TriggerEvent::Kind::Capture && e.at > SteadyClock::now()) {
      // The stream delay: wait for the camera to show the new layer (or for stop()).
      if (wake_.wait_until(lock, e.at, [this] { return !running_; })) break;
    }
    lock.unlock();
    handle(e);
    lock.lock();
  }
}

void TimelapseRecorder::handle(const TriggerEvent& e) {
  switch (e.kind) {
    case TriggerEvent::Kind::Start: {
      const std::string name = gcodeBaseName(e.filename);
      // The print a crash (or a restart) interrupted is still running: continue its folder.
      std::optional<fs::path> adopted;
      {
        std::lock_guard lock(mutex_);
        for (auto it = orphans_.begin(); it != orphans_.end(); ++it) {
          if (!e.filename.empty() && recordedFilename(*it) == e.filename) {
            adopted = *it;
            orphans_.erase(it);
            break;
          }
        }
      }
      hal::Result<fs::path> folder = hal::Result<fs::path>(fs::path());
      if (adopted) {
        folder = *adopted;
      } else if (auto out = config_.recordingFolder(); out) {
        folder = createFrameFolder(*out, name, e.filename);
      } else {
        folder = out.error();
      }
      const uint64_t resumeAt = adopted ? lastFrameIndex(*adopted) : 0;
      if (adopted)
        spdlog::info("timelapse: {} is still printing: continuing {}", e.filename, adopted->string());
      std::lock_guard lock(mutex_);
      gcodeName_ = name;
      filename_ = e.filename;
      frames_ = resumeAt;
      captureFailures_ = 0;
      lastLayer_ = -1;
      if (folder) {
        folder_ = *folder;
        spdlog::info("timelapse: recording {} into {}", e.filename, folder_.string());
      } else {
        folder_.clear();
        lastError_ = "cannot start recording " + e.filename + ": " + folder.error().describe();
        spdlog::error("timelapse: {}", lastError_);
      }
      return;
    }
    case TriggerEvent::Kind::Capture: {
      fs::path folder;
      uint64_t index = 0;
      {
        std::lock_guard lock(mutex_);
        folder = folder_;
        index = frames_ + 1;
      }
      if (folder.empty()) return;  // the recording could not start (error already reported)
      auto jpeg = snapshot_(config_.snapshotTimeout);
      if (!jpeg) {
        {
          std::lock_guard lock(mutex_);
          ++captureFailures_;
        }
        setError(fmt::format("no frame for {} (layer {}): {}", gcodeName_, e.layer, jpeg.error().describe()));
        return;
      }
      const auto& data = (*jpeg)->data;
      if (auto st = writeFileAtomically(folder / frameFileName(index), data); !st) {
        {
          std::lock_guard lock(mutex_);
          ++captureFailures_;
        }
        setError("frame not stored (frames so far are kept): " + st.error().describe());
        return;
      }
      std::lock_guard lock(mutex_);
      frames_ = index;
      lastLayer_ = e.layer;
      return;
    }
    case TriggerEvent::Kind::Finish: {
      std::lock_guard lock(mutex_);
      if (folder_.empty()) return;
      spdlog::info("timelapse: print {} ended ({}), {} frames; assembling", filename_, e.reason, frames_);
      jobs_.push_back(folder_);
      folder_.clear();
      wake_.notify_all();
      return;
    }
  }
}

void TimelapseRecorder::assemblyLoop() {
  if (config_.lowPriority) {
    // This thread only: SCHED_IDLE runs it when nothing else wants the CPU (the camera and the
    // streams come first); nice 19 where SCHED_IDLE is refused.
    sched_param param{};
    param.sched_priority = 0;
    std::string applied = "SCHED_IDLE";
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) != 0) {
      applied =
          setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 19) == 0 ? "nice 19" : "normal";
    }
    std::lock_guard lock(mutex_);
    priority_ = applied;
  }
  std::unique_lock lock(mutex_);
  while (running_) {
    if (jobs_.empty()) {
      wake_.wait(lock, [this] { return !running_ || !jobs_.empty(); });
      continue;
    }
    const fs::path folder = jobs_.front();
    jobs_.pop_front();
    if (failed_.count(folder) != 0) continue;
    assembling_ = folder;
    progress_.framesDone = 0;
    progress_.framesTotal = 0;
    lock.unlock();
    const auto started = SteadyClock::now();
    // <output>/.frames/<print>/ -> the video goes to <output>.
    const fs::path outputDir = folder.parent_path().parent_path();
    auto result = assembleFrames(folder, outputDir, config_.assembly, &progress_, &cancelAssembly_);
    const double seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();
    lock.lock();
    assembling_.clear();
    if (result) {
      ++videos_;
      lastVideo_ = result->video.filename().string();
      lastThumbnail_ = result->thumbnail.filename().string();
      spdlog::info("timelapse: {} ({} frames, {} fps, {} skipped) in {:.1f} s", result->video.string(),
                   result->videoFrames, result->fps, result->framesSkipped, seconds);
    } else if (result.code() == hal::Errc::Timeout) {
      spdlog::info("timelapse: assembly of {} stopped; its frames are kept", folder.string());
    } else {
      ++assemblyFailures_;
      failed_.insert(folder);
      lastError_ = "assembly of " + folder.filename().string() + ": " + result.error().describe();
      spdlog::error("timelapse: {}", lastError_);
    }
  }
}

uint64_t TimelapseRecorder::videosMade() const {
  std::lock_guard lock(mutex_);
  return videos_;
}

uint64_t TimelapseRecorder::framesCaptured() const {
  std::lock_guard lock(mutex_);
  return frames_;
}

nlohmann::json TimelapseRecorder::status() const {
  const auto outputDir = config_.recordingFolder();  // outside the lock: the store may touch the disk
  std::lock_guard lock(mutex_);
  const uint64_t done = progress_.framesDone.load();
  const uint64_t total = progress_.framesTotal.load();
  return {
      {"mode", config_.mode == TimelapseMode::Layer ? "layer" : "hyperlapse"},
      {"output_dir", outputDir ? outputDir->string() : std::string()},
      {"recording",
       {{"state", folder_.empty() ? "idle" : "recording"},
        {"filename", filename_},
        {"gcode_name", gcodeName_},
        {"frames_captured", frames_},
        {"capture_failures", captureFailures_},
        {"layer", lastLayer_},
        {"folder", folder_.string()}}},
      {"assembly",
       {{"state", assembling_.empty() ? "idle" : "assembling"},
        {"folder", assembling_.string()},
        {"frames_done", done},
        {"frames_total", total},
        {"progress", total == 0 ? 0.0 : static_cast<double>(done) / static_cast<double>(total)},
        {"queued", jobs_.size()},
        {"waiting_for_moonraker", orphans_.size()},
        {"priority", priority_},
        {"videos_made", videos_},
        {"failures", assemblyFailures_},
        {"last_video", lastVideo_},
        {"last_thumbnail", lastThumbnail_}}},
      {"last_error", lastError_},
  };
}

}  // namespace printcast::streamer
