// SPDX-License-Identifier: MIT
// Probe: V4L2 cameras (formats, sizes, rates, controls) and, with --test, a timed capture.
#include <poll.h>

#include <fmt/format.h>

#include "printcast/hal/v4l2.h"
#include "probe.h"

namespace printcast::probe {

namespace {

nlohmann::json describeDevice(const hal::V4l2DeviceInfo& dev) {
  nlohmann::json formats = nlohmann::json::array();
  for (const auto& f : dev.formats) {
    nlohmann::json sizes = nlohmann::json::array();
    for (const auto& s : f.sizes) {
      nlohmann::json size = {{"min", s.min.str()}, {"max", s.max.str()}};
      if (s.min == s.max) size = {{"size", s.min.str()}};
      if (!s.fps.empty()) size["fps"] = s.fps;
      if (s.fpsMax > 0) size["fpsRange"] = {s.fpsMin, s.fpsMax};
      sizes.push_back(size);
    }
    formats.push_back({{"fourcc", f.format.str()},
                       {"description", f.description},
                       {"compressed", f.compressed},
                       {"sizes", sizes}});
  }
  return {{"path", dev.path},
          {"card", dev.card},
          {"driver", dev.driver},
          {"busInfo", dev.busInfo},
          {"byId", dev.byIdLinks},
          {"byPath", dev.byPathLinks},
          {"stableName", dev.stableName},
          {"formats", formats}};
}

// Bytes a raw frame must have, from its planes (stride * rows); 0 when not checkable.
size_t expectedBytes(const hal::Frame& frame) {
  const auto size = frame.size();
  if (frame.format() == hal::fourcc::kYUYV) return static_cast<size_t>(frame.plane(0).stride) * size.height;
  if (frame.format() == hal::fourcc::kNV12 || frame.format() == hal::fourcc::kI420) {
    return static_cast<size_t>(frame.plane(0).stride) * size.height * 3 / 2;
  }
  return 0;
}

bool looksValid(const hal::Frame& frame, const hal::CaptureConfig& config, std::string& why) {
  if (frame.format() != config.format || frame.size() != config.size) {
    why = fmt::format("frame is {} {}, asked {} {}", frame.format().str(), frame.size().str(),
                      config.format.str(), config.size.str());
    return false;
  }
  if (frame.format() == hal::fourcc::kMJPEG) {
    const auto& p = frame.plane(0);
    const bool ok = frame.bytesUsed() > 4 && p.data[0] == 0xFF && p.data[1] == 0xD8;
    if (!ok) why = "MJPEG frame does not start with a JPEG SOI marker";
    return ok;
  }
  const size_t expected = expectedBytes(frame);
  if (expected != 0 && frame.bytesUsed() < expected) {
    why = fmt::format("{} bytes, expected {}", frame.bytesUsed(), expected);
    return false;
  }
  return true;
}

void testCapture(const Options& options, const hal::V4l2DeviceInfo& dev, Report& report) {
  nlohmann::json test;
  auto cam = hal::createV4l2Capture(dev.path);
  if (!cam) return report.fail(fmt::format("camera {}: open: {}", dev.path, cam.error().describe()));
  hal::CaptureConfig config;
  config.format = hal::FourCC::make(options.cameraFormat[0], options.cameraFormat[1], options.cameraFormat[2],
                                    options.cameraFormat[3]);
  config.size = options.cameraSize;
  config.fps = options.cameraFps;
  const auto negotiation = (*cam)->validate(config);
  test["asked"] = {
      {"format", options.cameraFormat}, {"size", options.cameraSize.str()}, {"fps", options.cameraFps}};
  test["negotiated"] = {{"format", config.format.str()},
                        {"size", config.size.str()},
                        {"fps", config.fps},
                        {"result", negotiation == hal::Negotiation::Valid      ? "valid"
                                   : negotiation == hal::Negotiation::Adjusted ? "adjusted"
                                                                               : "invalid"}};
  if (negotiation == hal::Negotiation::Invalid) {
    report.details["test"] = test;
    return report.fail(fmt::format("camera {}: unsupported format {} {}", dev.path, options.cameraFormat,
                                   options.cameraSize.str()));
  }
  if (auto st = (*cam)->start(config); !st) {
    report.details["test"] = test;
    return report.fail(fmt::format("camera {}: start: {}", dev.path, st.error().describe()));
  }
  if (auto* v4l2 = hal::v4l2CameraOf(**cam))
    test["active"] = {{"fps", v4l2->activeConfig().fps}, {"buffers", v4l2->activeConfig().bufferCount}};
  int got = 0, invalid = 0;
  std::string firstProblem;
  hal::Timestamp first{}, last{};
  uint64_t firstSeq = 0, lastSeq = 0;
  const auto deadline = hal::Clock::now() + std::chrono::seconds(5) +
                        std::chrono::milliseconds(options.frames * 3000 / std::max(config.fps, 1));
  while (got < options.frames && hal::Clock::now() < deadline) {
    pollfd pfd{(*cam)->pollFd(), POLLIN, 0};
    ::poll(&pfd, 1, 200);
    auto frame = (*cam)->dequeue();
    if (!frame) {
      if (frame.code() == hal::Errc::Again) continue;
      report.fail(fmt::format("camera {}: dequeue: {}", dev.path, frame.error().describe()));
      break;
    }
    std::string why;
    if (!looksValid(*frame, config, why)) {
      ++invalid;
      if (firstProblem.empty()) firstProblem = why;
    }
    if (got == 0) {
      first = frame->timestamp();
      firstSeq = frame->sequence();
    }
    last = frame->timestamp();
    lastSeq = frame->sequence();
    ++got;
  }
  (*cam)->stop();
  const double seconds = std::chrono::duration<double>(last - first).count();
  const double fps = got > 1 && seconds > 0 ? (got - 1) / seconds : 0;
  test["frames"] = got;
  test["invalidFrames"] = invalid;
  test["droppedFrames"] = got > 1 ? static_cast<int64_t>(lastSeq - firstSeq) - (got - 1) : 0;
  test["measuredFps"] = std::round(fps * 10) / 10;
  if (!firstProblem.empty()) test["firstProblem"] = firstProblem;
  report.details["test"] = test;
  if (got < options.frames) {
    report.fail(fmt::format("camera {}: {} of {} frames arrived in time", dev.path, got, options.frames));
  }
  if (invalid > 0)
    report.fail(fmt::format("camera {}: {} invalid frames: {}", dev.path, invalid, firstProblem));
  // Half the negotiated rate is a broken capture path, not a slow machine.
  if (got == options.frames && config.fps > 0 && fps < 0.5 * config.fps) {
    report.fail(fmt::format("camera {}: {:.1f} fps measured, {} negotiated", dev.path, fps, config.fps));
  }
}

}  // namespace

Report probeCameras(const Options& options) {
  Report report;
  if (!hal::v4l2Available()) {
    report.status = "not-built";
    report.details["reason"] = "this build has no V4L2 backend (libv4l2 / PRINTCAST_WITH_V4L2)";
    return report;
  }
  auto devices = hal::enumerateV4l2Devices();
  if (!devices) {
    report.fail("cameras: " + devices.error().describe());
    return report;
  }
  nlohmann::json list = nlohmann::json::array();
  const hal::V4l2DeviceInfo* chosen = nullptr;
  for (const auto& dev : *devices) {
    auto entry = describeDevice(dev);
    auto cam = hal::createV4l2Capture(dev.path);
    if (!cam) {
      entry["controlsError"] = cam.error().describe();
    } else if (auto* v4l2 = hal::v4l2CameraOf(**cam)) {
      auto controls = v4l2->listControls();
      if (!controls) {
        entry["controlsError"] = controls.error().describe();
      } else {
        nlohmann::json cs = nlohmann::json::array();
        for (const auto& c : *controls) {
          cs.push_back({{"id", fmt::format("0x{:08x}", c.id)},
                        {"name", c.name},
                        {"min", c.minimum},
                        {"max", c.maximum},
                        {"step", c.step},
                        {"default", c.defaultValue},
                        {"value", c.value},
                        {"readOnly", c.readOnly}});
        }
        entry["controls"] = cs;
      }
    }
    list.push_back(entry);
    const bool matches = options.camera.empty() || dev.path == options.camera ||
                         dev.stableName == options.camera ||
                         dev.card.find(options.camera) != std::string::npos;
    if (!chosen && matches) chosen = &dev;
  }
  report.details["devices"] = list;
  if (devices->empty()) {
    report.status = "absent";
    report.details["reason"] = "no V4L2 capture node under /dev";
    return report;
  }
  if (!chosen) {
    report.fail(fmt::format("camera \"{}\": no capture node matches", options.camera));
    return report;
  }
  report.details["tested"] = chosen->path;
  if (options.test) testCapture(options, *chosen, report);
  return report;
}

}  // namespace printcast::probe
