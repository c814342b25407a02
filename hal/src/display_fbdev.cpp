// SPDX-License-Identifier: MIT
// fbdev DisplayCapture: FBIOGET_*SCREENINFO geometry, mmap of the framebuffer, visible page copy.
#include "printcast/hal/display_fbdev.h"

#include <fcntl.h>
#include <linux/fb.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>

#include <fmt/format.h>

#include "scanout_copier.h"
#include "unique_fd.h"

namespace printcast::hal {

namespace {

struct Layout {
  FourCC format;
  int bytesPerPixel = 0;
};

bool field(const fb_bitfield& f, uint32_t offset, uint32_t length) {
  return f.offset == offset && f.length == length;
}

// The pixel layouts printcast frames can carry; see display_fbdev.h.
Result<Layout> layoutOf(const fb_var_screeninfo& var, const std::string& path) {
  if (var.bits_per_pixel == 32 && field(var.red, 16, 8) && field(var.green, 8, 8) && field(var.blue, 0, 8)) {
    return Layout{fourcc::kXRGB8888, 4};
  }
  if (var.bits_per_pixel == 16 && field(var.red, 11, 5) && field(var.green, 5, 6) && field(var.blue, 0, 5)) {
    return Layout{fourcc::kRGB565, 2};
  }
  return Result<Layout>(
      Errc::Unsupported,
      fmt::format(
          "display {}: unsupported pixel layout: {} bpp, red {}/{}, green {}/{}, blue {}/{} (offset/length); "
          "supported: 32 bpp XRGB8888 and 16 bpp RGB565",
          path, var.bits_per_pixel, var.red.offset, var.red.length, var.green.offset, var.green.length,
          var.blue.offset, var.blue.length));
}

Error deviceError(const std::string& path, const char* what, int errnum) {
  Error e = errnoError(fmt::format("display {}: {}", path, what), errnum);
  if (errnum == ENOTTY || errnum == EINVAL) e.code = Errc::NoDevice;
  if (errnum == ENOENT || errnum == ENXIO) e.code = Errc::NoDevice;
  if (errnum == EACCES || errnum == EPERM) e.code = Errc::PermissionDenied;
  return e;
}

class FbdevDisplayCapture final : public DisplayCapture {
 public:
  FbdevDisplayCapture(Syscalls& sys, std::string path, UniqueFd fd, void* map, size_t mapLength,
                      const fb_var_screeninfo& var, const fb_fix_screeninfo& fix, Layout layout)
      : sys_(sys),
        path_(std::move(path)),
        fd_(std::move(fd)),
        map_(static_cast<const uint8_t*>(map)),
        mapLength_(mapLength),
        stride_(static_cast<int>(fix.line_length)),
        layout_(layout),
        info_{path_, Size{static_cast<int>(var.xres), static_cast<int>(var.yres)}, layout.format, stride_} {}

  ~FbdevDisplayCapture() override {
    if (map_ != nullptr)
      sys_.munmap(const_cast<uint8_t*>(map_), mapLength_);  // NOLINT(cppcoreguidelines-pro-type-const-cast)
  }
  FbdevDisplayCapture(const FbdevDisplayCapture&) = delete;
  FbdevDisplayCapture& operator=(const FbdevDisplayCapture&) = delete;

  Status init() { return copier_.configure(info_.format, info_.size); }

  DisplayInfo info() const override { return info_; }

  Result<Frame> grab() override {
    if (dead_) return Result<Frame>(Errc::Disconnected, fmt::format("display {}: device is gone", path_));
    fb_var_screeninfo var{};
    if (sys_.ioctl(fd_.get(), FBIOGET_VSCREENINFO, &var) != 0) {
      const int err = errno;
      Error e = errnoError(fmt::format("display {}: FBIOGET_VSCREENINFO", path_), err);
      if (e.code == Errc::Disconnected) dead_ = true;
      return e;
    }
    const Size size{static_cast<int>(var.xres), static_cast<int>(var.yres)};
    auto layout = layoutOf(var, path_);
    if (!layout || size != info_.size || layout->format != info_.format) {
      return Result<Frame>(
          Errc::Unsupported,
          fmt::format("display {}: mode changed from {} {} to {} {} bpp; open the display again", path_,
                      info_.size.str(), info_.format.str(), size.str(), var.bits_per_pixel));
    }
    // The visible page: panning offsets select it inside the virtual framebuffer.
    const size_t offset = static_cast<size_t>(var.yoffset) * static_cast<size_t>(stride_) +
                          static_cast<size_t>(var.xoffset) * static_cast<size_t>(layout_.bytesPerPixel);
    const size_t last = offset + static_cast<size_t>(size.height - 1) * static_cast<size_t>(stride_) +
                        static_cast<size_t>(size.width) * static_cast<size_t>(layout_.bytesPerPixel);
    if (last > mapLength_) {
      return Result<Frame>(Errc::Io,
                           fmt::format("display {}: visible page at offset {},{} ({} bytes) lies outside the "
                                       "{}-byte framebuffer",
                                       path_, var.xoffset, var.yoffset, last, mapLength_));
    }
    return copier_.copy(map_ + offset, stride_);
  }

 private:
  Syscalls& sys_;
  const std::string path_;
  UniqueFd fd_;
  const uint8_t* map_;
  size_t mapLength_;
  int stride_;
  Layout layout_;
  const DisplayInfo info_;
  ScanoutCopier copier_;
  bool dead_ = false;
};

}  // namespace

Result<std::unique_ptr<DisplayCapture>> createFbdevDisplayCapture(const std::string& path, Syscalls& sys) {
  using R = Result<std::unique_ptr<DisplayCapture>>;
  const int raw = sys.open(path.c_str(), O_RDONLY);
  if (raw < 0) return deviceError(path, "open", errno);
  UniqueFd fd(raw, sys);

  fb_var_screeninfo var{};
  if (sys.ioctl(fd.get(), FBIOGET_VSCREENINFO, &var) != 0) {
    return deviceError(path, "FBIOGET_VSCREENINFO (not a framebuffer device?)", errno);
  }
  fb_fix_screeninfo fix{};
  if (sys.ioctl(fd.get(), FBIOGET_FSCREENINFO, &fix) != 0)
    return deviceError(path, "FBIOGET_FSCREENINFO", errno);

  if (fix.type != FB_TYPE_PACKED_PIXELS) {
    return R(Errc::Unsupported,
             fmt::format("display {}: framebuffer type {} is not packed pixels", path, fix.type));
  }
  auto layout = layoutOf(var, path);
  if (!layout) return std::move(layout).error();
  if (var.xres == 0 || var.yres == 0)
    return R(Errc::NoSignal, fmt::format("display {}: no mode set (0x0)", path));
  const auto rowBytes = static_cast<size_t>(var.xres) * static_cast<size_t>(layout->bytesPerPixel);
  if (fix.line_length < rowBytes) {
    return R(Errc::Io, fmt::format("display {}: line_length {} is shorter than a {}-pixel row ({} bytes)",
                                   path, fix.line_length, var.xres, rowBytes));
  }
  if (static_cast<size_t>(fix.line_length) * var.yres > fix.smem_len) {
    return R(Errc::Io, fmt::format("display {}: {} rows of {} bytes do not fit in smem_len {}", path,
                                   var.yres, fix.line_length, fix.smem_len));
  }

  void* map = sys.mmap(nullptr, fix.smem_len, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (map == MAP_FAILED) {
    const int err = errno;
    Error e = deviceError(path, "mmap of the framebuffer", err);
    if (err == ENODEV || err == EINVAL || err == ENOSYS) e.code = Errc::Unsupported;  // driver without mmap
    return e;
  }
  auto capture =
      std::make_unique<FbdevDisplayCapture>(sys, path, std::move(fd), map, fix.smem_len, var, fix, *layout);
  if (auto st = capture->init(); !st) return std::move(st).error();
  return std::unique_ptr<DisplayCapture>(std::move(capture));
}

}  // namespace printcast::hal
