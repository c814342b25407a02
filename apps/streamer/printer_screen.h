// SPDX-License-Identifier: MIT
// PrinterScreen: the printer's own screen as streams, and its touch panel. The display is grabbed
// only while someone watches: JPEGs for /display (MJPEG) and /display/snapshot, H.264 (x264) for
// rtsp://HOST:8554/display; taps from the control API go to the panel on a worker thread.
// Knows nothing of HTTP routes: the streamer's route tables hand it requests (docs/architecture.md).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "live_settings.h"
#include "printcast/bsp/board.h"
#include "printcast/hal/display_capture.h"
#include "printcast/hal/encoder.h"
#include "printcast/hal/touch_injector.h"
#include "printcast/transport/mjpeg.h"
#include "printcast/transport/rtsp_server.h"
#include "rate_meter.h"
#include "settings.h"
#include "snapshot_board.h"

namespace printcast::streamer {

// Threads: a display thread (started by start(); it sleeps while nobody watches) and, when there is
// a touch panel, a touch worker. Every other call may come from any thread. The board and `live`
// must outlive the object.
class PrinterScreen {
 public:
  // Opens the board's display and touch panel (bsp::openScreen, with settings.displayNode and
  // touchName) when settings.displayEnabled. A screen or panel that is not there is not an error:
  // hasDisplay()/hasTouch() say false and displayError()/touchError() why.
  // Errors: InvalidArgument/Io from configuring the display's JPEG encoder or its picture pool.
  static hal::Result<std::unique_ptr<PrinterScreen>> open(const Settings& settings, const bsp::Board& board,
                                                          LiveSettings& live);
  ~PrinterScreen();
  PrinterScreen(const PrinterScreen&) = delete;
  PrinterScreen& operator=(const PrinterScreen&) = delete;

  // Start the display thread and the touch worker. Once.
  void start();
  // Join the threads (taps already queued are still injected first), answer snapshot waiters with
  // 503 and `reason`, end the /display MJPEG clients. The RTSP stream is left to its server's
  // owner (close it after the server stops). Idempotent.
  void stop(const std::string& reason);

  bool hasDisplay() const { return display_ != nullptr; }
  bool hasTouch() const { return touch_ != nullptr; }
  const std::string& displayError() const { return displayError_; }
  const std::string& touchError() const { return touchError_; }
  // The display's picture as viewers see it (the board's orientation applied), in pixels; empty
  // without a display. A generic board knows the size only from the opened device.
  hal::Size uprightSize() const;

  // /display: a client joined (it gets the current picture at once, not only at the next change).
  transport::MjpegStream& stream() { return stream_; }
  void onStreamClient();
  // /display/snapshot: always a fresh grab (the screen may just have been touched).
  SnapshotBoard& snapshots() { return snapshots_; }
  // rtsp://HOST:8554/display, encoded only while it has clients.
  transport::RtspStream& rtspStream() { return rtspStream_; }
  // Wake the display thread for a grab now (a new waiter or client, display_fps / display_enabled
  // changed, a touch), without waiting for the rest of its display_fps interval.
  void wake();
  // Snapshot waiters older than 3 s get 503 (housekeeping, every 500 ms).
  void expireWaiters();

  const RateMeter& rate() const { return rate_; }  // JPEGs sent to /display
  uint64_t touches() const { return touches_.load(); }

  // Tap the panel at (x, y) of the upright picture for `hold` (1..5000 ms): mapped through the
  // board's touch transform to the panel's range, queued for the touch worker, which calls
  // `done` with the injector's result once the tap is in (or with Unsupported "streamer is
  // stopping" when the worker has gone). Errors (nothing queued, `done` not called):
  // Unsupported (no touch panel, or no display size to map from: the message says which),
  // InvalidArgument (the point is outside the picture), Busy (8 taps already wait).
  hal::Status tap(double x, double y, std::chrono::milliseconds hold,
                  std::function<void(const hal::Status&)> done);

 private:
  PrinterScreen(const Settings& settings, const bsp::Board& board, LiveSettings& live);
  struct TouchJob {
    hal::Point panelPos;
    std::chrono::milliseconds hold{100};
    std::function<void(const hal::Status&)> done;
  };
  bool watched() const;
  void displayLoop();
  void encodeH264(bool changed, hal::Timestamp now, const std::function<hal::Result<hal::Frame>()>& upright);
  void releaseIdleH264();
  void touchLoop();

  const bsp::Board& board_;
  LiveSettings& live_;
  std::unique_ptr<hal::DisplayCapture> display_;
  std::unique_ptr<hal::TouchInjector> touch_;
  std::string displayError_, touchError_;
  std::unique_ptr<hal::Encoder> jpeg_;
  std::shared_ptr<hal::FramePool> uprightPool_;
  // rtsp://HOST:8554/display: x264 (a small picture at a low rate; the board's hardware encoder
  // stays the camera's), encoded only while an RTSP client plays it, at most at display_fps and
  // at least once a second when the screen does not change (MediaMTX drops a source after 10 s
  // without packets, go2rtc after 5 s). Display thread, except keyframeWanted_.
  std::unique_ptr<hal::Encoder> h264_;
  bool h264Open_ = false;
  hal::Timestamp h264LastFrame_{};
  hal::Timestamp h264LastWanted_{};
  uint64_t h264Frames_ = 0;
  std::atomic<bool> keyframeWanted_{false};
  transport::MjpegStream stream_;
  SnapshotBoard snapshots_;
  transport::RtspStream rtspStream_;
  RateMeter rate_;
  std::atomic<bool> newClient_{false};
  std::atomic<bool> running_{false};
  std::mutex mutex_;  // with wake_: the display thread's sleep
  std::condition_variable wake_;
  bool wakeRequested_ = false;  // wake() since the display thread last slept (mutex_)
  // After a touch the display is grabbed at the board's maximum rate until then (Clock ticks):
  // the screen's reaction shows as soon as it is drawn, not up to 1/display_fps later.
  std::atomic<hal::Timestamp::rep> followTouchUntil_{0};
  void followTouch();
  std::thread displayThread_;

  std::mutex touchMutex_;
  std::condition_variable touchWake_;
  std::deque<TouchJob> touchJobs_;
  bool closed_ = false;  // stop() ran: no more taps (touchMutex_)
  std::atomic<uint64_t> touches_{0};
  std::thread touchThread_;
};

}  // namespace printcast::streamer
