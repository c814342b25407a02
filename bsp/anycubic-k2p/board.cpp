// SPDX-License-Identifier: MIT
// Board anycubic-k2p: the Anycubic Kobra 2 Pro (Rockchip RV1106, 800x480 LCD, USB camera).
// What it shares with the other Kobras (display, touch panel, camera, storage, encoders, limits)
// is the platform record, bsp/platforms/anycubic_kobra.h, with its sources. Its own numbers:
//  - modelId 20021: the `modelId` in /userdata/app/gk/config/api.cfg, as Rinkhals (tools.sh,
//    KOBRA_MODEL_ID) and h264-streamer (touch_inject.c, MODEL_ID_*) match it; product.md.
//  - orientation rot90 (rotate 90: upright 480x800): product.md "Boards"; h264-streamer's
//    orientation for this model id (ORIENT_* in touch_inject.c).
//  - touch: evdev "hyn_ts" (product.md), range 800x480; viewPos -> panelPos (y, 480-x) from
//    h264-streamer touch_inject.c transform_coordinates() and product.md, which is hal::Transform
//    rot270 (checked corner by corner in tests/unit/boards_test.cpp).
#include "../platforms/anycubic_kobra.h"

namespace printcast::bsp::boards {

extern const Board kBoardAnycubicK2p;  // named by the generated registry
const Board kBoardAnycubicK2p = platforms::anycubicKobraBoard({
    .id = "anycubic-k2p",
    .name = "Anycubic Kobra 2 Pro",
    .modelId = 20021,
    .orientation = hal::Transform::rot90(),
    .touchTransform = hal::Transform::rot270(),
});

}  // namespace printcast::bsp::boards
