// SPDX-License-Identifier: MIT
// USB camera auto-discovery (issue 11, "Several cameras" section 2): the enumerated V4L2 nodes of
// a board without a `cameras` list become up to four cameras whose formats fit their USB buses.
//
// The plan is a pure function of what enumeration found (hal::enumerateV4l2Devices) and the
// board: no I/O, so it is unit-tested with hand-made device lists (tests/unit/usb_camera_plan_test.cpp).
//
// Which nodes: only nodes with a /dev/v4l/by-id link (udev makes those for USB devices; metadata
// and non-capture nodes were already left out by enumeration). A camera with several capture nodes
// (the same bus_info) counts once, by its first node. At most kMaxUsbCameras (h264-streamer's
// limit); the others are named in UsbCameraPlan::notes.
//
// Order and ids: camera 0 is the camera the board would open today (the first node whose card
// name or by-id link contains CameraSpec::match, else the first node by node number), so it keeps
// today's paths; the others follow sorted by their by-id link name, which stays the same across
// re-plugs and reboots (node numbers do not). Ids are the positions "0".."3": "/cam/0/..." is
// camera 0 as without a list, "/hls/stream_<n>/" and h264-streamer's ports 8082-8084 (cameras
// 1..3) count the same way. The source is the by-id link, so a camera re-plugged into another
// port is reopened by the same name.
//
// Formats: camera 0 keeps the board's choice (CameraSpec::preferredFormat, then I420, NV12, YUYV,
// MJPEG, H264, as the pipeline negotiates), entry format "auto". The others ask for MJPEG when they
// offer it (h264-streamer: "the others MJPEG"), else YUYV, else H264, else "auto". Camera 0 offers
// H.264 outputs, the others do not (CameraEntry::h264 = false) unless a configured list says so.
//
// Bandwidth model (a conservative estimate, not what a camera will reserve):
//  - A USB 2.0 high-speed bus reserves at most 80 % of each 125 us microframe for periodic
//    (isochronous and interrupt) transfers (USB 2.0 specification, section 5.6.4): 80 % of
//    480 Mbit/s = 384 Mbit/s = kUsbBusBudgetBytesPerSecond (48 MB/s) per bus. Every camera behind
//    one host controller (hubs included) shares it: the bus is bus_info "usb-<controller>-<port>"
//    without its last "-<port>" ("usb-0000:00:14.0-2.1" -> "usb-0000:00:14.0").
//  - Uncompressed frames cost what they carry: YUYV width * height * 2 bytes per frame, NV12 and
//    I420 1.5 bytes per pixel, times the frame rate.
//  - MJPEG and H.264 frames vary with the picture; a UVC camera reserves isochronous bandwidth by
//    its dwMaxPayloadTransferSize, which for compressed formats is often near its largest frame,
//    not its mean. We count kCompressedBytesPerPixel (0.5 B/px, about a quality-90 JPEG of a
//    detailed picture) per pixel and frame: a bus that fits by this estimate streams.
// Reduction: while a bus's sum is over budget, one camera on it steps down one rung of its own
// ladder: its enumerated frame sizes of the chosen format from the starting size down (each at
// the highest offered rate up to the one asked), then the offered rates of its smallest size. The
// camera stepped is the costliest of cameras 1..3 on that bus (the later on a tie); camera 0 only
// when every other camera on its bus is at its last rung. A bus that cannot fit even then keeps
// every camera at its last rung with a note (the kernel may then refuse a camera's stream).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "printcast/bsp/board.h"
#include "printcast/hal/geometry.h"
#include "printcast/hal/pixel_format.h"
#include "printcast/hal/v4l2.h"
#include "settings.h"

namespace printcast::streamer {

inline constexpr size_t kMaxUsbCameras = 4;                         // h264-streamer's limit
inline constexpr int64_t kUsbBusBudgetBytesPerSecond = 48'000'000;  // USB 2.0 5.6.4: 80 % of 480 Mbit/s
inline constexpr double kCompressedBytesPerPixel = 0.5;             // MJPEG / H.264 estimate per frame

// One camera of a plan.
struct PlannedCamera {
  std::string id;         // "0".."3"
  std::string name;       // the card name ("HD Pro Webcam C920")
  std::string source;     // its /dev/v4l/by-id link (a path)
  std::string busInfo;    // "usb-0000:00:14.0-2"
  std::string bus;        // the bus it shares: "usb-0000:00:14.0"
  hal::FourCC format;     // what it is expected to deliver (the cost is counted in it)
  std::string formatKey;  // the entry's "format": "auto" (camera 0), "mjpeg", "yuyv", "h264"
  hal::Size askedSize;    // where its ladder started (the nearest to the size asked)
  int askedFps = 0;
  hal::Size size;  // what the plan gives it
  int fps = 0;
  bool h264 = false;           // offers H.264 outputs (camera 0 only)
  int64_t bytesPerSecond = 0;  // its cost by the model above, at `size` and `fps`
  // Why it got less than asked ("USB bus usb-0000:00:14.0: 2 cameras, 1280x720 MJPEG -> 640x480
  // to fit"); "" when it got what it asked.
  std::string note;
};

struct UsbCameraPlan {
  std::vector<PlannedCamera> cameras;  // camera 0 first
  // Plan-wide notes: cameras left out (more than kMaxUsbCameras), buses that do not fit at all.
  std::vector<std::string> notes;
};

// The plan for `devices` (as enumerateV4l2Devices returns them) on a board whose camera is `spec`
// and limits `limits`; every camera asks for `size` at `fps` (the top-level settings, or the
// board's defaults), capped at the board's limits. Pure: no I/O, no logging.
UsbCameraPlan planUsbCameras(const std::vector<hal::V4l2DeviceInfo>& devices, const bsp::CameraSpec& spec,
                             const bsp::Limits& limits, hal::Size size, int fps);

// The start's seam: when the board's camera is V4L2, `s` has no `cameras` list and no explicit
// source (--source, --device, "source"), plan `devices` and, with two or more USB cameras, give
// `s` the plan as its `cameras` list (Settings::camerasDiscovered set, notes in
// Settings::cameraPlanNotes, each entry's note in CameraEntry::planNote). With 0 or 1 USB cameras
// (or any condition unmet) `s` is left as it is, so the streamer behaves as without discovery.
// Call before finalizeSettings(). Returns the plan (empty when not applied).
UsbCameraPlan applyUsbCameraPlan(Settings& s, const bsp::Board& board,
                                 const std::vector<hal::V4l2DeviceInfo>& devices);

// The USB bus (host controller) of a bus_info: "usb-0000:00:14.0-2.1" -> "usb-0000:00:14.0",
// "usb-ffb00000.usb-1" -> "usb-ffb00000.usb"; anything not "usb-..." is its own bus.
std::string usbBusOf(const std::string& busInfo);

// Bytes per second of `format` at `size` and `fps` by the model above.
int64_t usbStreamCost(hal::FourCC format, hal::Size size, int fps);

}  // namespace printcast::streamer
