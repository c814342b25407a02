// SPDX-License-Identifier: MIT
// The real V4L2 capture backend against a scripted fake kernel (FakeV4l2Kernel: a Syscalls).
#include <fcntl.h>
#include <linux/videodev2.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <turbojpeg.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "printcast/hal/v4l2.h"
#include "usb_camera_plan.h"

namespace {

namespace fs = std::filesystem;
using printcast::hal::Capture;
using printcast::hal::CaptureConfig;
using printcast::hal::Clock;
using printcast::hal::Errc;
using printcast::hal::FourCC;
using printcast::hal::Frame;
using printcast::hal::Negotiation;
using printcast::hal::Size;
using printcast::hal::Syscalls;
using printcast::hal::V4l2Camera;
using printcast::hal::V4l2Control;
using printcast::hal::V4l2Paths;
namespace fourcc = printcast::hal::fourcc;

// A fake V4L2 driver behind the Syscalls seam. It knows one capture node, answers the ioctls the
// backend makes like a UVC camera would (adjusting sizes to the nearest it has, snapping rates),
// hands out heap memory for mmap, and records every call by name. Buffers become ready only when
// the test calls produce(). fds are real eventfds so close() and poll() stay honest.
// Thread-safety: every entry point takes one mutex (leases release on other threads).
class FakeV4l2Kernel final : public Syscalls {
 public:
  struct Format {
    FourCC format;
    bool compressed = false;
    std::vector<Size> sizes;
    std::vector<int> rates;  // discrete fps offered at every size
  };
  struct Control {
    v4l2_queryctrl query{};
    int32_t value = 0;
    std::vector<std::string> menu;
  };

  std::string nodePath;  // canonical path of the one node
  std::vector<Format> formats;
  std::map<uint32_t, uint32_t> bytesPerLine;  // per pixelformat; default packed
  std::map<uint32_t, Control> controls;
  bool disconnected = false;
  int openErrno = 0;                      // open() of the node fails with this (e.g. EBUSY)
  std::map<std::string, int> ioctlErrno;  // an ioctl by name (e.g. "STREAMON") fails with this

  FakeV4l2Kernel() {
    formats = {
        {fourcc::kYUYV, false, {{640, 480}, {1280, 720}}, {30, 15}},
        {fourcc::kNV12, false, {{640, 480}}, {30}},
        {fourcc::kMJPEG, true, {{640, 480}, {1280, 720}}, {30}},
        {FourCC::make('R', 'G', 'B', '3'), false, {{640, 480}}, {30}},  // not a format we hand out
    };
    addControl(V4L2_CID_BRIGHTNESS, "Brightness", V4L2_CTRL_TYPE_INTEGER, -64, 64, 1, 0);
    addControl(V4L2_CID_EXPOSURE_AUTO_PRIORITY, "Exposure, Dynamic Framerate", V4L2_CTRL_TYPE_BOOLEAN, 0, 1,
               1, 0);
    auto& plf =
        addControl(V4L2_CID_POWER_LINE_FREQUENCY, "Power Line Frequency", V4L2_CTRL_TYPE_MENU, 0, 2, 1, 1);
    plf.menu = {"Disabled", "50 Hz", "60 Hz"};
    addControl(V4L2_CID_HUE, "Hue", V4L2_CTRL_TYPE_INTEGER, -40, 40, 1, 0).query.flags =
        V4L2_CTRL_FLAG_DISABLED;
  }

  Control& addControl(uint32_t id, const char* name, uint32_t type, int32_t min, int32_t max, int32_t step,
                      int32_t def) {
    Control c;
    c.query.id = id;
    std::snprintf(reinterpret_cast<char*>(c.query.name), sizeof c.query.name, "%s", name);
    c.query.type = type;
    c.query.minimum = min;
    c.query.maximum = max;
    c.query.step = step;
    c.query.default_value = def;
    c.value = def;
    return controls[id] = c;
  }

  // --- what the test scripts and inspects ---

  // Fill the oldest queued buffer with `bytes` (bytesused = size) and make it ready.
  bool produce(const std::vector<uint8_t>& bytes, uint32_t bytesused = 0) {
    std::lock_guard lock(mutex_);
    if (queued_.empty()) return false;
    const uint32_t i = queued_.front();
    queued_.pop_front();
    auto& mem = buffers_.at(i);
    std::memcpy(mem.data(), bytes.data(), std::min(bytes.size(), mem.size()));
    Ready r{i, bytesused != 0 ? bytesused : static_cast<uint32_t>(bytes.size()), sequence_++};
    ready_.push_back(r);
    return true;
  }
  std::vector<std::string> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  void clearCalls() {
    std::lock_guard lock(mutex_);
    calls_.clear();
  }
  size_t count(const std::string& call) const {
    std::lock_guard lock(mutex_);
    return static_cast<size_t>(std::count(calls_.begin(), calls_.end(), call));
  }
  size_t queuedCount() const {
    std::lock_guard lock(mutex_);
    return queued_.size();
  }
  bool streaming() const {
    std::lock_guard lock(mutex_);
    return streaming_;
  }
  int openFds() const {
    std::lock_guard lock(mutex_);
    return static_cast<int>(fds_.size());
  }
  // DMA-BUF fds handed out by VIDIOC_EXPBUF and not closed yet.
  int exportedFds() const {
    std::lock_guard lock(mutex_);
    return static_cast<int>(exported_.size());
  }
  std::vector<uint32_t> expbufFlags() const {
    std::lock_guard lock(mutex_);
    return expbufFlags_;
  }
  size_t liveMappings() const {
    std::lock_guard lock(mutex_);
    return mappings_;
  }
  uint32_t currentBytesPerLine() const {
    std::lock_guard lock(mutex_);
    return pix_.bytesperline;
  }
  static constexpr time_t kTimestampSec = 1234;
  static constexpr suseconds_t kTimestampUsec = 567890;

  // --- Syscalls ---

  int open(const char* path, int /*flags*/) override {
    std::lock_guard lock(mutex_);
    calls_.emplace_back("open");
    std::error_code ec;
    if (disconnected || fs::canonical(path, ec).string() != nodePath) {
      errno = ENOENT;
      return -1;
    }
    if (openErrno != 0) {
      errno = openErrno;
      return -1;
    }
    const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    fds_.insert(fd);
    return fd;
  }
  int close(int fd) override {
    std::lock_guard lock(mutex_);
    calls_.emplace_back("close");
    if (fds_.erase(fd) == 0 && exported_.erase(fd) == 0) {
      ADD_FAILURE() << "close of an fd the fake never handed out: " << fd;
      errno = EBADF;
      return -1;
    }
    return ::close(fd);
  }
  void* mmap(void* /*addr*/, size_t length, int /*prot*/, int /*flags*/, int fd, off_t offset) override {
    std::lock_guard lock(mutex_);
    calls_.emplace_back("mmap");
    const auto index = static_cast<size_t>(offset / kPage);
    if (fds_.count(fd) == 0 || index >= buffers_.size() || length != buffers_[index].size()) {
      errno = EINVAL;
      return MAP_FAILED;
    }
    ++mappings_;
    return buffers_[index].data();
  }
  int munmap(void* /*addr*/, size_t /*length*/) override {
    std::lock_guard lock(mutex_);
    calls_.emplace_back("munmap");
    --mappings_;
    return 0;
  }
  int poll(pollfd* fds, nfds_t count, int timeoutMs) override { return ::poll(fds, count, timeoutMs); }
  ssize_t read(int /*fd*/, void* /*buf*/, size_t /*count*/) override {
    errno = EINVAL;
    return -1;
  }
  ssize_t write(int /*fd*/, const void* /*buf*/, size_t /*count*/) override {
    errno = EINVAL;
    return -1;
  }

  int ioctl(int fd, unsigned long request, void* arg) override {  // NOLINT(google-runtime-int)
    std::lock_guard lock(mutex_);
    if (fds_.count(fd) == 0) return fail(EBADF);
    if (disconnected) {
      calls_.emplace_back(name(request));
      return fail(ENODEV);
    }
    calls_.emplace_back(name(request));
    if (auto it = ioctlErrno.find(name(request)); it != ioctlErrno.end()) return fail(it->second);
    switch (request) {
      case VIDIOC_QUERYCAP: {
        auto* c = static_cast<v4l2_capability*>(arg);
        *c = {};
        std::snprintf(reinterpret_cast<char*>(c->driver), sizeof c->driver, "fakecam");
        std::snprintf(reinterpret_cast<char*>(c->card), sizeof c->card, "Fake Cam");
        std::snprintf(reinterpret_cast<char*>(c->bus_info), sizeof c->bus_info, "usb-0000:00:14.0-2");
        c->device_caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING;
        c->capabilities = c->device_caps | V4L2_CAP_DEVICE_CAPS;
        return 0;
      }
      case VIDIOC_ENUM_FMT: {
        auto* d = static_cast<v4l2_fmtdesc*>(arg);
        if (d->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || d->index >= formats.size()) return fail(EINVAL);
        const auto& f = formats[d->index];
        d->pixelformat = f.format.code;
        d->flags = f.compressed ? V4L2_FMT_FLAG_COMPRESSED : 0;
        std::snprintf(reinterpret_cast<char*>(d->description), sizeof d->description, "%s",
                      f.format.str().c_str());
        return 0;
      }
      case VIDIOC_ENUM_FRAMESIZES: {
        auto* s = static_cast<v4l2_frmsizeenum*>(arg);
        const Format* f = find(FourCC{s->pixel_format});
        if (f == nullptr || s->index >= f->sizes.size()) return fail(EINVAL);
        s->type = V4L2_FRMSIZE_TYPE_DISCRETE;
        s->discrete.width = static_cast<uint32_t>(f->sizes[s->index].width);
        s->discrete.height = static_cast<uint32_t>(f->sizes[s->index].height);
        return 0;
      }
      case VIDIOC_ENUM_FRAMEINTERVALS: {
        auto* iv = static_cast<v4l2_frmivalenum*>(arg);
        const Format* f = find(FourCC{iv->pixel_format});
        if (f == nullptr || iv->index >= f->rates.size()) return fail(EINVAL);
        const Size s{static_cast<int>(iv->width), static_cast<int>(iv->height)};
        if (std::find(f->sizes.begin(), f->sizes.end(), s) == f->sizes.end()) return fail(EINVAL);
        iv->type = V4L2_FRMIVAL_TYPE_DISCRETE;
        iv->discrete = v4l2_fract{1, static_cast<uint32_t>(f->rates[iv->index])};
        return 0;
      }
      case VIDIOC_TRY_FMT:
      case VIDIOC_S_FMT: {
        auto* f = static_cast<v4l2_format*>(arg);
        if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return fail(EINVAL);
        if (request == VIDIOC_S_FMT && !buffers_.empty()) return fail(EBUSY);
        adjust(f->fmt.pix);
        if (request == VIDIOC_S_FMT) pix_ = f->fmt.pix;
        return 0;
      }
      case VIDIOC_G_FMT: static_cast<v4l2_format*>(arg)->fmt.pix = pix_; return 0;
      case VIDIOC_S_PARM:
      case VIDIOC_G_PARM: {
        auto* p = static_cast<v4l2_streamparm*>(arg);
        if (request == VIDIOC_S_PARM) {
          const Format* f = find(FourCC{pix_.pixelformat});
          const double want = p->parm.capture.timeperframe.numerator == 0
                                  ? 30.0
                                  : static_cast<double>(p->parm.capture.timeperframe.denominator) /
                                        p->parm.capture.timeperframe.numerator;
          int best = f->rates.front();
          for (int r : f->rates) {
            if (std::abs(r - want) < std::abs(best - want)) best = r;
          }
          fps_ = best;
        }
        p->parm.capture.capability = V4L2_CAP_TIMEPERFRAME;
        p->parm.capture.timeperframe = v4l2_fract{1, static_cast<uint32_t>(fps_)};
        return 0;
      }
      case VIDIOC_REQBUFS: {
        auto* r = static_cast<v4l2_requestbuffers*>(arg);
        if (r->memory != V4L2_MEMORY_MMAP) return fail(EINVAL);
        if (streaming_) return fail(EBUSY);
        queued_.clear();
        ready_.clear();
        // Like vb2: buffers still mapped are orphaned (kept until unmapped), never freed under a map.
        for (auto& b : buffers_) graveyard_.push_back(std::move(b));
        buffers_.clear();
        const uint32_t n = std::min<uint32_t>(r->count, 8);  // a driver may grant fewer
        for (uint32_t i = 0; i < n; ++i) buffers_.emplace_back(pix_.sizeimage);
        r->count = n;
        return 0;
      }
      case VIDIOC_QUERYBUF: {
        auto* b = static_cast<v4l2_buffer*>(arg);
        if (b->index >= buffers_.size()) return fail(EINVAL);
        b->length = static_cast<uint32_t>(buffers_[b->index].size());
        b->m.offset = b->index * kPage;
        return 0;
      }
      case VIDIOC_QBUF: {
        auto* b = static_cast<v4l2_buffer*>(arg);
        if (b->index >= buffers_.size() || isQueued(b->index)) return fail(EINVAL);
        queued_.push_back(b->index);
        return 0;
      }
      case VIDIOC_DQBUF: {
        auto* b = static_cast<v4l2_buffer*>(arg);
        if (!streaming_) return fail(EINVAL);
        if (ready_.empty()) return fail(EAGAIN);
        const Ready r = ready_.front();
        ready_.pop_front();
        b->index = r.index;
        b->bytesused = r.bytesused;
        b->length = static_cast<uint32_t>(buffers_[r.index].size());
        b->sequence = r.sequence;
        b->flags = V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC | V4L2_BUF_FLAG_DONE;
        b->timestamp.tv_sec = kTimestampSec + r.sequence;
        b->timestamp.tv_usec = kTimestampUsec;
        return 0;
      }
      case VIDIOC_EXPBUF: {
        // Like vb2_core_expbuf: MMAP buffers only, an fd of its own per call.
        auto* e = static_cast<v4l2_exportbuffer*>(arg);
        if (e->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || e->index >= buffers_.size() || e->plane != 0)
          return fail(EINVAL);
        e->fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        exported_.insert(e->fd);
        expbufFlags_.push_back(e->flags);
        return 0;
      }
      case VIDIOC_STREAMON: streaming_ = true; return 0;
      case VIDIOC_STREAMOFF:
        streaming_ = false;
        queued_.clear();
        ready_.clear();
        return 0;
      case VIDIOC_QUERYCTRL: {
        auto* q = static_cast<v4l2_queryctrl*>(arg);
        auto it = controls.end();
        if ((q->id & V4L2_CTRL_FLAG_NEXT_CTRL) != 0) {
          it = controls.upper_bound(q->id & ~V4L2_CTRL_FLAG_NEXT_CTRL);
        } else {
          it = controls.find(q->id);
        }
        if (it == controls.end()) return fail(EINVAL);
        *q = it->second.query;
        return 0;
      }
      case VIDIOC_QUERYMENU: {
        auto* m = static_cast<v4l2_querymenu*>(arg);
        auto it = controls.find(m->id);
        if (it == controls.end() || m->index >= it->second.menu.size()) return fail(EINVAL);
        std::snprintf(reinterpret_cast<char*>(m->name), sizeof m->name, "%s",
                      it->second.menu[m->index].c_str());
        return 0;
      }
      case VIDIOC_G_CTRL:
      case VIDIOC_S_CTRL: {
        auto* c = static_cast<v4l2_control*>(arg);
        auto it = controls.find(c->id);
        if (it == controls.end() || (it->second.query.flags & V4L2_CTRL_FLAG_DISABLED) != 0)
          return fail(EINVAL);
        if (request == VIDIOC_G_CTRL) {
          c->value = it->second.value;
          return 0;
        }
        if (c->value < it->second.query.minimum || c->value > it->second.query.maximum) return fail(ERANGE);
        it->second.value = c->value;
        return 0;
      }
      default: return fail(ENOTTY);  // QUERY_EXT_CTRL, EXT_CTRLS...: an old driver
    }
  }

 private:
  struct Ready {
    uint32_t index;
    uint32_t bytesused;
    uint32_t sequence;
  };
  static constexpr off_t kPage = 4096;

  static int fail(int e) {
    errno = e;
    return -1;
  }
  static std::string name(unsigned long request) {  // NOLINT(google-runtime-int)
    static const std::map<unsigned long, std::string> kNames = {
        // NOLINT(google-runtime-int)
        {VIDIOC_QUERYCAP, "QUERYCAP"},
        {VIDIOC_ENUM_FMT, "ENUM_FMT"},
        {VIDIOC_ENUM_FRAMESIZES, "ENUM_FRAMESIZES"},
        {VIDIOC_ENUM_FRAMEINTERVALS, "ENUM_FRAMEINTERVALS"},
        {VIDIOC_TRY_FMT, "TRY_FMT"},
        {VIDIOC_S_FMT, "S_FMT"},
        {VIDIOC_G_FMT, "G_FMT"},
        {VIDIOC_S_PARM, "S_PARM"},
        {VIDIOC_G_PARM, "G_PARM"},
        {VIDIOC_REQBUFS, "REQBUFS"},
        {VIDIOC_QUERYBUF, "QUERYBUF"},
        {VIDIOC_QBUF, "QBUF"},
        {VIDIOC_DQBUF, "DQBUF"},
        {VIDIOC_STREAMON, "STREAMON"},
        {VIDIOC_STREAMOFF, "STREAMOFF"},
        {VIDIOC_EXPBUF, "EXPBUF"},
        {VIDIOC_QUERYCTRL, "QUERYCTRL"},
        {VIDIOC_QUERY_EXT_CTRL, "QUERY_EXT_CTRL"},
        {VIDIOC_QUERYMENU, "QUERYMENU"},
        {VIDIOC_G_CTRL, "G_CTRL"},
        {VIDIOC_S_CTRL, "S_CTRL"},
        {VIDIOC_G_EXT_CTRLS, "G_EXT_CTRLS"},
        {VIDIOC_S_EXT_CTRLS, "S_EXT_CTRLS"},
    };
    auto it = kNames.find(request);
    return it == kNames.end() ? "ioctl?" : it->second;
  }
  const Format* find(FourCC f) const {
    for (const auto& x : formats) {
      if (x.format == f) return &x;
    }
    return nullptr;
  }
  bool isQueued(uint32_t i) const { return std::find(queued_.begin(), queued_.end(), i) != queued_.end(); }

  // Like a UVC driver: unknown formats become the first one; sizes snap to the nearest listed.
  void adjust(v4l2_pix_format& p) const {
    const Format* f = find(FourCC{p.pixelformat});
    if (f == nullptr) f = &formats.front();
    p.pixelformat = f->format.code;
    Size best = f->sizes.front();
    auto dist = [&](Size s) {
      return std::abs(s.width - static_cast<int>(p.width)) + std::abs(s.height - static_cast<int>(p.height));
    };
    for (const auto& s : f->sizes) {
      if (dist(s) < dist(best)) best = s;
    }
    p.width = static_cast<uint32_t>(best.width);
    p.height = static_cast<uint32_t>(best.height);
    p.field = V4L2_FIELD_NONE;
    if (f->compressed) {
      p.bytesperline = 0;
      p.sizeimage = p.width * p.height;  // worst case for a JPEG
      return;
    }
    auto bpl = bytesPerLine.find(p.pixelformat);
    const uint32_t packed = f->format == fourcc::kYUYV ? p.width * 2 : p.width;
    p.bytesperline = bpl != bytesPerLine.end() ? bpl->second : packed;
    p.sizeimage = f->format == fourcc::kNV12 ? p.bytesperline * p.height * 3 / 2 : p.bytesperline * p.height;
  }

  mutable std::mutex mutex_;
  std::vector<std::string> calls_;
  std::set<int> fds_;
  std::set<int> exported_;
  std::vector<uint32_t> expbufFlags_;
  std::vector<std::vector<uint8_t>> buffers_;
  std::vector<std::vector<uint8_t>> graveyard_;
  std::deque<uint32_t> queued_;
  std::deque<Ready> ready_;
  v4l2_pix_format pix_{};
  int fps_ = 30;
  bool streaming_ = false;
  uint32_t sequence_ = 0;
  size_t mappings_ = 0;
};

class CaptureV4l2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!printcast::hal::v4l2Available()) GTEST_SKIP() << "built without the V4L2 backend";
    dir_ = fs::temp_directory_path() / ("printcast-v4l2-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "v4l" / "by-id");
    fs::create_directories(dir_ / "v4l" / "by-path");
    { std::ofstream(dir_ / "video0"); }  // a plain file stands in for the node: the fake opens it
    { std::ofstream(dir_ / "video1"); }  // a node the fake refuses (like a busy or metadata node)
    fs::create_symlink("../../video0", dir_ / "v4l" / "by-id" / kById);
    fs::create_symlink("../../video0",
                       dir_ / "v4l" / "by-path" / "pci-0000:00:14.0-usb-0:2:1.0-video-index0");
    kernel_.nodePath = fs::canonical(dir_ / "video0").string();
    paths_.devDir = dir_.string();
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  std::unique_ptr<Capture> open(const std::string& name = "") {
    auto cam = printcast::hal::createV4l2Capture(name, kernel_, paths_);
    EXPECT_TRUE(cam.ok()) << (cam.ok() ? "" : cam.error().describe());
    return cam.ok() ? std::move(*cam) : nullptr;
  }

  // Start `format` at 640x480 30 fps with `buffers` buffers (validate() must say Valid).
  std::unique_ptr<Capture> started(FourCC format, int buffers = 3) {
    auto cam = open();
    if (!cam) return nullptr;
    CaptureConfig c;
    c.format = format;
    c.size = Size{640, 480};
    c.fps = 30;
    c.bufferCount = buffers;
    EXPECT_EQ(cam->validate(c), Negotiation::Valid);
    auto st = cam->start(c);
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().describe());
    return cam;
  }

  static constexpr const char* kById = "usb-Fake_Vendor_Fake_Cam_1234-video-index0";
  FakeV4l2Kernel kernel_;
  fs::path dir_;
  V4l2Paths paths_;
};

TEST_F(CaptureV4l2Test, EnumeratesNodesLinksFormatsSizesAndRates) {
  auto devices = printcast::hal::enumerateV4l2Devices(kernel_, paths_);
  ASSERT_TRUE(devices.ok()) << devices.error().describe();
  ASSERT_EQ(devices->size(), 1u);  // video1 cannot be opened: skipped, not an error
  const auto& d = devices->front();
  EXPECT_EQ(d.path, kernel_.nodePath);
  EXPECT_EQ(d.card, "Fake Cam");
  EXPECT_EQ(d.driver, "fakecam");
  EXPECT_EQ(d.busInfo, "usb-0000:00:14.0-2");
  ASSERT_EQ(d.byIdLinks.size(), 1u);
  EXPECT_EQ(fs::path(d.byIdLinks[0]).filename(), kById);
  EXPECT_EQ(d.byPathLinks.size(), 1u);
  EXPECT_EQ(d.stableName, d.byIdLinks[0]);
  ASSERT_EQ(d.formats.size(), 4u);
  EXPECT_EQ(d.formats[0].format, fourcc::kYUYV);
  ASSERT_EQ(d.formats[0].sizes.size(), 2u);
  EXPECT_EQ(d.formats[0].sizes[1].max, (Size{1280, 720}));
  EXPECT_EQ(d.formats[0].sizes[0].fps, (std::vector<double>{30, 15}));
  EXPECT_TRUE(d.formats[2].compressed);
  EXPECT_EQ(kernel_.openFds(), 0) << "enumeration closes every node it opened (through the seam)";
}

// What enumeration reports is what USB camera auto-discovery plans from (usb_camera_plan.h): the
// by-id link as the source, the bus from bus_info, the board's format at the size asked.
TEST_F(CaptureV4l2Test, EnumerationFeedsTheUsbCameraPlan) {
  auto devices = printcast::hal::enumerateV4l2Devices(kernel_, paths_);
  ASSERT_TRUE(devices.ok()) << devices.error().describe();
  printcast::bsp::CameraSpec spec;
  spec.kind = printcast::bsp::CameraKind::V4L2;
  spec.preferredFormat = fourcc::kMJPEG;
  const auto plan =
      printcast::streamer::planUsbCameras(*devices, spec, printcast::bsp::Limits{}, {1280, 720}, 30);
  ASSERT_EQ(plan.cameras.size(), 1u);
  const auto& c = plan.cameras[0];
  EXPECT_EQ(c.source, (dir_ / "v4l/by-id" / kById).string());
  EXPECT_EQ(c.name, "Fake Cam");
  EXPECT_EQ(c.bus, "usb-0000:00:14.0");
  EXPECT_EQ(c.format, fourcc::kMJPEG);
  EXPECT_EQ(c.size, (Size{1280, 720}));
  EXPECT_EQ(c.fps, 30);
  EXPECT_EQ(c.note, "");
  // The planned source opens the camera.
  EXPECT_NE(open(c.source), nullptr);
}

TEST_F(CaptureV4l2Test, OpensByPathByIdLinkNameCardSubstringAndBusInfo) {
  for (const std::string& name :
       {std::string(), kernel_.nodePath, std::string(kById), std::string("Fake"),
        std::string("bus:usb-0000:00:14.0-2"), (dir_ / "v4l/by-id" / kById).string()}) {
    auto cam = printcast::hal::createV4l2Capture(name, kernel_, paths_);
    ASSERT_TRUE(cam.ok()) << "\"" << name << "\": " << cam.error().describe();
    auto* v4l2 = printcast::hal::v4l2CameraOf(**cam);
    ASSERT_NE(v4l2, nullptr);
    EXPECT_EQ(fs::path(v4l2->device().stableName).filename(), kById);
    EXPECT_EQ((*cam)->info().name, "Fake Cam");
    EXPECT_TRUE((*cam)->info().capabilities.controls);
  }
  auto missing = printcast::hal::createV4l2Capture("Logitech", kernel_, paths_);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.code(), Errc::NoDevice);
  auto gone = printcast::hal::createV4l2Capture((dir_ / "video7").string(), kernel_, paths_);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.code(), Errc::NoDevice);
}

TEST_F(CaptureV4l2Test, NegotiationReportsTheDriversSizeAndRate) {
  auto cam = open();
  ASSERT_TRUE(cam);
  CaptureConfig c;
  c.format = fourcc::kYUYV;
  c.size = Size{1200, 700};
  c.fps = 24;
  c.bufferCount = 1;
  EXPECT_EQ(cam->validate(c), Negotiation::Adjusted);
  EXPECT_EQ(c.size, (Size{1280, 720}));
  EXPECT_EQ(c.fps, 30);  // nearest of {30, 15}
  EXPECT_EQ(c.bufferCount, 2);
  EXPECT_EQ(cam->validate(c), Negotiation::Valid);

  CaptureConfig rgb;
  rgb.format = FourCC::make('R', 'G', 'B', '3');
  EXPECT_EQ(cam->validate(rgb), Negotiation::Invalid) << "a format the backend does not hand out";
  CaptureConfig h264;
  h264.format = fourcc::kH264;  // the driver substitutes YUYV (its first format)
  EXPECT_EQ(cam->validate(h264), Negotiation::Adjusted);
  EXPECT_EQ(h264.format, fourcc::kYUYV);

  // start() applies the rate with S_PARM and reports what G_PARM says.
  c.fps = 15;
  ASSERT_EQ(cam->validate(c), Negotiation::Valid);
  kernel_.clearCalls();
  ASSERT_TRUE(cam->start(c).ok());
  const auto calls = kernel_.calls();
  // The streaming set-up in the order the V4L2 spec gives ("Streaming I/O (Memory Mapping)").
  std::vector<std::string> setup;
  for (const auto& call : calls) {
    if (call != "TRY_FMT" && call != "ENUM_FRAMEINTERVALS") setup.push_back(call);
  }
  EXPECT_EQ(setup,
            (std::vector<std::string>{"S_FMT", "S_PARM", "G_PARM", "REQBUFS", "QUERYBUF", "mmap", "QUERYBUF",
                                      "mmap", "EXPBUF", "EXPBUF", "QBUF", "QBUF", "STREAMON"}));
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "S_PARM"), 1);
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "QBUF"), 2);
  EXPECT_EQ(calls.back(), "STREAMON");
  auto* v4l2 = printcast::hal::v4l2CameraOf(*cam);
  EXPECT_EQ(v4l2->activeConfig().fps, 15);
  EXPECT_EQ(v4l2->activeConfig().bufferCount, 2);

  CaptureConfig unvalidated;
  unvalidated.format = fourcc::kYUYV;
  unvalidated.size = Size{100, 100};
  cam->stop();
  auto st = cam->start(unvalidated);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Errc::InvalidArgument);
}

TEST_F(CaptureV4l2Test, StrideComesFromBytesPerLine) {
  kernel_.bytesPerLine[fourcc::kYUYV.code] = 1344;  // 640 YUYV pixels = 1280 bytes + 64 padding
  auto cam = started(fourcc::kYUYV);
  ASSERT_TRUE(cam);
  std::vector<uint8_t> image(1344 * 480, 0);
  for (int row = 0; row < 480; ++row) image[static_cast<size_t>(row) * 1344] = static_cast<uint8_t>(row);
  ASSERT_TRUE(kernel_.produce(image));
  auto frame = cam->dequeue();
  ASSERT_TRUE(frame.ok()) << frame.error().describe();
  EXPECT_EQ(frame->format(), fourcc::kYUYV);
  EXPECT_EQ(frame->size(), (Size{640, 480}));
  EXPECT_EQ(frame->planeCount(), 1);
  EXPECT_EQ(frame->plane(0).stride, 1344);
  EXPECT_EQ(frame->plane(0).size, 1344u * 480u);
  for (int row : {1, 100, 479}) {
    EXPECT_EQ(frame->plane(0).data[static_cast<size_t>(row) * 1344], static_cast<uint8_t>(row));
  }
  EXPECT_EQ(frame->sequence(), 0u);
  const auto expected = std::chrono::seconds(FakeV4l2Kernel::kTimestampSec) +
                        std::chrono::microseconds(FakeV4l2Kernel::kTimestampUsec);
  EXPECT_EQ(frame->timestamp().time_since_epoch(), std::chrono::duration_cast<Clock::duration>(expected));
}

TEST_F(CaptureV4l2Test, Nv12PlanesFollowEachOtherWithThePaddedStride) {
  kernel_.bytesPerLine[fourcc::kNV12.code] = 704;
  auto cam = started(fourcc::kNV12);
  ASSERT_TRUE(cam);
  ASSERT_TRUE(kernel_.produce(std::vector<uint8_t>(704 * 480 * 3 / 2, 0x80)));
  auto frame = cam->dequeue();
  ASSERT_TRUE(frame.ok()) << frame.error().describe();
  ASSERT_EQ(frame->planeCount(), 2);
  EXPECT_EQ(frame->plane(0).stride, 704);
  EXPECT_EQ(frame->plane(1).stride, 704);
  EXPECT_EQ(frame->plane(1).data, frame->plane(0).data + 704 * 480);
  EXPECT_EQ(frame->plane(1).size, 704u * 240u);
  EXPECT_EQ(frame->bytesUsed(), 704u * 480u * 3u / 2u);
}

TEST_F(CaptureV4l2Test, ShortRawFrameIsDroppedAndRequeued) {
  auto cam = started(fourcc::kYUYV);
  ASSERT_TRUE(cam);
  ASSERT_TRUE(kernel_.produce(std::vector<uint8_t>(100, 0), 100));
  const size_t queued = kernel_.queuedCount();
  auto frame = cam->dequeue();
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(frame.code(), Errc::Again);
  EXPECT_EQ(kernel_.queuedCount(), queued + 1) << "the short buffer went straight back to the driver";
}

TEST_F(CaptureV4l2Test, EmptyQueueIsAgainAndPollFdIsTheDevice) {
  auto cam = started(fourcc::kYUYV);
  ASSERT_TRUE(cam);
  EXPECT_GE(cam->pollFd(), 0);
  auto frame = cam->dequeue();
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(frame.code(), Errc::Again);
}

TEST_F(CaptureV4l2Test, BufferIsRequeuedOnlyWhenTheLastLeaseDropsEvenOnAnotherThread) {
  auto cam = started(fourcc::kYUYV, 2);
  ASSERT_TRUE(cam);
  ASSERT_TRUE(kernel_.produce(std::vector<uint8_t>(640 * 2 * 480, 1)));
  ASSERT_EQ(kernel_.queuedCount(), 1u);
  kernel_.clearCalls();
  auto frame = cam->dequeue();
  ASSERT_TRUE(frame.ok());
  Frame first = *frame;
  Frame second = first;
  frame = Frame();  // drop the Result's copy
  EXPECT_EQ(first.leaseCount(), 2);
  first = Frame();
  EXPECT_EQ(kernel_.count("QBUF"), 0u) << "one lease is still out";
  std::thread other([lease = std::move(second)]() mutable { lease = Frame(); });
  other.join();
  EXPECT_EQ(kernel_.count("QBUF"), 1u);
  EXPECT_EQ(kernel_.queuedCount(), 2u);
}

TEST_F(CaptureV4l2Test, AllBuffersLeasedStallsWithAgain) {
  auto cam = started(fourcc::kYUYV, 2);
  ASSERT_TRUE(cam);
  std::vector<Frame> held;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(kernel_.produce(std::vector<uint8_t>(640 * 2 * 480, 1)));
    auto f = cam->dequeue();
    ASSERT_TRUE(f.ok());
    held.push_back(*f);
  }
  EXPECT_FALSE(kernel_.produce(std::vector<uint8_t>(10, 0))) << "the driver has no buffer to fill";
  EXPECT_EQ(cam->dequeue().code(), Errc::Again);
  held.clear();
  EXPECT_TRUE(kernel_.produce(std::vector<uint8_t>(640 * 2 * 480, 1)));
  EXPECT_TRUE(cam->dequeue().ok());
}

TEST_F(CaptureV4l2Test, LateReleaseAfterStopAndDestructionNeverQueuesAndUnmaps) {
  auto cam = started(fourcc::kYUYV, 2);
  ASSERT_TRUE(cam);
  ASSERT_TRUE(kernel_.produce(std::vector<uint8_t>(640 * 2 * 480, 7)));
  auto frame = cam->dequeue();
  ASSERT_TRUE(frame.ok());
  Frame held = *frame;
  frame = Frame();
  cam.reset();  // stop() + close
  EXPECT_FALSE(kernel_.streaming());
  EXPECT_EQ(kernel_.openFds(), 0);
  EXPECT_EQ(kernel_.liveMappings(), 2u) << "the leased buffer's mapping outlives the capture";
  EXPECT_EQ(held.plane(0).data[0], 7);
  kernel_.clearCalls();
  held = Frame();
  EXPECT_EQ(kernel_.count("QBUF"), 0u);
  EXPECT_EQ(kernel_.count("munmap"), 2u);
  EXPECT_EQ(kernel_.liveMappings(), 0u);
}

TEST_F(CaptureV4l2Test, RestartWhileAFrameIsLeasedDoesNotRequeueIntoTheNewRun) {
  auto cam = started(fourcc::kYUYV, 2);
  ASSERT_TRUE(cam);
  ASSERT_TRUE(kernel_.produce(std::vector<uint8_t>(640 * 2 * 480, 7)));
  auto frame = cam->dequeue();
  ASSERT_TRUE(frame.ok());
  Frame held = *frame;
  frame = Frame();
  cam->stop();
  CaptureConfig c;
  c.format = fourcc::kYUYV;
  c.size = Size{640, 480};
  c.fps = 30;
  c.bufferCount = 2;
  ASSERT_TRUE(cam->start(c).ok());
  const size_t queued = kernel_.queuedCount();
  held = Frame();
  EXPECT_EQ(kernel_.queuedCount(), queued);
}

TEST_F(CaptureV4l2Test, EnodevIsDisconnectedAndStaysDead) {
  auto cam = started(fourcc::kYUYV);
  ASSERT_TRUE(cam);
  ASSERT_TRUE(kernel_.produce(std::vector<uint8_t>(640 * 2 * 480, 1)));
  auto frame = cam->dequeue();
  ASSERT_TRUE(frame.ok());
  kernel_.disconnected = true;  // unplugged
  auto lost = cam->dequeue();
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.code(), Errc::Disconnected);
  EXPECT_EQ(lost.error().errnum, ENODEV);
  kernel_.disconnected = false;  // plugged back in: this object still stays dead
  kernel_.clearCalls();
  EXPECT_EQ(cam->dequeue().code(), Errc::Disconnected);
  CaptureConfig c;
  EXPECT_EQ(cam->validate(c), Negotiation::Invalid);
  EXPECT_EQ(cam->start(c).code(), Errc::Disconnected);
  EXPECT_EQ(printcast::hal::v4l2CameraOf(*cam)->listControls().code(), Errc::Disconnected);
  EXPECT_EQ(kernel_.count("DQBUF"), 0u) << "a dead capture does not touch the device";
  *frame = Frame();  // the lease from before the unplug drops without trouble
  // Recovery is a new object, found again by its stable name.
  auto again = printcast::hal::createV4l2Capture(printcast::hal::v4l2CameraOf(*cam)->device().stableName,
                                                 kernel_, paths_);
  ASSERT_TRUE(again.ok()) << again.error().describe();
}

TEST_F(CaptureV4l2Test, BusyAtOpenIsBusyAndNamesTheDevice) {
  kernel_.openErrno = EBUSY;  // another process holds the camera exclusively
  auto cam = printcast::hal::createV4l2Capture((dir_ / "video0").string(), kernel_, paths_);
  ASSERT_FALSE(cam.ok());
  EXPECT_EQ(cam.code(), Errc::Busy) << cam.error().describe();
  EXPECT_EQ(cam.error().errnum, EBUSY);
  EXPECT_NE(cam.error().message.find("video0"), std::string::npos) << cam.error().message;
  EXPECT_EQ(kernel_.openFds(), 0);
}

TEST_F(CaptureV4l2Test, BusyAtReqbufsOrStreamonIsBusyNamesTheDeviceAndLeavesNothingBehind) {
  for (const char* call : {"REQBUFS", "STREAMON"}) {
    SCOPED_TRACE(call);
    auto cam = open();
    ASSERT_TRUE(cam);
    kernel_.ioctlErrno[call] = EBUSY;  // another process streams from the same node
    CaptureConfig c;
    c.format = fourcc::kYUYV;
    c.size = Size{640, 480};
    c.fps = 30;
    c.bufferCount = 3;
    auto st = cam->start(c);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), Errc::Busy) << st.error().describe();
    EXPECT_EQ(st.error().errnum, EBUSY);
    EXPECT_NE(st.error().message.find(kernel_.nodePath), std::string::npos) << st.error().message;
    EXPECT_NE(st.error().message.find(std::string("VIDIOC_") + call), std::string::npos)
        << st.error().message;
    EXPECT_FALSE(kernel_.streaming());
    EXPECT_EQ(kernel_.liveMappings(), 0u) << "a failed start unmaps what it mapped";
    // Once the other process lets go, the same object starts.
    kernel_.ioctlErrno.clear();
    auto retry = cam->start(c);
    EXPECT_TRUE(retry.ok()) << (retry.ok() ? "" : retry.error().describe());
    EXPECT_TRUE(kernel_.streaming());
    cam.reset();
    EXPECT_EQ(kernel_.openFds(), 0);
  }
}

TEST_F(CaptureV4l2Test, EnodevFromQbufMidStreamIsDisconnected) {
  auto cam = started(fourcc::kYUYV, 2);
  ASSERT_TRUE(cam);
  ASSERT_TRUE(kernel_.produce(std::vector<uint8_t>(640 * 2 * 480, 1)));
  auto frame = cam->dequeue();
  ASSERT_TRUE(frame.ok());
  kernel_.ioctlErrno["QBUF"] = ENODEV;  // unplugged while the frame is leased
  *frame = Frame();                     // the lease drops: the requeue fails quietly
  kernel_.ioctlErrno["DQBUF"] = ENODEV;
  auto lost = cam->dequeue();
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.code(), Errc::Disconnected);
  EXPECT_NE(lost.error().message.find(kernel_.nodePath), std::string::npos) << lost.error().message;
}

// A JPEG of a gradient, and the same JPEG with every DHT segment cut out (as UVC cameras send).
struct TestJpegs {
  std::vector<uint8_t> full;
  std::vector<uint8_t> withoutDht;
};

TestJpegs makeJpegs(int width, int height) {
  std::vector<uint8_t> rgb(static_cast<size_t>(width * height * 3));
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      auto* p = &rgb[static_cast<size_t>((y * width + x) * 3)];
      p[0] = static_cast<uint8_t>(x * 255 / width);
      p[1] = static_cast<uint8_t>(y * 255 / height);
      p[2] = static_cast<uint8_t>((x + y) & 0xff);
    }
  }
  tjhandle tj = tjInitCompress();
  unsigned char* out = nullptr;
  unsigned long size = 0;  // NOLINT(google-runtime-int)
  EXPECT_EQ(tjCompress2(tj, rgb.data(), width, 0, height, TJPF_RGB, &out, &size, TJSAMP_422, 85, 0), 0);
  TestJpegs j;
  j.full.assign(out, out + size);
  tjFree(out);
  tjDestroy(tj);
  // Copy marker segments up to SOS, leaving out DHT (FFC4); then the rest verbatim.
  j.withoutDht.assign(j.full.begin(), j.full.begin() + 2);
  size_t pos = 2;
  while (pos + 4 <= j.full.size()) {
    const uint8_t marker = j.full[pos + 1];
    if (marker == 0xDA) break;
    const size_t len = (static_cast<size_t>(j.full[pos + 2]) << 8) | j.full[pos + 3];
    if (marker != 0xC4)
      j.withoutDht.insert(j.withoutDht.end(), j.full.begin() + static_cast<long>(pos),
                          j.full.begin() + static_cast<long>(pos + 2 + len));
    pos += 2 + len;
  }
  j.withoutDht.insert(j.withoutDht.end(), j.full.begin() + static_cast<long>(pos), j.full.end());
  return j;
}

bool hasDht(const uint8_t* data, size_t size) {
  for (size_t i = 0; i + 1 < size; ++i) {
    if (data[i] == 0xFF && data[i + 1] == 0xC4) return true;
    if (data[i] == 0xFF && data[i + 1] == 0xDA) return false;
  }
  return false;
}

std::vector<uint8_t> decode(const uint8_t* data, size_t size, int width, int height) {
  tjhandle tj = tjInitDecompress();
  std::vector<uint8_t> rgb(static_cast<size_t>(width * height * 3));
  const int rc = tjDecompress2(tj, data, size, rgb.data(), width, 0, height, TJPF_RGB, 0);
  EXPECT_EQ(rc, 0) << tjGetErrorStr2(tj);
  tjDestroy(tj);
  return rgb;
}

TEST_F(CaptureV4l2Test, MjpegWithoutHuffmanTablesGetsTheStandardOnes) {
  auto cam = started(fourcc::kMJPEG, 2);
  ASSERT_TRUE(cam);
  const TestJpegs j = makeJpegs(640, 480);
  ASSERT_FALSE(hasDht(j.withoutDht.data(), j.withoutDht.size()));
  ASSERT_LT(j.withoutDht.size(), j.full.size());

  ASSERT_TRUE(kernel_.produce(j.withoutDht));
  auto frame = cam->dequeue();
  ASSERT_TRUE(frame.ok()) << frame.error().describe();
  EXPECT_EQ(frame->format(), fourcc::kMJPEG);
  EXPECT_EQ(frame->plane(0).stride, 0);
  ASSERT_EQ(frame->bytesUsed(), frame->plane(0).size);
  EXPECT_TRUE(hasDht(frame->plane(0).data, frame->bytesUsed()));
  EXPECT_EQ(kernel_.queuedCount(), 2u) << "the V4L2 buffer is re-queued at once: the frame is a copy";
  // libjpeg-turbo writes the Annex K tables by default, so the repaired frame decodes to exactly
  // the original's pixels.
  EXPECT_EQ(decode(frame->plane(0).data, frame->bytesUsed(), 640, 480),
            decode(j.full.data(), j.full.size(), 640, 480));

  // A frame that has its tables is handed out untouched, straight from the V4L2 buffer.
  ASSERT_TRUE(kernel_.produce(j.full));
  auto whole = cam->dequeue();
  ASSERT_TRUE(whole.ok());
  ASSERT_EQ(whole->bytesUsed(), j.full.size());
  EXPECT_TRUE(std::equal(j.full.begin(), j.full.end(), whole->plane(0).data));
  EXPECT_EQ(kernel_.queuedCount(), 1u);
}

TEST_F(CaptureV4l2Test, RawFramesCarryTheirBufferAsAnExportedDmabufClosedWithTheLastLease) {
  auto cam = started(fourcc::kYUYV, 2);
  ASSERT_TRUE(cam);
  auto* v4l2 = printcast::hal::v4l2CameraOf(*cam);
  EXPECT_EQ(v4l2->dmabufRefusal(), "");
  EXPECT_EQ(kernel_.count("EXPBUF"), 2u);
  EXPECT_EQ(kernel_.exportedFds(), 2);
  for (uint32_t flags : kernel_.expbufFlags()) EXPECT_EQ(flags, static_cast<uint32_t>(O_RDONLY | O_CLOEXEC));

  std::vector<Frame> frames;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(kernel_.produce(std::vector<uint8_t>(640 * 2 * 480, static_cast<uint8_t>(i))));
    auto f = cam->dequeue();
    ASSERT_TRUE(f.ok()) << f.error().describe();
    EXPECT_GE(f->dmabufFd(), 0);
    EXPECT_EQ(f->dmabufLength(), 640u * 2u * 480u) << "the whole V4L2 buffer";
    frames.push_back(*f);
  }
  EXPECT_NE(frames[0].dmabufFd(), frames[1].dmabufFd()) << "one DMA-BUF per buffer";
  Frame held = frames[1];
  frames.clear();  // buffer 0 goes back to the driver; its fd stays open with the run
  EXPECT_EQ(kernel_.exportedFds(), 2);
  ASSERT_TRUE(kernel_.produce(std::vector<uint8_t>(640 * 2 * 480, 9)));
  auto again = cam->dequeue();
  ASSERT_TRUE(again.ok());
  EXPECT_GE(again->dmabufFd(), 0);
  *again = Frame();

  cam.reset();  // stop + close while a frame is still leased: its fd must stay valid
  EXPECT_EQ(kernel_.openFds(), 0);
  EXPECT_EQ(kernel_.exportedFds(), 2);
  held = Frame();
  EXPECT_EQ(kernel_.exportedFds(), 0) << "closed (through the seam) with the run's last lease";
  EXPECT_EQ(kernel_.liveMappings(), 0u);
}

TEST_F(CaptureV4l2Test, StopWithoutLeasesClosesTheExportedFds) {
  auto cam = started(fourcc::kNV12, 3);
  ASSERT_TRUE(cam);
  EXPECT_EQ(kernel_.exportedFds(), 3);
  cam->stop();
  EXPECT_EQ(kernel_.exportedFds(), 0);
  EXPECT_EQ(kernel_.liveMappings(), 0u);
}

TEST_F(CaptureV4l2Test, ExpbufRefusedGivesFramesWithoutFdAndSaysWhy) {
  kernel_.ioctlErrno["EXPBUF"] = ENOTTY;  // a driver without export support
  auto cam = started(fourcc::kYUYV, 2);
  ASSERT_TRUE(cam) << "the export is optional: streaming starts anyway";
  EXPECT_EQ(kernel_.exportedFds(), 0);
  const std::string why = printcast::hal::v4l2CameraOf(*cam)->dmabufRefusal();
  EXPECT_NE(why.find("VIDIOC_EXPBUF"), std::string::npos) << why;
  EXPECT_NE(why.find("errno 25"), std::string::npos) << why;
  ASSERT_TRUE(kernel_.produce(std::vector<uint8_t>(640 * 2 * 480, 1)));
  auto f = cam->dequeue();
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->dmabufFd(), -1);
  EXPECT_EQ(f->dmabufLength(), 0u);
}

TEST_F(CaptureV4l2Test, CompressedFramesCarryNoDmabuf) {
  auto cam = started(fourcc::kMJPEG, 2);
  ASSERT_TRUE(cam);
  EXPECT_EQ(kernel_.count("EXPBUF"), 0u);
  EXPECT_NE(printcast::hal::v4l2CameraOf(*cam)->dmabufRefusal().find("compressed"), std::string::npos);
  const TestJpegs j = makeJpegs(64, 48);
  ASSERT_TRUE(kernel_.produce(j.withoutDht));  // the copy with tables inserted
  auto copied = cam->dequeue();
  ASSERT_TRUE(copied.ok());
  EXPECT_EQ(copied->dmabufFd(), -1);
  ASSERT_TRUE(kernel_.produce(j.full));  // straight from the V4L2 buffer
  auto direct = cam->dequeue();
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(direct->dmabufFd(), -1);
}

TEST_F(CaptureV4l2Test, ControlsListGetAndSet) {
  auto cam = open();
  ASSERT_TRUE(cam);
  auto* v4l2 = printcast::hal::v4l2CameraOf(*cam);
  ASSERT_NE(v4l2, nullptr);
  auto list = v4l2->listControls();
  ASSERT_TRUE(list.ok()) << list.error().describe();
  ASSERT_EQ(list->size(), 3u) << "the disabled Hue control is not offered";
  const V4l2Control& brightness = (*list)[0];
  EXPECT_EQ(brightness.id, static_cast<uint32_t>(V4L2_CID_BRIGHTNESS));
  EXPECT_EQ(brightness.name, "Brightness");
  EXPECT_EQ(brightness.type, V4l2Control::Type::Integer);
  EXPECT_EQ(brightness.minimum, -64);
  EXPECT_EQ(brightness.maximum, 64);
  const V4l2Control& plf = (*list)[1];  // in control id order, as the driver enumerates them
  EXPECT_EQ(plf.type, V4l2Control::Type::Menu);
  ASSERT_EQ(plf.menu.size(), 3u);
  EXPECT_EQ(plf.menu[1].name, "50 Hz");
  EXPECT_EQ(plf.value, 1);
  EXPECT_EQ(kernel_.count("QUERY_EXT_CTRL"), 1u) << "tried first, then QUERYCTRL on an old driver";

  ASSERT_TRUE(v4l2->setControl(V4L2_CID_BRIGHTNESS, -20).ok());
  auto value = v4l2->getControl(V4L2_CID_BRIGHTNESS);
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(*value, -20);
  auto outOfRange = v4l2->setControl(V4L2_CID_BRIGHTNESS, 100);
  ASSERT_FALSE(outOfRange.ok());
  EXPECT_EQ(outOfRange.code(), Errc::InvalidArgument);
  EXPECT_EQ(v4l2->getControl(V4L2_CID_HUE).code(), Errc::InvalidArgument);
  EXPECT_FALSE(cam->info().capabilities.keyframeRequest);
  EXPECT_EQ(cam->requestKeyframe().code(), Errc::Unsupported);
}

}  // namespace
