// SPDX-License-Identifier: MIT
// The platform the Anycubic Kobra boards share: Rockchip RV1106 (one Cortex-A7 core, 256 MB of
// RAM shared with the firmware), an 800x480 framebuffer LCD with a "hyn_ts" touch panel, a USB
// camera, the stock firmware's timelapse folders. A Kobra board is its differences: id, name,
// the firmware's model id, and how the panel is mounted (see bsp/anycubic-*/board.cpp).
//
// Where the shared numbers come from:
//  - /dev/fb0, 800x480, 32 bpp BGRX (= DRM XRGB8888): product.md "Boards"; h264-streamer
//    touch_inject.c FB_WIDTH/FB_HEIGHT.
//  - touch: evdev "hyn_ts" (product.md), range 800x480 (the panel's own coordinates).
//  - camera: USB UVC, YUYV and MJPEG (product.md); MJPEG first because MJPEG streams pass
//    through without a decode and the RV1106 has one Cortex-A7 core; 10 fps = the streamer's
//    mjpeg_fps default (product.md "Settings").
//  - timelapse storage: the stock firmware's folders, internal /useremain/app/gk/Time-lapse-Video
//    and the USB stick's /mnt/udisk/Time-lapse-Video (product.md "Timelapse").
//  - encoders: x264 only; the RV1106 hardware encoder needs the vendor SDK, which is not public
//    (docs/porting-guide.md, "Encoders").
//  - 64 connections per HTTP port: 256 MB of RAM shared with the firmware (product.md "Boards").
//  - display 5 fps default, 10 max and the camera limits: SDK defaults (board.h), not yet
//    measured on these boards.
#pragma once

#include <array>
#include <string_view>

#include "printcast/bsp/board.h"

namespace printcast::bsp::platforms {

// What differs between Kobra boards.
struct AnycubicKobra {
  std::string_view id;
  std::string_view name;
  int modelId = 0;  // the `modelId` in /userdata/app/gk/config/api.cfg
  // The panel's mount: turns the 800x480 framebuffer upright (display.orientation) ...
  hal::Transform orientation;
  // ... and maps the upright picture's points to the panel's (touch.transform, its inverse).
  hal::Transform touchTransform;
};

inline constexpr std::array kAnycubicKobraH264Encoders{EncoderBackend::X264};

// The firmware's api.cfg (DetectionInput::anycubicApiConfig, by default
// /userdata/app/gk/config/api.cfg; JSON, "cloud": {"modelId": "20025"} as the firmware writes it,
// or a top-level "modelId"; a string or an integer; // comments allowed): its modelId is the key.
// No file is not an Anycubic printer (no problem); an unreadable file, bad JSON, no or a malformed
// modelId are problems naming the path and the value (anycubic_detect.cpp).
Detector::Probe probeAnycubicApiConfig(const DetectionInput& input);
inline constexpr Detector kAnycubicDetector{"Anycubic api.cfg", &probeAnycubicApiConfig};

constexpr Board anycubicKobraBoard(const AnycubicKobra& k) {
  return Board{
      .id = k.id,
      .name = k.name,
      .detection = {.detector = &kAnycubicDetector, .key = k.modelId},
      .display =
          {
              .kind = DisplayKind::Fbdev,
              .node = "/dev/fb0",
              .nativeSize = {800, 480},
              .format = hal::fourcc::kXRGB8888,
              .orientation = k.orientation,
              .defaultFps = 5,
              .maxFps = 10,
          },
      .touch =
          {
              .kind = TouchKind::Evdev,
              .deviceName = "hyn_ts",
              .range = {800, 480},
              .transform = k.touchTransform,
          },
      .camera =
          {
              .kind = CameraKind::V4L2,
              .match = "",
              .preferredFormat = hal::fourcc::kMJPEG,
              .defaultSize = {640, 480},
              .defaultFps = 10,
          },
      .encoders = {.h264 = kAnycubicKobraH264Encoders},
      .limits = {.maxConnectionsPerPort = 64},
      .storage =
          {
              .timelapseInternal = "/useremain/app/gk/Time-lapse-Video",
              .timelapseUsb = "/mnt/udisk/Time-lapse-Video",
              .usbMount = "/mnt/udisk",
          },
  };
}

}  // namespace printcast::bsp::platforms
