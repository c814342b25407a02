// SPDX-License-Identifier: MIT
// Probe: which H.264/JPEG encoders this build has and whether each opens and encodes a frame.
#include <cstring>

#include <fmt/format.h>

#include "printcast/codecs/jpeg.h"
#include "printcast/codecs/x264_encoder.h"
#include "printcast/hal/display_open.h"
#include "probe.h"

namespace printcast::probe {

namespace {

// Configure `encoder` for 640x480 and encode one grey I420 frame.
nlohmann::json tryEncoder(hal::Encoder& encoder, std::string& error) {
  const hal::Size size{640, 480};
  if (auto st = encoder.configure(hal::EncoderConfig{.size = size, .fps = 10}); !st) {
    error = st.error().describe();
    return {{"status", "fail"}, {"error", error}};
  }
  auto pool = hal::FramePool::create(hal::fourcc::kI420, size, 1);
  if (!pool) {
    error = pool.error().describe();
    return {{"status", "fail"}, {"error", error}};
  }
  auto buffer = (*pool)->acquire();
  if (!buffer) {
    error = buffer.error().describe();
    return {{"status", "fail"}, {"error", error}};
  }
  for (int p = 0; p < 3; ++p) {
    const int rows = p == 0 ? size.height : size.height / 2;
    std::memset(buffer->data(p), 128, static_cast<size_t>(buffer->stride(p)) * rows);
  }
  const auto frame = std::move(*buffer).publish(hal::Clock::now(), 0);
  auto packet = encoder.encode(frame);
  if (!packet) {
    error = packet.error().describe();
    return {{"status", "fail"}, {"error", error}};
  }
  return {{"status", "pass"},
          {"name", encoder.info().name},
          {"bytes", (*packet)->data.size()},
          {"keyframe", (*packet)->keyframe}};
}

}  // namespace

Report probeEncoders(const Options& /*options*/) {
  Report report;
  std::string error;
  auto x264 = codecs::createX264Encoder();
  report.details["x264"] = tryEncoder(*x264, error);
  if (!error.empty()) report.fail("encoder x264: " + error);
  error.clear();
  auto jpeg = codecs::createJpegEncoder();
  report.details["jpeg"] = tryEncoder(*jpeg, error);
  if (!error.empty()) report.fail("encoder turbojpeg: " + error);
  // Hardware encoders have no backend yet: say so, and what the machine offers for them.
  report.details["vaapi"] = {{"status", "not-built"},
                             {"renderNodes", hal::listNumberedNodes("/dev/dri", "renderD")}};
  report.details["v4l2m2m"] = {{"status", "not-built"},
                               {"videoNodes", hal::listNumberedNodes("/dev", "video")}};
  return report;
}

}  // namespace printcast::probe
