// SPDX-License-Identifier: MIT
// The fbdev DisplayCapture against a scripted fake kernel: geometry, stride, pages, formats, skipping.
#include <fcntl.h>
#include <linux/fb.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "printcast/hal/display_fbdev.h"

namespace {

using printcast::hal::Errc;
using printcast::hal::Frame;
using printcast::hal::Size;
using printcast::hal::Syscalls;
namespace fourcc = printcast::hal::fourcc;

// A framebuffer driver: answers FBIOGET_VSCREENINFO/FSCREENINFO from `var`/`fix` and maps
// `memory` (the whole smem). Descriptors are numbers from 100 up, never real ones.
class FakeFbKernel final : public Syscalls {
 public:
  std::string node = "/dev/fb0";
  fb_var_screeninfo var{};
  fb_fix_screeninfo fix{};
  std::vector<uint8_t> memory;
  int openErrno = 0;           // open fails with this when set
  int varErrno = 0;            // FBIOGET_VSCREENINFO fails with this when set
  int mmapErrno = 0;           // mmap fails with this when set
  std::map<int, int> openFds;  // fd -> flags
  int maps = 0, unmaps = 0;
  int lastMapProt = 0;

  // An XRGB8888 (or RGB565) mode of `width` x `height`, `pages` pages, `stride` bytes per row.
  void setMode(int width, int height, int bpp, int stride, int pages = 1) {
    var = {};
    fix = {};
    var.xres = static_cast<uint32_t>(width);
    var.yres = static_cast<uint32_t>(height);
    var.xres_virtual = var.xres;
    var.yres_virtual = var.yres * static_cast<uint32_t>(pages);
    var.bits_per_pixel = static_cast<uint32_t>(bpp);
    if (bpp == 32) {
      var.red = {16, 8, 0};
      var.green = {8, 8, 0};
      var.blue = {0, 8, 0};
      var.transp = {24, 8, 0};
    } else {
      var.red = {11, 5, 0};
      var.green = {5, 6, 0};
      var.blue = {0, 5, 0};
    }
    fix.line_length = static_cast<uint32_t>(stride);
    fix.type = FB_TYPE_PACKED_PIXELS;
    fix.visual = FB_VISUAL_TRUECOLOR;
    fix.smem_len = static_cast<uint32_t>(stride * height * pages);
    memory.assign(fix.smem_len, 0xEE);  // padding and unwritten bytes: a value no test pixel has
  }

  uint8_t* pixel(int page, int x, int y) {
    const int bytes = static_cast<int>(var.bits_per_pixel) / 8;
    return memory.data() + (static_cast<size_t>(page) * var.yres + static_cast<size_t>(y)) * fix.line_length +
           static_cast<size_t>(x * bytes);
  }

  int open(const char* path, int flags) override {
    if (openErrno != 0) return fail(openErrno);
    if (node != path) return fail(ENOENT);
    const int fd = nextFd_++;
    openFds[fd] = flags;
    return fd;
  }
  int close(int fd) override { return openFds.erase(fd) == 1 ? 0 : fail(EBADF); }
  int ioctl(int fd, unsigned long request, void* arg) override {  // NOLINT(google-runtime-int)
    if (openFds.count(fd) == 0) return fail(EBADF);
    if (request == FBIOGET_VSCREENINFO) {
      if (varErrno != 0) return fail(varErrno);
      std::memcpy(arg, &var, sizeof var);
      return 0;
    }
    if (request == FBIOGET_FSCREENINFO) {
      std::memcpy(arg, &fix, sizeof fix);
      return 0;
    }
    return fail(ENOTTY);
  }
  void* mmap(void* /*addr*/, size_t length, int prot, int flags, int fd, off_t offset) override {
    if (mmapErrno != 0) {
      errno = mmapErrno;
      return MAP_FAILED;
    }
    if (openFds.count(fd) == 0 || offset != 0 || length > memory.size() || (flags & MAP_SHARED) == 0) {
      errno = EINVAL;
      return MAP_FAILED;
    }
    ++maps;
    lastMapProt = prot;
    return memory.data();
  }
  int munmap(void* addr, size_t /*length*/) override {
    if (addr != memory.data()) return fail(EINVAL);
    ++unmaps;
    return 0;
  }
  int poll(pollfd* /*fds*/, nfds_t /*count*/, int /*timeoutMs*/) override { return fail(ENOSYS); }
  ssize_t read(int /*fd*/, void* /*buf*/, size_t /*count*/) override { return fail(ENOSYS); }
  ssize_t write(int /*fd*/, const void* /*buf*/, size_t /*count*/) override { return fail(ENOSYS); }

 private:
  static int fail(int e) {
    errno = e;
    return -1;
  }
  int nextFd_ = 100;
};

uint32_t xrgbAt(const Frame& f, int x, int y) {
  uint32_t v = 0;
  std::memcpy(&v, f.plane(0).data + static_cast<ptrdiff_t>(y) * f.plane(0).stride + x * 4, 4);
  return v;
}

uint16_t rgb565At(const Frame& f, int x, int y) {
  uint16_t v = 0;
  std::memcpy(&v, f.plane(0).data + static_cast<ptrdiff_t>(y) * f.plane(0).stride + x * 2, 2);
  return v;
}

uint32_t patternA(int x, int y) {
  return 0xFF000000U | static_cast<uint32_t>(x) << 12 | static_cast<uint32_t>(y);
}
uint32_t patternB(int x, int y) {
  return 0xFF800000U | static_cast<uint32_t>(y) << 10 | static_cast<uint32_t>(x);
}

void fill32(FakeFbKernel& k, int page, uint32_t (*pattern)(int, int)) {
  for (int y = 0; y < static_cast<int>(k.var.yres); ++y) {
    for (int x = 0; x < static_cast<int>(k.var.xres); ++x) {
      const uint32_t v = pattern(x, y);
      std::memcpy(k.pixel(page, x, y), &v, 4);
    }
  }
}

void expectPattern(const Frame& f, uint32_t (*pattern)(int, int)) {
  for (int y = 0; y < f.size().height; ++y) {
    for (int x = 0; x < f.size().width; ++x) {
      ASSERT_EQ(xrgbAt(f, x, y), pattern(x, y)) << "pixel " << x << "," << y;
    }
  }
}

TEST(FbdevDisplay, PaddedStrideXrgb8888IsCopiedPixelExact) {
  FakeFbKernel k;
  // 50 pixels = 200 bytes per row, padded to 256 (line_length != xres * 4).
  k.setMode(50, 30, 32, 256);
  fill32(k, 0, patternA);
  auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
  ASSERT_TRUE(capture.ok()) << capture.error().describe();
  const auto info = (*capture)->info();
  EXPECT_EQ(info.name, "/dev/fb0");
  EXPECT_EQ(info.size, (Size{50, 30}));
  EXPECT_EQ(info.format, fourcc::kXRGB8888);
  EXPECT_EQ(info.stride, 256);
  EXPECT_EQ(k.maps, 1);
  EXPECT_EQ(k.lastMapProt, PROT_READ) << "the framebuffer is mapped read-only";
  EXPECT_EQ(k.openFds.begin()->second & O_ACCMODE, O_RDONLY);

  auto frame = (*capture)->grab();
  ASSERT_TRUE(frame.ok()) << frame.error().describe();
  EXPECT_EQ(frame->format(), fourcc::kXRGB8888);
  EXPECT_EQ(frame->size(), (Size{50, 30}));
  expectPattern(*frame, patternA);
}

TEST(FbdevDisplay, YoffsetSelectsTheVisiblePage) {
  FakeFbKernel k;
  k.setMode(40, 24, 32, 192, 2);  // double buffered: yres_virtual = 2 * yres
  fill32(k, 0, patternA);
  fill32(k, 1, patternB);
  auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
  ASSERT_TRUE(capture.ok()) << capture.error().describe();

  auto first = (*capture)->grab();
  ASSERT_TRUE(first.ok());
  expectPattern(*first, patternA);

  k.var.yoffset = 24;  // the driver panned to page 1
  auto second = (*capture)->grab();
  ASSERT_TRUE(second.ok());
  expectPattern(*second, patternB);
  EXPECT_EQ(second->sequence(), first->sequence() + 1);

  k.var.yoffset = 0;
  auto third = (*capture)->grab();
  ASSERT_TRUE(third.ok());
  expectPattern(*third, patternA);
  EXPECT_EQ(third->sequence(), second->sequence() + 1);

  k.var.yoffset = 30;  // past the end of the framebuffer: a driver bug, not a crash
  auto bad = (*capture)->grab();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.code(), Errc::Io);
}

TEST(FbdevDisplay, Rgb565IsCopiedWithItsStride) {
  FakeFbKernel k;
  k.setMode(20, 10, 16, 64);  // 40 bytes of pixels, 64 per row
  for (int y = 0; y < 10; ++y) {
    for (int x = 0; x < 20; ++x) {
      const auto v = static_cast<uint16_t>((x << 11) | (y << 5) | (x + y));
      std::memcpy(k.pixel(0, x, y), &v, 2);
    }
  }
  auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
  ASSERT_TRUE(capture.ok()) << capture.error().describe();
  EXPECT_EQ((*capture)->info().format, fourcc::kRGB565);
  EXPECT_EQ((*capture)->info().stride, 64);
  auto frame = (*capture)->grab();
  ASSERT_TRUE(frame.ok());
  EXPECT_EQ(frame->format(), fourcc::kRGB565);
  for (int y = 0; y < 10; ++y) {
    for (int x = 0; x < 20; ++x) {
      ASSERT_EQ(rgb565At(*frame, x, y), static_cast<uint16_t>((x << 11) | (y << 5) | (x + y)))
          << x << "," << y;
    }
  }
}

TEST(FbdevDisplay, OtherPixelLayoutsAreUnsupported) {
  {
    FakeFbKernel k;
    k.setMode(16, 16, 32, 64);
    k.var.red = {0, 8, 0};  // XBGR8888: red in the low byte
    k.var.blue = {16, 8, 0};
    auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
    ASSERT_FALSE(capture.ok());
    EXPECT_EQ(capture.code(), Errc::Unsupported);
    EXPECT_NE(capture.error().message.find("/dev/fb0"), std::string::npos) << capture.error().message;
    EXPECT_TRUE(k.openFds.empty()) << "the fd is closed on failure";
  }
  {
    FakeFbKernel k;
    k.setMode(16, 16, 32, 64);
    k.var.bits_per_pixel = 24;
    auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
    ASSERT_FALSE(capture.ok());
    EXPECT_EQ(capture.code(), Errc::Unsupported);
  }
  {
    FakeFbKernel k;
    k.setMode(16, 16, 16, 32);
    k.var.green = {5, 5, 0};  // RGB555
    auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
    ASSERT_FALSE(capture.ok());
    EXPECT_EQ(capture.code(), Errc::Unsupported);
  }
}

TEST(FbdevDisplay, UnchangedPicturesKeepTheirSequenceAndAreNotCopied) {
  FakeFbKernel k;
  k.setMode(64, 48, 32, 320);
  fill32(k, 0, patternA);
  auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
  ASSERT_TRUE(capture.ok()) << capture.error().describe();
  auto& display = **capture;

  auto first = display.grab();
  ASSERT_TRUE(first.ok());
  for (int i = 0; i < 20; ++i) {
    auto again = display.grab();
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->sequence(), first->sequence()) << "grab " << i;
    EXPECT_EQ(again->plane(0).data, first->plane(0).data) << "an unchanged grab hands out the same buffer";
  }

  // A change 8 rows tall is seen at once, whatever the sampling phase.
  for (int y = 10; y < 18; ++y) {
    const uint32_t v = 0xFF00FF00U;
    std::memcpy(k.pixel(0, 5, y), &v, 4);
  }
  auto changed = display.grab();
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(changed->sequence(), first->sequence() + 1);
  EXPECT_EQ(xrgbAt(*changed, 5, 13), 0xFF00FF00U);
  EXPECT_EQ(xrgbAt(*first, 5, 13), patternA(5, 13)) << "the earlier frame's pixels never change";

  // A one-pixel change is seen within kRowStep (8) grabs, never missed.
  const uint32_t dot = 0xFFFF0000U;
  std::memcpy(k.pixel(0, 63, 47), &dot, 4);
  int grabsUntilSeen = 0;
  uint64_t sequence = changed->sequence();
  for (; grabsUntilSeen < 8; ++grabsUntilSeen) {
    auto g = display.grab();
    ASSERT_TRUE(g.ok());
    if (g->sequence() != sequence) {
      EXPECT_EQ(g->sequence(), sequence + 1);
      EXPECT_EQ(xrgbAt(*g, 63, 47), dot);
      break;
    }
  }
  EXPECT_LT(grabsUntilSeen, 8) << "a one-pixel change must be found within 8 grabs";

  // Holding every frame a consumer got does not starve the pool: unchanged grabs reuse one.
  std::vector<Frame> held;
  for (int i = 0; i < 10; ++i) {
    auto g = display.grab();
    ASSERT_TRUE(g.ok()) << g.error().describe();
    held.push_back(*g);
  }
}

TEST(FbdevDisplay, OpenErrorsSayWhatToDo) {
  {
    FakeFbKernel k;
    k.setMode(8, 8, 32, 32);
    auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb1", k);
    ASSERT_FALSE(capture.ok());
    EXPECT_EQ(capture.code(), Errc::NoDevice);
    EXPECT_NE(capture.error().message.find("/dev/fb1"), std::string::npos);
  }
  {
    FakeFbKernel k;
    k.setMode(8, 8, 32, 32);
    k.openErrno = EACCES;
    auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
    ASSERT_FALSE(capture.ok());
    EXPECT_EQ(capture.code(), Errc::PermissionDenied);
  }
  {
    FakeFbKernel k;  // a node that is not a framebuffer
    k.setMode(8, 8, 32, 32);
    k.varErrno = ENOTTY;
    auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
    ASSERT_FALSE(capture.ok());
    EXPECT_EQ(capture.code(), Errc::NoDevice);
    EXPECT_TRUE(k.openFds.empty());
  }
  {
    FakeFbKernel k;
    k.setMode(8, 8, 32, 32);
    k.mmapErrno = ENODEV;  // a driver without mmap
    auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
    ASSERT_FALSE(capture.ok());
    EXPECT_EQ(capture.code(), Errc::Unsupported);
  }
}

TEST(FbdevDisplay, BusyNodeIsBusyAndNamed) {
  FakeFbKernel k;
  k.setMode(8, 8, 32, 32);
  k.openErrno = EBUSY;
  auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
  ASSERT_FALSE(capture.ok());
  EXPECT_EQ(capture.code(), Errc::Busy) << capture.error().describe();
  EXPECT_NE(capture.error().message.find("/dev/fb0"), std::string::npos) << capture.error().message;
}

// A driver whose geometry does not add up (the mapping would be shorter than the picture) is an
// error at open, never a read past the mapping.
TEST(FbdevDisplay, GeometryThatDoesNotFitTheMemoryIsAnError) {
  {
    FakeFbKernel k;
    k.setMode(8, 8, 32, 32);
    k.fix.line_length = 16;  // shorter than one 8-pixel XRGB row
    auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
    ASSERT_FALSE(capture.ok());
    EXPECT_EQ(capture.code(), Errc::Io);
    EXPECT_NE(capture.error().message.find("line_length 16"), std::string::npos) << capture.error().message;
    EXPECT_TRUE(k.openFds.empty());
  }
  {
    FakeFbKernel k;
    k.setMode(8, 8, 32, 32);
    k.fix.smem_len = 32 * 7;  // one row short
    auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
    ASSERT_FALSE(capture.ok());
    EXPECT_EQ(capture.code(), Errc::Io);
    EXPECT_NE(capture.error().message.find("smem_len 224"), std::string::npos) << capture.error().message;
    EXPECT_EQ(k.maps, 0);
  }
}

// A driver that switches the mode under us (another bpp, here) is reported; the caller reopens
// and gets the new format.
TEST(FbdevDisplay, DriverThatChangesTheFormatIsFollowedByAReopen) {
  FakeFbKernel k;
  k.setMode(8, 8, 32, 32);
  auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
  ASSERT_TRUE(capture.ok());
  EXPECT_EQ((*capture)->info().format, fourcc::kXRGB8888);
  k.setMode(8, 8, 16, 16);
  auto g = (*capture)->grab();
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.code(), Errc::Unsupported);
  EXPECT_NE(g.error().message.find("16 bpp"), std::string::npos) << g.error().message;
  capture->reset();
  auto reopened = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
  ASSERT_TRUE(reopened.ok()) << reopened.error().describe();
  EXPECT_EQ((*reopened)->info().format, fourcc::kRGB565);
  EXPECT_TRUE((*reopened)->grab().ok());
}

TEST(FbdevDisplay, VanishedDeviceIsDisconnectedForGood) {
  FakeFbKernel k;
  k.setMode(8, 8, 32, 32);
  auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
  ASSERT_TRUE(capture.ok());
  ASSERT_TRUE((*capture)->grab().ok());
  k.varErrno = ENODEV;
  auto gone = (*capture)->grab();
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.code(), Errc::Disconnected);
  k.varErrno = 0;
  auto still = (*capture)->grab();
  ASSERT_FALSE(still.ok());
  EXPECT_EQ(still.code(), Errc::Disconnected) << "a disconnected capture stays dead (reopen = new object)";
}

TEST(FbdevDisplay, ModeChangeAsksForAReopen) {
  FakeFbKernel k;
  k.setMode(8, 8, 32, 32, 2);
  auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
  ASSERT_TRUE(capture.ok());
  k.var.xres = 4;
  auto g = (*capture)->grab();
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.code(), Errc::Unsupported);
}

TEST(FbdevDisplay, ReleasesTheMappingAndTheFd) {
  FakeFbKernel k;
  k.setMode(8, 8, 32, 32);
  Frame kept;
  {
    auto capture = printcast::hal::createFbdevDisplayCapture("/dev/fb0", k);
    ASSERT_TRUE(capture.ok());
    auto g = (*capture)->grab();
    ASSERT_TRUE(g.ok());
    kept = *g;
  }
  EXPECT_TRUE(k.openFds.empty());
  EXPECT_EQ(k.unmaps, 1);
  EXPECT_TRUE(kept.valid()) << "frames are copies that outlive the capture";
  EXPECT_EQ(xrgbAt(kept, 0, 0), 0xEEEEEEEEU);
}

}  // namespace
