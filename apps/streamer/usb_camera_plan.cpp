// SPDX-License-Identifier: MIT
// USB camera auto-discovery: which cameras, in which format, at which size (usb_camera_plan.h).
#include "usb_camera_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <string_view>

#include <fmt/format.h>

namespace printcast::streamer {

namespace {

namespace fourcc = hal::fourcc;

// One rung of a camera's ladder.
struct Rung {
  hal::Size size;
  int fps = 0;
};

int64_t area(hal::Size s) { return static_cast<int64_t>(s.width) * s.height; }

std::string formatName(hal::FourCC f) {
  if (f == fourcc::kMJPEG) return "MJPEG";
  if (f == fourcc::kI420) return "I420";
  return f.str();
}

int roundFps(double fps) { return std::max(1, static_cast<int>(std::lround(fps))); }

const hal::V4l2FormatInfo* findFormat(const hal::V4l2DeviceInfo& d, hal::FourCC f) {
  for (const auto& info : d.formats) {
    if (info.format == f && !info.sizes.empty()) return &info;
  }
  return nullptr;
}

// The rates a frame-size entry offers, highest first (a stepwise range: its top and bottom;
// nothing known: the rate asked).
std::vector<int> ratesOf(const hal::V4l2FrameSize& fs, int asked) {
  std::vector<int> rates;
  for (double r : fs.fps) rates.push_back(roundFps(r));
  if (rates.empty() && fs.fpsMax > 0) {
    rates.push_back(std::min(asked, roundFps(fs.fpsMax)));
    if (fs.fpsMin > 0) rates.push_back(roundFps(fs.fpsMin));
  }
  if (rates.empty()) rates.push_back(asked);
  std::sort(rates.begin(), rates.end(), std::greater<>());
  rates.erase(std::unique(rates.begin(), rates.end()), rates.end());
  return rates;
}

// The highest rate up to `asked`, else the lowest offered.
int rateFor(const std::vector<int>& rates, int asked) {
  for (int r : rates) {
    if (r <= asked) return r;
  }
  return rates.back();
}

// Every size `info` offers with its rates: discrete sizes as they are; a stepwise or continuous
// range as the size asked and the usual ladder of sizes, where the range has them.
std::vector<std::pair<hal::Size, std::vector<int>>> sizesOf(const hal::V4l2FormatInfo& info, hal::Size asked,
                                                            int askedFps) {
  static constexpr hal::Size kUsual[] = {{1920, 1080}, {1280, 720}, {1024, 768}, {800, 600},
                                         {640, 480},   {640, 360},  {320, 240},  {160, 120}};
  std::vector<std::pair<hal::Size, std::vector<int>>> out;
  for (const auto& fs : info.sizes) {
    const auto rates = ratesOf(fs, askedFps);
    if (fs.min == fs.max) {
      out.emplace_back(fs.max, rates);
      continue;
    }
    auto inRange = [&](hal::Size s) {
      const int sw = std::max(1, fs.step.width);
      const int sh = std::max(1, fs.step.height);
      return s.width >= fs.min.width && s.width <= fs.max.width && s.height >= fs.min.height &&
             s.height <= fs.max.height && (s.width - fs.min.width) % sw == 0 &&
             (s.height - fs.min.height) % sh == 0;
    };
    if (inRange(asked)) out.emplace_back(asked, rates);
    for (auto s : kUsual) {
      if (inRange(s)) out.emplace_back(s, rates);
    }
  }
  return out;
}

// A camera's ladder in `format`: from the size nearest to `asked` (the largest not above it in
// either dimension, else the smallest offered) down through the smaller sizes, each at its highest
// rate up to `askedFps`; then the lower rates of the smallest size. Sizes above the board's limits
// are left out. Never empty: with nothing usable, the size and rate asked.
std::vector<Rung> ladderOf(const hal::V4l2DeviceInfo& d, hal::FourCC format, hal::Size asked, int askedFps,
                           const bsp::Limits& limits) {
  std::vector<std::pair<hal::Size, std::vector<int>>> sizes;
  if (const auto* info = findFormat(d, format)) sizes = sizesOf(*info, asked, askedFps);
  std::erase_if(sizes, [&](const auto& s) {
    return s.first.empty() || s.first.width > limits.maxCameraSize.width ||
           s.first.height > limits.maxCameraSize.height;
  });
  if (sizes.empty()) return {{asked, askedFps}};
  std::stable_sort(sizes.begin(), sizes.end(),
                   [](const auto& a, const auto& b) { return area(a.first) > area(b.first); });
  // The start: the largest size within `asked`; a camera offering only larger sizes starts at its
  // smallest (what the driver would answer a request for `asked`).
  size_t start = sizes.size() - 1;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i].first.width <= asked.width && sizes[i].first.height <= asked.height) {
      start = i;
      break;
    }
  }
  std::vector<Rung> ladder;
  for (size_t i = start; i < sizes.size(); ++i) {
    const hal::Size s = sizes[i].first;
    if (!ladder.empty() && (ladder.back().size == s || area(s) >= area(ladder.back().size))) continue;
    ladder.push_back({s, rateFor(sizes[i].second, askedFps)});
  }
  // Then the smallest size's lower rates (every entry of that size).
  const hal::Size smallest = ladder.back().size;
  std::vector<int> lower;
  for (const auto& [s, rates] : sizes) {
    if (!(s == smallest)) continue;
    for (int r : rates) {
      if (r < ladder.back().fps) lower.push_back(r);
    }
  }
  std::sort(lower.begin(), lower.end(), std::greater<>());
  lower.erase(std::unique(lower.begin(), lower.end()), lower.end());
  for (int r : lower) ladder.push_back({smallest, r});
  return ladder;
}

std::string rungText(const Rung& r, const Rung& asked) {
  return r.fps == asked.fps ? r.size.str() : fmt::format("{} at {} fps", r.size.str(), r.fps);
}

bool matchesBoard(const hal::V4l2DeviceInfo& d, std::string_view match) {
  if (match.empty()) return false;
  if (d.card.find(match) != std::string::npos) return true;
  return std::any_of(d.byIdLinks.begin(), d.byIdLinks.end(),
                     [&](const std::string& l) { return l.find(match) != std::string::npos; });
}

std::string linkName(const std::string& link) {
  const auto slash = link.rfind('/');
  return slash == std::string::npos ? link : link.substr(slash + 1);
}

}  // namespace

std::string usbBusOf(const std::string& busInfo) {
  if (busInfo.rfind("usb-", 0) != 0) return busInfo;
  const auto dash = busInfo.rfind('-');
  return dash <= 3 ? busInfo : busInfo.substr(0, dash);
}

int64_t usbStreamCost(hal::FourCC format, hal::Size size, int fps) {
  const double pixelsPerSecond = static_cast<double>(area(size)) * std::max(fps, 0);
  double bytesPerPixel = kCompressedBytesPerPixel;
  if (format == fourcc::kYUYV) bytesPerPixel = 2.0;
  if (format == fourcc::kNV12 || format == fourcc::kI420) bytesPerPixel = 1.5;
  return static_cast<int64_t>(std::llround(pixelsPerSecond * bytesPerPixel));
}

UsbCameraPlan planUsbCameras(const std::vector<hal::V4l2DeviceInfo>& devices, const bsp::CameraSpec& spec,
                             const bsp::Limits& limits, hal::Size size, int fps) {
  UsbCameraPlan plan;
  // USB cameras only (a by-id link), one per bus_info (its first node), in node order.
  std::vector<const hal::V4l2DeviceInfo*> usb;
  for (const auto& d : devices) {
    if (d.byIdLinks.empty()) continue;
    const bool seen = std::any_of(
        usb.begin(), usb.end(), [&](const auto* u) { return !d.busInfo.empty() && u->busInfo == d.busInfo; });
    if (!seen) usb.push_back(&d);
  }
  if (usb.empty()) return plan;
  // Camera 0: the board's match, else the first node; then the others by by-id link name.
  auto first =
      std::find_if(usb.begin(), usb.end(), [&](const auto* d) { return matchesBoard(*d, spec.match); });
  if (first == usb.end()) first = usb.begin();
  std::rotate(usb.begin(), first, first + 1);
  std::stable_sort(usb.begin() + 1, usb.end(),
                   [](const auto* a, const auto* b) { return a->byIdLinks.front() < b->byIdLinks.front(); });
  if (usb.size() > kMaxUsbCameras) {
    std::string left;
    for (size_t i = kMaxUsbCameras; i < usb.size(); ++i)
      left += (left.empty() ? "" : ", ") + linkName(usb[i]->byIdLinks.front());
    plan.notes.push_back(fmt::format("{} USB cameras found, {} taken (at most {}); not streamed: {}",
                                     usb.size(), kMaxUsbCameras, kMaxUsbCameras, left));
    usb.resize(kMaxUsbCameras);
  }

  const hal::Size asked{std::min(size.width, limits.maxCameraSize.width),
                        std::min(size.height, limits.maxCameraSize.height)};
  const int askedFps = std::clamp(fps, 1, std::max(1, limits.maxCameraFps));
  std::vector<std::vector<Rung>> ladders;
  std::vector<size_t> rung;  // each camera's place on its ladder
  for (size_t i = 0; i < usb.size(); ++i) {
    const auto& d = *usb[i];
    PlannedCamera c;
    c.id = std::to_string(i);
    c.name = d.card.empty() ? linkName(d.byIdLinks.front()) : d.card;
    c.source = d.byIdLinks.front();
    c.busInfo = d.busInfo;
    c.bus = usbBusOf(d.busInfo);
    c.h264 = i == 0;
    // Camera 0: the pipeline's own order (the board's format first); the others MJPEG first.
    std::vector<std::pair<hal::FourCC, const char*>> order;
    if (i == 0) {
      if (spec.preferredFormat.code != 0) order.emplace_back(spec.preferredFormat, "auto");
      for (auto f : {fourcc::kI420, fourcc::kNV12, fourcc::kYUYV, fourcc::kMJPEG, fourcc::kH264})
        order.emplace_back(f, "auto");
    } else {
      order = {{fourcc::kMJPEG, "mjpeg"},
               {fourcc::kYUYV, "yuyv"},
               {fourcc::kH264, "h264"},
               {fourcc::kNV12, "auto"},
               {fourcc::kI420, "auto"}};
    }
    c.format = order.front().first;
    c.formatKey = "auto";
    for (const auto& [f, key] : order) {
      if (findFormat(d, f) != nullptr) {
        c.format = f;
        c.formatKey = key;
        break;
      }
    }
    ladders.push_back(ladderOf(d, c.format, asked, askedFps, limits));
    rung.push_back(0);
    c.askedSize = ladders.back().front().size;
    c.askedFps = ladders.back().front().fps;
    plan.cameras.push_back(std::move(c));
  }

  auto costOf = [&](size_t i) {
    const Rung& r = ladders[i][rung[i]];
    return usbStreamCost(plan.cameras[i].format, r.size, r.fps);
  };
  std::map<std::string, std::vector<size_t>> buses;  // bus -> its cameras, in plan order
  for (size_t i = 0; i < plan.cameras.size(); ++i) buses[plan.cameras[i].bus].push_back(i);
  for (const auto& busCameras : buses) {
    // Not a structured binding: a lambda cannot capture one before C++20's P1091 (clang 14).
    const std::string& bus = busCameras.first;
    const std::vector<size_t>& members = busCameras.second;
    auto total = [&] {
      int64_t sum = 0;
      for (size_t i : members) sum += costOf(i);
      return sum;
    };
    while (total() > kUsbBusBudgetBytesPerSecond) {
      // The costliest of the later cameras that can still step down (the later on a tie), camera 0
      // only when none can.
      size_t pick = SIZE_MAX;
      for (size_t i : members) {
        if (i == 0 || rung[i] + 1 >= ladders[i].size()) continue;
        if (pick == SIZE_MAX || costOf(i) >= costOf(pick)) pick = i;
      }
      if (pick == SIZE_MAX && members.front() == 0 && rung[0] + 1 < ladders[0].size()) pick = 0;
      if (pick == SIZE_MAX) break;
      ++rung[pick];
    }
    const int64_t sum = total();
    if (sum > kUsbBusBudgetBytesPerSecond) {
      plan.notes.push_back(fmt::format(
          "USB bus {}: {} cameras need about {} MB/s even at their smallest sizes, more than the {} MB/s "
          "a USB 2.0 bus gives cameras; some may not stream",
          bus, members.size(), (sum + 999'999) / 1'000'000, kUsbBusBudgetBytesPerSecond / 1'000'000));
    }
    for (size_t i : members) {
      if (rung[i] == 0) continue;
      const Rung& a = ladders[i].front();
      const Rung& r = ladders[i][rung[i]];
      plan.cameras[i].note = fmt::format("USB bus {}: {} camera{}, {} {} -> {} to fit", bus, members.size(),
                                         members.size() == 1 ? "" : "s", rungText(a, a),
                                         formatName(plan.cameras[i].format), rungText(r, a));
    }
  }
  for (size_t i = 0; i < plan.cameras.size(); ++i) {
    const Rung& r = ladders[i][rung[i]];
    plan.cameras[i].size = r.size;
    plan.cameras[i].fps = r.fps;
    plan.cameras[i].bytesPerSecond = costOf(i);
  }
  return plan;
}

UsbCameraPlan applyUsbCameraPlan(Settings& s, const bsp::Board& board,
                                 const std::vector<hal::V4l2DeviceInfo>& devices) {
  if (board.camera.kind != bsp::CameraKind::V4L2 || !s.cameras.empty() || !s.source.empty() ||
      !s.device.empty())
    return {};
  const hal::Size size =
      s.width > 0 && s.height > 0 ? hal::Size{s.width, s.height} : board.camera.defaultSize;
  const int fps = s.fps > 0 ? s.fps : board.camera.defaultFps;
  // h264-streamer's encoder_type picks camera 0's format as the pipeline does (camera_pipeline.cpp).
  bsp::CameraSpec spec = board.camera;
  if (s.encoderType == "rkmpi-yuyv") spec.preferredFormat = hal::fourcc::kYUYV;
  if (s.encoderType == "rkmpi") spec.preferredFormat = hal::fourcc::kMJPEG;
  UsbCameraPlan plan = planUsbCameras(devices, spec, board.limits, size, fps);
  if (plan.cameras.size() < 2) return {};
  for (const auto& c : plan.cameras) {
    Settings::CameraEntry e;
    e.id = c.id;
    e.name = c.name;
    e.source = c.source;
    e.format = c.formatKey;
    e.h264 = c.h264;
    e.planNote = c.note;
    // Camera 0 asks for the top-level size and rate as without a list unless the plan lowered it;
    // the others ask for what the plan gives them.
    if (c.id != "0" || !c.note.empty()) {
      e.size = c.size;
      // A camera offering only rates above the board's limit is asked for the limit (the driver
      // answers with its nearest).
      e.fps = std::min(c.fps, board.limits.maxCameraFps);
    }
    s.cameras.push_back(std::move(e));
  }
  s.camerasDiscovered = true;
  s.cameraPlanNotes = plan.notes;
  return plan;
}

}  // namespace printcast::streamer
