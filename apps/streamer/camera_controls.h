// SPDX-License-Identifier: MIT
// Camera control persistence: V4L2 control values saved per camera (by stable name) in a JSON file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "printcast/hal/result.h"
#include "printcast/hal/v4l2.h"

namespace printcast::streamer {

// The file maps a camera's stable name (hal::V4l2DeviceInfo::stableName: its /dev/v4l/by-id link,
// or "bus:<bus_info>") to the controls the user set, by V4L2 control name:
//   {"/dev/v4l/by-id/usb-046d_C920-video-index0": {"Brightness": {"id": 9963776, "value": 140}}}
// Values are re-applied by id (V4L2_CID_* are kernel ABI) each time the camera is opened, so a
// replugged camera comes back as the user left it. An empty path keeps everything in memory.
// Threading: every method may be called from any thread (one mutex).
class CameraControlStore {
 public:
  explicit CameraControlStore(std::filesystem::path path) : path_(std::move(path)) {}

  // Read the file. A missing file is an empty store. Errors: InvalidArgument (not a JSON object),
  // Io (unreadable). On error the store starts empty.
  hal::Status load();

  // Apply the saved values for `stableName` to `camera`. Returns one message per value the camera
  // refused (e.g. out of range after a firmware change); those are kept in the file.
  std::vector<std::string> apply(const std::string& stableName, hal::V4l2Camera& camera) const;

  // Set a control on the camera and, when that worked, remember it and write the file
  // (atomically: a temporary file renamed over it). Errors: the camera's, or Io writing the file.
  hal::Status set(const std::string& stableName, hal::V4l2Camera& camera, const hal::V4l2Control& control,
                  int64_t value);

  // The saved values of one camera (for /api/camera/controls).
  nlohmann::json saved(const std::string& stableName) const;

 private:
  hal::Status save() const;  // mutex held

  std::filesystem::path path_;
  mutable std::mutex mutex_;
  nlohmann::json data_ = nlohmann::json::object();
};

// A control as JSON for the control API: id, name, type, range, default, value, flags, menu.
nlohmann::json controlToJson(const hal::V4l2Control& control);

}  // namespace printcast::streamer
