// SPDX-License-Identifier: MIT
// Lab: fbdev and DRM display capture of bochs (/dev/fb0, /dev/dri/card0) against a written pattern.
//
// Runs inside the lab VM (tests/lab/run-lab.sh) as root; skips where the nodes are absent (any
// build host). Writes patterns to /dev/fb0 through mmap, then checks:
//  - the fbdev backend's grab is pixel-exact (XRGB, X byte ignored), its stride is line_length;
//  - the DRM backend's grab of card0's active CRTC shows the same pixels (bochs's fbdev
//    emulation reaches the scan-out buffer through a deferred-I/O shadow: polled up to 3 s);
//  - unchanged pictures keep their sequence; a one-pixel change is seen within 8 grabs;
//  - the anycubic-ks1 board's openScreen() (fbdev /dev/fb0, rot180) turned upright through
//    codecs::convertToI420 is where the orientation says, exactly: the pattern is flat 8x8
//    blocks, so each block's I420 value depends on its colour only and the lossy conversion can be
//    compared exactly against the same colour converted alone.
#include <fcntl.h>
#include <linux/fb.h>
#include <linux/kd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "printcast/bsp/devices.h"
#include "printcast/bsp/registry.h"
#include "printcast/codecs/convert.h"
#include "printcast/hal/display_drm.h"
#include "printcast/hal/display_fbdev.h"

namespace {

using printcast::hal::Frame;
using printcast::hal::FramePool;
using printcast::hal::Point;
using printcast::hal::Size;
using printcast::hal::Transform;
namespace fourcc = printcast::hal::fourcc;
using namespace std::chrono_literals;

constexpr const char* kFb = "/dev/fb0";
constexpr const char* kCard = "/dev/dri/card0";

// Per-pixel unique colours (800x480 fits: x in 10 bits, y in 9).
uint32_t finePattern(int x, int y) {
  return 0xFF000000U | static_cast<uint32_t>(x & 0xFF) << 16 | static_cast<uint32_t>(y & 0xFF) << 8 |
         static_cast<uint32_t>((x >> 8) | (y >> 8) << 2 | 0x40);
}
// Flat 8x8 blocks, each a colour unique to its block.
constexpr int kBlock = 8;
uint32_t blockPattern(int x, int y) {
  const auto bx = static_cast<uint32_t>(x / kBlock);
  const auto by = static_cast<uint32_t>(y / kBlock);
  return 0xFF000000U | (bx * 2 & 0xFF) << 16 | (by * 4 & 0xFF) << 8 | ((bx * 7 + by * 13) & 0xFF);
}

// /dev/fb0 mapped read-write, the way the printers' UI draws.
class Framebuffer {
 public:
  bool open() {
    fd_ = ::open(kFb, O_RDWR | O_CLOEXEC);
    if (fd_ < 0) return false;
    if (::ioctl(fd_, FBIOGET_VSCREENINFO, &var_) != 0 || ::ioctl(fd_, FBIOGET_FSCREENINFO, &fix_) != 0)
      return false;
    map_ = static_cast<uint8_t*>(::mmap(nullptr, fix_.smem_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0));
    if (map_ == MAP_FAILED) {
      map_ = nullptr;
      return false;
    }
    return true;
  }
  ~Framebuffer() {
    if (map_ != nullptr) ::munmap(map_, fix_.smem_len);
    if (fd_ >= 0) ::close(fd_);
  }
  Size size() const { return Size{static_cast<int>(var_.xres), static_cast<int>(var_.yres)}; }
  int stride() const { return static_cast<int>(fix_.line_length); }
  uint32_t* row(int y) {
    fb_var_screeninfo now{};
    ::ioctl(fd_, FBIOGET_VSCREENINFO, &now);  // draw on the page shown now
    // The mapping is page-aligned and lines are whole 32-bit pixels: go through void*.
    return static_cast<uint32_t*>(static_cast<void*>(
        map_ + (static_cast<size_t>(now.yoffset) + static_cast<size_t>(y)) * fix_.line_length));
  }
  void draw(uint32_t (*pattern)(int, int)) {
    for (int y = 0; y < size().height; ++y) {
      uint32_t* r = row(y);
      for (int x = 0; x < size().width; ++x) r[x] = pattern(x, y);
    }
  }
  const fb_var_screeninfo& var() const { return var_; }

 private:
  int fd_ = -1;
  uint8_t* map_ = nullptr;
  fb_var_screeninfo var_{};
  fb_fix_screeninfo fix_{};
};

// Keeps the framebuffer console from drawing (cursor blink) over the pattern during the test.
class ConsoleQuiet {
 public:
  ConsoleQuiet() {
    fd_ = ::open("/dev/tty0", O_RDWR | O_CLOEXEC);
    if (fd_ >= 0 && ::ioctl(fd_, KDSETMODE, KD_GRAPHICS) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~ConsoleQuiet() {
    if (fd_ >= 0) {
      ::ioctl(fd_, KDSETMODE, KD_TEXT);
      ::close(fd_);
    }
  }
  ConsoleQuiet(const ConsoleQuiet&) = delete;
  ConsoleQuiet& operator=(const ConsoleQuiet&) = delete;

 private:
  int fd_ = -1;
};

uint32_t xrgbAt(const Frame& f, int x, int y) {
  uint32_t v = 0;
  std::memcpy(&v, f.plane(0).data + static_cast<ptrdiff_t>(y) * f.plane(0).stride + x * 4, 4);
  return v;
}

// Number of pixels that differ (RGB; the X byte is undefined), with the first one reported.
int mismatches(const Frame& f, uint32_t (*pattern)(int, int), std::string* first = nullptr) {
  int bad = 0;
  for (int y = 0; y < f.size().height; ++y) {
    for (int x = 0; x < f.size().width; ++x) {
      const uint32_t got = xrgbAt(f, x, y) & 0xFFFFFFU;
      const uint32_t want = pattern(x, y) & 0xFFFFFFU;
      if (got != want && bad++ == 0 && first != nullptr) {
        *first = "pixel " + std::to_string(x) + "," + std::to_string(y) + ": got " + std::to_string(got) +
                 ", want " + std::to_string(want);
      }
    }
  }
  return bad;
}

class DisplayLab : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kFb)) GTEST_SKIP() << kFb << " is absent: run inside the lab VM (tests/lab)";
    ASSERT_TRUE(fb_.open()) << kFb << ": cannot open/map read-write: " << std::strerror(errno);
  }
  Framebuffer fb_;
  ConsoleQuiet quiet_;
};

TEST_F(DisplayLab, FbdevGrabIsPixelExact) {
  fb_.draw(finePattern);
  auto capture = printcast::hal::createFbdevDisplayCapture(kFb);
  ASSERT_TRUE(capture.ok()) << capture.error().describe();
  const auto info = (*capture)->info();
  EXPECT_EQ(info.size, fb_.size());
  EXPECT_EQ(info.format, fourcc::kXRGB8888);
  EXPECT_EQ(info.stride, fb_.stride());
  std::cout << "fbdev: " << info.size.str() << " stride " << info.stride << " yres_virtual "
            << fb_.var().yres_virtual << "\n";
  auto frame = (*capture)->grab();
  ASSERT_TRUE(frame.ok()) << frame.error().describe();
  std::string first;
  EXPECT_EQ(mismatches(*frame, finePattern, &first), 0) << first;

  // Unchanged: same sequence. One pixel changed: a new sequence within 8 grabs.
  auto again = (*capture)->grab();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->sequence(), frame->sequence());
  fb_.row(fb_.size().height - 3)[fb_.size().width - 5] = 0xFF123456U;
  bool seen = false;
  for (int i = 0; i < 8 && !seen; ++i) {
    auto g = (*capture)->grab();
    ASSERT_TRUE(g.ok());
    seen = g->sequence() != frame->sequence() &&
           (xrgbAt(*g, fb_.size().width - 5, fb_.size().height - 3) & 0xFFFFFFU) == 0x123456U;
  }
  EXPECT_TRUE(seen) << "a one-pixel change was not seen within 8 grabs";
}

TEST_F(DisplayLab, DrmGrabOfTheActiveCrtcIsPixelExact) {
  if (!std::filesystem::exists(kCard)) GTEST_SKIP() << kCard << " is absent";
  fb_.draw(finePattern);
  auto capture = printcast::hal::createDrmDisplayCapture(kCard);
  ASSERT_TRUE(capture.ok()) << capture.error().describe();
  const auto info = (*capture)->info();
  std::cout << "drm: " << info.name << " " << info.size.str() << " " << info.format.str() << " pitch "
            << info.stride << "\n";
  EXPECT_EQ(info.size, fb_.size());
  EXPECT_EQ(info.format, fourcc::kXRGB8888);
  // The fbdev emulation copies its shadow to the scan-out buffer a little later (deferred I/O).
  int bad = -1;
  std::string first;
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto frame = (*capture)->grab();
    ASSERT_TRUE(frame.ok()) << frame.error().describe();
    bad = mismatches(*frame, finePattern, &first);
    if (bad == 0) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(bad, 0) << first;
}

// The board path: anycubic-ks1's openScreen() and its rot180, as the streamer turns grabs upright.
TEST_F(DisplayLab, Ks1GrabTurnedUprightIsExact) {
  auto board = printcast::bsp::findBoard("anycubic-ks1");
  if (!board) GTEST_SKIP() << "anycubic-ks1 is not in this build (PRINTCAST_BOARDS)";
  const Transform orientation = (*board)->display.orientation;
  fb_.draw(blockPattern);
  auto screen = printcast::bsp::openScreen(**board);
  ASSERT_NE(screen.display, nullptr) << screen.displayError;
  auto grab = screen.display->grab();
  ASSERT_TRUE(grab.ok()) << grab.error().describe();
  std::string first;
  ASSERT_EQ(mismatches(*grab, blockPattern, &first), 0) << first;

  const Size panel = grab->size();
  const Size upright = orientation.apply(panel);
  auto pool = FramePool::create(fourcc::kI420, upright, 2);
  ASSERT_TRUE(pool.ok());
  auto converted = printcast::codecs::convertToI420(*grab, orientation, **pool);
  ASSERT_TRUE(converted.ok()) << converted.error().describe();

  // Each block colour converted on its own (a flat 2x2 XRGB image, no rotation).
  struct Yuv {
    uint8_t y, u, v;
  };
  std::map<uint32_t, Yuv> yuvOf;
  auto tinyXrgb = FramePool::create(fourcc::kXRGB8888, Size{2, 2}, 1);
  auto tinyI420 = FramePool::create(fourcc::kI420, Size{2, 2}, 1);
  ASSERT_TRUE(tinyXrgb.ok() && tinyI420.ok());
  auto lookup = [&](uint32_t colour) -> Yuv {
    auto it = yuvOf.find(colour);
    if (it != yuvOf.end()) return it->second;
    auto w = (*tinyXrgb)->acquire();
    EXPECT_TRUE(w.ok());
    for (int y = 0; y < 2; ++y) {
      for (int x = 0; x < 2; ++x) std::memcpy(w->data(0) + y * w->stride(0) + x * 4, &colour, 4);
    }
    const Frame f = std::move(*w).publish(printcast::hal::Clock::now(), 0);
    auto c = printcast::codecs::convertToI420(f, Transform::identity(), **tinyI420);
    EXPECT_TRUE(c.ok());
    const Yuv yuv{c->plane(0).data[0], c->plane(1).data[0], c->plane(2).data[0]};
    yuvOf.emplace(colour, yuv);
    return yuv;
  };

  // The upright pixel (u, v) shows the panel pixel the inverse orientation maps it to.
  const Transform toPanel = orientation.inverse();
  int bad = 0;
  for (int v = 0; v < upright.height; ++v) {
    for (int u = 0; u < upright.width; ++u) {
      const Point p = toPanel.applyToPixel(Point{u, v}, upright);
      const Yuv want = lookup(blockPattern(p.x, p.y));
      const uint8_t gotY = converted->plane(0).data[v * converted->plane(0).stride + u];
      if (gotY != want.y && bad++ < 3)
        ADD_FAILURE() << "Y at upright " << u << "," << v << " from panel " << p.x << "," << p.y;
      if (u % 2 == 0 && v % 2 == 0) {
        const uint8_t gotU = converted->plane(1).data[v / 2 * converted->plane(1).stride + u / 2];
        const uint8_t gotV = converted->plane(2).data[v / 2 * converted->plane(2).stride + u / 2];
        if ((gotU != want.u || gotV != want.v) && bad++ < 3) {
          ADD_FAILURE() << "UV at upright " << u << "," << v << " from panel " << p.x << "," << p.y;
        }
      }
    }
  }
  EXPECT_EQ(bad, 0);
  // And the corners, by name: the upright top-left is the panel's bottom-right for rot180.
  if (orientation == Transform::rot180()) {
    EXPECT_EQ(toPanel.applyToPixel(Point{0, 0}, upright), (Point{panel.width - 1, panel.height - 1}));
  }
}

}  // namespace
