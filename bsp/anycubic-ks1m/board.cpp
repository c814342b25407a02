// SPDX-License-Identifier: MIT
// Board anycubic-ks1m: the Anycubic Kobra S1 Max (Rockchip RV1106, 800x480 LCD, USB camera).
// What it shares with the other Kobras (display, touch panel, camera, storage, encoders, limits)
// is the platform record, bsp/platforms/anycubic_kobra.h, with its sources. Its own numbers:
//  - modelId 20029: the `modelId` in /userdata/app/gk/config/api.cfg, as Rinkhals (tools.sh,
//    KOBRA_MODEL_ID) and h264-streamer (touch_inject.c, MODEL_ID_*) match it; product.md.
//  - orientation rot180 (flip 180): product.md "Boards"; h264-streamer's
//    orientation for this model id (ORIENT_* in touch_inject.c).
//  - touch: evdev "hyn_ts" (product.md), range 800x480; viewPos -> panelPos (800-x, 480-y) from
//    h264-streamer touch_inject.c transform_coordinates() and product.md, which is hal::Transform
//    rot180 (checked corner by corner in tests/unit/boards_test.cpp).
#include "../platforms/anycubic_kobra.h"

namespace printcast::bsp::boards {

extern const Board kBoardAnycubicKs1m;  // named by the generated registry
const Board kBoardAnycubicKs1m = platforms::anycubicKobraBoard({
    .id = "anycubic-ks1m",
    .name = "Anycubic Kobra S1 Max",
    .modelId = 20029,
    .orientation = hal::Transform::rot180(),
    .touchTransform = hal::Transform::rot180(),
});

}  // namespace printcast::bsp::boards
