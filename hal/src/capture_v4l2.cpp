// SPDX-License-Identifier: MIT
// V4L2 capture backend: enumeration, format negotiation, mmap streaming, controls, disconnects.
//
// Every device call goes through the Syscalls seam (plain ioctl, no libv4l2): libv4l2's
// v4l2_ioctl() conversion layer would bypass the seam (so the unit tests could not script the
// kernel), would hide what the driver really does (it fakes formats by converting MJPEG to RGB
// in software, which costs more CPU than the whole MJPEG pass-through path) and adds nothing for
// the formats handed out here. Multi-planar-only nodes (V4L2_CAP_VIDEO_CAPTURE_MPLANE without
// V4L2_CAP_VIDEO_CAPTURE) are not supported yet: USB cameras and vivid (multiplanar=1, the
// default) are single-planar.
#include <fcntl.h>
#include <linux/videodev2.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <span>
#include <system_error>

#include <fmt/format.h>

#include "printcast/hal/mjpeg_dht.h"
#include "printcast/hal/v4l2.h"
#include "unique_fd.h"

namespace printcast::hal {

bool v4l2Available() noexcept { return true; }

namespace {

namespace fs = std::filesystem;

constexpr int kMinBuffers = 2;
constexpr int kMaxBuffers = 32;
constexpr uint32_t kMaxEnumeration = 512;  // bound every ENUM_* loop against a looping driver

bool handledFormat(FourCC f) {
  return f == fourcc::kYUYV || f == fourcc::kNV12 || f == fourcc::kI420 || f == fourcc::kMJPEG ||
         f == fourcc::kH264;
}

// A NUL-padded fixed-size string field of a V4L2 struct (__u8[] or char[]).
template <typename T, size_t N>
std::string fromBytes(const T (&bytes)[N]) {
  static_assert(sizeof(T) == 1);
  const auto* chars = reinterpret_cast<const char*>(bytes);
  return std::string(chars, strnlen(chars, N));
}

double intervalToFps(const v4l2_fract& f) {
  return f.numerator == 0 ? 0.0 : static_cast<double>(f.denominator) / f.numerator;
}

uint32_t capsOf(const v4l2_capability& cap) {
  return (cap.capabilities & V4L2_CAP_DEVICE_CAPS) != 0 ? cap.device_caps : cap.capabilities;
}

bool isCaptureNode(const v4l2_capability& cap) {
  const uint32_t caps = capsOf(cap);
  return (caps & V4L2_CAP_VIDEO_CAPTURE) != 0 && (caps & V4L2_CAP_STREAMING) != 0;
}

std::string canonicalPath(const std::string& path) {
  std::error_code ec;
  auto c = fs::canonical(path, ec);
  return ec ? path : c.string();
}

// by-id / by-path links grouped by the canonical node they point at.
struct Links {
  std::map<std::string, std::vector<std::string>> byId;
  std::map<std::string, std::vector<std::string>> byPath;
};

Links readLinks(const V4l2Paths& paths) {
  Links links;
  auto scan = [&](const fs::path& dir, std::map<std::string, std::vector<std::string>>& out) {
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string target = canonicalPath(it->path().string());
      out[target].push_back(it->path().string());
    }
    for (auto& [node, list] : out) std::sort(list.begin(), list.end());
  };
  scan(fs::path(paths.devDir) / "v4l" / "by-id", links.byId);
  scan(fs::path(paths.devDir) / "v4l" / "by-path", links.byPath);
  return links;
}

std::vector<double> sortedRates(std::vector<double> rates) {
  std::sort(rates.begin(), rates.end(), std::greater<>());
  rates.erase(std::unique(rates.begin(), rates.end()), rates.end());
  return rates;
}

// Fill fps / fpsMin / fpsMax of one size from VIDIOC_ENUM_FRAMEINTERVALS.
void enumerateIntervals(Syscalls& sys, int fd, uint32_t pixelformat, Size size, V4l2FrameSize& out) {
  std::vector<double> rates;
  for (uint32_t i = 0; i < kMaxEnumeration; ++i) {
    v4l2_frmivalenum iv{};
    iv.index = i;
    iv.pixel_format = pixelformat;
    iv.width = static_cast<uint32_t>(size.width);
    iv.height = static_cast<uint32_t>(size.height);
    if (sys.ioctl(fd, VIDIOC_ENUM_FRAMEINTERVALS, &iv) != 0) break;
    if (iv.type == V4L2_FRMIVAL_TYPE_DISCRETE) {
      if (const double r = intervalToFps(iv.discrete); r > 0) rates.push_back(r);
      continue;
    }
    // Stepwise / continuous: the shortest interval is the highest rate.
    out.fpsMin = intervalToFps(iv.stepwise.max);
    out.fpsMax = intervalToFps(iv.stepwise.min);
    break;
  }
  out.fps = sortedRates(std::move(rates));
}

std::vector<V4l2FormatInfo> enumerateFormats(Syscalls& sys, int fd) {
  std::vector<V4l2FormatInfo> formats;
  for (uint32_t i = 0; i < kMaxEnumeration; ++i) {
    v4l2_fmtdesc d{};
    d.index = i;
    d.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    if (sys.ioctl(fd, VIDIOC_ENUM_FMT, &d) != 0) break;
    V4l2FormatInfo f;
    f.format = FourCC{d.pixelformat};
    f.description = fromBytes(d.description);
    f.compressed = (d.flags & V4L2_FMT_FLAG_COMPRESSED) != 0;
    for (uint32_t s = 0; s < kMaxEnumeration; ++s) {
      v4l2_frmsizeenum fs{};
      fs.index = s;
      fs.pixel_format = d.pixelformat;
      if (sys.ioctl(fd, VIDIOC_ENUM_FRAMESIZES, &fs) != 0) break;
      V4l2FrameSize size;
      if (fs.type == V4L2_FRMSIZE_TYPE_DISCRETE) {
        size.min = size.max = Size{static_cast<int>(fs.discrete.width), static_cast<int>(fs.discrete.height)};
        enumerateIntervals(sys, fd, d.pixelformat, size.max, size);
        f.sizes.push_back(std::move(size));
        continue;
      }
      size.min = Size{static_cast<int>(fs.stepwise.min_width), static_cast<int>(fs.stepwise.min_height)};
      size.max = Size{static_cast<int>(fs.stepwise.max_width), static_cast<int>(fs.stepwise.max_height)};
      size.step = fs.type == V4L2_FRMSIZE_TYPE_CONTINUOUS ? Size{1, 1}
                                                          : Size{static_cast<int>(fs.stepwise.step_width),
                                                                 static_cast<int>(fs.stepwise.step_height)};
      enumerateIntervals(sys, fd, d.pixelformat, size.max, size);
      f.sizes.push_back(std::move(size));
      break;
    }
    formats.push_back(std::move(f));
  }
  return formats;
}

// Describe an open node. Errors: Unsupported (not a single-planar streaming capture node), the
// QUERYCAP errno otherwise.
Result<V4l2DeviceInfo> describeNode(Syscalls& sys, int fd, const std::string& path, const Links& links) {
  v4l2_capability cap{};
  if (sys.ioctl(fd, VIDIOC_QUERYCAP, &cap) != 0)
    return errnoError(fmt::format("v4l2 {}: VIDIOC_QUERYCAP", path));
  if (!isCaptureNode(cap)) {
    return Result<V4l2DeviceInfo>(
        Errc::Unsupported,
        fmt::format("v4l2 {}: not a single-planar streaming video capture node (device caps 0x{:08x})", path,
                    capsOf(cap)));
  }
  V4l2DeviceInfo info;
  info.path = canonicalPath(path);
  info.card = fromBytes(cap.card);
  info.driver = fromBytes(cap.driver);
  info.busInfo = fromBytes(cap.bus_info);
  if (auto it = links.byId.find(info.path); it != links.byId.end()) info.byIdLinks = it->second;
  if (auto it = links.byPath.find(info.path); it != links.byPath.end()) info.byPathLinks = it->second;
  info.stableName = !info.byIdLinks.empty() ? info.byIdLinks.front() : "bus:" + info.busInfo;
  info.formats = enumerateFormats(sys, fd);
  return info;
}

// "/dev/video*" nodes sorted by number.
std::vector<std::string> videoNodes(const V4l2Paths& paths, std::error_code& ec) {
  std::vector<std::pair<long, std::string>> nodes;  // NOLINT(google-runtime-int)
  for (fs::directory_iterator it(paths.devDir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("video", 0) != 0 || name.size() == 5) continue;
    const std::string digits = name.substr(5);
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    nodes.emplace_back(std::stol(digits), it->path().string());
  }
  std::sort(nodes.begin(), nodes.end());
  std::vector<std::string> out;
  for (auto& [n, p] : nodes) out.push_back(p);
  return out;
}

Result<std::vector<V4l2DeviceInfo>> enumerateWith(Syscalls& sys, const V4l2Paths& paths, const Links& links) {
  std::error_code ec;
  const auto nodes = videoNodes(paths, ec);
  if (ec) {
    return Error{Errc::Io, ec.value(), fmt::format("v4l2: cannot list {}: {}", paths.devDir, ec.message())};
  }
  std::vector<V4l2DeviceInfo> devices;
  for (const auto& node : nodes) {
    const int fd = sys.open(node.c_str(), O_RDWR | O_NONBLOCK);
    if (fd < 0) continue;  // busy, permission, gone: not a camera we can use right now
    UniqueFd owner(fd, sys);
    auto info = describeNode(sys, fd, node, links);
    if (info) devices.push_back(std::move(*info));
  }
  return devices;
}

// One mmap streaming run: the mapped buffers and the fd they are queued on. Frames hold it, so
// a lease dropped after stop() or after the Capture is gone still finds the mutex and mappings.
struct Session {
  struct Mapping {
    void* address = nullptr;
    size_t length = 0;
  };
  Session(Syscalls& s, int f) : sys(&s), fd(f) {}
  ~Session() {
    for (const auto& m : mappings) sys->munmap(m.address, m.length);
    exported.clear();  // the DMA-BUF fds, closed through the seam
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Give buffer `index` back to the driver; after stop() (live == false) it only stays mapped
  // until the last lease of this session drops.
  void requeue(uint32_t index) {
    std::lock_guard lock(mutex);
    if (!live) return;
    v4l2_buffer b{};
    b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    b.memory = V4L2_MEMORY_MMAP;
    b.index = index;
    // A failure (ENODEV after an unplug) surfaces at the next dequeue(): nothing to do here.
    (void)sys->ioctl(fd, VIDIOC_QBUF, &b);
  }

  Syscalls* sys;
  int fd;
  std::mutex mutex;
  bool live = true;  // guarded by mutex
  std::vector<Mapping> mappings;
  // VIDIOC_EXPBUF fds, one per buffer (same index as mappings), or none at all: frames hand them
  // out as Frame::dmabufFd(), so they live exactly as long as the mappings.
  std::vector<UniqueFd> exported;
};

// Byte buffers for MJPEG frames that needed Huffman tables (the copy outlives the V4L2 buffer).
struct ByteBufferPool {
  std::mutex mutex;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> free;
  size_t keep = 4;
  std::unique_ptr<std::vector<uint8_t>> take() {
    std::lock_guard lock(mutex);
    if (free.empty()) return std::make_unique<std::vector<uint8_t>>();
    auto b = std::move(free.back());
    free.pop_back();
    return b;
  }
  void give(std::unique_ptr<std::vector<uint8_t>> b) {
    std::lock_guard lock(mutex);
    if (free.size() < keep) free.push_back(std::move(b));
  }
};

class V4l2Capture final : public Capture, public V4l2Camera {
 public:
  V4l2Capture(Syscalls& sys, UniqueFd fd, V4l2DeviceInfo device, bool keyframeControl)
      : sys_(sys), fd_(std::move(fd)), device_(std::move(device)), keyframeControl_(keyframeControl) {}

  ~V4l2Capture() override { stop(); }
  V4l2Capture(const V4l2Capture&) = delete;
  V4l2Capture& operator=(const V4l2Capture&) = delete;

  CaptureInfo info() const override {
    CaptureInfo i;
    i.name = device_.card;
    i.driver = device_.driver;
    i.busInfo = device_.busInfo;
    for (const auto& f : device_.formats) {
      if (!handledFormat(f.format)) continue;
      CaptureFormat cf{f.format, {}, {}};
      std::vector<double> rates;
      for (const auto& s : f.sizes) {
        cf.sizes.push_back(s.max);
        if (!(s.min == s.max)) cf.sizes.push_back(s.min);
        rates.insert(rates.end(), s.fps.begin(), s.fps.end());
      }
      for (double r : sortedRates(rates)) {
        const int fps = static_cast<int>(std::lround(r));
        if (std::find(cf.fps.begin(), cf.fps.end(), fps) == cf.fps.end()) cf.fps.push_back(fps);
      }
      i.formats.push_back(std::move(cf));
    }
    i.capabilities.controls = true;
    i.capabilities.keyframeRequest = keyframeControl_;
    return i;
  }

  Negotiation validate(CaptureConfig& config) const override {
    if (dead_) return Negotiation::Invalid;
    if (!handledFormat(config.format)) return Negotiation::Invalid;
    const CaptureConfig before = config;

    v4l2_format f{};
    f.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    f.fmt.pix.width = static_cast<uint32_t>(std::max(config.size.width, 1));
    f.fmt.pix.height = static_cast<uint32_t>(std::max(config.size.height, 1));
    f.fmt.pix.pixelformat = config.format.code;
    f.fmt.pix.field = V4L2_FIELD_NONE;
    if (sys_.ioctl(fd_.get(), VIDIOC_TRY_FMT, &f) != 0) return Negotiation::Invalid;
    // The driver's answer wins (V4L2 "Data Formats": TRY_FMT never fails for a bad size, it
    // adjusts, and may substitute another pixel format).
    if (!handledFormat(FourCC{f.fmt.pix.pixelformat})) return Negotiation::Invalid;
    config.format = FourCC{f.fmt.pix.pixelformat};
    config.size = Size{static_cast<int>(f.fmt.pix.width), static_cast<int>(f.fmt.pix.height)};
    if (config.size.empty()) return Negotiation::Invalid;

    if (config.fps > 0) config.fps = nearestRate(config.format, config.size, config.fps);
    config.bufferCount = std::clamp(config.bufferCount, kMinBuffers, kMaxBuffers);
    const bool same = before.format == config.format && before.size == config.size &&
                      before.fps == config.fps && before.bufferCount == config.bufferCount;
    return same ? Negotiation::Valid : Negotiation::Adjusted;
  }

  Status start(const CaptureConfig& config) override {
    if (dead_) return disconnected("start()");
    if (streaming_)
      return {Errc::Busy, fmt::format("v4l2 {}: already streaming; stop() first", device_.path)};
    CaptureConfig checked = config;
    if (validate(checked) != Negotiation::Valid) {
      return {
          Errc::InvalidArgument,
          fmt::format("v4l2 {}: config {} {} at {} fps with {} buffers needs validate() first", device_.path,
                      config.format.str(), config.size.str(), config.fps, config.bufferCount)};
    }

    v4l2_format f{};
    f.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    f.fmt.pix.width = static_cast<uint32_t>(config.size.width);
    f.fmt.pix.height = static_cast<uint32_t>(config.size.height);
    f.fmt.pix.pixelformat = config.format.code;
    f.fmt.pix.field = V4L2_FIELD_NONE;
    if (sys_.ioctl(fd_.get(), VIDIOC_S_FMT, &f) != 0) return failure("VIDIOC_S_FMT");
    pix_ = f.fmt.pix;
    if (FourCC{pix_.pixelformat} != config.format) {
      return {Errc::Io, fmt::format("v4l2 {}: VIDIOC_S_FMT set {} although VIDIOC_TRY_FMT accepted {}",
                                    device_.path, FourCC{pix_.pixelformat}.str(), config.format.str())};
    }
    const FourCC format = config.format;
    if (!isCompressed(format)) {
      // Some drivers leave bytesperline 0; the spec then means "packed".
      const auto packed = static_cast<uint32_t>(pix_.width) * static_cast<uint32_t>(bytesPerPixel(format));
      if (pix_.bytesperline < packed) pix_.bytesperline = packed;
    }

    active_ = config;
    active_.size = Size{static_cast<int>(pix_.width), static_cast<int>(pix_.height)};
    active_.fps = setRate(config.fps);

    v4l2_requestbuffers req{};
    req.count = static_cast<uint32_t>(config.bufferCount);
    req.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    req.memory = V4L2_MEMORY_MMAP;
    if (sys_.ioctl(fd_.get(), VIDIOC_REQBUFS, &req) != 0) return failure("VIDIOC_REQBUFS");
    if (req.count < static_cast<uint32_t>(kMinBuffers)) {
      freeBuffers();
      return {Errc::Io, fmt::format("v4l2 {}: VIDIOC_REQBUFS granted {} buffers, need {}", device_.path,
                                    req.count, kMinBuffers)};
    }
    active_.bufferCount = static_cast<int>(req.count);

    auto session = std::make_shared<Session>(sys_, fd_.get());
    for (uint32_t i = 0; i < req.count; ++i) {
      v4l2_buffer b{};
      b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
      b.memory = V4L2_MEMORY_MMAP;
      b.index = i;
      if (sys_.ioctl(fd_.get(), VIDIOC_QUERYBUF, &b) != 0) return abortStart(session, "VIDIOC_QUERYBUF");
      void* address =
          sys_.mmap(nullptr, b.length, PROT_READ, MAP_SHARED, fd_.get(), static_cast<off_t>(b.m.offset));
      if (address == MAP_FAILED) return abortStart(session, "mmap");
      session->mappings.push_back(Session::Mapping{address, b.length});
    }
    exportBuffers(*session, format);
    for (uint32_t i = 0; i < req.count; ++i) {
      v4l2_buffer b{};
      b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
      b.memory = V4L2_MEMORY_MMAP;
      b.index = i;
      if (sys_.ioctl(fd_.get(), VIDIOC_QBUF, &b) != 0) return abortStart(session, "VIDIOC_QBUF");
    }
    int type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    if (sys_.ioctl(fd_.get(), VIDIOC_STREAMON, &type) != 0) return abortStart(session, "VIDIOC_STREAMON");
    session_ = std::move(session);
    jpegBuffers_ = std::make_shared<ByteBufferPool>();
    jpegBuffers_->keep = req.count;
    streaming_ = true;
    return {};
  }

  void stop() override {
    if (!streaming_) return;
    {
      std::lock_guard lock(session_->mutex);
      session_->live = false;  // from here a late lease only unmaps: no QBUF into a stopped queue
    }
    int type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    (void)sys_.ioctl(fd_.get(), VIDIOC_STREAMOFF, &type);
    session_.reset();  // the mappings live on in frames still leased
    freeBuffers();     // leased buffers are orphaned by vb2, not freed under the mappings
    streaming_ = false;
  }

  int pollFd() const override { return fd_.get(); }

  Result<Frame> dequeue() override {
    if (dead_) return disconnected("dequeue()");
    if (!streaming_)
      return {Errc::InvalidArgument, fmt::format("v4l2 {}: dequeue() before start()", device_.path)};
    v4l2_buffer b{};
    b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    b.memory = V4L2_MEMORY_MMAP;
    if (sys_.ioctl(fd_.get(), VIDIOC_DQBUF, &b) != 0) {
      const int e = errno;
      if (e == EAGAIN) return {Errc::Again, fmt::format("v4l2 {}: no frame ready", device_.path)};
      // vb2 answers EIO once the driver flagged a queue error (uvcvideo does on unplug, before the
      // node is unregistered): ask the node whether it is still there.
      if (e == EIO) {
        v4l2_capability cap{};
        if (sys_.ioctl(fd_.get(), VIDIOC_QUERYCAP, &cap) != 0 && errno == ENODEV)
          return markDead("VIDIOC_DQBUF");
      }
      errno = e;
      return failure("VIDIOC_DQBUF");
    }
    const auto& mappings = session_->mappings;
    if (b.index >= mappings.size()) {
      return {Errc::Io, fmt::format("v4l2 {}: VIDIOC_DQBUF returned buffer {} of {}", device_.path, b.index,
                                    mappings.size())};
    }
    auto session = session_;
    const uint32_t index = b.index;
    const auto* base = static_cast<const uint8_t*>(mappings[index].address);
    const size_t length = mappings[index].length;

    FrameDescription d;
    d.format = FourCC{pix_.pixelformat};
    d.size = Size{static_cast<int>(pix_.width), static_cast<int>(pix_.height)};
    d.sequence = b.sequence;
    d.timestamp =
        (b.flags & V4L2_BUF_FLAG_TIMESTAMP_MASK) == V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC
            ? Timestamp(std::chrono::duration_cast<Clock::duration>(
                  std::chrono::seconds(b.timestamp.tv_sec) + std::chrono::microseconds(b.timestamp.tv_usec)))
            : Clock::now();
    if ((b.flags & V4L2_BUF_FLAG_ERROR) != 0) {
      session->requeue(index);
      ++droppedFrames_;
      return {Errc::Again,
              fmt::format("v4l2 {}: driver flagged frame {} corrupt (dropped)", device_.path, b.sequence)};
    }

    if (isCompressed(d.format)) {
      const size_t used = b.bytesused;
      if (used == 0 || used > length) {
        session->requeue(index);
        ++droppedFrames_;
        return {Errc::Again, fmt::format("v4l2 {}: empty or oversized compressed frame {} ({} bytes) dropped",
                                         device_.path, b.sequence, used)};
      }
      if (d.format == fourcc::kMJPEG) {
        auto copy = jpegBuffers_->take();
        if (insertDefaultHuffmanTables(std::span<const uint8_t>(base, used), *copy)) {
          session->requeue(index);  // the copy carries the picture from here
          d.planeCount = 1;
          d.planes[0] = Plane{copy->data(), 0, copy->size()};
          d.bytesUsed = copy->size();
          auto pool = jpegBuffers_;
          auto* raw = copy.release();
          return Frame::adopt(d, [pool, raw] { pool->give(std::unique_ptr<std::vector<uint8_t>>(raw)); });
        }
        jpegBuffers_->give(std::move(copy));
      }
      d.planeCount = 1;
      d.planes[0] = Plane{base, 0, used};
      d.bytesUsed = used;
      return Frame::adopt(d, [session, index] { session->requeue(index); });
    }

    const int stride = static_cast<int>(pix_.bytesperline);
    const auto h = static_cast<size_t>(d.size.height);
    const auto ch = static_cast<size_t>((d.size.height + 1) / 2);
    const size_t lumaSize = static_cast<size_t>(stride) * h;
    d.planeCount = planeCount(d.format);
    d.planes[0] = Plane{base, stride, lumaSize};
    if (d.format == fourcc::kNV12) {
      // Single-planar NV12: the interleaved CbCr rows follow the luma rows, same bytesperline.
      d.planes[1] = Plane{base + lumaSize, stride, static_cast<size_t>(stride) * ch};
    } else if (d.format == fourcc::kI420) {
      // Single-planar YU12: Cb then Cr, each with bytesperline / 2 (V4L2 "V4L2_PIX_FMT_YUV420").
      const int cstride = stride / 2;
      const size_t csize = static_cast<size_t>(cstride) * ch;
      d.planes[1] = Plane{base + lumaSize, cstride, csize};
      d.planes[2] = Plane{base + lumaSize + csize, cstride, csize};
    }
    for (int p = 0; p < d.planeCount; ++p) d.bytesUsed += d.planes[static_cast<size_t>(p)].size;
    const size_t used = b.bytesused != 0 ? b.bytesused : length;
    if (d.bytesUsed > length || used < d.bytesUsed) {
      session->requeue(index);
      ++droppedFrames_;
      return {Errc::Again, fmt::format("v4l2 {}: short frame {} ({} of {} bytes) dropped", device_.path,
                                       b.sequence, std::min(used, length), d.bytesUsed)};
    }
    if (index < session->exported.size()) {
      // The whole buffer: plane 0 at offset 0, the chroma planes behind it (single-planar API).
      d.dmabufFd = session->exported[index].get();
      d.dmabufLength = length;
    }
    return Frame::adopt(d, [session, index] { session->requeue(index); });
  }

  Status requestKeyframe() override {
    if (!keyframeControl_) return Capture::requestKeyframe();
    return setControl(V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, 1);
  }

  // --- V4l2Camera ---

  const V4l2DeviceInfo& device() const override { return device_; }
  CaptureConfig activeConfig() const override { return active_; }
  std::string dmabufRefusal() const override {
    std::lock_guard lock(dmabufMutex_);
    return dmabufRefusal_;
  }

  Result<std::vector<V4l2Control>> listControls() override {
    if (dead_) return disconnected("listControls()");
    std::vector<V4l2Control> out;
    bool extended = true;
    uint32_t next = V4L2_CTRL_FLAG_NEXT_CTRL;
    for (uint32_t n = 0; n < kMaxEnumeration; ++n) {
      V4l2Control c;
      uint32_t flags = 0;
      uint32_t type = 0;
      if (extended) {
        v4l2_query_ext_ctrl q{};
        q.id = next;
        if (sys_.ioctl(fd_.get(), VIDIOC_QUERY_EXT_CTRL, &q) != 0) {
          if (errno == ENOTTY && out.empty() && next == V4L2_CTRL_FLAG_NEXT_CTRL) {
            extended = false;  // kernels before 3.17 and some out-of-tree drivers: QUERYCTRL
            continue;
          }
          if (errno == ENODEV) return markDead("VIDIOC_QUERY_EXT_CTRL");
          break;  // EINVAL: no more controls
        }
        c.id = q.id;
        c.name = fromBytes(q.name);
        c.minimum = q.minimum;
        c.maximum = q.maximum;
        c.step = q.step;
        c.defaultValue = q.default_value;
        flags = q.flags;
        type = q.type;
        if (q.nr_of_dims != 0) type = 0;  // arrays / compound: not offered
      } else {
        v4l2_queryctrl q{};
        q.id = next;
        if (sys_.ioctl(fd_.get(), VIDIOC_QUERYCTRL, &q) != 0) {
          if (errno == ENODEV) return markDead("VIDIOC_QUERYCTRL");
          break;
        }
        c.id = q.id;
        c.name = fromBytes(q.name);
        c.minimum = q.minimum;
        c.maximum = q.maximum;
        c.step = static_cast<uint64_t>(q.step);
        c.defaultValue = q.default_value;
        flags = q.flags;
        type = q.type;
      }
      next = c.id | V4L2_CTRL_FLAG_NEXT_CTRL;
      if ((flags & V4L2_CTRL_FLAG_DISABLED) != 0 || type == V4L2_CTRL_TYPE_CTRL_CLASS || type == 0) continue;
      switch (type) {
        case V4L2_CTRL_TYPE_INTEGER: c.type = V4l2Control::Type::Integer; break;
        case V4L2_CTRL_TYPE_BOOLEAN: c.type = V4l2Control::Type::Boolean; break;
        case V4L2_CTRL_TYPE_MENU: c.type = V4l2Control::Type::Menu; break;
        case V4L2_CTRL_TYPE_INTEGER_MENU: c.type = V4l2Control::Type::IntegerMenu; break;
        case V4L2_CTRL_TYPE_BUTTON: c.type = V4l2Control::Type::Button; break;
        case V4L2_CTRL_TYPE_INTEGER64: c.type = V4l2Control::Type::Integer64; break;
        default: c.type = V4l2Control::Type::Other; break;
      }
      c.readOnly = (flags & V4L2_CTRL_FLAG_READ_ONLY) != 0;
      c.writeOnly = (flags & V4L2_CTRL_FLAG_WRITE_ONLY) != 0;
      c.inactive = (flags & V4L2_CTRL_FLAG_INACTIVE) != 0;
      if (c.type == V4l2Control::Type::Menu || c.type == V4l2Control::Type::IntegerMenu) {
        for (int64_t i = std::max<int64_t>(c.minimum, 0); i <= c.maximum && i < kMaxEnumeration; ++i) {
          v4l2_querymenu m{};
          m.id = c.id;
          m.index = static_cast<uint32_t>(i);
          if (sys_.ioctl(fd_.get(), VIDIOC_QUERYMENU, &m) != 0) continue;  // holes are allowed
          c.menu.push_back(V4l2Control::MenuItem{
              i, c.type == V4l2Control::Type::Menu ? fromBytes(m.name) : std::to_string(m.value)});
        }
      }
      if (!c.writeOnly && c.type != V4l2Control::Type::Button && c.type != V4l2Control::Type::Other) {
        if (auto v = getControl(c.id)) c.value = *v;
      }
      out.push_back(std::move(c));
    }
    return out;
  }

  Result<int64_t> getControl(uint32_t id) override {
    if (dead_) return disconnected("getControl()");
    // VIDIOC_G_CTRL covers every 32-bit control type; 64-bit controls answer it with EINVAL and
    // need the extended call.
    v4l2_control g{};
    g.id = id;
    if (sys_.ioctl(fd_.get(), VIDIOC_G_CTRL, &g) == 0) return int64_t{g.value};
    const int e = errno;
    if (e == EINVAL) {
      v4l2_ext_control c{};
      c.id = id;
      v4l2_ext_controls cs{};
      cs.which = V4L2_CTRL_WHICH_CUR_VAL;
      cs.count = 1;
      cs.controls = &c;
      if (sys_.ioctl(fd_.get(), VIDIOC_G_EXT_CTRLS, &cs) == 0) return c.value64;
    }
    errno = e;
    return controlFailure("VIDIOC_G_CTRL", id);
  }

  Status setControl(uint32_t id, int64_t value) override {
    if (dead_) return disconnected("setControl()");
    // The kernel clamps out-of-range integer values silently (v4l2-ctrls validate_new):
    // refuse them here so the caller learns the allowed range instead.
    v4l2_queryctrl q{};
    q.id = id;
    if (sys_.ioctl(fd_.get(), VIDIOC_QUERYCTRL, &q) == 0 &&
        (q.type == V4L2_CTRL_TYPE_INTEGER || q.type == V4L2_CTRL_TYPE_MENU ||
         q.type == V4L2_CTRL_TYPE_BOOLEAN || q.type == V4L2_CTRL_TYPE_INTEGER_MENU) &&
        (value < q.minimum || value > q.maximum)) {
      return Status(Errc::InvalidArgument,
                    fmt::format("v4l2 {}: control '{}' value {} is outside {}..{}", device_.path,
                                fromBytes(q.name), value, q.minimum, q.maximum));
    }
    // VIDIOC_S_CTRL covers every 32-bit control type; 64-bit values need the extended call.
    if (value >= INT32_MIN && value <= INT32_MAX) {
      v4l2_control s{};
      s.id = id;
      s.value = static_cast<int32_t>(value);
      if (sys_.ioctl(fd_.get(), VIDIOC_S_CTRL, &s) != 0) return controlFailure("VIDIOC_S_CTRL", id).error();
      return {};
    }
    v4l2_ext_control c{};
    c.id = id;
    c.value64 = value;
    v4l2_ext_controls cs{};
    cs.which = V4L2_CTRL_WHICH_CUR_VAL;
    cs.count = 1;
    cs.controls = &c;
    if (sys_.ioctl(fd_.get(), VIDIOC_S_EXT_CTRLS, &cs) != 0)
      return controlFailure("VIDIOC_S_EXT_CTRLS", id).error();
    return {};
  }

 private:
  // The rate for `fps` at this format/size: the nearest enumerated discrete rate, clamped into a
  // stepwise range, or `fps` unchanged when the driver enumerates nothing (start() then reports
  // what VIDIOC_S_PARM set).
  int nearestRate(FourCC format, Size size, int fps) const {
    V4l2FrameSize s;
    enumerateIntervals(sys_, fd_.get(), format.code, size, s);
    if (!s.fps.empty()) {
      double best = s.fps.front();
      for (double r : s.fps) {
        if (std::abs(r - fps) < std::abs(best - fps)) best = r;
      }
      return std::max(1, static_cast<int>(std::lround(best)));
    }
    if (s.fpsMax > 0) {
      return std::max(1, static_cast<int>(std::lround(std::clamp<double>(fps, s.fpsMin, s.fpsMax))));
    }
    return fps;
  }

  // VIDIOC_S_PARM then read back; returns the rate in force (0 when the driver reports none).
  int setRate(int fps) {
    v4l2_streamparm p{};
    p.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    if (fps > 0) {
      p.parm.capture.timeperframe = v4l2_fract{1, static_cast<uint32_t>(fps)};
      // Drivers without a settable rate (ENOTTY, or HDMI inputs whose rate follows the DV timings)
      // keep theirs: G_PARM below tells which.
      (void)sys_.ioctl(fd_.get(), VIDIOC_S_PARM, &p);
    }
    v4l2_streamparm g{};
    g.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    if (sys_.ioctl(fd_.get(), VIDIOC_G_PARM, &g) != 0) return fps;
    const double r = intervalToFps(g.parm.capture.timeperframe);
    return r > 0 ? std::max(1, static_cast<int>(std::lround(r))) : fps;
  }

  // VIDIOC_EXPBUF every mapped buffer of a raw format (plane 0, read-only, close-on-exec), so frames
  // can be imported by another device. All or nothing: a driver that refuses (ENOTTY: no
  // vb2/export support, EINVAL: memory that cannot be exported) gives frames without fd, and the
  // reason is kept for dmabufRefusal() (this layer does not log; the app reports it).
  void exportBuffers(Session& session, FourCC format) {
    std::string refusal;
    if (isCompressed(format)) {
      refusal = fmt::format("{} is compressed: its frames carry no DMA-BUF", format.str());
    } else {
      for (uint32_t i = 0; i < session.mappings.size(); ++i) {
        v4l2_exportbuffer e{};
        e.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        e.index = i;
        e.plane = 0;
        e.flags = O_RDONLY | O_CLOEXEC;
        if (sys_.ioctl(fd_.get(), VIDIOC_EXPBUF, &e) != 0) {
          refusal =
              errnoError(fmt::format("v4l2 {}: VIDIOC_EXPBUF of buffer {}", device_.path, i)).describe();
          session.exported.clear();
          break;
        }
        session.exported.emplace_back(e.fd, sys_);
      }
    }
    std::lock_guard lock(dmabufMutex_);
    dmabufRefusal_ = std::move(refusal);
  }

  void freeBuffers() {
    v4l2_requestbuffers req{};
    req.count = 0;
    req.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    req.memory = V4L2_MEMORY_MMAP;
    (void)sys_.ioctl(fd_.get(), VIDIOC_REQBUFS, &req);
  }

  Status abortStart(std::shared_ptr<Session>& session, const char* call) {
    const int e = errno;
    session.reset();  // unmaps before the buffers are freed
    freeBuffers();
    errno = e;
    return failure(call);
  }

  Error markDead(const char* call) {
    dead_ = true;
    return Error{Errc::Disconnected, ENODEV,
                 fmt::format("v4l2 {} ({}): {}: the device went away", device_.path, device_.card, call)};
  }

  Error disconnected(const char* call) const {
    return Error{Errc::Disconnected, ENODEV,
                 fmt::format("v4l2 {} ({}): {}: the device went away earlier; open it again", device_.path,
                             device_.card, call)};
  }

  // An errno failure of `call` (read errno right after it); ENODEV kills the object.
  Error failure(const char* call) {
    const int e = errno;
    if (e == ENODEV) return markDead(call);
    return errnoError(fmt::format("v4l2 {}: {}", device_.path, call), e);
  }

  Result<int64_t> controlFailure(const char* call, uint32_t id) {
    const int e = errno;
    if (e == ENODEV) return markDead(call);
    Error err = errnoError(fmt::format("v4l2 {}: {} control 0x{:08x}", device_.path, call, id), e);
    if (e == EACCES) err.code = Errc::PermissionDenied;  // read-only or write-only control
    return err;
  }

  Syscalls& sys_;
  UniqueFd fd_;
  V4l2DeviceInfo device_;
  bool keyframeControl_ = false;
  std::atomic<bool> dead_{false};
  bool streaming_ = false;
  v4l2_pix_format pix_{};
  CaptureConfig active_{};
  std::shared_ptr<Session> session_;
  std::shared_ptr<ByteBufferPool> jpegBuffers_;
  uint64_t droppedFrames_ = 0;
  mutable std::mutex dmabufMutex_;
  std::string dmabufRefusal_ = "not started";  // guarded by dmabufMutex_
};

bool hasControl(Syscalls& sys, int fd, uint32_t id) {
  v4l2_queryctrl q{};
  q.id = id;
  return sys.ioctl(fd, VIDIOC_QUERYCTRL, &q) == 0 && (q.flags & V4L2_CTRL_FLAG_DISABLED) == 0;
}

// Which node `nameOrPath` names (see createV4l2Capture()).
Result<std::string> resolveNode(std::string_view nameOrPath, Syscalls& sys, const V4l2Paths& paths,
                                const Links& links) {
  const std::string name(nameOrPath);
  if (!name.empty() && name.front() == '/') return name;
  if (!name.empty() && name.find('/') == std::string::npos) {
    for (const char* dir : {"by-id", "by-path"}) {
      const fs::path link = fs::path(paths.devDir) / "v4l" / dir / name;
      std::error_code ec;
      if (fs::exists(fs::symlink_status(link, ec))) return link.string();
    }
  }
  auto devices = enumerateWith(sys, paths, links);
  if (!devices) return std::move(devices).error();
  const bool byBus = name.rfind("bus:", 0) == 0;
  for (const auto& d : *devices) {
    if (name.empty()) return d.path;
    if (byBus) {
      if (d.busInfo == name.substr(4)) return d.path;
      continue;
    }
    if (d.card.find(name) != std::string::npos) return d.path;
    for (const auto& link : d.byIdLinks) {
      if (fs::path(link).filename().string().find(name) != std::string::npos) return d.path;
    }
  }
  return Result<std::string>(
      Errc::NoDevice,
      name.empty() ? fmt::format("v4l2: no video capture device under {}", paths.devDir)
                   : fmt::format("v4l2: no video capture device matches \"{}\" ({} capture nodes under {})",
                                 name, devices->size(), paths.devDir));
}

}  // namespace

Result<std::vector<V4l2DeviceInfo>> enumerateV4l2Devices(Syscalls& sys, const V4l2Paths& paths) {
  return enumerateWith(sys, paths, readLinks(paths));
}

Result<std::unique_ptr<Capture>> createV4l2Capture(std::string_view nameOrPath, Syscalls& sys,
                                                   const V4l2Paths& paths) {
  const Links links = readLinks(paths);
  auto node = resolveNode(nameOrPath, sys, paths, links);
  if (!node) return std::move(node).error();
  const int fd = sys.open(node->c_str(), O_RDWR | O_NONBLOCK);
  if (fd < 0) {
    const int e = errno;
    Error err = errnoError(fmt::format("v4l2 {}: open", *node), e);
    if (e == ENODEV) err.code = Errc::NoDevice;  // not there (yet): nothing was disconnected
    return err;
  }
  UniqueFd owner(fd, sys);
  auto info = describeNode(sys, fd, *node, links);
  if (!info) {
    Error err = std::move(info).error();
    if (err.code == Errc::Disconnected) err.code = Errc::NoDevice;
    return err;
  }
  const bool keyframe = hasControl(sys, fd, V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME);
  return std::unique_ptr<Capture>(
      std::make_unique<V4l2Capture>(sys, std::move(owner), std::move(*info), keyframe));
}

V4l2Camera* v4l2CameraOf(Capture& capture) noexcept { return dynamic_cast<V4l2Camera*>(&capture); }

}  // namespace printcast::hal
