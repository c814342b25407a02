// SPDX-License-Identifier: MIT
// V4L2 memory-to-memory stateful encoder backend: I420 frames in, H.264 access units (or FWHT) out.
//
// The protocol is the kernel's "Memory-to-Memory Stateful Video Encoder Interface"
// (Documentation/userspace-api/media/v4l/dev-encoder.rst): the raw pictures go in on the OUTPUT
// queue, the bitstream comes back on the CAPTURE queue. Initialization: S_FMT on CAPTURE with the
// coded format first, then S_FMT on OUTPUT with the raw format and the source size (the driver
// may align the buffer: the visible rectangle is set with S_SELECTION V4L2_SEL_TGT_CROP), S_PARM
// on OUTPUT for the frame interval, the encoding controls, REQBUFS + mmap on both queues,
// STREAMON. Drain ("Drain" section): V4L2_ENC_CMD_STOP, then dequeue CAPTURE until a buffer
// carries V4L2_BUF_FLAG_LAST (or DQBUF answers EPIPE). Reset for a new size: STREAMOFF both
// queues, free the buffers, set the formats again.
//
// How others drive the Raspberry Pi's bcm2835-codec (/dev/video11, multiplanar API) and other
// stateful encoders, and what this file took from it:
//  - camera-streamer (ayufan) opens the node per queue, asks for one plane per buffer on
//    MPLANE nodes, takes the driver's bytesperline/height as they come back from S_FMT (the Pi
//    pads rows to 32 bytes and heights to 16 lines) and sets its controls (bitrate, I-period,
//    level, REPEAT_SEQ_HEADER) through the codec control class before streaming.
//  - picamera2's V4L2Encoder and ffmpeg's v4l2_m2m_enc.c set the same controls plus profile and a
//    QP range, copy the capture time into the OUTPUT buffer's timestamp and read it back from the
//    CAPTURE buffer (V4L2_BUF_FLAG_TIMESTAMP_COPY), and force IDRs with
//    V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME.
//  - Pi quirks handled here: older firmwares return SPS/PPS in a CAPTURE buffer of their own
//    (kept and put in front of the next picture); the encoder is known to stop producing after
//    hours (every wait is bounded by pollTimeoutMs and a hang resets the session); an IDR may come
//    without SPS/PPS when REPEAT_SEQ_HEADER is not honoured (the last ones are prepended).
//  - vicodec (the lab's stand-in, FWHT) has no S_PARM and refuses bitrate, profile, level and
//    FORCE_KEY_FRAME: every control is best effort and logged when refused.
//
// Zero-copy input (DMA-BUF import). A frame in the OUTPUT format that carries its buffer as a
// DMA-BUF (hal::Frame::dmabufFd(), a V4L2 camera's VIDIOC_EXPBUF) in exactly the driver's layout
// is queued with V4L2_MEMORY_DMABUF instead of being copied. How others do it, and what was taken:
//  - ustreamer (m2m.c) decides MMAP or DMABUF per "preparation" (it re-creates the whole encoder
//    when a frame's dma-ness, format or stride changes), always imports into OUTPUT buffer 0 and
//    dequeues that OUTPUT buffer before it lets the camera buffer go.
//  - camera-streamer links the camera's buffer list to the encoder's: each camera buffer has its
//    own OUTPUT slot, so vb2 keeps the import attached (videobuf2-core __prepare_dmabuf skips the
//    re-attach when the same dma-buf comes back to the same index).
// Here: the OUTPUT queue alone switches memory type (STREAMOFF OUTPUT, REQBUFS 0, REQBUFS n with
// the other type, STREAMON OUTPUT: dev-encoder.rst's Encoding -> Stopped -> Encoding, which keeps
// the CAPTURE side and the encoder state), only once no OUTPUT buffer is in flight, so no picture
// is lost; a DMA-BUF goes back to the slot it used before (camera-streamer's point); the frame's
// lease is kept until its OUTPUT buffer is dequeued (ustreamer's point: the camera must not
// refill the buffer while the encoder reads it). A driver that refuses the import (REQBUFS or
// QBUF with EINVAL and the like) is not asked again by this object: frames are copied into MMAP
// buffers from then on, and the reason is kept for inputPath().
// Every device call goes through the Syscalls seam (no libv4l2, as capture_v4l2.cpp), so the
// unit test runs this file against a scripted fake kernel.
#include <fcntl.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "encoder_limits.h"
#include "printcast/codecs/h264.h"
#include "printcast/codecs/v4l2m2m_encoder.h"

namespace printcast::codecs {

namespace {

namespace fs = std::filesystem;
using hal::Errc;
using hal::Error;
using hal::FourCC;
using hal::Size;
using hal::Status;
using hal::Syscalls;
using SteadyClock = std::chrono::steady_clock;

constexpr uint32_t kMaxEnumeration = 256;  // bound every ENUM_FMT loop against a looping driver
constexpr uint32_t kOutputBuffers = 4;
// DMABUF OUTPUT slots: one per camera buffer (cameras run 2..32; 8 covers the usual 3..6), so that
// each camera buffer keeps its import attached to its own slot.
constexpr uint32_t kDmabufOutputBuffers = 8;
constexpr uint32_t kCaptureBuffers = 4;
constexpr size_t kMinCodedBufferBytes = 64 * 1024;
// QP range: picamera2 and ffmpeg let the driver pick inside a range; 45 keeps a starved stream
// recognisable (blocky rather than smeared) and 10 stops static scenes eating the whole budget.
constexpr int kMinQp = 10;
constexpr int kMaxQp = 45;
// Raw OUTPUT formats in order of preference: I420 is copied row by row, NV12 needs the chroma
// interleaved, YUYV needs the chroma rows doubled.
constexpr std::array<FourCC, 3> kRawPreference = {hal::fourcc::kI420, hal::fourcc::kNV12, hal::fourcc::kYUYV};

// An fd from the Syscalls seam, closed through it.
class DeviceFd {
 public:
  DeviceFd() = default;
  DeviceFd(int fd, Syscalls& sys) : fd_(fd), sys_(&sys) {}
  ~DeviceFd() { reset(); }
  DeviceFd(DeviceFd&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), sys_(std::exchange(other.sys_, nullptr)) {}
  DeviceFd& operator=(DeviceFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
      sys_ = std::exchange(other.sys_, nullptr);
    }
    return *this;
  }
  DeviceFd(const DeviceFd&) = delete;
  DeviceFd& operator=(const DeviceFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0 && sys_ != nullptr) sys_->close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  Syscalls* sys_ = nullptr;
};

// A v4l2_buffer with room for the plane array the multiplanar API needs. Not copyable: the
// buffer points into the object itself.
struct BufferArg {
  BufferArg(uint32_t type, bool mplane, uint32_t index = 0, uint32_t memory = V4L2_MEMORY_MMAP) {
    buffer.type = type;
    buffer.memory = memory;
    buffer.index = index;
    if (mplane) {
      buffer.m.planes = planes.data();
      buffer.length = static_cast<uint32_t>(planes.size());
    }
  }
  BufferArg(const BufferArg&) = delete;
  BufferArg& operator=(const BufferArg&) = delete;

  v4l2_buffer buffer{};
  std::array<v4l2_plane, VIDEO_MAX_PLANES> planes{};
};

template <typename T, size_t N>
std::string fromBytes(const T (&bytes)[N]) {
  static_assert(sizeof(T) == 1);
  const auto* chars = reinterpret_cast<const char*>(bytes);
  return std::string(chars, strnlen(chars, N));
}

uint32_t capsOf(const v4l2_capability& cap) {
  return (cap.capabilities & V4L2_CAP_DEVICE_CAPS) != 0 ? cap.device_caps : cap.capabilities;
}

bool fatalErrno(int e) { return e == ENODEV || e == EIO; }

std::string formatList(const std::vector<FourCC>& formats) {
  std::string out;
  for (const auto& f : formats) {
    if (!out.empty()) out += ",";
    out += f.str();
  }
  return out.empty() ? "none" : out;
}

std::vector<FourCC> enumerateFormats(Syscalls& sys, int fd, uint32_t type) {
  std::vector<FourCC> formats;
  for (uint32_t i = 0; i < kMaxEnumeration; ++i) {
    v4l2_fmtdesc d{};
    d.index = i;
    d.type = type;
    if (sys.ioctl(fd, VIDIOC_ENUM_FMT, &d) != 0) break;
    formats.push_back(FourCC{d.pixelformat});
  }
  return formats;
}

// What a node is, as far as this backend cares.
struct NodeInfo {
  std::string path;
  std::string card;
  std::string driver;
  bool mplane = false;
  FourCC raw;  // the OUTPUT format frames are fed in
};

// Check that the open node is a stateful encoder of `coded`. Errors: Unsupported naming why not,
// Disconnected/Io for a failing device. `preferred` (one of kRawPreference, or empty) is tried
// first as the OUTPUT format.
hal::Result<NodeInfo> probeNode(Syscalls& sys, int fd, const std::string& path, FourCC coded,
                                FourCC preferred) {
  v4l2_capability cap{};
  if (sys.ioctl(fd, VIDIOC_QUERYCAP, &cap) != 0)
    return hal::errnoError(fmt::format("{}: VIDIOC_QUERYCAP", path));
  NodeInfo node;
  node.path = path;
  node.card = fromBytes(cap.card);
  node.driver = fromBytes(cap.driver);
  const uint32_t caps = capsOf(cap);
  const auto refuse = [&](const std::string& why) {
    return hal::Result<NodeInfo>(Errc::Unsupported, fmt::format("{} ({}): {}", path, node.card, why));
  };
  if ((caps & V4L2_CAP_VIDEO_M2M_MPLANE) != 0) {
    node.mplane = true;
  } else if ((caps & V4L2_CAP_VIDEO_M2M) == 0) {
    return refuse(fmt::format("not a memory-to-memory node (device caps 0x{:08x})", caps));
  }
  if ((caps & V4L2_CAP_STREAMING) == 0) return refuse("no streaming I/O");
  const auto capture = enumerateFormats(
      sys, fd, node.mplane ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE : V4L2_BUF_TYPE_VIDEO_CAPTURE);
  if (std::find(capture.begin(), capture.end(), coded) == capture.end()) {
    return refuse(fmt::format("codes {}, not {}", formatList(capture), coded.str()));
  }
  const auto output =
      enumerateFormats(sys, fd, node.mplane ? V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE : V4L2_BUF_TYPE_VIDEO_OUTPUT);
  if (std::find(kRawPreference.begin(), kRawPreference.end(), preferred) != kRawPreference.end() &&
      std::find(output.begin(), output.end(), preferred) != output.end()) {
    node.raw = preferred;
    return node;
  }
  for (const auto& f : kRawPreference) {
    if (std::find(output.begin(), output.end(), f) != output.end()) {
      node.raw = f;
      return node;
    }
  }
  return refuse(fmt::format("takes {}, none of YU12,NV12,YUYV", formatList(output)));
}

// Open `path` O_RDWR | O_NONBLOCK. Errors: NoDevice (missing), PermissionDenied, Busy, Io.
hal::Result<DeviceFd> openNode(Syscalls& sys, const std::string& path) {
  const int fd = sys.open(path.c_str(), O_RDWR | O_NONBLOCK);
  if (fd < 0) {
    const int e = errno;
    Error err = hal::errnoError(fmt::format("v4l2m2m {}: open", path), e);
    if (e == ENOENT || e == ENXIO || e == ENODEV) err.code = Errc::NoDevice;
    if (err.code != Errc::NoDevice && err.code != Errc::PermissionDenied && err.code != Errc::Busy)
      err.code = Errc::Io;
    return err;
  }
  return DeviceFd(fd, sys);
}

// "<devDir>/videoN" nodes sorted by N.
std::vector<std::string> videoNodes(const std::string& devDir, std::error_code& ec) {
  std::vector<std::pair<long, std::string>> nodes;  // NOLINT(google-runtime-int)
  for (fs::directory_iterator it(devDir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("video", 0) != 0 || name.size() == 5 || name.size() > 12) continue;
    const std::string digits = name.substr(5);
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    nodes.emplace_back(std::stol(digits), it->path().string());
  }
  std::sort(nodes.begin(), nodes.end());
  std::vector<std::string> out;
  for (auto& [n, p] : nodes) out.push_back(p);
  return out;
}

// The lowest H.264 level (ITU-T H.264 Table A-1: MaxMBPS, MaxFS, Baseline MaxBR) that holds
// `size` at `fps` and `bitrateKbps`: 3.1 for 720p30, 4.0 for 1080p30.
int h264Level(Size size, int fps, int bitrateKbps) {
  struct Level {
    int control;
    int64_t maxMbPerSecond;
    int64_t maxFrameMbs;
    int64_t maxKbps;
  };
  static constexpr std::array<Level, 15> kLevels = {{
      {V4L2_MPEG_VIDEO_H264_LEVEL_1_0, 1485, 99, 64},
      {V4L2_MPEG_VIDEO_H264_LEVEL_1_1, 3000, 396, 192},
      {V4L2_MPEG_VIDEO_H264_LEVEL_1_2, 6000, 396, 384},
      {V4L2_MPEG_VIDEO_H264_LEVEL_1_3, 11880, 396, 768},
      {V4L2_MPEG_VIDEO_H264_LEVEL_2_0, 11880, 396, 2000},
      {V4L2_MPEG_VIDEO_H264_LEVEL_2_1, 19800, 792, 4000},
      {V4L2_MPEG_VIDEO_H264_LEVEL_2_2, 20250, 1620, 4000},
      {V4L2_MPEG_VIDEO_H264_LEVEL_3_0, 40500, 1620, 10000},
      {V4L2_MPEG_VIDEO_H264_LEVEL_3_1, 108000, 3600, 14000},
      {V4L2_MPEG_VIDEO_H264_LEVEL_3_2, 216000, 5120, 20000},
      {V4L2_MPEG_VIDEO_H264_LEVEL_4_0, 245760, 8192, 20000},
      {V4L2_MPEG_VIDEO_H264_LEVEL_4_1, 245760, 8192, 50000},
      {V4L2_MPEG_VIDEO_H264_LEVEL_4_2, 522240, 8704, 50000},
      {V4L2_MPEG_VIDEO_H264_LEVEL_5_0, 589824, 22080, 135000},
      {V4L2_MPEG_VIDEO_H264_LEVEL_5_1, 983040, 36864, 240000},
  }};
  const int64_t mbs = int64_t{(size.width + 15) / 16} * ((size.height + 15) / 16);
  const int64_t mbps = mbs * fps;
  for (const auto& l : kLevels) {
    if (mbs <= l.maxFrameMbs && mbps <= l.maxMbPerSecond && bitrateKbps <= l.maxKbps) return l.control;
  }
  return V4L2_MPEG_VIDEO_H264_LEVEL_5_1;
}

uint64_t timestampKey(hal::Timestamp t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  return us > 0 ? static_cast<uint64_t>(us) : 0;
}

uint64_t timevalKey(const timeval& tv) {
  return static_cast<uint64_t>(tv.tv_sec) * 1000000u + static_cast<uint64_t>(tv.tv_usec);
}

bool hasNal(std::span<const uint8_t> annexB, uint8_t type) {
  for (const auto& nal : h264::splitAnnexB(annexB)) {
    if (nal.type() == type) return true;
  }
  return false;
}

bool hasSlice(std::span<const uint8_t> annexB) {
  for (const auto& nal : h264::splitAnnexB(annexB)) {
    if (nal.type() >= h264::kNonIdrSlice && nal.type() <= h264::kIdrSlice) return true;
  }
  return false;
}

class V4l2M2mEncoder final : public hal::Encoder {
 public:
  V4l2M2mEncoder(Syscalls& sys, V4l2M2mOptions options, DeviceFd fd, NodeInfo node)
      : sys_(sys), options_(std::move(options)), fd_(std::move(fd)), node_(std::move(node)) {
    out_.type = node_.mplane ? V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE : V4L2_BUF_TYPE_VIDEO_OUTPUT;
    cap_.type = node_.mplane ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE : V4L2_BUF_TYPE_VIDEO_CAPTURE;
  }
  ~V4l2M2mEncoder() override { stopSession(false); }
  V4l2M2mEncoder(const V4l2M2mEncoder&) = delete;
  V4l2M2mEncoder& operator=(const V4l2M2mEncoder&) = delete;

  hal::EncoderInfo info() const override {
    // I420 (converted while copied) first, then the OUTPUT format frames may come in as they are.
    const FourCC native = configured_ ? raw_ : node_.raw;
    std::vector<FourCC> inputs = {hal::fourcc::kI420};
    if (native.code != 0 && native != hal::fourcc::kI420) inputs.push_back(native);
    return hal::EncoderInfo{"v4l2m2m", options_.codedFormat, std::move(inputs)};
  }

  hal::EncoderInputPath inputPath() const override {
    std::lock_guard lock(statsMutex_);
    return stats_;
  }

  Status configure(const hal::EncoderConfig& config) override {
    if (auto st = validate(config); !st) return st;
    if (failed_) return *failed_;
    stopSession(true);
    configured_ = false;
    setCodecConfig(nullptr);  // the new parameter sets arrive with the first picture
    if (!fd_.valid()) {
      if (auto st = reopen(); !st) return st;
    }
    if (auto st = startSession(config); !st) {
      stopSession(false);
      return st;
    }
    config_ = config;
    configured_ = true;
    return {};
  }

  hal::Result<hal::PacketPtr> encode(const hal::Frame& frame) override {
    if (failed_) return *failed_;
    if (!configured_)
      return {Errc::InvalidArgument, "v4l2m2m: not configured (encode() before a successful configure())"};
    if (frame.valid() && frame.format() != hal::fourcc::kI420 && frame.format() == raw_) {
      if (frame.size() != config_.size) {
        return {Errc::InvalidArgument, fmt::format("v4l2m2m: frame size {} differs from the configured {}",
                                                   frame.size().str(), config_.size.str())};
      }
    } else if (auto st = checkEncoderInput(frame, config_.size, "v4l2m2m"); !st) {
      if (frame.valid() && frame.format() != hal::fourcc::kI420) {
        return {Errc::InvalidArgument,
                fmt::format("v4l2m2m: input format {} is neither YU12 (I420) nor the OUTPUT format {}",
                            frame.format().str(), raw_.str())};
      }
      return st.error();
    }
    if (needsReset_ || !streaming_) {
      // After release() or an encoder hang: a fresh session, whose first picture is an IDR.
      stopSession(false);
      if (!fd_.valid()) {
        if (auto st = reopen(); !st) return std::move(st).error();
      }
      if (auto st = startSession(config_); !st) {
        stopSession(false);
        return std::move(st).error();
      }
    }
    const auto deadline = SteadyClock::now() + std::chrono::milliseconds(std::max(options_.pollTimeoutMs, 0));

    // DMABUF import when the frame allows it and the driver has not refused; else MMAP (a copy).
    std::string whyCopy;
    bool import = importable(frame, whyCopy);
    const uint32_t wanted = import ? V4L2_MEMORY_DMABUF : V4L2_MEMORY_MMAP;
    if (out_.memory != wanted) {
      auto switched = switchOutputMemory(wanted, deadline);
      if (!switched) return std::move(switched).error();
      if (!*switched) {
        import = false;  // DMABUF refused: MMAP again
        whyCopy = *dmabufRefused_;
      }
    }

    if (keyframeRequested_.exchange(false, std::memory_order_acq_rel)) {
      if (auto st = forceKeyFrame(); !st) return std::move(st).error();
    }

    uint64_t key = timestampKey(frame.timestamp());
    if (key <= lastKey_) key = lastKey_ + 1;  // keep the keys unique, so output matches input
    lastKey_ = key;
    if (import) {
      auto queued = queueImported(frame, key, deadline);
      if (!queued) return std::move(queued).error();
      if (!*queued) {
        // QBUF refused the import: the rest of this object's life copies.
        import = false;
        whyCopy = *dmabufRefused_;
        auto switched = switchOutputMemory(V4L2_MEMORY_MMAP, deadline);
        if (!switched) return std::move(switched).error();
      }
    }
    if (!import) {
      if (auto st = queueCopied(frame, key, deadline); !st) return st.error();
    }
    noteInput(import, std::move(whyCopy));
    pending_.push_back(Pending{key, frame.timestamp(), frame.sequence()});
    while (pending_.size() > out_.buffers.size() + cap_.buffers.size()) pending_.pop_front();

    hal::Result<hal::PacketPtr> packet = hal::PacketPtr{};
    if (!ready_.empty()) {
      packet = std::move(ready_.front());
      ready_.pop_front();
    } else {
      packet = awaitPacket(deadline);
    }
    // Hand the frames the encoder has finished reading back to their source now (their leases),
    // rather than at the next encode(): a camera with few buffers needs them.
    if (packet) {
      if (auto st = reclaimOutput(); !st) return std::move(st).error();
    }
    return packet;
  }

  void requestKeyframe() override { keyframeRequested_.store(true, std::memory_order_release); }

  std::shared_ptr<const hal::CodecConfig> codecConfig() const override {
    std::lock_guard lock(configMutex_);
    return codecConfig_;
  }

  void release() override {
    stopSession(!failed_);
    fd_.reset();
  }

 private:
  struct Buffer {
    void* address = nullptr;  // MMAP: the mapping; DMABUF: null
    size_t length = 0;
    bool queued = false;
    // DMABUF OUTPUT slots: the dma-buf last queued here (so the same one comes back to the same
    // slot) and the lease on its frame, held while the buffer is queued.
    int dmabufFd = -1;
    hal::Frame frame;
  };
  struct Queue {
    uint32_t type = 0;
    uint32_t memory = V4L2_MEMORY_MMAP;
    std::vector<Buffer> buffers;
  };
  struct Pending {
    uint64_t key = 0;
    hal::Timestamp timestamp;
    uint64_t sequence = 0;
  };

  static Status validate(const hal::EncoderConfig& config) { return checkEncoderConfig(config, "v4l2m2m"); }

  bool isH264() const { return options_.codedFormat == hal::fourcc::kH264; }

  // An errno failure of `call`: ENODEV and EIO leave the object failed for good.
  Error failure(const std::string& call, int e = errno) {
    if (e == ENODEV) {
      failed_ = Error{Errc::Disconnected, e,
                      fmt::format("v4l2m2m {} ({}): {}: the device went away", node_.path, node_.card, call)};
      return *failed_;
    }
    if (e == EIO) {
      failed_ =
          Error{Errc::Io, e, fmt::format("v4l2m2m {} ({}): {}: device error", node_.path, node_.card, call)};
      return *failed_;
    }
    return hal::errnoError(fmt::format("v4l2m2m {}: {}", node_.path, call), e);
  }

  Status reopen() {
    auto fd = openNode(sys_, node_.path);
    if (!fd) return std::move(fd).error();
    auto node = probeNode(sys_, fd->get(), node_.path, options_.codedFormat, options_.preferredInput);
    if (!node) {
      Error err = std::move(node).error();
      if (err.code == Errc::Unsupported) err.code = Errc::NoDevice;  // another device took the node
      err.message = "v4l2m2m: reopening " + err.message;
      return err;
    }
    fd_ = std::move(*fd);
    node_ = std::move(*node);
    return {};
  }

  // S_FMT both queues, crop, rate, controls, buffers, STREAMON (dev-encoder.rst "Initialization").
  Status startSession(const hal::EncoderConfig& config) {
    needsReset_ = false;
    pending_.clear();
    ready_.clear();
    headerPrefix_.clear();
    const Size size = config.size;
    const auto w = static_cast<uint32_t>(size.width);
    const auto h = static_cast<uint32_t>(size.height);

    // CAPTURE first: the coded format decides what OUTPUT formats and sizes the driver offers.
    v4l2_format cf{};
    cf.type = cap_.type;
    const auto codedBytes =
        static_cast<uint32_t>(std::max<size_t>(size_t{w} * h * 3 / 2, kMinCodedBufferBytes));
    if (node_.mplane) {
      cf.fmt.pix_mp.width = w;
      cf.fmt.pix_mp.height = h;
      cf.fmt.pix_mp.pixelformat = options_.codedFormat.code;
      cf.fmt.pix_mp.field = V4L2_FIELD_NONE;
      cf.fmt.pix_mp.num_planes = 1;
      cf.fmt.pix_mp.plane_fmt[0].sizeimage = codedBytes;
    } else {
      cf.fmt.pix.width = w;
      cf.fmt.pix.height = h;
      cf.fmt.pix.pixelformat = options_.codedFormat.code;
      cf.fmt.pix.field = V4L2_FIELD_NONE;
      cf.fmt.pix.sizeimage = codedBytes;
    }
    if (sys_.ioctl(fd_.get(), VIDIOC_S_FMT, &cf) != 0) return failure("VIDIOC_S_FMT CAPTURE");
    const uint32_t gotCoded = node_.mplane ? cf.fmt.pix_mp.pixelformat : cf.fmt.pix.pixelformat;
    if (gotCoded != options_.codedFormat.code) {
      return {Errc::Unsupported, fmt::format("v4l2m2m {}: the driver set CAPTURE format {} for {}",
                                             node_.path, FourCC{gotCoded}.str(), options_.codedFormat.str())};
    }

    // OUTPUT: the raw format at the source size; the driver's alignment (bytesperline, height)
    // wins and the frame is copied into the top-left corner.
    v4l2_format of{};
    of.type = out_.type;
    const uint32_t colorspace = config.fullRange ? V4L2_COLORSPACE_JPEG : V4L2_COLORSPACE_SMPTE170M;
    const uint32_t quantization =
        config.fullRange ? V4L2_QUANTIZATION_FULL_RANGE : V4L2_QUANTIZATION_LIM_RANGE;
    if (node_.mplane) {
      of.fmt.pix_mp.width = w;
      of.fmt.pix_mp.height = h;
      of.fmt.pix_mp.pixelformat = node_.raw.code;
      of.fmt.pix_mp.field = V4L2_FIELD_NONE;
      of.fmt.pix_mp.num_planes = 1;
      of.fmt.pix_mp.colorspace = colorspace;
      of.fmt.pix_mp.quantization = static_cast<uint8_t>(quantization);
    } else {
      of.fmt.pix.width = w;
      of.fmt.pix.height = h;
      of.fmt.pix.pixelformat = node_.raw.code;
      of.fmt.pix.field = V4L2_FIELD_NONE;
      of.fmt.pix.colorspace = colorspace;
      of.fmt.pix.quantization = quantization;
    }
    if (sys_.ioctl(fd_.get(), VIDIOC_S_FMT, &of) != 0) return failure("VIDIOC_S_FMT OUTPUT");
    FourCC raw;
    uint32_t allocW = 0;
    uint32_t allocH = 0;
    uint32_t bytesPerLine = 0;
    if (node_.mplane) {
      if (of.fmt.pix_mp.num_planes != 1) {
        return {Errc::Unsupported,
                fmt::format("v4l2m2m {}: OUTPUT format {} in {} planes (only one is handled)", node_.path,
                            FourCC{of.fmt.pix_mp.pixelformat}.str(), of.fmt.pix_mp.num_planes)};
      }
      raw = FourCC{of.fmt.pix_mp.pixelformat};
      allocW = of.fmt.pix_mp.width;
      allocH = of.fmt.pix_mp.height;
      bytesPerLine = of.fmt.pix_mp.plane_fmt[0].bytesperline;
      outSizeImage_ = of.fmt.pix_mp.plane_fmt[0].sizeimage;
    } else {
      raw = FourCC{of.fmt.pix.pixelformat};
      allocW = of.fmt.pix.width;
      allocH = of.fmt.pix.height;
      bytesPerLine = of.fmt.pix.bytesperline;
      outSizeImage_ = of.fmt.pix.sizeimage;
    }
    if (std::find(kRawPreference.begin(), kRawPreference.end(), raw) == kRawPreference.end()) {
      return {Errc::Unsupported, fmt::format("v4l2m2m {}: the driver set OUTPUT format {} for {}", node_.path,
                                             raw.str(), node_.raw.str())};
    }
    if (allocW < w || allocH < h) {
      return {Errc::Unsupported, fmt::format("v4l2m2m {}: the encoder takes {}x{} at most, not {}",
                                             node_.path, allocW, allocH, size.str())};
    }
    // Some drivers leave bytesperline 0; the spec then means "packed".
    const uint32_t packed = allocW * static_cast<uint32_t>(raw == hal::fourcc::kYUYV ? 2 : 1);
    bytesPerLine = std::max(bytesPerLine, packed);
    raw_ = raw;
    allocHeight_ = allocH;
    bytesPerLine_ = bytesPerLine;
    const size_t luma = size_t{bytesPerLine} * allocH;
    const size_t chromaRows = (allocH + 1) / 2;
    rawBytes_ = raw == hal::fourcc::kYUYV   ? luma
                : raw == hal::fourcc::kNV12 ? luma + size_t{bytesPerLine} * chromaRows
                                            : luma + 2 * (size_t{bytesPerLine} / 2) * chromaRows;
    const bool padded = allocW != w || allocH != h;
    padded_ = padded;
    if (padded) {
      // The visible rectangle (dev-encoder.rst "Initialization" step 5). Drivers without the
      // selection API (EINVAL, ENOTTY) code the padding too; it is black (below).
      v4l2_selection sel{};
      sel.type = V4L2_BUF_TYPE_VIDEO_OUTPUT;  // the single-planar type is accepted for both APIs
      sel.target = V4L2_SEL_TGT_CROP;
      sel.r = v4l2_rect{0, 0, w, h};
      if (sys_.ioctl(fd_.get(), VIDIOC_S_SELECTION, &sel) != 0) {
        const int e = errno;
        if (fatalErrno(e)) return failure("VIDIOC_S_SELECTION", e);
        spdlog::debug("v4l2m2m {}: no crop to {} in the {}x{} buffer ({})", node_.path, size.str(), allocW,
                      allocH, std::strerror(e));
      }
    }

    // Frame interval on OUTPUT (never 0/0: some drivers divide by it). vicodec has none.
    v4l2_streamparm parm{};
    parm.type = out_.type;
    parm.parm.output.timeperframe = v4l2_fract{1, static_cast<uint32_t>(config.fps)};
    if (sys_.ioctl(fd_.get(), VIDIOC_S_PARM, &parm) != 0) {
      const int e = errno;
      if (fatalErrno(e)) return failure("VIDIOC_S_PARM", e);
      spdlog::debug("v4l2m2m {}: no frame interval control ({})", node_.path, std::strerror(e));
    }

    if (auto st = applyControls(config); !st) return st;

    // The OUTPUT memory type of the last session (DMABUF once frames were imported), so a
    // reconfigure does not switch back and forth.
    const bool importing = out_.memory == V4L2_MEMORY_DMABUF && !dmabufRefused_ && !padded;
    if (auto r = allocateOutput(importing ? V4L2_MEMORY_DMABUF : V4L2_MEMORY_MMAP); !r) return r.error();
    if (auto st = allocate(cap_, kCaptureBuffers, V4L2_MEMORY_MMAP); !st) return st;
    for (uint32_t i = 0; i < cap_.buffers.size(); ++i) {
      if (auto st = queueCapture(i); !st) return st;
    }
    for (Queue* q : {&out_, &cap_}) {
      int type = static_cast<int>(q->type);
      if (sys_.ioctl(fd_.get(), VIDIOC_STREAMON, &type) != 0) return failure("VIDIOC_STREAMON");
      streaming_ = true;
    }
    // Once per configure(); the reopens after release() or a hang are routine.
    spdlog::log(configured_ ? spdlog::level::debug : spdlog::level::info,
                "v4l2m2m {} ({}): {} {} at {} fps from {} {}x{} (stride {}){}", node_.path, node_.card,
                options_.codedFormat.str(), size.str(), config.fps, raw.str(), allocW, allocH, bytesPerLine,
                refusedControls_.empty() ? "" : "; refused controls: " + refusedControls_);
    return {};
  }

  // Set one control: VIDIOC_S_EXT_CTRLS in the codec class, VIDIOC_S_CTRL on drivers without the
  // extended call. Returns 0 or the errno.
  int setControl(uint32_t id, int32_t value) {
    v4l2_ext_control c{};
    c.id = id;
    c.value = value;
    v4l2_ext_controls cs{};
    cs.ctrl_class = V4L2_CTRL_CLASS_MPEG;  // V4L2_CTRL_CLASS_CODEC since Linux 5.11, same value
    cs.count = 1;
    cs.controls = &c;
    if (sys_.ioctl(fd_.get(), VIDIOC_S_EXT_CTRLS, &cs) == 0) return 0;
    if (errno != ENOTTY) return errno;
    v4l2_control s{};
    s.id = id;
    s.value = value;
    return sys_.ioctl(fd_.get(), VIDIOC_S_CTRL, &s) == 0 ? 0 : errno;
  }

  // The encoding parameters. None is essential: a control the driver refuses is noted and skipped.
  Status applyControls(const hal::EncoderConfig& config) {
    refusedControls_.clear();
    const auto set = [&](uint32_t id, int32_t value, const char* name) -> hal::Result<bool> {
      const int e = setControl(id, value);
      if (e == 0) return true;
      if (fatalErrno(e)) return failure(fmt::format("control {}", name), e);
      refusedControls_ += refusedControls_.empty() ? name : fmt::format(", {}", name);
      spdlog::debug("v4l2m2m {}: control {} = {} refused ({})", node_.path, name, value, std::strerror(e));
      return false;
    };
    struct Setting {
      uint32_t id;
      int32_t value;
      const char* name;
    };
    std::vector<Setting> settings = {
        {V4L2_CID_MPEG_VIDEO_BITRATE, config.bitrateKbps * 1000, "bitrate"},
        {V4L2_CID_MPEG_VIDEO_GOP_SIZE, config.gopFrames, "GOP size"},
    };
    if (isH264()) {
      settings.push_back({V4L2_CID_MPEG_VIDEO_H264_I_PERIOD, config.gopFrames, "H.264 I-period"});
      settings.push_back({V4L2_CID_MPEG_VIDEO_H264_LEVEL,
                          h264Level(config.size, config.fps, config.bitrateKbps), "H.264 level"});
      settings.push_back({V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER, 1, "repeat SPS/PPS"});
      settings.push_back({V4L2_CID_MPEG_VIDEO_H264_MIN_QP, kMinQp, "H.264 min QP"});
      settings.push_back({V4L2_CID_MPEG_VIDEO_H264_MAX_QP, kMaxQp, "H.264 max QP"});
    }
    for (const auto& s : settings) {
      if (auto r = set(s.id, s.value, s.name); !r) return std::move(r).error();
    }
    if (isH264()) {
      // Constrained baseline: what every browser decoder and the outputs' avcC expect; plain
      // baseline on drivers that do not list it (the difference is only the constraint flag).
      auto cb = set(V4L2_CID_MPEG_VIDEO_H264_PROFILE, V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE,
                    "H.264 profile constrained baseline");
      if (!cb) return std::move(cb).error();
      if (!*cb) {
        auto b = set(V4L2_CID_MPEG_VIDEO_H264_PROFILE, V4L2_MPEG_VIDEO_H264_PROFILE_BASELINE,
                     "H.264 profile baseline");
        if (!b) return std::move(b).error();
      }
    }
    return {};
  }

  Status forceKeyFrame() {
    if (!forceKeySupported_) return {};
    const int e = setControl(V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, 1);
    if (e == 0) return {};
    if (fatalErrno(e)) return failure("control FORCE_KEY_FRAME", e);
    forceKeySupported_ = false;
    spdlog::info("v4l2m2m {} ({}): no FORCE_KEY_FRAME control ({}): keyframes come every {} frames (GOP)",
                 node_.path, node_.card, std::strerror(e), config_.gopFrames);
    return {};
  }

  // REQBUFS `count` buffers of `memory` on `q`; MMAP ones are queried and mapped, DMABUF ones are
  // empty slots.
  Status allocate(Queue& q, uint32_t count, uint32_t memory) {
    v4l2_requestbuffers req{};
    req.count = count;
    req.type = q.type;
    req.memory = memory;
    if (sys_.ioctl(fd_.get(), VIDIOC_REQBUFS, &req) != 0) return failure("VIDIOC_REQBUFS");
    q.memory = memory;
    if (req.count == 0)
      return {Errc::Io, fmt::format("v4l2m2m {}: VIDIOC_REQBUFS granted no buffers", node_.path)};
    if (memory == V4L2_MEMORY_DMABUF) {
      q.buffers.resize(req.count);
      return {};
    }
    for (uint32_t i = 0; i < req.count; ++i) {
      BufferArg arg(q.type, node_.mplane, i);
      if (sys_.ioctl(fd_.get(), VIDIOC_QUERYBUF, &arg.buffer) != 0) return failure("VIDIOC_QUERYBUF");
      size_t length = arg.buffer.length;
      off_t offset = arg.buffer.m.offset;
      if (node_.mplane) {
        if (arg.buffer.length != 1) {
          return {Errc::Unsupported, fmt::format("v4l2m2m {}: buffers of {} planes (only one is handled)",
                                                 node_.path, arg.buffer.length)};
        }
        length = arg.planes[0].length;
        offset = arg.planes[0].m.mem_offset;
      }
      void* address = sys_.mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), offset);
      if (address == MAP_FAILED) return failure("mmap");
      Buffer b;
      b.address = address;
      b.length = length;
      q.buffers.push_back(std::move(b));
    }
    return {};
  }

  // Unmap and free `q`'s buffers (the queue must be stopped: leases of imported frames drop here).
  void freeBuffers(Queue& q) {
    for (const auto& b : q.buffers) {
      if (b.address != nullptr) sys_.munmap(b.address, b.length);
    }
    const bool had = !q.buffers.empty();
    q.buffers.clear();
    if (!had || !fd_.valid()) return;
    v4l2_requestbuffers req{};
    req.count = 0;
    req.type = q.type;
    req.memory = q.memory;
    (void)sys_.ioctl(fd_.get(), VIDIOC_REQBUFS, &req);  // a gone device frees them itself
  }

  // REQBUFS the OUTPUT queue with `memory` (MMAP buffers are checked and, when the driver padded
  // the picture, blacked). True: done; false: the driver refused DMABUF (dmabufRefused_ says why)
  // and the queue has MMAP buffers instead.
  hal::Result<bool> allocateOutput(uint32_t memory) {
    if (memory == V4L2_MEMORY_DMABUF) {
      auto st = allocate(out_, kDmabufOutputBuffers, V4L2_MEMORY_DMABUF);
      if (st) return true;
      if (failed_) return st.error();  // ENODEV, EIO: the device, not the import
      refuseDmabuf(st.error().describe());
      out_.buffers.clear();
    }
    if (auto st = allocate(out_, kOutputBuffers, V4L2_MEMORY_MMAP); !st) return st.error();
    for (const auto& b : out_.buffers) {
      if (b.length < rawBytes_) {
        return Error{Errc::Io, 0,
                     fmt::format("v4l2m2m {}: OUTPUT buffer of {} bytes for a {} byte {} picture", node_.path,
                                 b.length, rawBytes_, raw_.str())};
      }
      if (padded_) fillBlack(static_cast<uint8_t*>(b.address));
    }
    return memory == V4L2_MEMORY_MMAP;
  }

  // The driver will not import: remembered for this object's life, logged once.
  void refuseDmabuf(std::string why) {
    if (dmabufRefused_) return;
    spdlog::info("v4l2m2m {} ({}): DMA-BUF import refused ({}); frames are copied into MMAP buffers",
                 node_.path, node_.card, why);
    dmabufRefused_ = "the driver refused DMABUF import: " + std::move(why);
  }

  // Switch the OUTPUT queue to `memory` once nothing is in flight on it (dev-encoder.rst: Encoding
  // -> Stopped by STREAMOFF(OUTPUT), -> Encoding by STREAMON(OUTPUT); the CAPTURE queue and the
  // encoder's state stay). True: switched; false: DMABUF was refused and the queue is MMAP again.
  hal::Result<bool> switchOutputMemory(uint32_t memory, SteadyClock::time_point deadline) {
    for (;;) {
      if (auto st = reclaimOutput(); !st) return st.error();
      if (std::none_of(out_.buffers.begin(), out_.buffers.end(), [](const Buffer& b) { return b.queued; }))
        break;
      if (auto st = waitCollecting(deadline); !st) return std::move(st).error();
    }
    int type = static_cast<int>(out_.type);
    if (sys_.ioctl(fd_.get(), VIDIOC_STREAMOFF, &type) != 0) return failure("VIDIOC_STREAMOFF OUTPUT");
    freeBuffers(out_);
    auto allocated = allocateOutput(memory);
    if (!allocated) {
      needsReset_ = true;
      return std::move(allocated).error();
    }
    if (sys_.ioctl(fd_.get(), VIDIOC_STREAMON, &type) != 0) {
      needsReset_ = true;
      return failure("VIDIOC_STREAMON OUTPUT");
    }
    spdlog::debug("v4l2m2m {}: OUTPUT queue now {}", node_.path,
                  out_.memory == V4L2_MEMORY_DMABUF ? "DMABUF" : "MMAP");
    return *allocated;
  }

  // Whether `frame` can be queued by DMA-BUF import as it is; else `why` not.
  bool importable(const hal::Frame& frame, std::string& why) const {
    if (dmabufRefused_) {
      why = *dmabufRefused_;
      return false;
    }
    if (frame.dmabufFd() < 0) {
      why = "frame carries no DMA-BUF";
      return false;
    }
    if (frame.format() != raw_) {
      why = fmt::format("frame format {} is not the OUTPUT format {}", frame.format().str(), raw_.str());
      return false;
    }
    if (padded_) {
      why = fmt::format("the driver pads {} to {} bytes x {} rows", config_.size.str(), bytesPerLine_,
                        allocHeight_);
      return false;
    }
    // The driver's single-buffer layout (V4L2 "V4L2_PIX_FMT_YUV420", "NV12", "YUYV"): plane p at
    // its offset from plane 0 with the driver's bytesperline (halved for YU12's chroma).
    const size_t bpl = bytesPerLine_;
    const size_t luma = bpl * allocHeight_;
    const size_t chroma = (bpl / 2) * ((allocHeight_ + 1) / 2);
    struct Expected {
      size_t offset;
      size_t stride;
    };
    std::vector<Expected> layout = {{0, bpl}};
    if (raw_ == hal::fourcc::kNV12) layout.push_back({luma, bpl});
    if (raw_ == hal::fourcc::kI420) {
      layout.push_back({luma, bpl / 2});
      layout.push_back({luma + chroma, bpl / 2});
    }
    if (frame.planeCount() != static_cast<int>(layout.size())) {
      why = fmt::format("frame has {} planes, {} has {}", frame.planeCount(), raw_.str(), layout.size());
      return false;
    }
    const uint8_t* base = frame.plane(0).data;
    for (size_t p = 0; p < layout.size(); ++p) {
      const auto& plane = frame.plane(static_cast<int>(p));
      const auto offset = static_cast<size_t>(plane.data - base);
      if (static_cast<size_t>(plane.stride) != layout[p].stride || offset != layout[p].offset) {
        why = fmt::format(
            "frame plane {} (stride {}, offset {}) differs from the driver's (stride {}, offset {})", p,
            plane.stride, offset, layout[p].stride, layout[p].offset);
        return false;
      }
    }
    const size_t needed = std::max<size_t>(rawBytes_, outSizeImage_);
    if (frame.dmabufLength() < needed) {
      why = fmt::format("DMA-BUF of {} bytes, the driver wants {}", frame.dmabufLength(), needed);
      return false;
    }
    why.clear();
    return true;
  }

  // Queue `frame` by DMA-BUF import into the slot its dma-buf used before (else a free one),
  // keeping its lease until the buffer is dequeued. False: QBUF refused the import (remembered).
  hal::Result<bool> queueImported(const hal::Frame& frame, uint64_t key, SteadyClock::time_point deadline) {
    auto slot = freeOutputBuffer(deadline, frame.dmabufFd());
    if (!slot) return std::move(slot).error();
    const uint32_t index = *slot;
    BufferArg arg(out_.type, node_.mplane, index, V4L2_MEMORY_DMABUF);
    arg.buffer.field = V4L2_FIELD_NONE;
    arg.buffer.timestamp.tv_sec = static_cast<time_t>(key / 1000000u);
    arg.buffer.timestamp.tv_usec = static_cast<suseconds_t>(key % 1000000u);
    const auto length = static_cast<uint32_t>(frame.dmabufLength());
    if (node_.mplane) {
      arg.buffer.length = 1;
      arg.planes[0].m.fd = frame.dmabufFd();
      arg.planes[0].length = length;
      arg.planes[0].bytesused = static_cast<uint32_t>(rawBytes_);
    } else {
      arg.buffer.m.fd = frame.dmabufFd();
      arg.buffer.length = length;
      arg.buffer.bytesused = static_cast<uint32_t>(rawBytes_);
    }
    if (sys_.ioctl(fd_.get(), VIDIOC_QBUF, &arg.buffer) != 0) {
      const int e = errno;
      if (fatalErrno(e)) return failure("VIDIOC_QBUF OUTPUT (DMABUF)", e);
      refuseDmabuf(hal::errnoError("VIDIOC_QBUF (DMABUF)", e).describe());
      out_.buffers[index].dmabufFd = -1;
      return false;
    }
    Buffer& b = out_.buffers[index];
    b.queued = true;
    b.dmabufFd = frame.dmabufFd();
    b.frame = frame;
    return true;
  }

  // Copy (or convert) `frame` into a free MMAP OUTPUT buffer and queue it.
  Status queueCopied(const hal::Frame& frame, uint64_t key, SteadyClock::time_point deadline) {
    auto slot = freeOutputBuffer(deadline, -1);
    if (!slot) return std::move(slot).error();
    const uint32_t index = *slot;
    auto* dst = static_cast<uint8_t*>(out_.buffers[index].address);
    if (frame.format() == hal::fourcc::kI420) {
      copyFrame(frame, dst);
    } else {
      copyNative(frame, dst);
    }
    BufferArg arg(out_.type, node_.mplane, index);
    arg.buffer.field = V4L2_FIELD_NONE;
    arg.buffer.timestamp.tv_sec = static_cast<time_t>(key / 1000000u);
    arg.buffer.timestamp.tv_usec = static_cast<suseconds_t>(key % 1000000u);
    if (node_.mplane) {
      arg.buffer.length = 1;
      arg.planes[0].bytesused = static_cast<uint32_t>(rawBytes_);
      arg.planes[0].length = static_cast<uint32_t>(out_.buffers[index].length);
    } else {
      arg.buffer.bytesused = static_cast<uint32_t>(rawBytes_);
    }
    if (sys_.ioctl(fd_.get(), VIDIOC_QBUF, &arg.buffer) != 0) return failure("VIDIOC_QBUF OUTPUT");
    out_.buffers[index].queued = true;
    return {};
  }

  void noteInput(bool imported, std::string why) {
    std::lock_guard lock(statsMutex_);
    stats_.path = imported ? "dmabuf" : "mmap";
    if (stats_.reason != why) stats_.reason = std::move(why);
    ++(imported ? stats_.importedFrames : stats_.copiedFrames);
  }

  Status queueCapture(uint32_t index) {
    BufferArg arg(cap_.type, node_.mplane, index);
    if (node_.mplane) {
      arg.buffer.length = 1;
      arg.planes[0].length = static_cast<uint32_t>(cap_.buffers[index].length);
    } else {
      arg.buffer.length = static_cast<uint32_t>(cap_.buffers[index].length);
    }
    if (sys_.ioctl(fd_.get(), VIDIOC_QBUF, &arg.buffer) != 0) return failure("VIDIOC_QBUF CAPTURE");
    cap_.buffers[index].queued = true;
    return {};
  }

  // Drain (optionally), STREAMOFF, unmap, free. Keeps the fd.
  void stopSession(bool drainFirst) {
    if (streaming_ && drainFirst && !failed_ && !needsReset_) drain();
    if (streaming_ && fd_.valid()) {
      for (Queue* q : {&out_, &cap_}) {
        int type = static_cast<int>(q->type);
        (void)sys_.ioctl(fd_.get(), VIDIOC_STREAMOFF, &type);
      }
    }
    streaming_ = false;
    freeBuffers(out_);
    freeBuffers(cap_);
    pending_.clear();
    ready_.clear();
    headerPrefix_.clear();
  }

  // dev-encoder.rst "Drain": ENCODER_CMD STOP, then CAPTURE until V4L2_BUF_FLAG_LAST or EPIPE,
  // bounded by pollTimeoutMs. The drained pictures belong to a configuration nobody wants now.
  void drain() {
    v4l2_encoder_cmd cmd{};
    cmd.cmd = V4L2_ENC_CMD_STOP;
    if (sys_.ioctl(fd_.get(), VIDIOC_ENCODER_CMD, &cmd) != 0) {
      const int e = errno;
      if (fatalErrno(e)) (void)failure("VIDIOC_ENCODER_CMD STOP", e);
      return;  // ENOTTY/EINVAL: a driver without the drain sequence; STREAMOFF resets it
    }
    const auto deadline = SteadyClock::now() + std::chrono::milliseconds(std::max(options_.pollTimeoutMs, 0));
    for (;;) {
      BufferArg arg(cap_.type, node_.mplane);
      if (sys_.ioctl(fd_.get(), VIDIOC_DQBUF, &arg.buffer) == 0) {
        if (arg.buffer.index < cap_.buffers.size()) cap_.buffers[arg.buffer.index].queued = false;
        if ((arg.buffer.flags & V4L2_BUF_FLAG_LAST) != 0) return;
        if (!queueCapture(arg.buffer.index)) return;
        continue;
      }
      const int e = errno;
      if (e == EPIPE) return;  // the LAST buffer was dequeued already
      if (e != EAGAIN) {
        if (fatalErrno(e)) (void)failure("VIDIOC_DQBUF CAPTURE (drain)", e);
        return;
      }
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
      pollfd p{fd_.get(), POLLIN, 0};
      if (left <= 0 || sys_.poll(&p, 1, static_cast<int>(left)) == 0) {
        spdlog::warn("v4l2m2m {}: drain gave no LAST buffer within {} ms; stopping anyway", node_.path,
                     options_.pollTimeoutMs);
        return;
      }
    }
  }

  // Take back the OUTPUT buffers the encoder is done with (non-blocking).
  // An imported frame's lease drops here: the encoder is done reading its buffer.
  Status reclaimOutput() {
    if (!streaming_) return {};
    for (;;) {
      BufferArg arg(out_.type, node_.mplane, 0, out_.memory);
      if (sys_.ioctl(fd_.get(), VIDIOC_DQBUF, &arg.buffer) != 0) {
        const int e = errno;
        if (fatalErrno(e)) return failure("VIDIOC_DQBUF OUTPUT", e);
        return {};  // EAGAIN: none done yet
      }
      if (arg.buffer.index < out_.buffers.size()) {
        Buffer& b = out_.buffers[arg.buffer.index];
        b.queued = false;
        b.frame = hal::Frame();
      }
    }
  }

  Error hung() {
    needsReset_ = true;
    return Error{Errc::Timeout, 0,
                 fmt::format("v4l2m2m {} ({}): no encoded picture within {} ms: the encoder hung", node_.path,
                             node_.card, options_.pollTimeoutMs)};
  }

  // Wait on the fd until `deadline`; false when it ran out.
  hal::Result<bool> waitFor(short events, SteadyClock::time_point deadline, short& revents) {
    for (;;) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_.get(), events, 0};
      const int n = sys_.poll(&p, 1, static_cast<int>(left));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return failure("poll");
      if (n == 0) return false;
      revents = p.revents;
      if ((p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0 && (p.revents & events) == 0) {
        needsReset_ = true;
        return Error{Errc::Io, 0, fmt::format("v4l2m2m {}: poll reports an error on the queues", node_.path)};
      }
      return true;
    }
  }

  // Wait for either queue until `deadline`; a picture the encoder finished meanwhile goes to ready_
  // (handed out by the next calls). Errors: Timeout (hung(): nothing moved), what poll and the
  // CAPTURE dequeue report.
  hal::Status waitCollecting(SteadyClock::time_point deadline) {
    short revents = 0;
    auto woke = waitFor(POLLIN | POLLOUT, deadline, revents);
    if (!woke) return std::move(woke).error();
    if (!*woke) return hung();
    if ((revents & POLLIN) != 0) {
      auto packet = dequeuePacket();
      if (!packet && packet.code() != Errc::Again) return std::move(packet).error();
      if (packet && *packet) ready_.push_back(std::move(*packet));
    }
    return {};
  }

  // An OUTPUT buffer to fill: a free one, or the first the encoder gives back before `deadline`.
  // DMABUF: the free slot `dmabufFd` was queued in before, else one never used, else any.
  hal::Result<uint32_t> freeOutputBuffer(SteadyClock::time_point deadline, int dmabufFd) {
    for (;;) {
      if (auto st = reclaimOutput(); !st) return std::move(st).error();
      std::optional<uint32_t> pick;
      for (uint32_t i = 0; i < out_.buffers.size(); ++i) {
        const Buffer& b = out_.buffers[i];
        if (b.queued) continue;
        if (dmabufFd < 0 || b.dmabufFd == dmabufFd) {
          pick = i;
          break;
        }
        if (!pick || (b.dmabufFd < 0 && out_.buffers[*pick].dmabufFd >= 0)) pick = i;
      }
      if (pick) return *pick;
      if (auto st = waitCollecting(deadline); !st) return std::move(st).error();
    }
  }

  hal::Result<hal::PacketPtr> awaitPacket(SteadyClock::time_point deadline) {
    for (;;) {
      if (auto st = reclaimOutput(); !st) return std::move(st).error();
      auto packet = dequeuePacket();
      if (packet && *packet) return packet;
      if (!packet && packet.code() != Errc::Again) return packet;
      if (packet) continue;  // a buffer without a picture (parameter sets alone, empty): look again
      short revents = 0;
      auto woke = waitFor(POLLIN, deadline, revents);
      if (!woke) return std::move(woke).error();
      if (!*woke) return hung();
    }
  }

  // One CAPTURE buffer as a packet (re-queued at once). Again: none ready. A null packet: the
  // buffer held no picture (SPS/PPS on their own, or nothing).
  hal::Result<hal::PacketPtr> dequeuePacket() {
    BufferArg arg(cap_.type, node_.mplane);
    if (sys_.ioctl(fd_.get(), VIDIOC_DQBUF, &arg.buffer) != 0) {
      const int e = errno;
      if (e == EAGAIN) return {Errc::Again, "v4l2m2m: no encoded picture yet"};
      if (e == EPIPE) {
        needsReset_ = true;
        return Error{Errc::Io, e, fmt::format("v4l2m2m {}: the encoder stopped (EPIPE)", node_.path)};
      }
      return failure("VIDIOC_DQBUF CAPTURE", e);
    }
    const uint32_t index = arg.buffer.index;
    if (index >= cap_.buffers.size()) {
      needsReset_ = true;
      return Error{Errc::Io, 0,
                   fmt::format("v4l2m2m {}: CAPTURE buffer index {} out of range", node_.path, index)};
    }
    cap_.buffers[index].queued = false;
    const Buffer& b = cap_.buffers[index];
    size_t begin = 0;
    size_t end = arg.buffer.bytesused;
    if (node_.mplane) {
      begin = arg.planes[0].data_offset;
      end = arg.planes[0].bytesused;
    }
    end = std::min(end, b.length);
    begin = std::min(begin, end);
    const auto* base = static_cast<const uint8_t*>(b.address);
    std::vector<uint8_t> bytes(base + begin, base + end);
    const uint32_t flags = arg.buffer.flags;
    const uint64_t key = timevalKey(arg.buffer.timestamp);
    if (auto st = queueCapture(index); !st) return std::move(st).error();

    if ((flags & V4L2_BUF_FLAG_ERROR) != 0) {
      // The picture is lost; the next one must not refer to it.
      keyframeRequested_.store(true, std::memory_order_release);
      takePending(key);
      return {Errc::Again,
              fmt::format("v4l2m2m {}: the driver flagged an encoded picture corrupt", node_.path)};
    }
    if (bytes.empty()) return hal::PacketPtr{};

    auto packet = std::make_shared<hal::Packet>();
    packet->codec = options_.codedFormat;
    packet->size = config_.size;
    packet->keyframe = (flags & V4L2_BUF_FLAG_KEYFRAME) != 0;
    if (isH264()) {
      if (!headerPrefix_.empty()) {
        bytes.insert(bytes.begin(), headerPrefix_.begin(), headerPrefix_.end());
        headerPrefix_.clear();
      }
      auto config = h264::extractCodecConfig(bytes);
      if (config) updateCodecConfig(std::move(*config));
      if (!hasSlice(bytes)) {
        // Firmwares that send the parameter sets in a buffer of their own: they go in front of
        // the picture that follows.
        if (hasNal(bytes, h264::kSps) || hasNal(bytes, h264::kPps)) headerPrefix_ = std::move(bytes);
        return hal::PacketPtr{};
      }
      packet->keyframe = packet->keyframe || h264::containsIdr(bytes);
      auto current = codecConfig();
      if (packet->keyframe && current && !hasNal(bytes, h264::kSps)) {
        // Every output wants SPS/PPS in front of each IDR (packet.h).
        static constexpr std::array<uint8_t, 4> kStartCode = {0, 0, 0, 1};
        std::vector<uint8_t> prefix;
        prefix.reserve(current->sps.size() + current->pps.size() + 8);
        prefix.insert(prefix.end(), kStartCode.begin(), kStartCode.end());
        prefix.insert(prefix.end(), current->sps.begin(), current->sps.end());
        prefix.insert(prefix.end(), kStartCode.begin(), kStartCode.end());
        prefix.insert(prefix.end(), current->pps.begin(), current->pps.end());
        bytes.insert(bytes.begin(), prefix.begin(), prefix.end());
      }
      packet->config = std::move(current);
    } else if (options_.codedFormat == hal::FourCC{V4L2_PIX_FMT_FWHT}) {
      // vicodec flags no CAPTURE buffer as a keyframe: an I-frame says so in its FWHT header
      // (struct fwht_cframe_hdr: magic1, magic2, version, width, height, flags, all 32-bit
      // big-endian; flags bit V4L2_FWHT_FL_I_FRAME).
      constexpr size_t kFlagsOffset = 20;
      if (bytes.size() >= kFlagsOffset + 4) {
        const uint32_t fwhtFlags =
            (uint32_t{bytes[kFlagsOffset]} << 24) | (uint32_t{bytes[kFlagsOffset + 1]} << 16) |
            (uint32_t{bytes[kFlagsOffset + 2]} << 8) | uint32_t{bytes[kFlagsOffset + 3]};
        packet->keyframe = packet->keyframe || (fwhtFlags & V4L2_FWHT_FL_I_FRAME) != 0;
      }
    }
    packet->data = std::move(bytes);
    if (auto source = takePending(key)) {
      packet->pts = source->timestamp;
      packet->sequence = source->sequence;
    } else {
      packet->pts = hal::Timestamp(std::chrono::microseconds(key));
      packet->sequence = nextUnmatched_++;
    }
    return hal::PacketPtr(std::move(packet));
  }

  // The input whose timestamp came back as `key`; inputs queued before it produced nothing (the
  // encoder dropped them) and are forgotten.
  std::optional<Pending> takePending(uint64_t key) {
    const auto it =
        std::find_if(pending_.begin(), pending_.end(), [&](const Pending& p) { return p.key == key; });
    if (it == pending_.end()) return std::nullopt;
    Pending found = *it;
    pending_.erase(pending_.begin(), it + 1);
    return found;
  }

  void setCodecConfig(std::shared_ptr<const hal::CodecConfig> config) {
    std::lock_guard lock(configMutex_);
    codecConfig_ = std::move(config);
  }

  void updateCodecConfig(hal::CodecConfig config) {
    std::lock_guard lock(configMutex_);
    if (codecConfig_ && *codecConfig_ == config) return;
    codecConfig_ = std::make_shared<const hal::CodecConfig>(std::move(config));
  }

  // Copy an I420 frame into an OUTPUT buffer of the negotiated layout (single-planar formats:
  // the planes follow each other, V4L2 "V4L2_PIX_FMT_YUV420", "NV12", "YUYV").
  void copyFrame(const hal::Frame& frame, uint8_t* dst) const {
    const size_t w = static_cast<size_t>(config_.size.width);
    const size_t h = static_cast<size_t>(config_.size.height);
    const size_t bpl = bytesPerLine_;
    const size_t luma = bpl * allocHeight_;
    const auto& y = frame.plane(0);
    const auto& u = frame.plane(1);
    const auto& v = frame.plane(2);
    const auto row = [](const hal::Plane& p, size_t r) { return p.data + r * static_cast<size_t>(p.stride); };
    if (raw_ == hal::fourcc::kYUYV) {
      for (size_t r = 0; r < h; ++r) {
        uint8_t* out = dst + r * bpl;
        const uint8_t* ys = row(y, r);
        const uint8_t* us = row(u, r / 2);
        const uint8_t* vs = row(v, r / 2);
        for (size_t x = 0; x < w / 2; ++x) {
          out[4 * x] = ys[2 * x];
          out[4 * x + 1] = us[x];
          out[4 * x + 2] = ys[2 * x + 1];
          out[4 * x + 3] = vs[x];
        }
      }
      return;
    }
    for (size_t r = 0; r < h; ++r) std::memcpy(dst + r * bpl, row(y, r), w);
    const size_t cw = w / 2;
    const size_t ch = h / 2;
    if (raw_ == hal::fourcc::kNV12) {
      uint8_t* uv = dst + luma;
      for (size_t r = 0; r < ch; ++r) {
        uint8_t* out = uv + r * bpl;
        const uint8_t* us = row(u, r);
        const uint8_t* vs = row(v, r);
        for (size_t x = 0; x < cw; ++x) {
          out[2 * x] = us[x];
          out[2 * x + 1] = vs[x];
        }
      }
      return;
    }
    const size_t cstride = bpl / 2;
    const size_t chromaPlane = cstride * ((allocHeight_ + 1) / 2);
    for (size_t r = 0; r < ch; ++r) {
      std::memcpy(dst + luma + r * cstride, row(u, r), cw);
      std::memcpy(dst + luma + chromaPlane + r * cstride, row(v, r), cw);
    }
  }

  // Copy a frame already in the OUTPUT format (NV12 or YUYV; YU12 goes through copyFrame) row by
  // row into the driver's layout: only strides may differ.
  void copyNative(const hal::Frame& frame, uint8_t* dst) const {
    const size_t w = static_cast<size_t>(config_.size.width);
    const size_t h = static_cast<size_t>(config_.size.height);
    const size_t bpl = bytesPerLine_;
    const auto copyRows = [&](const hal::Plane& p, uint8_t* out, size_t rows, size_t bytes) {
      for (size_t r = 0; r < rows; ++r)
        std::memcpy(out + r * bpl, p.data + r * static_cast<size_t>(p.stride), bytes);
    };
    if (raw_ == hal::fourcc::kYUYV) {
      copyRows(frame.plane(0), dst, h, 2 * w);
      return;
    }
    copyRows(frame.plane(0), dst, h, w);  // NV12: luma, then the interleaved CbCr rows
    copyRows(frame.plane(1), dst + bpl * allocHeight_, (h + 1) / 2, w);
  }

  // Black in the negotiated layout, so the padding the driver added codes as a black border.
  void fillBlack(uint8_t* dst) const {
    const size_t luma = size_t{bytesPerLine_} * allocHeight_;
    if (raw_ == hal::fourcc::kYUYV) {
      for (size_t i = 0; i + 1 < luma; i += 2) {
        dst[i] = 16;
        dst[i + 1] = 128;
      }
      return;
    }
    std::memset(dst, 16, luma);
    std::memset(dst + luma, 128, rawBytes_ - luma);
  }

  Syscalls& sys_;
  V4l2M2mOptions options_;
  DeviceFd fd_;
  NodeInfo node_;
  hal::EncoderConfig config_;
  bool configured_ = false;
  bool streaming_ = false;
  bool needsReset_ = false;      // a hang or a stopped queue: the next encode() starts afresh
  std::optional<Error> failed_;  // Disconnected / Io: every later call returns it
  Queue out_;
  Queue cap_;
  FourCC raw_;
  uint32_t bytesPerLine_ = 0;
  uint32_t allocHeight_ = 0;
  size_t rawBytes_ = 0;
  uint32_t outSizeImage_ = 0;  // the driver's OUTPUT sizeimage (a DMA-BUF must be at least this)
  bool padded_ = false;        // the driver's buffer is larger than the picture (never imported)
  std::optional<std::string> dmabufRefused_;  // why the driver will not import, for good
  mutable std::mutex statsMutex_;
  hal::EncoderInputPath stats_;  // guarded by statsMutex_
  std::string refusedControls_;
  bool forceKeySupported_ = true;
  std::deque<Pending> pending_;
  std::deque<hal::PacketPtr> ready_;
  std::vector<uint8_t> headerPrefix_;
  uint64_t lastKey_ = 0;
  uint64_t nextUnmatched_ = 0;
  std::atomic<bool> keyframeRequested_{false};
  mutable std::mutex configMutex_;
  std::shared_ptr<const hal::CodecConfig> codecConfig_;  // guarded by configMutex_
};

}  // namespace

hal::Result<std::unique_ptr<hal::Encoder>> createV4l2M2mEncoder(const V4l2M2mOptions& options) {
  Syscalls& sys = options.syscalls != nullptr ? *options.syscalls : hal::realSyscalls();
  const auto make = [&](DeviceFd fd, NodeInfo node) {
    return hal::Result<std::unique_ptr<hal::Encoder>>(
        std::make_unique<V4l2M2mEncoder>(sys, options, std::move(fd), std::move(node)));
  };
  if (!options.device.empty()) {
    auto fd = openNode(sys, options.device);
    if (!fd) return std::move(fd).error();
    auto node = probeNode(sys, fd->get(), options.device, options.codedFormat, options.preferredInput);
    if (!node) {
      Error err = std::move(node).error();
      if (err.code == Errc::Unsupported || err.code == Errc::Disconnected) err.code = Errc::NoDevice;
      err.message = fmt::format("v4l2m2m: {} is not a {} encoder: {}", options.device,
                                options.codedFormat.str(), err.message);
      return err;
    }
    return make(std::move(*fd), std::move(*node));
  }
  std::error_code ec;
  const auto nodes = videoNodes(options.devDir, ec);
  if (ec) {
    return Error{Errc::Io, ec.value(),
                 fmt::format("v4l2m2m: cannot list {}: {}", options.devDir, ec.message())};
  }
  std::vector<std::string> reasons;
  for (const auto& path : nodes) {
    auto fd = openNode(sys, path);
    if (!fd) {
      reasons.push_back(fd.error().describe());
      continue;
    }
    auto node = probeNode(sys, fd->get(), path, options.codedFormat, options.preferredInput);
    if (node) return make(std::move(*fd), std::move(*node));
    reasons.push_back(node.error().message);
  }
  std::string why;
  for (const auto& r : reasons) why += "; " + r;
  return Error{Errc::Unsupported, 0,
               fmt::format("v4l2m2m: no {} encoder under {} ({} video nodes){}", options.codedFormat.str(),
                           options.devDir, nodes.size(), why)};
}

}  // namespace printcast::codecs
