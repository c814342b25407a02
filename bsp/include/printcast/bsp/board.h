// SPDX-License-Identifier: MIT
// Board: the typed record of one board support package (identity, display, touch, camera,
// encoders). Boards are data (designated initializers in bsp/<vendor>-<model>/board.cpp).
#pragma once

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "printcast/hal/encoder.h"
#include "printcast/hal/geometry.h"
#include "printcast/hal/pixel_format.h"
#include "printcast/hal/transform.h"

namespace printcast::bsp {

// What detectors read: the files of the machine (tests point them at their own).
struct DetectionInput {
  std::filesystem::path anycubicApiConfig;  // the Anycubic firmware's api.cfg
};

// How a family of boards recognises the machine it runs on, brought by the boards that need it
// (the Anycubic Kobras: bsp/platforms/anycubic_kobra.h reads the firmware's modelId). Boards
// without a detector are chosen by --board, or are the fallback (generic-linux).
struct Detector {
  struct Probe {
    int key = 0;           // the machine's key (Anycubic: its modelId); 0 = not this family
    std::string reason;    // what was found ("modelId 20025 in /userdata/.../api.cfg") or why not
    bool problem = false;  // the family's files are there but unusable: worth a warning
  };
  std::string_view name;                        // "Anycubic api.cfg"
  Probe (*probe)(const DetectionInput& input);  // reads the machine; any thread
};

struct Detection {
  const Detector* detector = nullptr;  // nullptr: never detected, only chosen
  int key = 0;                         // the Probe::key that means this board
};

enum class DisplayKind {
  None,    // no screen to capture
  Fbdev,   // /dev/fbN (FBIOGET_VSCREENINFO); backend: hal display_fbdev (issue 3)
  Drm,     // /dev/dri/cardN, active CRTC; backend: hal display_drm (issue 3)
  Memory,  // hal::MemoryScreen (virtual board)
  // Whatever the machine has: the first DRM card (/dev/dri/cardN) with an active CRTC, else the
  // first framebuffer (/dev/fbN); size and format read from the device (generic boards).
  Auto,
};

struct DisplaySpec {
  DisplayKind kind = DisplayKind::None;
  std::string_view node;  // "/dev/fb0", "/dev/dri/card0"; empty for Memory/None/Auto
  // Scan-out buffer size in the panel's own orientation, and its pixel format. Both empty on a
  // generic board whose panel is unknown: the backend reads them from the device when opened.
  hal::Size nativeSize;
  hal::FourCC format;
  // Mount orientation: the Transform that turns the scan-out buffer upright for the viewer.
  hal::Transform orientation;
  int defaultFps = 5;
  int maxFps = 10;
};

enum class TouchKind {
  None,
  Evdev,   // written straight to the panel's /dev/input/eventN, found by name (issue 3)
  Memory,  // hal::MemoryScreen's injector (virtual board)
  // The first direct-input multi-touch evdev device (a touchscreen), if any; its range is read
  // from its ABS axes when `range` is empty (generic boards).
  Auto,
};

struct TouchSpec {
  TouchKind kind = TouchKind::None;
  std::string_view deviceName;  // evdev name to match ("hyn_ts"); never a node index
  // Raw panel coordinate range (x in [0, w], y in [0, h]); the opened injector's
  // TouchInfo::range. Empty only for Auto: then the device's ABS extent.
  hal::Size range;
  // Maps a point of the upright image the user sees (viewPos) to panel coordinates (panelPos),
  // in continuous coordinates: see hal::Transform.
  hal::Transform transform;
};

enum class CameraKind {
  TestPattern,  // hal::createTestPatternCapture()
  V4L2,         // a USB/CSI camera (issue 3)
};

struct CameraSpec {
  CameraKind kind = CameraKind::TestPattern;
  std::string_view match;       // V4L2: substring of the card name or by-id link; "" = first
  hal::FourCC preferredFormat;  // what to ask the camera for first
  hal::Size defaultSize{640, 480};
  int defaultFps = 15;
};

// Encoders in order of preference; the first that can be opened is used.
using EncoderBackend = hal::EncoderBackend;
struct EncoderSpec {
  std::span<const EncoderBackend> h264;
};

struct Limits {
  hal::Size maxCameraSize{1920, 1080};
  int maxCameraFps = 30;
  // Connections each HTTP port accepts at once (every viewer, page and API call is one; each
  // costs a descriptor and libmicrohttpd's per-connection memory, 32 KiB at most).
  unsigned maxConnectionsPerPort = 512;
};

// Where the printer keeps timelapse videos (the streamer's timelapse recorder and manager).
// Empty: the board has no such place (the app then uses a per-user data folder for internal
// storage, and offers no USB storage).
struct StorageSpec {
  std::string_view timelapseInternal;  // folder on persistent on-board storage
  std::string_view timelapseUsb;       // folder on the USB stick
  std::string_view usbMount;           // the USB stick's mount point: USB storage is there only while mounted
};

struct Board {
  std::string_view id;    // "anycubic-ks1": the --board value and the bsp/ folder name
  std::string_view name;  // "Anycubic Kobra S1"
  Detection detection;
  DisplaySpec display;
  TouchSpec touch;
  CameraSpec camera;
  EncoderSpec encoders;
  Limits limits;
  StorageSpec storage;
};

}  // namespace printcast::bsp
