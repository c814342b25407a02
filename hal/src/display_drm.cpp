// SPDX-License-Identifier: MIT
// DRM/KMS DisplayCapture: active CRTC -> its framebuffer (GETFB2/GETFB) -> dumb map or PRIME mmap.
#include "printcast/hal/display_drm.h"

#include <drm.h>
#include <drm_fourcc.h>
#include <drm_mode.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <xf86drm.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "scanout_copier.h"
#include "unique_fd.h"

namespace printcast::hal {

namespace {

constexpr size_t kMaxMappings = 3;  // front, back and a third buffer of a triple-buffered UI

std::string formatName(uint32_t drmFormat) {
  char* name = drmGetFormatName(drmFormat);
  std::string s = name != nullptr ? name : fmt::format("0x{:08x}", drmFormat);
  std::free(name);  // NOLINT(cppcoreguidelines-no-malloc): libdrm allocates with malloc
  return s;
}

template <typename T>
uint64_t userPointer(T* p) {
  return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p));
}

Error ioctlError(const std::string& path, const std::string& what, int errnum) {
  Error e = errnoError(fmt::format("display {}: {}", path, what), errnum);
  if (errnum == EACCES || errnum == EPERM) e.code = Errc::PermissionDenied;
  return e;
}

// One framebuffer mapped for reading.
struct Mapping {
  uint32_t fbId = 0;
  void* map = nullptr;
  size_t length = 0;
  size_t offset = 0;  // of the picture's first byte inside the mapping
  int pitch = 0;
  Size size;
  FourCC format;
  std::string how;  // "dumb" or "prime", for messages
};

class DrmDisplayCapture final : public DisplayCapture {
 public:
  DrmDisplayCapture(Syscalls& sys, std::string path, UniqueFd fd, uint32_t crtcId)
      : sys_(sys), path_(std::move(path)), fd_(std::move(fd)), crtcId_(crtcId) {}

  ~DrmDisplayCapture() override {
    for (const Mapping& m : mappings_) sys_.munmap(m.map, m.length);
  }
  DrmDisplayCapture(const DrmDisplayCapture&) = delete;
  DrmDisplayCapture& operator=(const DrmDisplayCapture&) = delete;

  DisplayInfo info() const override {
    std::lock_guard lock(infoMutex_);
    return info_;
  }

  // The first grab's resolution, done at creation so that errors surface there.
  Status init(uint32_t fbId) {
    auto m = mappingFor(fbId);
    if (!m) return std::move(m).error();
    return use(**m);
  }

  Result<Frame> grab() override {
    if (dead_) return Result<Frame>(Errc::Disconnected, fmt::format("display {}: device is gone", path_));
    drm_mode_crtc crtc{};
    crtc.crtc_id = crtcId_;
    if (sys_.ioctl(fd_.get(), DRM_IOCTL_MODE_GETCRTC, &crtc) != 0) {
      Error e = ioctlError(path_, fmt::format("GETCRTC {}", crtcId_), errno);
      if (e.code == Errc::Disconnected) dead_ = true;
      return e;
    }
    if (crtc.mode_valid == 0 || crtc.fb_id == 0) {
      return Result<Frame>(Errc::NoSignal, fmt::format("display {}: CRTC {} is off", path_, crtcId_));
    }
    auto m = mappingFor(crtc.fb_id);
    if (!m) return std::move(m).error();
    const Mapping& mapping = **m;
    if (auto st = use(mapping); !st) return std::move(st).error();
    return copier_.copy(static_cast<const uint8_t*>(mapping.map) + mapping.offset, mapping.pitch);
  }

 private:
  // Make the copier and info() follow the shown framebuffer's geometry.
  Status use(const Mapping& m) {
    if (copier_.configured() && copier_.size() == m.size && copier_.format() == m.format) return {};
    if (auto st = copier_.configure(m.format, m.size); !st) return st;
    std::lock_guard lock(infoMutex_);
    info_ = DisplayInfo{fmt::format("{} CRTC {}", path_, crtcId_), m.size, m.format, m.pitch};
    return {};
  }

  Result<const Mapping*> mappingFor(uint32_t fbId) {
    auto it =
        std::find_if(mappings_.begin(), mappings_.end(), [&](const Mapping& m) { return m.fbId == fbId; });
    if (it != mappings_.end()) {
      // Most recently used last.
      std::rotate(it, it + 1, mappings_.end());
      return &mappings_.back();
    }
    auto m = mapFramebuffer(fbId);
    if (!m) return std::move(m).error();
    if (mappings_.size() >= kMaxMappings) {
      sys_.munmap(mappings_.front().map, mappings_.front().length);
      mappings_.erase(mappings_.begin());
    }
    mappings_.push_back(std::move(*m));
    return &mappings_.back();
  }

  struct Described {
    Mapping geometry;
    std::vector<uint32_t> handles;  // to GEM_CLOSE; [0] is plane 0's
  };

  Result<Described> describe(uint32_t fbId) {
    using R = Result<Described>;
    Described d;
    d.geometry.fbId = fbId;
    drm_mode_fb_cmd2 fb2{};
    fb2.fb_id = fbId;
    if (sys_.ioctl(fd_.get(), DRM_IOCTL_MODE_GETFB2, &fb2) == 0) {
      for (uint32_t h : fb2.handles) {
        if (h != 0 && std::find(d.handles.begin(), d.handles.end(), h) == d.handles.end())
          d.handles.push_back(h);
      }
      if (fb2.handles[0] == 0) d.handles.insert(d.handles.begin(), 0);
      const uint32_t format = fb2.pixel_format;
      if (format == DRM_FORMAT_XRGB8888 || format == DRM_FORMAT_ARGB8888) {
        d.geometry.format = fourcc::kXRGB8888;
      } else if (format == DRM_FORMAT_RGB565) {
        d.geometry.format = fourcc::kRGB565;
      } else {
        closeHandles(d.handles);
        return R(Errc::Unsupported,
                 fmt::format("display {}: framebuffer {} is {}; supported: XRGB8888, ARGB8888, "
                             "RGB565",
                             path_, fbId, formatName(format)));
      }
      if ((fb2.flags & DRM_MODE_FB_MODIFIERS) != 0 && fb2.modifier[0] != DRM_FORMAT_MOD_LINEAR) {
        char* name = drmGetFormatModifierName(fb2.modifier[0]);
        const std::string modifier = name != nullptr ? name : fmt::format("0x{:016x}", fb2.modifier[0]);
        std::free(name);  // NOLINT(cppcoreguidelines-no-malloc)
        closeHandles(d.handles);
        return R(Errc::Unsupported,
                 fmt::format("display {}: framebuffer {} has the tiled/compressed layout {}; only "
                             "linear buffers can be read",
                             path_, fbId, modifier));
      }
      d.geometry.size = Size{static_cast<int>(fb2.width), static_cast<int>(fb2.height)};
      d.geometry.pitch = static_cast<int>(fb2.pitches[0]);
      d.geometry.offset = fb2.offsets[0];
      return d;
    }
    const int err2 = errno;
    if (err2 == ENODEV) return ioctlError(path_, fmt::format("GETFB2 {}", fbId), err2);
    if (err2 != EINVAL && err2 != ENOTTY && err2 != EOPNOTSUPP) {
      return ioctlError(path_, fmt::format("GETFB2 {}", fbId), err2);
    }
    // Kernels before 5.7: GETFB (one plane, format from bpp/depth).
    drm_mode_fb_cmd fb{};
    fb.fb_id = fbId;
    if (sys_.ioctl(fd_.get(), DRM_IOCTL_MODE_GETFB, &fb) != 0) {
      return ioctlError(path_, fmt::format("GETFB {}", fbId), errno);
    }
    d.handles.push_back(fb.handle);
    if (fb.bpp == 32 && (fb.depth == 24 || fb.depth == 32)) {
      d.geometry.format = fourcc::kXRGB8888;
    } else if (fb.bpp == 16 && fb.depth == 16) {
      d.geometry.format = fourcc::kRGB565;
    } else {
      closeHandles(d.handles);
      return R(Errc::Unsupported,
               fmt::format("display {}: framebuffer {} is {} bpp depth {}; supported: 32/24 "
                           "(XRGB8888) and 16/16 (RGB565)",
                           path_, fbId, fb.bpp, fb.depth));
    }
    d.geometry.size = Size{static_cast<int>(fb.width), static_cast<int>(fb.height)};
    d.geometry.pitch = static_cast<int>(fb.pitch);
    d.geometry.offset = 0;
    return d;
  }

  void closeHandles(const std::vector<uint32_t>& handles) {
    for (uint32_t h : handles) {
      if (h == 0) continue;
      drm_gem_close close{};
      close.handle = h;
      sys_.ioctl(fd_.get(), DRM_IOCTL_GEM_CLOSE, &close);
    }
  }

  Result<Mapping> mapFramebuffer(uint32_t fbId) {
    using R = Result<Mapping>;
    auto described = describe(fbId);
    if (!described) return std::move(described).error();
    Mapping m = described->geometry;
    const std::vector<uint32_t>& handles = described->handles;
    const uint32_t handle = handles.front();
    if (handle == 0) {
      closeHandles(handles);
      return R(Errc::PermissionDenied,
               fmt::format("display {}: the kernel withheld framebuffer {}'s buffer handle: reading another "
                           "client's framebuffer needs DRM master or CAP_SYS_ADMIN (run as root)",
                           path_, fbId));
    }
    const int bytesPerPixel = m.format == fourcc::kRGB565 ? 2 : 4;
    if (m.size.empty() || m.pitch < m.size.width * bytesPerPixel) {
      closeHandles(handles);
      return R(Errc::Io, fmt::format("display {}: framebuffer {}: pitch {} is too small for {} pixels", path_,
                                     fbId, m.pitch, m.size.width));
    }
    m.length = m.offset + static_cast<size_t>(m.pitch) * static_cast<size_t>(m.size.height);

    // Dumb-buffer map first: every KMS driver with dumb buffers (bochs, simpledrm, vkms, most
    // SoC display controllers) offers it without a dma-buf.
    drm_mode_map_dumb mapDumb{};
    mapDumb.handle = handle;
    int dumbErr = 0;
    if (sys_.ioctl(fd_.get(), DRM_IOCTL_MODE_MAP_DUMB, &mapDumb) == 0) {
      void* p =
          sys_.mmap(nullptr, m.length, PROT_READ, MAP_SHARED, fd_.get(), static_cast<off_t>(mapDumb.offset));
      if (p != MAP_FAILED) {
        m.map = p;
        m.how = "dumb";
      } else {
        dumbErr = errno;
      }
    } else {
      dumbErr = errno;
    }
    int primeErr = 0;
    if (m.map == nullptr) {
      drm_prime_handle prime{};
      prime.handle = handle;
      prime.flags = DRM_CLOEXEC;
      prime.fd = -1;
      if (sys_.ioctl(fd_.get(), DRM_IOCTL_PRIME_HANDLE_TO_FD, &prime) == 0) {
        const UniqueFd dmabuf(prime.fd, sys_);  // the mapping keeps the buffer; the fd can go
        void* p = sys_.mmap(nullptr, m.length, PROT_READ, MAP_SHARED, dmabuf.get(), 0);
        if (p != MAP_FAILED) {
          m.map = p;
          m.how = "prime";
        } else {
          primeErr = errno;
        }
      } else {
        primeErr = errno;
      }
    }
    closeHandles(handles);
    if (m.map == nullptr) {
      if (dumbErr == ENODEV || primeErr == ENODEV) {
        return R(Error{Errc::Disconnected, ENODEV, fmt::format("display {}: device is gone", path_)});
      }
      return R(Error{
          Errc::Unsupported, dumbErr,
          fmt::format("display {}: framebuffer {} can be mapped neither as a dumb buffer ({}) nor through "
                      "PRIME ({})",
                      path_, fbId, std::strerror(dumbErr), std::strerror(primeErr))});
    }
    return m;
  }

  Syscalls& sys_;
  const std::string path_;
  UniqueFd fd_;
  const uint32_t crtcId_;
  std::vector<Mapping> mappings_;  // least recently used first
  ScanoutCopier copier_;
  bool dead_ = false;
  mutable std::mutex infoMutex_;
  DisplayInfo info_;
};

}  // namespace

Result<std::unique_ptr<DisplayCapture>> createDrmDisplayCapture(const std::string& cardPath, Syscalls& sys) {
  using R = Result<std::unique_ptr<DisplayCapture>>;
  const int raw = sys.open(cardPath.c_str(), O_RDWR);
  if (raw < 0) {
    const int err = errno;
    Error e = errnoError(fmt::format("display {}: open", cardPath), err);
    if (err == ENOENT || err == ENXIO) e.code = Errc::NoDevice;
    if (err == EACCES || err == EPERM) e.code = Errc::PermissionDenied;
    return e;
  }
  UniqueFd fd(raw, sys);

  // GETRESOURCES twice: counts first, then the ids (a hotplug in between changes the counts:
  // retry a few times, as libdrm does).
  std::vector<uint32_t> crtcs;
  for (int attempt = 0;; ++attempt) {
    drm_mode_card_res res{};
    res.count_crtcs = static_cast<uint32_t>(crtcs.size());
    res.crtc_id_ptr = userPointer(crtcs.data());
    if (sys.ioctl(fd.get(), DRM_IOCTL_MODE_GETRESOURCES, &res) != 0) {
      const int err = errno;
      Error e = errnoError(fmt::format("display {}: GETRESOURCES (not a KMS device?)", cardPath), err);
      if (err == ENOTTY || err == EOPNOTSUPP || err == EINVAL) e.code = Errc::NoDevice;
      if (err == EACCES || err == EPERM) e.code = Errc::PermissionDenied;
      return e;
    }
    if (res.count_crtcs == crtcs.size() && (res.count_crtcs > 0 || attempt > 0)) break;
    if (attempt >= 3) return R(Errc::Io, fmt::format("display {}: CRTC list keeps changing", cardPath));
    crtcs.assign(res.count_crtcs, 0);
  }

  uint32_t activeCrtc = 0;
  uint32_t fbId = 0;
  for (uint32_t id : crtcs) {
    drm_mode_crtc crtc{};
    crtc.crtc_id = id;
    if (sys.ioctl(fd.get(), DRM_IOCTL_MODE_GETCRTC, &crtc) != 0) {
      return ioctlError(cardPath, fmt::format("GETCRTC {}", id), errno);
    }
    if (crtc.mode_valid != 0 && crtc.fb_id != 0) {
      activeCrtc = id;
      fbId = crtc.fb_id;
      break;
    }
  }
  if (activeCrtc == 0) {
    return R(Errc::NoSignal, fmt::format("display {}: no active CRTC among {} (no display on or connected)",
                                         cardPath, crtcs.size()));
  }
  auto capture = std::make_unique<DrmDisplayCapture>(sys, cardPath, std::move(fd), activeCrtc);
  if (auto st = capture->init(fbId); !st) return std::move(st).error();
  return std::unique_ptr<DisplayCapture>(std::move(capture));
}

}  // namespace printcast::hal
