// SPDX-License-Identifier: MIT
// FakeM2mKernel: a scripted stateful V4L2 M2M encoder behind the Syscalls seam (unit tests).
#pragma once

#include <linux/videodev2.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "printcast/hal/pixel_format.h"
#include "printcast/hal/syscalls.h"

namespace printcast::testing {

// Nodes under a scratch directory stand for devices: a camera (single-planar capture), a decoder
// (M2M, coded formats on OUTPUT) and one encoder that behaves like a stateful encoder
// (dev-encoder.rst): each queued OUTPUT buffer becomes one CAPTURE buffer holding a canned access
// unit, with the OUTPUT timestamp copied and KEYFRAME set on IDRs (every `gop` frames, the first
// after STREAMON, and after FORCE_KEY_FRAME). ENCODER_CMD STOP produces an empty LAST buffer.
// fds are real eventfds, so close() is checked and poll() waits for real when nothing is ready.
// Calls are recorded by name and queue ("S_FMT OUTPUT", "QBUF CAPTURE", "ctrl 0x009909cb=1").
// DMABUF on the OUTPUT queue works like vb2: REQBUFS with V4L2_MEMORY_DMABUF (unless
// `dmabufImport` is false: EINVAL), then QBUF with the fd, whose length must be at least the
// OUTPUT sizeimage; the fake maps the fd for real (tests pass memfds) to read the picture.
// Not thread-safe: the tests drive it from one thread.
class FakeM2mKernel final : public hal::Syscalls {
 public:
  enum class Kind { Camera, Decoder, Encoder };

  // --- the script ---
  std::map<std::string, Kind> nodes;  // canonical path -> what it is
  bool mplane = true;
  std::vector<hal::FourCC> codedFormats{hal::fourcc::kH264};
  std::vector<hal::FourCC> rawFormats{hal::fourcc::kNV12, hal::fourcc::kI420};
  uint32_t heightAlign = 1;   // OUTPUT height rounded up to this (bcm2835-codec: 16)
  uint32_t strideAlign = 1;   // OUTPUT bytesperline rounded up to this (bcm2835-codec: 32)
  bool produce = true;        // false: the encoder hangs (never returns a CAPTURE buffer)
  bool keyframeFlag = true;   // set V4L2_BUF_FLAG_KEYFRAME on IDRs
  bool spsOnEveryIdr = true;  // false: SPS/PPS only in front of the first IDR after STREAMON
  bool extControls = true;    // false: S_EXT_CTRLS answers ENOTTY (S_CTRL then)
  std::set<uint32_t> rejectedControls;
  std::set<std::pair<uint32_t, int32_t>> rejectedValues;  // a menu item the driver lacks
  std::map<std::string, int> ioctlErrno;  // "S_PARM", "QBUF OUTPUT", ...: fail with this errno
  bool disconnected = false;
  bool dmabufImport = true;  // false: REQBUFS OUTPUT with V4L2_MEMORY_DMABUF answers EINVAL
  int dmabufQbufErrno = 0;   // QBUF OUTPUT of a DMA-BUF fails with this (an import vb2 refuses)
  bool holdOutput = false;   // encoded OUTPUT buffers stay with the driver until releaseOutputs()

  // --- what the tests inspect ---
  std::vector<std::string> calls;
  std::map<uint32_t, int32_t> controls;  // accepted control values
  std::vector<uint8_t> lastInput;        // bytes of the last OUTPUT buffer queued
  v4l2_fract lastTimePerFrame{};
  std::vector<v4l2_rect> crops;
  bool lastDequeued = false;  // the drain's LAST buffer was handed out (until the next STREAMON)
  int lastBuffers = 0;        // LAST buffers handed out in all
  int framesEncoded = 0;
  std::vector<uint32_t> outputMemory;  // the memory type of each REQBUFS OUTPUT with count > 0
  struct Imported {
    uint32_t index;
    int fd;
    uint32_t length;
    uint32_t bytesused;
  };
  std::vector<Imported> imported;  // every DMA-BUF queued on OUTPUT

  // Hand the OUTPUT buffers held back by holdOutput to the client (DQBUF OUTPUT finds them).
  void releaseOutputs() {
    for (const auto& d : heldOut_) doneOut_.push_back(d);
    heldOut_.clear();
  }
  // OUTPUT buffers queued and not dequeued by the client yet.
  size_t outputsWithDriver() const { return queuedOut_.size() + doneOut_.size() + heldOut_.size(); }

  // Canned H.264 NAL units (header byte first; contents are filler, never decoded).
  static std::vector<uint8_t> sps() { return {0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xf6, 0x84, 0x40}; }
  static std::vector<uint8_t> pps() { return {0x68, 0xce, 0x3c, 0x80}; }
  static std::vector<uint8_t> idr() { return {0x65, 0x88, 0x84, 0x00, 0x33, 0xff, 0x21}; }
  static std::vector<uint8_t> slice() { return {0x41, 0x9a, 0x21, 0x6c, 0x42}; }
  // A vicodec FWHT frame: its header (struct fwht_cframe_hdr: magic1 0x4f4f4f4f, magic2
  // 0xffffffff, version 3, width, height, flags; 32-bit big-endian), an I-frame saying so in its
  // flags (V4L2_FWHT_FL_I_FRAME), then one byte standing for the picture.
  static std::vector<uint8_t> fwht(int n, bool iFrame) {
    std::vector<uint8_t> out = {'O', 'O', 'O', 'O', 0xff, 0xff, 0xff, 0xff, 0, 0,
                                0,   3,   0,   0,   0,    64,   0,    0,    0, 48};
    const uint32_t flags = iFrame ? V4L2_FWHT_FL_I_FRAME : 0;
    for (int shift : {24, 16, 8, 0}) out.push_back(static_cast<uint8_t>(flags >> shift));
    out.push_back(static_cast<uint8_t>(n));
    return out;
  }
  static std::vector<uint8_t> annexB(std::initializer_list<std::vector<uint8_t>> nals) {
    std::vector<uint8_t> out;
    for (const auto& n : nals) {
      out.insert(out.end(), {0, 0, 0, 1});
      out.insert(out.end(), n.begin(), n.end());
    }
    return out;
  }

  size_t count(const std::string& call) const {
    return static_cast<size_t>(std::count(calls.begin(), calls.end(), call));
  }
  ptrdiff_t lastIndexOf(const std::string& call) const {
    for (auto i = static_cast<ptrdiff_t>(calls.size()) - 1; i >= 0; --i) {
      if (calls[static_cast<size_t>(i)] == call) return i;
    }
    return -1;
  }
  static std::string ctrl(uint32_t id, int32_t value) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "ctrl 0x%08x=%d", id, value);
    return buf;
  }
  int openFds() const { return static_cast<int>(fds_.size()); }
  size_t liveMappings() const { return mappings_; }
  bool streaming() const { return outStreaming_ || capStreaming_; }
  std::vector<Kind> openKinds() const {
    std::vector<Kind> out;
    for (const auto& [fd, kind] : fds_) out.push_back(kind);
    return out;
  }
  const v4l2_pix_format_mplane& outputFormat() const { return out_; }

  // --- Syscalls ---

  int open(const char* path, int /*flags*/) override {
    calls.emplace_back("open");
    std::error_code ec;
    const auto it = nodes.find(std::filesystem::canonical(path, ec).string());
    if (ec || it == nodes.end() || (disconnected && it->second == Kind::Encoder)) {
      errno = ENOENT;
      return -1;
    }
    const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    fds_[fd] = it->second;
    return fd;
  }
  int close(int fd) override {
    calls.emplace_back("close");
    if (fds_.erase(fd) == 0) {
      ADD_FAILURE() << "close of an fd the fake never handed out: " << fd;
      errno = EBADF;
      return -1;
    }
    return ::close(fd);
  }
  void* mmap(void* /*addr*/, size_t length, int /*prot*/, int /*flags*/, int fd, off_t offset) override {
    calls.emplace_back("mmap");
    auto* buffers = offset >= kCaptureOffset ? &capBuffers_ : &outBuffers_;
    const auto index = static_cast<size_t>((offset % kCaptureOffset) / kPage);
    if (fds_.count(fd) == 0 || index >= buffers->size() || length != (*buffers)[index].size()) {
      errno = EINVAL;
      return MAP_FAILED;
    }
    ++mappings_;
    return (*buffers)[index].data();
  }
  int munmap(void* /*addr*/, size_t /*length*/) override {
    calls.emplace_back("munmap");
    --mappings_;
    return 0;
  }
  int poll(pollfd* fds, nfds_t count, int timeoutMs) override {
    // Like v4l2_m2m_poll(): POLLIN when a CAPTURE buffer is done, POLLOUT when an OUTPUT one is.
    int ready = 0;
    for (nfds_t i = 0; i < count; ++i) {
      fds[i].revents = 0;
      if (!readyCap_.empty() || lastDequeued) fds[i].revents |= static_cast<short>(fds[i].events & POLLIN);
      if (!doneOut_.empty()) fds[i].revents |= static_cast<short>(fds[i].events & POLLOUT);
      if (fds[i].revents != 0) ++ready;
    }
    if (ready > 0) return ready;
    // Nothing will become ready on its own: wait the timeout out for real on the eventfd.
    pollfd idle{fds[0].fd, POLLIN, 0};
    const int n = ::poll(&idle, 1, timeoutMs);
    return n < 0 ? n : 0;
  }
  ssize_t read(int /*fd*/, void* /*buf*/, size_t /*count*/) override {
    errno = EINVAL;
    return -1;
  }
  ssize_t write(int /*fd*/, const void* /*buf*/, size_t /*count*/) override {
    errno = EINVAL;
    return -1;
  }

  int ioctl(int fd, unsigned long request, void* arg) override {  // NOLINT(google-runtime-int)
    const auto it = fds_.find(fd);
    if (it == fds_.end()) return fail(EBADF);
    const Kind kind = it->second;
    const std::string name = nameOf(request, arg);
    calls.push_back(name);
    if (disconnected && kind == Kind::Encoder) return fail(ENODEV);
    if (auto e = ioctlErrno.find(name); e != ioctlErrno.end()) return fail(e->second);
    if (request == VIDIOC_QUERYCAP) {
      auto* c = static_cast<v4l2_capability*>(arg);
      *c = {};
      const char* card = kind == Kind::Camera    ? "Fake Cam"
                         : kind == Kind::Decoder ? "fake-decoder"
                                                 : "fake-encoder";
      std::snprintf(reinterpret_cast<char*>(c->card), sizeof c->card, "%s", card);
      std::snprintf(reinterpret_cast<char*>(c->driver), sizeof c->driver, "fakem2m");
      c->device_caps = V4L2_CAP_STREAMING | (kind == Kind::Camera ? V4L2_CAP_VIDEO_CAPTURE
                                             : mplane             ? V4L2_CAP_VIDEO_M2M_MPLANE
                                                                  : V4L2_CAP_VIDEO_M2M);
      c->capabilities = c->device_caps | V4L2_CAP_DEVICE_CAPS;
      return 0;
    }
    if (request == VIDIOC_ENUM_FMT) {
      auto* d = static_cast<v4l2_fmtdesc*>(arg);
      const bool output = isOutput(d->type);
      std::vector<hal::FourCC> list;
      if (kind == Kind::Camera) {
        if (d->type == V4L2_BUF_TYPE_VIDEO_CAPTURE) list = {hal::fourcc::kYUYV, hal::fourcc::kMJPEG};
      } else if (kind == Kind::Decoder) {
        list = output ? std::vector<hal::FourCC>{hal::fourcc::kH264}
                      : std::vector<hal::FourCC>{hal::fourcc::kNV12};
      } else {
        list = output ? rawFormats : codedFormats;
      }
      if (d->type != (output ? outType() : capType()) && kind != Kind::Camera) return fail(EINVAL);
      if (d->index >= list.size()) return fail(EINVAL);
      d->pixelformat = list[d->index].code;
      return 0;
    }
    if (kind != Kind::Encoder) return fail(ENOTTY);
    return encoderIoctl(request, arg);
  }

 private:
  struct Done {
    uint32_t index;
    uint32_t bytesused;
    uint32_t flags;
    timeval timestamp;
  };
  static constexpr off_t kPage = 4096;
  static constexpr off_t kCaptureOffset = 1 << 24;

  static int fail(int e) {
    errno = e;
    return -1;
  }
  static bool isOutput(uint32_t type) {
    return type == V4L2_BUF_TYPE_VIDEO_OUTPUT || type == V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE;
  }
  uint32_t outType() const { return mplane ? V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE : V4L2_BUF_TYPE_VIDEO_OUTPUT; }
  uint32_t capType() const {
    return mplane ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE : V4L2_BUF_TYPE_VIDEO_CAPTURE;
  }

  static std::string nameOf(unsigned long request, void* arg) {  // NOLINT(google-runtime-int)
    const auto queue = [](uint32_t type) { return isOutput(type) ? " OUTPUT" : " CAPTURE"; };
    switch (request) {
      case VIDIOC_QUERYCAP: return "QUERYCAP";
      case VIDIOC_ENUM_FMT: return std::string("ENUM_FMT") + queue(static_cast<v4l2_fmtdesc*>(arg)->type);
      case VIDIOC_S_FMT: return std::string("S_FMT") + queue(static_cast<v4l2_format*>(arg)->type);
      case VIDIOC_S_SELECTION: return "S_SELECTION";
      case VIDIOC_S_PARM: return "S_PARM";
      case VIDIOC_S_EXT_CTRLS: return "S_EXT_CTRLS";
      case VIDIOC_S_CTRL: return "S_CTRL";
      case VIDIOC_REQBUFS:
        return std::string("REQBUFS") + queue(static_cast<v4l2_requestbuffers*>(arg)->type);
      case VIDIOC_QUERYBUF: return std::string("QUERYBUF") + queue(static_cast<v4l2_buffer*>(arg)->type);
      case VIDIOC_QBUF: return std::string("QBUF") + queue(static_cast<v4l2_buffer*>(arg)->type);
      case VIDIOC_DQBUF: return std::string("DQBUF") + queue(static_cast<v4l2_buffer*>(arg)->type);
      case VIDIOC_STREAMON:
        return std::string("STREAMON") + queue(static_cast<uint32_t>(*static_cast<int*>(arg)));
      case VIDIOC_STREAMOFF:
        return std::string("STREAMOFF") + queue(static_cast<uint32_t>(*static_cast<int*>(arg)));
      case VIDIOC_ENCODER_CMD: return "ENCODER_CMD";
      default: return "ioctl?";
    }
  }

  int setControl(uint32_t id, int32_t value) {
    calls.push_back(ctrl(id, value));
    if (rejectedControls.count(id) != 0 || rejectedValues.count({id, value}) != 0) return fail(EINVAL);
    controls[id] = value;
    if (id == V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME) forceKey_ = true;
    return 0;
  }

  int encoderIoctl(unsigned long request, void* arg) {  // NOLINT(google-runtime-int)
    switch (request) {
      case VIDIOC_S_FMT: {
        auto* f = static_cast<v4l2_format*>(arg);
        if (f->type != outType() && f->type != capType()) return fail(EINVAL);
        if (!outBuffers_.empty() || !capBuffers_.empty()) return fail(EBUSY);
        v4l2_pix_format_mplane p{};
        if (mplane) {
          p = f->fmt.pix_mp;
        } else {
          p.width = f->fmt.pix.width;
          p.height = f->fmt.pix.height;
          p.pixelformat = f->fmt.pix.pixelformat;
          p.plane_fmt[0].sizeimage = f->fmt.pix.sizeimage;
        }
        p.num_planes = 1;
        p.field = V4L2_FIELD_NONE;
        if (isOutput(f->type)) {
          if (std::find(rawFormats.begin(), rawFormats.end(), hal::FourCC{p.pixelformat}) == rawFormats.end())
            p.pixelformat = rawFormats.front().code;
          p.height = (p.height + heightAlign - 1) / heightAlign * heightAlign;
          const uint32_t bpp = p.pixelformat == hal::fourcc::kYUYV.code ? 2 : 1;
          const uint32_t bpl = (p.width * bpp + strideAlign - 1) / strideAlign * strideAlign;
          p.plane_fmt[0].bytesperline = bpl;
          p.plane_fmt[0].sizeimage =
              p.pixelformat == hal::fourcc::kYUYV.code ? bpl * p.height : bpl * p.height * 3 / 2;
          out_ = p;
        } else {
          if (std::find(codedFormats.begin(), codedFormats.end(), hal::FourCC{p.pixelformat}) ==
              codedFormats.end())
            p.pixelformat = codedFormats.front().code;
          p.plane_fmt[0].bytesperline = 0;
          p.plane_fmt[0].sizeimage = std::max<uint32_t>(p.plane_fmt[0].sizeimage, 4096);
          cap_ = p;
        }
        if (mplane) {
          f->fmt.pix_mp = p;
        } else {
          f->fmt.pix.width = p.width;
          f->fmt.pix.height = p.height;
          f->fmt.pix.pixelformat = p.pixelformat;
          f->fmt.pix.bytesperline = p.plane_fmt[0].bytesperline;
          f->fmt.pix.sizeimage = p.plane_fmt[0].sizeimage;
          f->fmt.pix.field = V4L2_FIELD_NONE;
        }
        return 0;
      }
      case VIDIOC_S_SELECTION: {
        auto* s = static_cast<v4l2_selection*>(arg);
        if (s->target != V4L2_SEL_TGT_CROP || s->type != V4L2_BUF_TYPE_VIDEO_OUTPUT) return fail(EINVAL);
        crops.push_back(s->r);
        return 0;
      }
      case VIDIOC_S_PARM: {
        auto* p = static_cast<v4l2_streamparm*>(arg);
        if (p->type != outType()) return fail(EINVAL);
        lastTimePerFrame = p->parm.output.timeperframe;
        return 0;
      }
      case VIDIOC_S_EXT_CTRLS: {
        if (!extControls) return fail(ENOTTY);
        auto* cs = static_cast<v4l2_ext_controls*>(arg);
        if (cs->ctrl_class != V4L2_CTRL_CLASS_MPEG && cs->which != V4L2_CTRL_WHICH_CUR_VAL)
          return fail(EINVAL);
        for (uint32_t i = 0; i < cs->count; ++i) {
          if (setControl(cs->controls[i].id, cs->controls[i].value) != 0) {
            cs->error_idx = i;
            return -1;
          }
        }
        return 0;
      }
      case VIDIOC_S_CTRL: {
        auto* c = static_cast<v4l2_control*>(arg);
        return setControl(c->id, c->value);
      }
      case VIDIOC_REQBUFS: {
        auto* r = static_cast<v4l2_requestbuffers*>(arg);
        const bool output = isOutput(r->type);
        const bool dmabuf = r->memory == V4L2_MEMORY_DMABUF && output && dmabufImport;
        if (r->memory != V4L2_MEMORY_MMAP && !dmabuf) return fail(EINVAL);
        if (output ? outStreaming_ : capStreaming_) return fail(EBUSY);
        auto& buffers = output ? outBuffers_ : capBuffers_;
        for (auto& b : buffers) graveyard_.push_back(std::move(b));
        buffers.clear();
        const uint32_t size = dmabuf ? 0 : (output ? out_ : cap_).plane_fmt[0].sizeimage;
        const uint32_t n = std::min<uint32_t>(r->count, 8);
        for (uint32_t i = 0; i < n; ++i) buffers.emplace_back(size, 0);
        r->count = n;
        if (output) {
          outMemory_ = r->memory;
          if (n > 0) outputMemory.push_back(r->memory);
        }
        return 0;
      }
      case VIDIOC_QUERYBUF: {
        auto* b = static_cast<v4l2_buffer*>(arg);
        const bool output = isOutput(b->type);
        const auto& buffers = output ? outBuffers_ : capBuffers_;
        if (b->index >= buffers.size()) return fail(EINVAL);
        const off_t offset = (output ? 0 : kCaptureOffset) + static_cast<off_t>(b->index) * kPage;
        if (mplane) {
          if (b->length < 1) return fail(EINVAL);
          b->length = 1;
          b->m.planes[0].length = static_cast<uint32_t>(buffers[b->index].size());
          b->m.planes[0].m.mem_offset = static_cast<uint32_t>(offset);
        } else {
          b->length = static_cast<uint32_t>(buffers[b->index].size());
          b->m.offset = static_cast<uint32_t>(offset);
        }
        return 0;
      }
      case VIDIOC_QBUF: {
        auto* b = static_cast<v4l2_buffer*>(arg);
        if (b->type != outType() && b->type != capType()) return fail(EINVAL);
        if (isOutput(b->type)) {
          if (b->index >= outBuffers_.size() || contains(queuedOut_, b->index) ||
              contains(doneOut_, b->index) || contains(heldOut_, b->index) || b->memory != outMemory_)
            return fail(EINVAL);
          const uint32_t used = mplane ? b->m.planes[0].bytesused : b->bytesused;
          if (outMemory_ == V4L2_MEMORY_DMABUF) {
            if (dmabufQbufErrno != 0) return fail(dmabufQbufErrno);
            const int fd = mplane ? b->m.planes[0].m.fd : b->m.fd;
            const uint32_t length = mplane ? b->m.planes[0].length : b->length;
            if (length < out_.plane_fmt[0].sizeimage || used > length) return fail(EINVAL);
            void* mem = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, 0);
            if (mem == MAP_FAILED) return fail(EINVAL);  // vb2: the dma-buf cannot be attached
            const auto* bytes = static_cast<const uint8_t*>(mem);
            lastInput.assign(bytes, bytes + used);
            ::munmap(mem, length);
            imported.push_back(Imported{b->index, fd, length, used});
          } else {
            const auto& mem = outBuffers_[b->index];
            lastInput.assign(mem.begin(), mem.begin() + std::min<size_t>(used, mem.size()));
          }
          queuedOut_.push_back(Done{b->index, used, 0, b->timestamp});
        } else {
          if (b->index >= capBuffers_.size() || contains(queuedCap_, b->index)) return fail(EINVAL);
          queuedCap_.push_back(Done{b->index, 0, 0, {}});
        }
        pump();
        return 0;
      }
      case VIDIOC_DQBUF: {
        auto* b = static_cast<v4l2_buffer*>(arg);
        auto& done = isOutput(b->type) ? doneOut_ : readyCap_;
        if (done.empty()) {
          if (!isOutput(b->type) && lastDequeued) return fail(EPIPE);
          return fail(EAGAIN);
        }
        const Done d = done.front();
        done.pop_front();
        b->index = d.index;
        if (isOutput(b->type)) b->memory = outMemory_;
        b->flags = d.flags | V4L2_BUF_FLAG_TIMESTAMP_COPY;
        b->timestamp = d.timestamp;
        if (mplane) {
          b->m.planes[0].bytesused = d.bytesused;
          b->m.planes[0].data_offset = 0;
        } else {
          b->bytesused = d.bytesused;
        }
        if ((d.flags & V4L2_BUF_FLAG_LAST) != 0) {
          lastDequeued = true;
          ++lastBuffers;
        }
        return 0;
      }
      case VIDIOC_STREAMON:
      case VIDIOC_STREAMOFF: {
        const bool on = request == VIDIOC_STREAMON;
        const auto type = static_cast<uint32_t>(*static_cast<int*>(arg));
        if (isOutput(type)) {
          outStreaming_ = on;
          if (!on) {
            queuedOut_.clear();
            doneOut_.clear();
            heldOut_.clear();
          }
        } else {
          capStreaming_ = on;
          if (!on) {
            queuedCap_.clear();
            readyCap_.clear();
          }
        }
        if (on) {
          lastDequeued = false;
          stopPending_ = false;
          sinceStart_ = 0;
        }
        pump();
        return 0;
      }
      case VIDIOC_ENCODER_CMD: {
        auto* c = static_cast<v4l2_encoder_cmd*>(arg);
        if (c->cmd != V4L2_ENC_CMD_STOP) return fail(EINVAL);
        stopPending_ = true;
        pump();
        return 0;
      }
      default: return fail(ENOTTY);
    }
  }

  static bool contains(const std::deque<Done>& q, uint32_t index) {
    return std::any_of(q.begin(), q.end(), [&](const Done& d) { return d.index == index; });
  }

  // Encode what can be encoded: one CAPTURE buffer per OUTPUT buffer while both are queued and
  // streaming; a pending STOP then yields an empty LAST buffer.
  void pump() {
    if (!outStreaming_ || !capStreaming_) return;
    while (produce && !queuedOut_.empty() && !queuedCap_.empty()) {
      const Done in = queuedOut_.front();
      queuedOut_.pop_front();
      Done out = queuedCap_.front();
      queuedCap_.pop_front();
      const int gop =
          controls.count(V4L2_CID_MPEG_VIDEO_GOP_SIZE) != 0 ? controls[V4L2_CID_MPEG_VIDEO_GOP_SIZE] : 30;
      const bool key = sinceStart_ % std::max(gop, 1) == 0 || forceKey_;
      forceKey_ = false;
      std::vector<uint8_t> payload;
      if (codedFormats.front() == hal::fourcc::kH264) {
        if (key && (spsOnEveryIdr || sinceStart_ == 0)) {
          payload = annexB({sps(), pps(), idr()});
        } else {
          payload = annexB({key ? idr() : slice()});
        }
      } else {
        payload = fwht(framesEncoded, key);
      }
      auto& mem = capBuffers_.at(out.index);
      std::memcpy(mem.data(), payload.data(), std::min(payload.size(), mem.size()));
      out.bytesused = static_cast<uint32_t>(payload.size());
      // vicodec flags no FWHT buffer as a keyframe: only its header says so.
      const bool flagged = key && keyframeFlag && codedFormats.front() == hal::fourcc::kH264;
      out.flags = flagged ? V4L2_BUF_FLAG_KEYFRAME : V4L2_BUF_FLAG_PFRAME;
      out.timestamp = in.timestamp;
      readyCap_.push_back(out);
      (holdOutput ? heldOut_ : doneOut_).push_back(in);
      ++sinceStart_;
      ++framesEncoded;
    }
    if (stopPending_ && queuedOut_.empty() && !queuedCap_.empty()) {
      Done last = queuedCap_.front();
      queuedCap_.pop_front();
      last.bytesused = 0;
      last.flags = V4L2_BUF_FLAG_LAST;
      readyCap_.push_back(last);
      stopPending_ = false;
    }
  }

  std::map<int, Kind> fds_;
  std::vector<std::vector<uint8_t>> outBuffers_;
  std::vector<std::vector<uint8_t>> capBuffers_;
  std::vector<std::vector<uint8_t>> graveyard_;  // like vb2: freed buffers stay until unmapped
  std::deque<Done> queuedOut_;
  std::deque<Done> queuedCap_;
  std::deque<Done> doneOut_;
  std::deque<Done> heldOut_;  // encoded but not yet given back (holdOutput)
  std::deque<Done> readyCap_;
  uint32_t outMemory_ = V4L2_MEMORY_MMAP;
  v4l2_pix_format_mplane out_{};
  v4l2_pix_format_mplane cap_{};
  bool outStreaming_ = false;
  bool capStreaming_ = false;
  bool stopPending_ = false;
  bool forceKey_ = false;
  int sinceStart_ = 0;
  size_t mappings_ = 0;
};

}  // namespace printcast::testing
