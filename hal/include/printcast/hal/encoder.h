// SPDX-License-Identifier: MIT
// Encoder: raw frames in, shared packets out (H.264 access units or JPEGs).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "printcast/hal/packet.h"
#include "printcast/hal/result.h"

namespace printcast::hal {

struct EncoderConfig {
  Size size{640, 480};
  int fps = 30;           // nominal rate for rate control; timestamps come from the frames
  int bitrateKbps = 512;  // H.264 target bitrate (kbit/s)
  int gopFrames = 60;     // H.264 distance between IDRs, in frames
  int jpegQuality = 80;   // JPEG quality 1..100
  // The frames' Y'CbCr spans the full 0..255 range with BT.601 coefficients, as JPEG (JFIF)
  // defines it: frames decoded from JPEG (MJPEG cameras, timelapse snapshots). H.264 signals it
  // in the SPS VUI (video_full_range_flag = 1, matrix_coefficients = 6; ITU-T H.264 E.2.1), or
  // players take the samples as 16..235 and stretch them (crushed blacks, clipped whites).
  // False: limited range (16..235, UVC YUYV/NV12 cameras, the test pattern).
  bool fullRange = false;
};

// The H.264 encoder backends a board can list (bsp::EncoderSpec::h264, in order of preference)
// and codecs::openH264Backend() opens: libx264 (software), VA-API (Intel/AMD GPUs), a V4L2
// memory-to-memory stateful encoder (Raspberry Pi, many SoCs), a vendor SDK's encoder.
enum class EncoderBackend { X264, VaApi, V4L2M2M, Vendor };

struct EncoderInfo {
  std::string name;  // "x264", "turbojpeg", ...
  FourCC codec;      // kH264 or kMJPEG
  // Raw formats encode() accepts without conversion, the preferred first. A source frame of one
  // of these formats (and config.size) can be handed to encode() as it is, e.g. a camera's frame
  // straight from its buffer, which a hardware encoder may then read without a copy (see
  // inputPath()). Backends whose input depends on the configured device (V4L2 M2M) report the
  // formats of the current configuration.
  std::vector<FourCC> inputFormats;
};

// How frames reach an encoder, for /status and logs (Encoder::inputPath()).
struct EncoderInputPath {
  // "dmabuf": the last frame was imported by the device without a copy (V4L2 V4L2_MEMORY_DMABUF);
  // "mmap": frames are copied (converted where their format differs) into the device's own
  // buffers (V4L2 V4L2_MEMORY_MMAP); "copy": the encoder reads or uploads the frame itself
  // (software encoders, VA-API surfaces). "" before the first frame.
  std::string path;
  // Why the path is not "dmabuf" where the backend could import: "" on the dmabuf path and for
  // backends that never import; else the last reason ("frame carries no DMA-BUF", "frame format
  // YUYV is not the OUTPUT format YU12", "the driver refused DMABUF import: ...").
  std::string reason;
  uint64_t importedFrames = 0;  // frames queued by DMA-BUF import since the encoder was created
  uint64_t copiedFrames = 0;    // frames copied into device buffers since then
};

// Threading: one thread drives configure()/encode(); requestKeyframe() may be called from any
// thread at any time (e.g. when an HTTP client joins).
class Encoder {
 public:
  virtual ~Encoder() = default;

  virtual EncoderInfo info() const = 0;

  // (Re)configure. Errors: InvalidArgument (size/bitrate/quality out of range, named),
  // Unsupported (size the encoder cannot do), Io (library failure).
  virtual Status configure(const EncoderConfig& config) = 0;

  // Encode one frame of a format in info().inputFormats and size config.size.
  // Errors: InvalidArgument (wrong format/size), Again (encoder buffered the frame and has no
  // output yet), Io.
  virtual Result<PacketPtr> encode(const Frame& frame) = 0;

  // Make the next encoded frame an IDR with SPS/PPS in front. No-op for JPEG.
  virtual void requestKeyframe() = 0;

  // The H.264 parameter sets in force (null before configure() and for JPEG).
  virtual std::shared_ptr<const CodecConfig> codecConfig() const = 0;

  // Give back the working memory (reference and lookahead pictures, bitstream buffers) while
  // nobody wants output: a streamer nobody watches should not hold an encoder's megabytes. The
  // configuration and codecConfig() stay; the next encode() opens the encoder again with the
  // same configuration (same SPS/PPS) and its first output is an IDR. That reopen may fail with
  // Io like configure(). Called by the thread that drives encode(). Default: nothing to free.
  virtual void release() {}

  // How frames reach the encoder (EncoderInputPath). Threading: any thread (status pages).
  // Default: path "copy", for encoders that take the frame's memory themselves.
  virtual EncoderInputPath inputPath() const { return EncoderInputPath{"copy", "", 0, 0}; }
};

}  // namespace printcast::hal
