// SPDX-License-Identifier: MIT
// Board anycubic-k3v2: the Anycubic Kobra 3 V2 (Rockchip RV1106, 800x480 LCD, USB camera).
//
// Where the numbers come from:
//  - modelId 20027: the `modelId` in /userdata/app/gk/config/api.cfg, as Rinkhals (tools.sh,
//    KOBRA_MODEL_ID) and h264-streamer (touch_inject.c, MODEL_ID_*) match it; product.md.
//  - /dev/fb0, 800x480, 32 bpp BGRX (= DRM XRGB8888): product.md "Boards"; h264-streamer
//    touch_inject.c FB_WIDTH/FB_HEIGHT.
//  - orientation rot90 (rotate 90: upright 480x800): product.md "Boards"; h264-streamer's
//    orientation for this model id (ORIENT_* in touch_inject.c).
//  - touch: evdev "hyn_ts" (product.md), range 800x480; viewPos -> panelPos (y, 480-x) from
//    h264-streamer touch_inject.c transform_coordinates() and product.md, which is hal::Transform
//    rot270 (checked corner by corner in tests/unit/boards_test.cpp).
//  - camera: USB UVC, YUYV and MJPEG (product.md); MJPEG first because MJPEG streams pass
//    through without a decode and the RV1106 has one Cortex-A7 core; 10 fps = the streamer's
//    mjpeg_fps default (product.md "Settings").
//  - timelapse storage: the stock firmware's folders, internal /useremain/app/gk/Time-lapse-Video
//    and the USB stick's /mnt/udisk/Time-lapse-Video (product.md "Timelapse").
//  - encoders: x264 only; the RV1106 hardware encoder needs the vendor SDK, which is not public.
//  - display 5 fps default, 10 max and the camera limits: SDK defaults (board.h), not yet
//    measured on this board.
#include "printcast/bsp/board.h"

#include <array>

namespace printcast::bsp::boards {

namespace {
constexpr std::array kH264Encoders{EncoderBackend::X264};
}  // namespace

extern const Board kBoardAnycubicK3v2;  // named by the generated registry
const Board kBoardAnycubicK3v2{
    .id = "anycubic-k3v2",
    .name = "Anycubic Kobra 3 V2",
    .detection = {.anycubicModelId = 20027},
    .display =
        {
            .kind = DisplayKind::Fbdev,
            .node = "/dev/fb0",
            .nativeSize = {800, 480},
            .format = hal::fourcc::kXRGB8888,
            .orientation = hal::Transform::rot90(),
            .defaultFps = 5,
            .maxFps = 10,
        },
    .touch =
        {
            .kind = TouchKind::Evdev,
            .deviceName = "hyn_ts",
            .range = {800, 480},
            .transform = hal::Transform::rot270(),
        },
    .camera =
        {
            .kind = CameraKind::V4L2,
            .match = "",
            .preferredFormat = hal::fourcc::kMJPEG,
            .defaultSize = {640, 480},
            .defaultFps = 10,
        },
    .encoders = {.h264 = kH264Encoders},
    // 64 connections per HTTP port: 256 MB of RAM shared with the firmware (product.md "Boards").
    .limits = {.maxConnectionsPerPort = 64},
    .storage =
        {
            .timelapseInternal = "/useremain/app/gk/Time-lapse-Video",
            .timelapseUsb = "/mnt/udisk/Time-lapse-Video",
            .usbMount = "/mnt/udisk",
        },
};

}  // namespace printcast::bsp::boards
