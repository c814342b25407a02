// SPDX-License-Identifier: MIT
// Capture: the camera role. Describe (info), negotiate (validate), start, then dequeue frames.
#pragma once

#include <string>
#include <vector>

#include "printcast/hal/frame.h"
#include "printcast/hal/result.h"

namespace printcast::hal {

// Outcome of validate(): the config is usable as given, was changed to the nearest the
// device supports (read it back), or cannot be made to work.
enum class Negotiation { Valid, Adjusted, Invalid };

struct CaptureConfig {
  FourCC format = fourcc::kI420;
  Size size{640, 480};
  int fps = 30;         // frames per second; 0 = as fast as the source can (test pattern only)
  int bufferCount = 4;  // buffers in flight between the device and consumers
};

struct CaptureFormat {
  FourCC format;
  std::vector<Size> sizes;
  std::vector<int> fps;  // discrete rates offered for these sizes (may be empty: any)
};

struct CaptureCapabilities {
  bool keyframeRequest = false;  // H.264 cameras: requestKeyframe() works
  bool controls = false;         // brightness/exposure... (V4L2 controls)
};

struct CaptureInfo {
  std::string name;     // human name ("Test pattern", the V4L2 card name)
  std::string driver;   // "test-pattern", "uvcvideo", ...
  std::string busInfo;  // stable id where the device has one
  std::vector<CaptureFormat> formats;
  CaptureCapabilities capabilities;
};

// Threading: one thread drives a Capture (validate/start/dequeue/stop); info() and pollFd() may
// be called from any thread. Frames it hands out may be used on any thread (see Frame).
// A Capture whose device disconnected returns Disconnected from every call from then on:
// recovery is a new object.
class Capture {
 public:
  virtual ~Capture() = default;

  virtual CaptureInfo info() const = 0;

  // Adjusts `config` in place to what the device will do. Never fails: Invalid means no
  // adjustment can work (e.g. a format the device does not have at all).
  virtual Negotiation validate(CaptureConfig& config) const = 0;

  // Start streaming with a config validate() returned Valid for.
  // Errors: InvalidArgument (config not valid), Busy, NoDevice, Disconnected, Io.
  virtual Status start(const CaptureConfig& config) = 0;

  // Stop streaming. Frames still leased stay valid. Idempotent.
  virtual void stop() = 0;

  // A file descriptor that polls readable (POLLIN) when dequeue() may have a frame; -1 if none.
  virtual int pollFd() const = 0;

  // Non-blocking. Errors: Again (no frame yet: poll pollFd()), Disconnected (device gone),
  // NoSignal (device delivers no picture), Io.
  virtual Result<Frame> dequeue() = 0;

  // Ask an H.264 camera for an IDR soon. Errors: Unsupported when !capabilities.keyframeRequest.
  virtual Status requestKeyframe() { return Status(Errc::Unsupported, "capture cannot make keyframes"); }
};

}  // namespace printcast::hal
