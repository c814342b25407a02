// SPDX-License-Identifier: MIT
// Timelapse recording: when to take a frame (layer changes or a fixed period, from Moonraker's
// print status), storing the frames on persistent storage, and assembling them into a video in
// the background when the print ends (complete, cancelled or error: a partial video is kept).
// Folder layout and names: timelapse_assembly.h.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "moonraker_client.h"
#include "printcast/hal/packet.h"
#include "printcast/hal/result.h"
#include "timelapse_assembly.h"

namespace printcast::streamer {

enum class TimelapseMode { Layer, Hyperlapse };

struct TriggerEvent {
  enum class Kind {
    Start,    // a print began: `filename`
    Capture,  // take a frame at `at` (layer mode: the layer change + the stream delay)
    Finish,   // the print ended: `reason` is the print_stats state (complete, cancelled, error,
              // standby) or "new print" when another file started without an end state seen
  };
  Kind kind = Kind::Capture;
  std::string filename;
  std::string reason;
  std::chrono::steady_clock::time_point at{};
  int layer = -1;  // layer mode: the layer the frame shows
};

// The layer/hyperlapse state machine. Pure: time comes in as arguments.
// Layer mode: a frame each time the current layer (virtual_sdcard.current_layer, else
// print_stats.info.current_layer) changes to a value >= 1 while printing, `delay` after the
// change (the camera stream lags the printer). Hyperlapse: a frame when printing starts and
// every `interval` while printing (not while paused). A print starts at state printing (or
// paused) and ends at complete, cancelled, error or standby; an unknown state ("") changes
// nothing (Moonraker or Klippy restarting), so a print followed across a Moonraker restart
// continues in the same recording.
class TimelapseTrigger {
 public:
  TimelapseTrigger(TimelapseMode mode, std::chrono::milliseconds interval, std::chrono::milliseconds delay)
      : mode_(mode), interval_(interval), delay_(delay) {}
  std::vector<TriggerEvent> onStatus(const PrintStatus& status, std::chrono::steady_clock::time_point now);
  // Hyperlapse captures that are due at `now`.
  std::vector<TriggerEvent> onTick(std::chrono::steady_clock::time_point now);
  // When onTick() next has something to do (hyperlapse while printing).
  std::optional<std::chrono::steady_clock::time_point> nextTick() const;
  bool active() const { return active_; }

 private:
  TimelapseMode mode_;
  std::chrono::milliseconds interval_;
  std::chrono::milliseconds delay_;
  bool active_ = false;
  bool paused_ = false;
  std::string filename_;
  std::optional<int> lastLayer_;
  std::chrono::steady_clock::time_point nextCapture_{};
};

struct RecorderConfig {
  TimelapseMode mode = TimelapseMode::Layer;
  std::chrono::milliseconds interval{30000};
  std::chrono::milliseconds delay{50};
  std::chrono::milliseconds snapshotTimeout{3000};
  // Where videos go: asked at the start of each print (the storage may change between prints);
  // the print's frames live under <that folder>/.frames/ and its video goes beside them.
  // Working folders left by a crash are looked for in recordingFolder() at start().
  // Errors (reported in last_error; nothing is recorded for that print): whatever the store says.
  std::function<hal::Result<std::filesystem::path>()> recordingFolder;
  AssemblyOptions assembly;
  // Run assembly at the lowest CPU priority (SCHED_IDLE and nice 19 for that thread).
  bool lowPriority = true;
  // Working folders found at start wait this long for Moonraker's first known print state: a
  // print still running (same file) continues in its folder; the others are assembled.
  std::chrono::milliseconds orphanWait{30000};
};

// A fresh JPEG from the camera, waiting at most `timeout`. Errors: Timeout, or why there is none.
using SnapshotSource = std::function<hal::Result<hal::PacketPtr>(std::chrono::milliseconds timeout)>;

// Threads: a capture worker (waits for due captures, asks the snapshot source, writes frames)
// and an assembler (one print at a time, low priority). onStatus() and status() are
// thread-safe; start()/stop() from one thread.
class TimelapseRecorder {
 public:
  TimelapseRecorder(RecorderConfig config, SnapshotSource snapshot);
  ~TimelapseRecorder();
  TimelapseRecorder(const TimelapseRecorder&) = delete;
  TimelapseRecorder& operator=(const TimelapseRecorder&) = delete;

  // Start the threads. Working folders left by a crash (or a stop mid-print) are assembled, except
  // the one whose print Moonraker still reports as printing: that recording continues in it.
  void start();
  // Stop: a capture in progress ends, a recording in progress keeps its folder (assembled at the
  // next start), an assembly in progress is abandoned with its frames kept. Idempotent.
  void stop();

  void onStatus(const PrintStatus& status);
  // An event from another print follower than Moonraker (Anycubic's native timelapse requests,
  // anycubic_timelapse.h): queued for the capture thread like the ones onStatus() derives; a
  // Capture with `at` unset is taken at once. Thread-safe; never blocks on I/O.
  void submit(TriggerEvent event);

  // {"state","mode","output_dir","recording":{...},"assembly":{...},"last_error"}: see
  // docs/timelapse.md.
  nlohmann::json status() const;

  uint64_t videosMade() const;
  uint64_t framesCaptured() const;  // frames stored for the current (or last) print

 private:
  void captureLoop();
  void assemblyLoop();
  void handle(const TriggerEvent& event);
  void setError(const std::string& error);

  RecorderConfig config_;
  SnapshotSource snapshot_;
  TimelapseTrigger trigger_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool running_ = false;
  std::deque<TriggerEvent> events_;
  // Recording (capture thread; read by status() under mutex_).
  std::filesystem::path folder_;
  std::string gcodeName_, filename_;
  uint64_t frames_ = 0;
  uint64_t captureFailures_ = 0;
  int lastLayer_ = -1;
  // Working folders found at start, until the first known print state (or orphanWait).
  std::vector<std::filesystem::path> orphans_;
  bool statusSeen_ = false;
  std::chrono::steady_clock::time_point orphanDeadline_{};
  void releaseOrphans();     // mutex_ held
  bool wakeCapture() const;  // mutex_ held
  // Assembly.
  std::deque<std::filesystem::path> jobs_;
  std::filesystem::path assembling_;
  AssemblyProgress progress_;
  std::atomic<bool> cancelAssembly_{false};
  uint64_t videos_ = 0;
  uint64_t assemblyFailures_ = 0;
  std::string lastVideo_, lastThumbnail_, lastError_;
  std::string priority_ = "normal";         // what the assembly thread runs at: SCHED_IDLE, nice 19, normal
  std::set<std::filesystem::path> failed_;  // not retried until the next start
  std::thread captureThread_, assemblyThread_;
};

}  // namespace printcast::streamer
