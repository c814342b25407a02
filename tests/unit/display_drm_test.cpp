// SPDX-License-Identifier: MIT
// The DRM/KMS DisplayCapture against a scripted fake kernel: CRTC choice, GETFB2/GETFB, maps, flips.
#include <drm.h>
#include <drm_fourcc.h>
#include <drm_mode.h>
#include <fcntl.h>
#include <linux/fb.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "printcast/hal/display_drm.h"
#include "printcast/hal/display_open.h"

namespace {

using printcast::hal::Errc;
using printcast::hal::Frame;
using printcast::hal::Size;
using printcast::hal::Syscalls;
namespace fourcc = printcast::hal::fourcc;

struct FakeFb {
  uint32_t width = 0, height = 0, pitch = 0, format = DRM_FORMAT_XRGB8888;
  uint64_t modifier = DRM_FORMAT_MOD_LINEAR;
  bool withModifier = false;
  std::vector<uint8_t> memory;  // the GEM object's bytes
};

struct FakeCrtc {
  uint32_t id = 0;
  uint32_t fbId = 0;
  bool modeValid = false;
};

// A KMS driver: CRTCs showing framebuffers backed by heap "GEM objects", mapped through dumb-map
// offsets or PRIME fds. Descriptors are numbers from 300 up, never real ones.
class FakeDrmKernel final : public Syscalls {
 public:
  std::string node = "/dev/dri/card0";
  std::vector<FakeCrtc> crtcs;
  std::map<uint32_t, FakeFb> fbs;
  bool hasGetFb2 = true;       // false: a kernel before 5.7 (GETFB2 -> EINVAL)
  bool handlesHidden = false;  // not DRM master / CAP_SYS_ADMIN: handles come back 0
  bool dumbMap = true;         // MAP_DUMB works for the FB's objects
  bool prime = false;          // PRIME export works
  int crtcErrno = 0;
  int openErrno = 0;

  std::map<int, int> openFds;            // fd -> flags
  std::map<uint32_t, uint32_t> handles;  // live GEM handle -> fb id
  std::map<int, uint32_t> primeFds;      // dma-buf fd -> fb id
  int maps = 0, unmaps = 0, primeExports = 0, dumbMaps = 0;
  std::set<void*> mapped;

  uint8_t* pixel(uint32_t fbId, int x, int y) {
    FakeFb& fb = fbs.at(fbId);
    const int bytes = fb.format == DRM_FORMAT_RGB565 ? 2 : 4;
    return fb.memory.data() + static_cast<size_t>(y) * fb.pitch + static_cast<size_t>(x * bytes);
  }
  void addFb(uint32_t id, uint32_t w, uint32_t h, uint32_t pitch, uint32_t format = DRM_FORMAT_XRGB8888) {
    FakeFb fb;
    fb.width = w;
    fb.height = h;
    fb.pitch = pitch;
    fb.format = format;
    fb.memory.assign(static_cast<size_t>(pitch) * h, 0xEE);
    fbs[id] = std::move(fb);
  }

  int open(const char* path, int flags) override {
    if (openErrno != 0) return fail(openErrno);
    if (node != path) return fail(ENOENT);
    const int fd = nextFd_++;
    openFds[fd] = flags;
    return fd;
  }
  int close(int fd) override {
    if (primeFds.erase(fd) == 1) return 0;
    return openFds.erase(fd) == 1 ? 0 : fail(EBADF);
  }

  int ioctl(int fd, unsigned long request, void* arg) override {  // NOLINT(google-runtime-int)
    if (openFds.count(fd) == 0) return fail(EBADF);
    if (request == DRM_IOCTL_MODE_GETRESOURCES) {
      auto* res = static_cast<drm_mode_card_res*>(arg);
      if (res->count_crtcs >= crtcs.size() && res->crtc_id_ptr != 0) {
        auto* ids = reinterpret_cast<uint32_t*>(static_cast<uintptr_t>(res->crtc_id_ptr));
        for (size_t i = 0; i < crtcs.size(); ++i) ids[i] = crtcs[i].id;
      }
      res->count_crtcs = static_cast<uint32_t>(crtcs.size());
      res->count_connectors = 1;
      res->count_encoders = 1;
      res->count_fbs = 0;
      return 0;
    }
    if (request == DRM_IOCTL_MODE_GETCRTC) {
      if (crtcErrno != 0) return fail(crtcErrno);
      auto* c = static_cast<drm_mode_crtc*>(arg);
      for (const FakeCrtc& crtc : crtcs) {
        if (crtc.id != c->crtc_id) continue;
        c->fb_id = crtc.fbId;
        c->mode_valid = crtc.modeValid ? 1 : 0;
        return 0;
      }
      return fail(ENOENT);
    }
    if (request == DRM_IOCTL_MODE_GETFB2) {
      if (!hasGetFb2) return fail(EINVAL);
      auto* f = static_cast<drm_mode_fb_cmd2*>(arg);
      auto it = fbs.find(f->fb_id);
      if (it == fbs.end()) return fail(ENOENT);
      const FakeFb& fb = it->second;
      f->width = fb.width;
      f->height = fb.height;
      f->pixel_format = fb.format;
      f->flags = fb.withModifier ? DRM_MODE_FB_MODIFIERS : 0;
      f->pitches[0] = fb.pitch;
      f->offsets[0] = 0;
      f->modifier[0] = fb.modifier;
      f->handles[0] = handlesHidden ? 0 : newHandle(f->fb_id);
      return 0;
    }
    if (request == DRM_IOCTL_MODE_GETFB) {
      auto* f = static_cast<drm_mode_fb_cmd*>(arg);
      auto it = fbs.find(f->fb_id);
      if (it == fbs.end()) return fail(ENOENT);
      const FakeFb& fb = it->second;
      f->width = fb.width;
      f->height = fb.height;
      f->pitch = fb.pitch;
      f->bpp = fb.format == DRM_FORMAT_RGB565 ? 16 : 32;
      f->depth = fb.format == DRM_FORMAT_RGB565 ? 16 : 24;
      f->handle = handlesHidden ? 0 : newHandle(f->fb_id);
      return 0;
    }
    if (request == DRM_IOCTL_MODE_MAP_DUMB) {
      auto* m = static_cast<drm_mode_map_dumb*>(arg);
      if (handles.count(m->handle) == 0) return fail(ENOENT);
      if (!dumbMap) return fail(EINVAL);
      ++dumbMaps;
      m->offset = static_cast<uint64_t>(handles.at(m->handle)) << 20;  // fake mmap offset naming the fb
      return 0;
    }
    if (request == DRM_IOCTL_PRIME_HANDLE_TO_FD) {
      auto* p = static_cast<drm_prime_handle*>(arg);
      if (!prime) return fail(ENOSYS);
      if (handles.count(p->handle) == 0) return fail(ENOENT);
      ++primeExports;
      p->fd = nextFd_++;
      primeFds[p->fd] = handles.at(p->handle);
      return 0;
    }
    if (request == DRM_IOCTL_GEM_CLOSE) {
      auto* c = static_cast<drm_gem_close*>(arg);
      return handles.erase(c->handle) == 1 ? 0 : fail(EINVAL);
    }
    return fail(ENOTTY);
  }

  void* mmap(void* /*addr*/, size_t length, int prot, int flags, int fd, off_t offset) override {
    uint32_t fbId = 0;
    if (primeFds.count(fd) != 0) {
      if (offset != 0) return failMap(EINVAL);
      fbId = primeFds.at(fd);
    } else if (openFds.count(fd) != 0) {
      fbId = static_cast<uint32_t>(static_cast<uint64_t>(offset) >> 20);
    } else {
      return failMap(EBADF);
    }
    auto it = fbs.find(fbId);
    if (it == fbs.end() || length > it->second.memory.size() || prot != PROT_READ ||
        (flags & MAP_SHARED) == 0) {
      return failMap(EINVAL);
    }
    ++maps;
    mapped.insert(it->second.memory.data());
    return it->second.memory.data();
  }
  int munmap(void* addr, size_t /*length*/) override {
    if (mapped.erase(addr) != 1) return fail(EINVAL);
    ++unmaps;
    return 0;
  }
  int poll(pollfd* /*fds*/, nfds_t /*count*/, int /*timeoutMs*/) override { return fail(ENOSYS); }
  ssize_t read(int /*fd*/, void* /*buf*/, size_t /*count*/) override { return fail(ENOSYS); }
  ssize_t write(int /*fd*/, const void* /*buf*/, size_t /*count*/) override { return fail(ENOSYS); }

 private:
  uint32_t newHandle(uint32_t fbId) {
    const uint32_t h = nextHandle_++;
    handles[h] = fbId;
    return h;
  }
  static int fail(int e) {
    errno = e;
    return -1;
  }
  static void* failMap(int e) {
    errno = e;
    return MAP_FAILED;
  }
  int nextFd_ = 300;
  uint32_t nextHandle_ = 1;
};

uint32_t xrgbAt(const Frame& f, int x, int y) {
  uint32_t v = 0;
  std::memcpy(&v, f.plane(0).data + static_cast<ptrdiff_t>(y) * f.plane(0).stride + x * 4, 4);
  return v;
}

void fill(FakeDrmKernel& k, uint32_t fbId, uint32_t seed) {
  const FakeFb& fb = k.fbs.at(fbId);
  for (uint32_t y = 0; y < fb.height; ++y) {
    for (uint32_t x = 0; x < fb.width; ++x) {
      const uint32_t v = 0xFF000000U | seed << 16 | y << 8 | x;
      std::memcpy(k.pixel(fbId, static_cast<int>(x), static_cast<int>(y)), &v, 4);
    }
  }
}

void expectFill(const Frame& f, uint32_t seed) {
  for (int y = 0; y < f.size().height; ++y) {
    for (int x = 0; x < f.size().width; ++x) {
      ASSERT_EQ(xrgbAt(f, x, y),
                0xFF000000U | seed << 16 | static_cast<uint32_t>(y) << 8 | static_cast<uint32_t>(x))
          << x << "," << y;
    }
  }
}

// Two CRTCs, the first off; the second shows fb 50 (40x20, pitch 192 > 160).
void setUpCard(FakeDrmKernel& k) {
  k.crtcs = {FakeCrtc{31, 0, false}, FakeCrtc{38, 50, true}};
  k.addFb(50, 40, 20, 192);
  k.addFb(51, 40, 20, 192);
  fill(k, 50, 1);
  fill(k, 51, 2);
}

TEST(DrmDisplay, ActiveCrtcsFramebufferIsMappedAsADumbBuffer) {
  FakeDrmKernel k;
  setUpCard(k);
  auto capture = printcast::hal::createDrmDisplayCapture("/dev/dri/card0", k);
  ASSERT_TRUE(capture.ok()) << capture.error().describe();
  const auto info = (*capture)->info();
  EXPECT_EQ(info.name, "/dev/dri/card0 CRTC 38");
  EXPECT_EQ(info.size, (Size{40, 20}));
  EXPECT_EQ(info.format, fourcc::kXRGB8888);
  EXPECT_EQ(info.stride, 192);
  EXPECT_EQ(k.dumbMaps, 1);
  EXPECT_EQ(k.primeExports, 0);
  EXPECT_TRUE(k.handles.empty()) << "GEM handles are closed once mapped";
  auto frame = (*capture)->grab();
  ASSERT_TRUE(frame.ok()) << frame.error().describe();
  expectFill(*frame, 1);
}

TEST(DrmDisplay, PageFlipsAreFollowedWithoutRemapping) {
  FakeDrmKernel k;
  setUpCard(k);
  auto capture = printcast::hal::createDrmDisplayCapture("/dev/dri/card0", k);
  ASSERT_TRUE(capture.ok()) << capture.error().describe();
  auto a = (*capture)->grab();
  ASSERT_TRUE(a.ok());
  k.crtcs[1].fbId = 51;  // the UI flipped to its back buffer
  auto b = (*capture)->grab();
  ASSERT_TRUE(b.ok()) << b.error().describe();
  expectFill(*b, 2);
  EXPECT_EQ(b->sequence(), a->sequence() + 1);
  k.crtcs[1].fbId = 50;
  auto c = (*capture)->grab();
  ASSERT_TRUE(c.ok());
  expectFill(*c, 1);
  EXPECT_EQ(k.maps, 2) << "both buffers stay mapped";
  auto d = (*capture)->grab();
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->sequence(), c->sequence()) << "an unchanged picture keeps its sequence";
}

TEST(DrmDisplay, NewFramebufferGeometryIsFollowed) {
  FakeDrmKernel k;
  setUpCard(k);
  k.addFb(60, 16, 8, 64);
  fill(k, 60, 3);
  auto capture = printcast::hal::createDrmDisplayCapture("/dev/dri/card0", k);
  ASSERT_TRUE(capture.ok());
  k.crtcs[1].fbId = 60;
  auto g = (*capture)->grab();
  ASSERT_TRUE(g.ok()) << g.error().describe();
  EXPECT_EQ(g->size(), (Size{16, 8}));
  EXPECT_EQ((*capture)->info().size, (Size{16, 8}));
  expectFill(*g, 3);
}

TEST(DrmDisplay, PrimeIsUsedWhenTheDumbMapFails) {
  FakeDrmKernel k;
  setUpCard(k);
  k.dumbMap = false;
  k.prime = true;
  auto capture = printcast::hal::createDrmDisplayCapture("/dev/dri/card0", k);
  ASSERT_TRUE(capture.ok()) << capture.error().describe();
  EXPECT_EQ(k.primeExports, 1);
  EXPECT_TRUE(k.primeFds.empty()) << "the dma-buf fd is closed after mmap";
  auto frame = (*capture)->grab();
  ASSERT_TRUE(frame.ok());
  expectFill(*frame, 1);

  FakeDrmKernel neither;
  setUpCard(neither);
  neither.dumbMap = false;
  auto none = printcast::hal::createDrmDisplayCapture("/dev/dri/card0", neither);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.code(), Errc::Unsupported);
  EXPECT_TRUE(neither.handles.empty());
  EXPECT_TRUE(neither.openFds.empty());
}

TEST(DrmDisplay, OldKernelsUseGetFb) {
  FakeDrmKernel k;
  k.hasGetFb2 = false;
  k.crtcs = {FakeCrtc{38, 70, true}};
  k.addFb(70, 10, 6, 32, DRM_FORMAT_RGB565);
  for (int y = 0; y < 6; ++y) {
    for (int x = 0; x < 10; ++x) {
      const auto v = static_cast<uint16_t>(x * 100 + y);
      std::memcpy(k.pixel(70, x, y), &v, 2);
    }
  }
  auto capture = printcast::hal::createDrmDisplayCapture("/dev/dri/card0", k);
  ASSERT_TRUE(capture.ok()) << capture.error().describe();
  EXPECT_EQ((*capture)->info().format, fourcc::kRGB565);
  auto frame = (*capture)->grab();
  ASSERT_TRUE(frame.ok());
  uint16_t v = 0;
  std::memcpy(&v, frame->plane(0).data + 5 * frame->plane(0).stride + 9 * 2, 2);
  EXPECT_EQ(v, 905);
}

TEST(DrmDisplay, HiddenHandlesArePermissionDenied) {
  FakeDrmKernel k;
  setUpCard(k);
  k.handlesHidden = true;
  auto capture = printcast::hal::createDrmDisplayCapture("/dev/dri/card0", k);
  ASSERT_FALSE(capture.ok());
  EXPECT_EQ(capture.code(), Errc::PermissionDenied);
  EXPECT_NE(capture.error().message.find("CAP_SYS_ADMIN"), std::string::npos) << capture.error().message;
}

TEST(DrmDisplay, UnsupportedFormatsAndTiledBuffers) {
  {
    FakeDrmKernel k;
    setUpCard(k);
    k.fbs.at(50).format = DRM_FORMAT_NV12;
    auto capture = printcast::hal::createDrmDisplayCapture("/dev/dri/card0", k);
    ASSERT_FALSE(capture.ok());
    EXPECT_EQ(capture.code(), Errc::Unsupported);
    EXPECT_TRUE(k.handles.empty());
  }
  {
    FakeDrmKernel k;
    setUpCard(k);
    k.fbs.at(50).withModifier = true;
    k.fbs.at(50).modifier = I915_FORMAT_MOD_X_TILED;
    auto capture = printcast::hal::createDrmDisplayCapture("/dev/dri/card0", k);
    ASSERT_FALSE(capture.ok());
    EXPECT_EQ(capture.code(), Errc::Unsupported);
  }
}

TEST(DrmDisplay, NoActiveCrtcIsNoSignal) {
  FakeDrmKernel k;
  setUpCard(k);
  k.crtcs[1].modeValid = false;
  auto capture = printcast::hal::createDrmDisplayCapture("/dev/dri/card0", k);
  ASSERT_FALSE(capture.ok());
  EXPECT_EQ(capture.code(), Errc::NoSignal);

  k.crtcs[1].modeValid = true;
  auto on = printcast::hal::createDrmDisplayCapture("/dev/dri/card0", k);
  ASSERT_TRUE(on.ok());
  k.crtcs[1].modeValid = false;  // display switched off
  EXPECT_EQ((*on)->grab().code(), Errc::NoSignal);
  k.crtcErrno = ENODEV;  // card unplugged
  EXPECT_EQ((*on)->grab().code(), Errc::Disconnected);
  k.crtcErrno = 0;
  k.crtcs[1].modeValid = true;
  EXPECT_EQ((*on)->grab().code(), Errc::Disconnected) << "stays dead";
}

TEST(DrmDisplay, ReleasesMappingsAndFds) {
  FakeDrmKernel k;
  setUpCard(k);
  {
    auto capture = printcast::hal::createDrmDisplayCapture("/dev/dri/card0", k);
    ASSERT_TRUE(capture.ok());
    k.crtcs[1].fbId = 51;
    ASSERT_TRUE((*capture)->grab().ok());
  }
  EXPECT_TRUE(k.openFds.empty());
  EXPECT_EQ(k.unmaps, 2);
  EXPECT_TRUE(k.mapped.empty());
}

TEST(DrmDisplay, OpenErrors) {
  FakeDrmKernel k;
  setUpCard(k);
  EXPECT_EQ(printcast::hal::createDrmDisplayCapture("/dev/dri/card1", k).code(), Errc::NoDevice);
  k.openErrno = EACCES;
  EXPECT_EQ(printcast::hal::createDrmDisplayCapture("/dev/dri/card0", k).code(), Errc::PermissionDenied);
}

// openDisplayCapture: a card that cannot be used passes on to fbdev; every reason is kept.
TEST(OpenDisplay, FallsBackFromDrmToFbdevAndSaysWhy) {
  FakeDrmKernel k;
  setUpCard(k);
  k.handlesHidden = true;  // not root: KMS will not hand out the buffer
  auto r = printcast::hal::openDisplayCapture(
      printcast::hal::DisplayCandidates{{"/dev/dri/card0"}, {"/dev/fb0"}}, k);
  ASSERT_FALSE(r.ok());  // the fake has no fb0 either
  EXPECT_EQ(r.code(), Errc::PermissionDenied) << "the reason a user can fix wins";
  EXPECT_NE(r.error().message.find("/dev/dri/card0"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("/dev/fb0"), std::string::npos) << r.error().message;

  k.handlesHidden = false;
  auto ok = printcast::hal::openDisplayCapture(
      printcast::hal::DisplayCandidates{{"/dev/dri/card0"}, {"/dev/fb0"}}, k);
  ASSERT_TRUE(ok.ok()) << ok.error().describe();
  EXPECT_EQ((*ok)->info().name, "/dev/dri/card0 CRTC 38");

  auto none = printcast::hal::openDisplayCapture(printcast::hal::DisplayCandidates{}, k);
  EXPECT_EQ(none.code(), Errc::NoDevice);
}

}  // namespace
