// SPDX-License-Identifier: MIT
// Board virtual: a test-pattern camera and an in-memory printer screen with touch; runs anywhere.
//
// Where the numbers come from:
//  - screen: hal::MemoryScreen, given the Kobra S1's geometry (anycubic-ks1/board.cpp: 800x480
//    XRGB8888 mounted rot180, touch range 800x480 mapped by rot180) so that the orientation and
//    touch paths are exercised the way a real printer needs them, not as identity.
//  - camera: hal::createTestPatternCapture(), which synthesises I420; 640x480 at 15 fps is cheap
//    enough for CI machines and the sanitizer builds.
//  - encoders: x264, which every build of the streamer has (cmake/PrintcastDeps.cmake).
//  - display 5 fps default, 10 max and the camera limits: SDK defaults (board.h).
#include "printcast/bsp/board.h"

#include <array>

namespace printcast::bsp::boards {

namespace {
constexpr std::array kH264Encoders{EncoderBackend::X264};
}  // namespace

extern const Board kBoardVirtual;  // named by the generated registry
const Board kBoardVirtual{
    .id = "virtual",
    .name = "Virtual printer",
    .detection = {},
    .display =
        {
            .kind = DisplayKind::Memory,
            .node = "",
            .nativeSize = {800, 480},
            .format = hal::fourcc::kXRGB8888,
            .orientation = hal::Transform::rot180(),
            .defaultFps = 5,
            .maxFps = 10,
        },
    .touch =
        {
            .kind = TouchKind::Memory,
            .deviceName = "",
            .range = {800, 480},
            .transform = hal::Transform::rot180(),
        },
    .camera =
        {
            .kind = CameraKind::TestPattern,
            .match = "",
            .preferredFormat = hal::fourcc::kI420,
            .defaultSize = {640, 480},
            .defaultFps = 15,
        },
    .encoders = {.h264 = kH264Encoders},
    .limits = {},
    .storage = {},  // no fixed place: a per-user data folder (see apps/streamer/timelapse_store.h)
};

}  // namespace printcast::bsp::boards
