// SPDX-License-Identifier: MIT
// V4L2 cameras: device enumeration, the V4L2 Capture backend and its controls extension.
// Spec: the Linux Media Infrastructure userspace API, part I "Video for Linux API"
// (https://docs.kernel.org/userspace-api/media/v4l/v4l2.html): VIDIOC_QUERYCAP, VIDIOC_ENUM_FMT,
// VIDIOC_ENUM_FRAMESIZES, VIDIOC_ENUM_FRAMEINTERVALS, VIDIOC_TRY_FMT/S_FMT, VIDIOC_S_PARM,
// "Streaming I/O (Memory Mapping)", VIDIOC_EXPBUF, VIDIOC_QUERY_EXT_CTRL/QUERYCTRL/QUERYMENU,
// VIDIOC_G_CTRL/S_CTRL.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "printcast/hal/capture.h"
#include "printcast/hal/result.h"
#include "printcast/hal/syscalls.h"

namespace printcast::hal {

// True when this build has the V4L2 backend (the CMake option PRINTCAST_WITH_V4L2). When false,
// createV4l2Capture() and enumerateV4l2Devices() return Unsupported.
bool v4l2Available() noexcept;

// One frame size a format offers, and the frame rates at that size.
struct V4l2FrameSize {
  // Discrete sizes: min == max and step {0,0}. Stepwise/continuous (V4L2_FRMSIZE_TYPE_STEPWISE /
  // _CONTINUOUS): every size from min to max in steps of step (continuous: step {1,1}).
  Size min;
  Size max;
  Size step;
  // Discrete rates in frames per second (1 / V4L2_FRMIVAL_TYPE_DISCRETE interval), highest first.
  // Empty when the driver does not enumerate intervals (e.g. an HDMI input whose rate follows the
  // DV timings) or offers a stepwise range (see fpsMin/fpsMax).
  std::vector<double> fps;
  double fpsMin = 0;  // stepwise interval range, 0 when unknown
  double fpsMax = 0;
};

struct V4l2FormatInfo {
  FourCC format;            // v4l2_fmtdesc.pixelformat
  std::string description;  // v4l2_fmtdesc.description ("YUYV 4:2:2")
  bool compressed = false;  // V4L2_FMT_FLAG_COMPRESSED
  std::vector<V4l2FrameSize> sizes;
};

// A video capture node (V4L2_CAP_VIDEO_CAPTURE with V4L2_CAP_STREAMING; single-planar only:
// multi-planar-only nodes are not listed, see capture_v4l2.cpp).
struct V4l2DeviceInfo {
  std::string path;                      // "/dev/video0" (the node, not a link)
  std::string card;                      // v4l2_capability.card ("HD Pro Webcam C920", "vivid")
  std::string driver;                    // "uvcvideo", "vivid"
  std::string busInfo;                   // "usb-0000:00:14.0-2", "platform:vivid-000"
  std::vector<std::string> byIdLinks;    // "/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920-video-index0"
  std::vector<std::string> byPathLinks;  // "/dev/v4l/by-path/pci-0000:00:14.0-usb-0:2:1.0-video-index0"
  // The name to reopen this camera by after it went away and came back under another index:
  // the first by-id link, else "bus:" + busInfo. createV4l2Capture() accepts it.
  std::string stableName;
  std::vector<V4l2FormatInfo> formats;
};

// Where enumeration looks: "<devDir>/video*" nodes and "<devDir>/v4l/by-id|by-path" links.
// Tests point devDir at a scratch directory; device calls still go through `sys`.
struct V4l2Paths {
  std::string devDir = "/dev";
};

// Every capture node, sorted by node number. Nodes that cannot be opened or are not capture
// nodes (metadata, output, M2M, multi-planar only) are skipped, not errors.
// Errors: Unsupported (built without V4L2), Io (devDir unreadable).
// Threading: any thread; it opens each node briefly (O_RDWR | O_NONBLOCK).
Result<std::vector<V4l2DeviceInfo>> enumerateV4l2Devices(Syscalls& sys = realSyscalls(),
                                                         const V4l2Paths& paths = {});

// Open a camera. `nameOrPath` is, tried in this order:
//  - a path ("/dev/video2", "/dev/v4l/by-id/usb-...-video-index0"): opened as given;
//  - a by-id or by-path link name without its directory;
//  - "bus:<bus_info>" (a V4l2DeviceInfo::stableName): the node with that exact bus_info;
//  - a substring of a node's card name or by-id link name (the board's camera match);
//  - "" : the first capture node.
// The node is opened O_RDWR | O_NONBLOCK and kept open until the object is destroyed.
// The returned Capture (info().driver = the V4L2 driver, busInfo = bus_info) also implements
// V4l2Camera (see v4l2CameraOf()).
// validate(): VIDIOC_TRY_FMT for format and size (the driver's answer wins: width, height and
// pixelformat are read back and Adjusted is returned if they differ), the nearest enumerated frame
// rate (VIDIOC_ENUM_FRAMEINTERVALS) when the driver lists any, bufferCount clamped to 2..32.
// Formats the backend hands out: YUYV, NV12, YU12 (I420), MJPEG, H264; others are Invalid.
// start(): VIDIOC_S_FMT, VIDIOC_S_PARM (the rate the driver set is in activeConfig()), mmap
// streaming with bufferCount buffers (VIDIOC_REQBUFS may grant more or fewer: activeConfig()).
// Frames: raw formats use the driver's bytesperline as plane stride (never assumed packed);
// NV12 and YU12 planes follow each other in one buffer. MJPEG and H264 carry bytesused bytes in
// plane 0 (stride 0). MJPEG frames without a DHT segment get the standard tables of ITU-T T.81
// Annex K.3 inserted (a copy into a backend-owned buffer; the V4L2 buffer is re-queued at once).
// DMA-BUF: for raw formats each mmap buffer is also exported with VIDIOC_EXPBUF (plane 0,
// O_RDONLY | O_CLOEXEC) right after it is mapped, and frames carry it as Frame::dmabufFd() (the
// whole V4L2 buffer, dmabufLength() = its length) so that an encoder can import it without a copy.
// A driver that refuses the export (ENOTTY, EINVAL, ...) gives frames without fd (-1) and the
// reason is in V4l2Camera::dmabufRefusal(); MJPEG and H264 frames never carry one. The fds belong
// to the run's buffers: closed (through `sys`) when those are unmapped, i.e. at stop() or when the
// last lease of a frame of that run drops, whichever is later.
// Timestamps: the buffer's CLOCK_MONOTONIC timestamp (V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC); drivers
// without it get the dequeue time. Sequence: v4l2_buffer.sequence.
// Leases: each frame holds its V4L2 buffer until the last lease drops, then VIDIOC_QBUF re-queues
// it (from whichever thread drops the lease). After stop(), restart or destruction a late release
// only unmaps (and closes the exported DMA-BUF fds with the last lease of the run): it never
// queues into a stopped queue or a closed fd. bufferCount leased frames stall
// the stream (dequeue() returns Again): consumers must drop frames promptly.
// dequeue(): non-blocking VIDIOC_DQBUF; Again when no buffer is ready (poll pollFd(), the device
// fd, for POLLIN). ENODEV (the device was unplugged or its driver unbound) -> Disconnected, and
// every later call returns Disconnected (recovery = a new object, reopened by stableName).
// Ownership: the Capture owns the fd; frames share the mappings (a frame outliving the Capture
// keeps its buffer mapped until it drops). `sys` must outlive the Capture and all its frames.
// Errors of createV4l2Capture(): Unsupported (built without V4L2, or the node is not a
// single-planar streaming capture node), NoDevice (no node matches / path missing),
// PermissionDenied, Busy, Io. Errors of start(): InvalidArgument (config not Valid), Busy
// (another process streams from the node: EBUSY), Disconnected, Io.
Result<std::unique_ptr<Capture>> createV4l2Capture(std::string_view nameOrPath,
                                                   Syscalls& sys = realSyscalls(),
                                                   const V4l2Paths& paths = {});

// A V4L2 control (VIDIOC_QUERY_EXT_CTRL, or VIDIOC_QUERYCTRL on old kernels).
struct V4l2Control {
  enum class Type { Integer, Boolean, Menu, IntegerMenu, Button, Integer64, Other };
  struct MenuItem {
    int64_t index = 0;
    std::string name;  // V4L2_CTRL_TYPE_MENU: the item name; INTEGER_MENU: the value as text
  };
  uint32_t id = 0;   // V4L2_CID_* (e.g. V4L2_CID_BRIGHTNESS 0x00980900)
  std::string name;  // "Brightness"
  Type type = Type::Other;
  int64_t minimum = 0;
  int64_t maximum = 0;
  uint64_t step = 0;
  int64_t defaultValue = 0;
  int64_t value = 0;  // current value when readable (0 for buttons and write-only controls)
  bool readOnly = false;
  bool writeOnly = false;
  bool inactive = false;       // V4L2_CTRL_FLAG_INACTIVE: settable but without effect now
  std::vector<MenuItem> menu;  // Menu / IntegerMenu items the driver accepts (VIDIOC_QUERYMENU)
};

// What a V4L2 Capture offers beyond Capture. Threading: any thread, also while another thread
// runs dequeue() (the kernel serialises ioctls); not concurrently with the object's destruction.
// The object stays owned by the Capture it came from.
class V4l2Camera {
 public:
  virtual ~V4l2Camera() = default;

  // The node this camera was opened from, its links and formats (as enumerateV4l2Devices()).
  virtual const V4l2DeviceInfo& device() const = 0;

  // What start() actually got: format, size, rate from VIDIOC_G_PARM after VIDIOC_S_PARM (0 when
  // the driver reports none), and the buffer count VIDIOC_REQBUFS granted. Before start(): the
  // config of the last start(), or a default CaptureConfig.
  virtual CaptureConfig activeConfig() const = 0;

  // Why the frames of the current (or last) run carry no DMA-BUF: empty when they do (every
  // buffer was exported with VIDIOC_EXPBUF); "not started" before the first start(); "<FourCC> is
  // compressed: ..." for MJPEG/H264; else the refused call with its errno, as Error::describe()
  // words it ("Unsupported: v4l2 /dev/video0: VIDIOC_EXPBUF of buffer 0: Inappropriate ioctl for
  // device (errno 25)"). For /status and logs.
  // Default (cameras that are not the V4L2 backend, e.g. test doubles): they export nothing.
  virtual std::string dmabufRefusal() const { return "this camera exports no DMA-BUF"; }

  // User controls (not the class headings). Errors: Disconnected, Io.
  virtual Result<std::vector<V4l2Control>> listControls() = 0;
  // Errors: InvalidArgument (no such control, or a write-only one), Disconnected, Io.
  virtual Result<int64_t> getControl(uint32_t id) = 0;
  // Errors: InvalidArgument (no such control, value out of range: ERANGE), PermissionDenied
  // (read-only), Busy (EBUSY: the control is locked while streaming), Disconnected, Io.
  virtual Status setControl(uint32_t id, int64_t value) = 0;
};

// The V4l2Camera side of a Capture made by createV4l2Capture(); null for any other Capture.
V4l2Camera* v4l2CameraOf(Capture& capture) noexcept;

}  // namespace printcast::hal
