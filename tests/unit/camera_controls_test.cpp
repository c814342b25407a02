// SPDX-License-Identifier: MIT
// Streamer camera-control persistence: values saved per stable name, re-applied on open.
#include "camera_controls.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace {

namespace fs = std::filesystem;
using printcast::hal::CaptureConfig;
using printcast::hal::Errc;
using printcast::hal::Result;
using printcast::hal::Status;
using printcast::hal::V4l2Control;
using printcast::hal::V4l2DeviceInfo;
using printcast::streamer::CameraControlStore;

// The persistence layer under test only needs somewhere to set values: a table of controls
// with range checks (the V4L2 backend's own control code is tested against a fake kernel in
// capture_v4l2_test.cpp).
class TableCamera final : public printcast::hal::V4l2Camera {
 public:
  std::map<uint32_t, int64_t> values;
  int64_t max = 255;
  const V4l2DeviceInfo& device() const override { return info_; }
  CaptureConfig activeConfig() const override { return {}; }
  Result<std::vector<V4l2Control>> listControls() override { return std::vector<V4l2Control>{}; }
  Result<int64_t> getControl(uint32_t id) override { return values.at(id); }
  Status setControl(uint32_t id, int64_t value) override {
    if (value > max) return Status(Errc::InvalidArgument, "out of range");
    values[id] = value;
    return {};
  }

 private:
  V4l2DeviceInfo info_;
};

V4l2Control brightness() {
  V4l2Control c;
  c.id = 0x00980900;
  c.name = "Brightness";
  c.type = V4l2Control::Type::Integer;
  return c;
}

class CameraControlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = fs::temp_directory_path() / ("printcast-controls-" + std::to_string(::getpid()) + ".json");
    fs::remove(path_);
  }
  void TearDown() override { fs::remove(path_); }
  fs::path path_;
};

TEST_F(CameraControlsTest, SavedPerCameraAndReappliedAfterReload) {
  TableCamera cam;
  {
    CameraControlStore store(path_);
    ASSERT_TRUE(store.load().ok());  // no file yet: empty
    ASSERT_TRUE(store.set("/dev/v4l/by-id/usb-A-video-index0", cam, brightness(), 140).ok());
    EXPECT_EQ(cam.values[0x00980900], 140);
  }
  CameraControlStore reloaded(path_);
  ASSERT_TRUE(reloaded.load().ok());
  TableCamera replugged;
  EXPECT_TRUE(reloaded.apply("/dev/v4l/by-id/usb-A-video-index0", replugged).empty());
  EXPECT_EQ(replugged.values[0x00980900], 140);
  TableCamera other;
  EXPECT_TRUE(reloaded.apply("bus:usb-0000:00:14.0-3", other).empty());
  EXPECT_TRUE(other.values.empty()) << "another camera keeps its own settings";
}

TEST_F(CameraControlsTest, RefusedValuesAreReportedAndNotSaved) {
  TableCamera cam;
  CameraControlStore store(path_);
  auto st = store.set("cam", cam, brightness(), 999);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Errc::InvalidArgument);
  EXPECT_TRUE(store.saved("cam").empty());
  ASSERT_TRUE(store.set("cam", cam, brightness(), 200).ok());
  TableCamera smaller;
  smaller.max = 100;  // e.g. after a firmware change
  const auto refused = store.apply("cam", smaller);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_NE(refused[0].find("Brightness"), std::string::npos);
}

TEST_F(CameraControlsTest, CorruptFileStartsEmpty) {
  { std::ofstream(path_) << "not json"; }
  CameraControlStore store(path_);
  auto st = store.load();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Errc::InvalidArgument);
  TableCamera cam;
  EXPECT_TRUE(store.apply("cam", cam).empty());
}

}  // namespace
