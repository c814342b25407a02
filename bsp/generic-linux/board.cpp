// SPDX-License-Identifier: MIT
// Board generic-linux: any Linux PC or Raspberry Pi with a USB/CSI camera (the detection fallback).
//
// Where the numbers come from:
//  - no detection rule: detectBoard() picks this board when nothing more specific matches.
//  - display: whatever the machine has (DisplayKind::Auto): the first DRM card with an active
//    CRTC, else the first /dev/fbN; its size and format are read from the device when opened,
//    hence the empty nativeSize/format; mounted upright.
//  - touch: the first direct-input multi-touch evdev device (a touchscreen; INPUT_PROP_DIRECT
//    excludes touchpads), else none (TouchKind::Auto); its range is its ABS extent.
//  - camera: the first V4L2 capture device (--device picks another); MJPEG first because USB
//    UVC cameras only reach useful rates above 640x480 in MJPEG over USB 2; size and rate are the
//    SDK defaults (board.h).
//  - encoders: product.md "Boards" (x264, VA-API or V4L2 M2M); hardware first, x264 last
//    because it always works.
#include "printcast/bsp/board.h"

#include <array>

namespace printcast::bsp::boards {

namespace {
constexpr std::array kH264Encoders{EncoderBackend::VaApi, EncoderBackend::V4L2M2M, EncoderBackend::X264};
}  // namespace

extern const Board kBoardGenericLinux;  // named by the generated registry
const Board kBoardGenericLinux{
    .id = "generic-linux",
    .name = "Generic Linux",
    .detection = {},
    .display =
        {
            .kind = DisplayKind::Auto,
            .node = "",
            .nativeSize = {},
            .format = {},
            .orientation = hal::Transform::identity(),
        },
    .touch =
        {
            .kind = TouchKind::Auto,
            .deviceName = "",
            .range = {},
            .transform = hal::Transform::identity(),
        },
    .camera =
        {
            .kind = CameraKind::V4L2,
            .match = "",
            .preferredFormat = hal::fourcc::kMJPEG,
        },
    .encoders = {.h264 = kH264Encoders},
    .limits = {},
    .storage = {},  // no fixed place: a per-user data folder (see apps/streamer/timelapse_store.h)
};

}  // namespace printcast::bsp::boards
