// SPDX-License-Identifier: MIT
// LiveSettings: the settings the control API changes while the streamer runs (POST
// /api/settings), read by the camera pipeline's and the printer screen's threads without a lock.
#pragma once

#include <atomic>

#include "settings.h"

namespace printcast::streamer {

// Each field is one atomic: a thread reads the value in force at that moment. Written by the
// control API's settings handler (under the streamer's settings lock); read by any thread.
struct LiveSettings {
  explicit LiveSettings(const Settings& s)
      : h264Enabled(s.h264Enabled),
        bitrateKbps(s.bitrateKbps),
        frameSkip(skipIntervalForPercent(s.h264FrameratePercent)),
        autoSkip(s.autoSkip),
        targetCpu(s.targetCpu),
        jpegQuality(s.jpegQuality),
        mjpegFps(s.mjpegFps),
        displayEnabled(s.displayEnabled),
        displayFps(s.displayFps) {}

  std::atomic<bool> h264Enabled{true};
  std::atomic<int> bitrateKbps{512};  // kbit/s
  std::atomic<int> frameSkip{1};      // the frame-rate slider's skip interval (encode every Nth frame)
  std::atomic<bool> autoSkip{false};
  std::atomic<int> targetCpu{60};  // percent of all cores
  std::atomic<int> jpegQuality{80};
  std::atomic<int> mjpegFps{10};
  std::atomic<bool> displayEnabled{true};
  std::atomic<int> displayFps{5};
  std::atomic<bool> reconfigureCamera{false};   // camera thread: re-apply bitrate/JPEG quality
  std::atomic<bool> reconfigureDisplay{false};  // display thread: re-apply JPEG quality
};

}  // namespace printcast::streamer
