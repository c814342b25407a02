// SPDX-License-Identifier: MIT
// Probe: displays (DRM/KMS cards and fbdev nodes: geometry, stride, format) and, with --test, an
// upright grab saved as JPEG.
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "printcast/codecs/convert.h"
#include "printcast/codecs/jpeg.h"
#include "printcast/hal/display_drm.h"
#include "printcast/hal/display_fbdev.h"
#include "printcast/hal/display_open.h"
#include "probe.h"

namespace printcast::probe {

namespace {

nlohmann::json describe(const hal::DisplayInfo& info) {
  return {
      {"name", info.name}, {"size", info.size.str()}, {"format", info.format.str()}, {"stride", info.stride}};
}

// Grab, check the frame against the device's geometry, turn it upright and save it as JPEG.
void testGrab(const Options& options, hal::DisplayCapture& display, Report& report) {
  const auto info = display.info();
  nlohmann::json test;
  auto frame = display.grab();
  if (!frame) return report.fail(fmt::format("display {}: grab: {}", info.name, frame.error().describe()));
  test["size"] = frame->size().str();
  test["format"] = frame->format().str();
  test["stride"] = frame->plane(0).stride;
  if (frame->size() != info.size || frame->format() != info.format) {
    report.fail(fmt::format("display {}: grab is {} {}, the device says {} {}", info.name,
                            frame->size().str(), frame->format().str(), info.size.str(), info.format.str()));
  }
  // A uniform picture is legal (a blank screen) but worth telling a porter about.
  const auto& plane = frame->plane(0);
  bool uniform = true;
  for (int y = 0; y < frame->size().height && uniform; y += 7) {
    const uint8_t* row = plane.data + static_cast<size_t>(y) * plane.stride;  // 32-bit pixels
    for (int x = 0; x < frame->size().width; x += 5)
      uniform = uniform && std::memcmp(row + 4 * x, row, 4) == 0;
  }
  test["uniform"] = uniform;
  test["orientation"] = std::string(options.orientation.name());
  const hal::Size upright = options.orientation.apply(frame->size());
  auto pool = hal::FramePool::create(hal::fourcc::kI420, upright, 1);
  if (!pool) return report.fail("display: " + pool.error().describe());
  auto i420 = codecs::convertToI420(*frame, options.orientation, **pool);
  if (!i420) return report.fail(fmt::format("display {}: rotate: {}", info.name, i420.error().describe()));
  auto jpeg = codecs::createJpegEncoder();
  if (auto st = jpeg->configure(hal::EncoderConfig{.size = upright, .jpegQuality = 90}); !st) {
    return report.fail("display: JPEG encoder: " + st.error().describe());
  }
  auto packet = jpeg->encode(*i420);
  if (!packet) return report.fail(fmt::format("display {}: JPEG: {}", info.name, packet.error().describe()));
  std::ofstream out(options.imagePath, std::ios::binary);
  out.write(reinterpret_cast<const char*>((*packet)->data.data()),
            static_cast<std::streamsize>((*packet)->data.size()));
  if (!out) return report.fail(fmt::format("display: cannot write {}", options.imagePath));
  test["image"] = options.imagePath;
  test["imageSize"] = upright.str();
  report.details["test"] = test;
}

}  // namespace

Report probeDisplays(const Options& options) {
  Report report;
  hal::DisplayCandidates candidates;
  candidates.drmCards = hal::listNumberedNodes("/dev/dri", "card");
  candidates.fbdevNodes = hal::listNumberedNodes("/dev", "fb");
  // Every node on its own, so a porter sees each one's geometry or reason.
  nlohmann::json list = nlohmann::json::array();
  for (const auto& card : candidates.drmCards) {
    auto d = hal::createDrmDisplayCapture(card);
    list.push_back(d ? nlohmann::json{{"node", card}, {"kind", "drm"}, {"info", describe((*d)->info())}}
                     : nlohmann::json{{"node", card}, {"kind", "drm"}, {"error", d.error().describe()}});
  }
  for (const auto& fb : candidates.fbdevNodes) {
    auto d = hal::createFbdevDisplayCapture(fb);
    list.push_back(d ? nlohmann::json{{"node", fb}, {"kind", "fbdev"}, {"info", describe((*d)->info())}}
                     : nlohmann::json{{"node", fb}, {"kind", "fbdev"}, {"error", d.error().describe()}});
  }
  report.details["devices"] = list;
  if (candidates.drmCards.empty() && candidates.fbdevNodes.empty()) {
    report.status = "absent";
    report.details["reason"] = "no /dev/dri/card* or /dev/fb* node";
    return report;
  }
  // The one to test: --display-node (or the board's), else what the streamer would pick on a
  // generic board: DRM first, fbdev as the fallback.
  if (!options.displayNode.empty()) {
    candidates = {};
    (options.displayNode.find("/dri/") != std::string::npos ? candidates.drmCards : candidates.fbdevNodes)
        .push_back(options.displayNode);
  }
  auto display = hal::openDisplayCapture(candidates);
  if (!display) {
    report.fail("display: " + display.error().describe());
    return report;
  }
  report.details["selected"] = describe((*display)->info());
  if (options.test) testGrab(options, **display, report);
  return report;
}

}  // namespace printcast::probe
