// SPDX-License-Identifier: MIT
// Lab test of the V4L2 memory-to-memory encoder backend (codecs::createV4l2M2mEncoder) against the
// kernel's vicodec, a stateful M2M encoder whose coded format is FWHT (../shared/design/lab.md,
// "A V4L2 memory-to-memory encoder in the lab").
//
// NOTE FOR THE LAB RUNNER (tests/lab/run-lab.sh) — what this binary, `lab_m2m`, expects:
//  - Debian's kernel builds neither vicodec nor the M2M core, so run-lab.sh builds both out of tree
//    (linux-headers-<ver> + linux-source-6.1) and /init loads them as `vicodec multiplanar=1` (the
//    Raspberry Pi's encoder is multiplanar). vicodec registers three nodes: a stateful encoder, a
//    stateful decoder and a stateless decoder; the backend must pick the encoder by capability.
//  - Without vicodec every test skips with the reason run-lab.sh gave (PRINTCAST_LAB_VICODEC_SKIP,
//    "machine: ..."): on the host, or when the module could not be built.
//  - PRINTCAST_LAB_VICODEC_KO (the built vicodec.ko) lets the last test reload vicodec with
//    multiplanar=0 to run the single-planar API too; it loads multiplanar=1 again afterwards.
//  - Checks: the encoder node is found by capability; 30 I420 640x480 frames in -> 30 packets out,
//    each a FWHT frame (header magic, version, 640x480, payload size) whose pts and sequence are the
//    input frame's; a reconfigure to 1280x720 (drain) and 10 more frames; release() then encode
//    again (starts with an I-frame); unbinding vicodec's platform device with the encoder open ->
//    the next encode() answers Disconnected or Io within seconds, then bind again; frames/s of the
//    backend next to `v4l2-ctl --stream-mmap --stream-out-mmap` on the same node (when installed);
//    DMA-BUF import: vivid (/dev/video0, the lab's camera) captures 640x480 in the encoder's native
//    OUTPUT format, each frame (exported by the capture backend with VIDIOC_EXPBUF) is queued on
//    vicodec's OUTPUT queue with V4L2_MEMORY_DMABUF, FWHT packets come out, the frame lease comes
//    back before encode() returns (the capture keeps running on 3 buffers), and the imported frame
//    codes to the same bytes as a copy of it through the MMAP path.
#include <fcntl.h>
#include <linux/v4l2-controls.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "printcast/codecs/v4l2m2m_encoder.h"
#include "printcast/codecs/x264_encoder.h"
#include "printcast/hal/frame.h"
#include "printcast/hal/v4l2.h"

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using printcast::hal::Encoder;
using printcast::hal::EncoderConfig;
using printcast::hal::Errc;
using printcast::hal::FourCC;
using printcast::hal::Frame;
using printcast::hal::FramePool;
using printcast::hal::PacketPtr;
using printcast::hal::Size;
using printcast::hal::Timestamp;

constexpr FourCC kFwht{V4L2_PIX_FMT_FWHT};
constexpr const char* kDriverDir = "/sys/bus/platform/drivers/vicodec";
// The FWHT frame header (vicodec's codec-fwht.h, struct fwht_cframe_hdr): two magic words, then
// big-endian version, width, height, flags, colorspace, xfer_func, ycbcr_enc, quantization, size.
constexpr uint32_t kFwhtMagic1 = 0x4f4f4f4f;
constexpr uint32_t kFwhtMagic2 = 0xffffffff;
constexpr size_t kFwhtHeaderBytes = 44;
constexpr uint32_t kFwhtVersion = V4L2_FWHT_VERSION;
constexpr uint32_t kFwhtFlagIFrame = V4L2_FWHT_FL_I_FRAME;

std::string envOr(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

bool writeSysfs(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  out << value;
  out.flush();
  return static_cast<bool>(out);
}

// vicodec's platform device as the driver directory lists it ("vicodec.0"), empty when not bound.
std::string vicodecDevice() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(kDriverDir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("vicodec", 0) == 0) return name;
  }
  return "";
}

// What each vicodec node is, from its formats: "encoder" (raw OUTPUT, FWHT CAPTURE), "decoder"
// (FWHT OUTPUT), "stateless-decoder" (FWHT_STATELESS OUTPUT).
struct Node {
  std::string path;
  std::string role;
  bool mplane = false;
};

std::vector<FourCC> formatsOf(int fd, uint32_t type) {
  std::vector<FourCC> out;
  for (uint32_t i = 0; i < 64; ++i) {
    v4l2_fmtdesc d{};
    d.index = i;
    d.type = type;
    if (::ioctl(fd, VIDIOC_ENUM_FMT, &d) != 0) break;
    out.push_back(FourCC{d.pixelformat});
  }
  return out;
}

std::vector<Node> vicodecNodes() {
  std::vector<Node> nodes;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/dev", ec)) {
    const std::string path = e.path().string();
    if (e.path().filename().string().rfind("video", 0) != 0) continue;
    const int fd = ::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    v4l2_capability cap{};
    if (::ioctl(fd, VIDIOC_QUERYCAP, &cap) == 0 &&
        std::string(reinterpret_cast<const char*>(cap.driver)) == "vicodec") {
      const uint32_t caps =
          (cap.capabilities & V4L2_CAP_DEVICE_CAPS) != 0 ? cap.device_caps : cap.capabilities;
      Node n{path, "unknown", (caps & V4L2_CAP_VIDEO_M2M_MPLANE) != 0};
      const auto out =
          formatsOf(fd, n.mplane ? V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE : V4L2_BUF_TYPE_VIDEO_OUTPUT);
      const auto capture =
          formatsOf(fd, n.mplane ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE : V4L2_BUF_TYPE_VIDEO_CAPTURE);
      const auto has = [](const std::vector<FourCC>& v, FourCC f) {
        return std::find(v.begin(), v.end(), f) != v.end();
      };
      if (has(capture, kFwht) && !has(out, kFwht)) n.role = "encoder";
      if (has(out, kFwht)) n.role = "decoder";
      if (has(out, FourCC{V4L2_PIX_FMT_FWHT_STATELESS})) n.role = "stateless-decoder";
      nodes.push_back(n);
    }
    ::close(fd);
  }
  std::sort(nodes.begin(), nodes.end(), [](const Node& a, const Node& b) { return a.path < b.path; });
  return nodes;
}

std::optional<Node> encoderNode() {
  for (const auto& n : vicodecNodes()) {
    if (n.role == "encoder") return n;
  }
  return std::nullopt;
}

// The /dev/video* nodes this process holds open (which node the backend chose).
std::vector<std::string> openVideoNodes() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/self/fd", ec)) {
    const auto target = fs::read_symlink(e.path(), ec);
    if (!ec && target.string().rfind("/dev/video", 0) == 0) out.push_back(target.string());
  }
  return out;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

struct FwhtHeader {
  bool valid = false;
  uint32_t version = 0;
  Size size;
  uint32_t flags = 0;
  uint32_t payload = 0;
};

FwhtHeader parseFwht(const std::vector<uint8_t>& data) {
  FwhtHeader h;
  if (data.size() < kFwhtHeaderBytes) return h;
  uint32_t m1 = 0;
  uint32_t m2 = 0;
  std::memcpy(&m1, data.data(), 4);
  std::memcpy(&m2, data.data() + 4, 4);
  h.valid = m1 == kFwhtMagic1 && m2 == kFwhtMagic2;
  h.version = be32(data.data() + 8);
  h.size = Size{static_cast<int>(be32(data.data() + 12)), static_cast<int>(be32(data.data() + 16))};
  h.flags = be32(data.data() + 20);
  h.payload = be32(data.data() + 40);
  return h;
}

// I420 frames with a moving pattern: a diagonal gradient scrolling 4 pixels per frame and a
// 64x64 box crossing the picture; chroma varies with the frame too.
class Source {
 public:
  explicit Source(Size size) : size_(size) {
    auto pool = FramePool::create(printcast::hal::fourcc::kI420, size, 3);
    EXPECT_TRUE(pool.ok()) << pool.error().describe();
    if (pool.ok()) pool_ = std::move(*pool);
  }
  Frame next() {
    auto w = pool_->acquire();
    EXPECT_TRUE(w.ok()) << w.error().describe();
    if (!w.ok()) return {};
    const int i = static_cast<int>(sequence_);
    const int bx = (i * 16) % std::max(1, size_.width - 64);
    const int by = (i * 8) % std::max(1, size_.height - 64);
    for (int y = 0; y < size_.height; ++y) {
      uint8_t* row = w->data(0) + static_cast<ptrdiff_t>(y) * w->stride(0);
      for (int x = 0; x < size_.width; ++x) {
        const bool box = x >= bx && x < bx + 64 && y >= by && y < by + 64;
        row[x] = box ? 235 : static_cast<uint8_t>(16 + ((x + y + 4 * i) & 0x7f));
      }
    }
    for (int p = 1; p <= 2; ++p) {
      for (int y = 0; y < size_.height / 2; ++y) {
        uint8_t* row = w->data(p) + static_cast<ptrdiff_t>(y) * w->stride(p);
        for (int x = 0; x < size_.width / 2; ++x) {
          row[x] = static_cast<uint8_t>(p == 1 ? 64 + ((x + 2 * i) & 0x7f) : 64 + ((y + 3 * i) & 0x7f));
        }
      }
    }
    const Timestamp ts = base_ + std::chrono::microseconds(33333) * static_cast<int64_t>(sequence_);
    return std::move(*w).publish(ts, sequence_++);
  }

 private:
  Size size_;
  std::shared_ptr<FramePool> pool_;
  Timestamp base_ = printcast::hal::Clock::now();
  uint64_t sequence_ = 0;
};

struct Encoded {
  int packets = 0;
  int iframes = 0;     // by the FWHT header's I-frame flag
  int keyflagged = 0;  // Packet::keyframe
  double seconds = 0;  // wall time of the encode() calls
};

// Encode `count` frames of `source`, checking each packet against its frame.
Encoded encodeAndCheck(Encoder& enc, Source& source, Size size, int count) {
  Encoded r;
  for (int i = 0; i < count; ++i) {
    const Frame f = source.next();
    if (!f.valid()) return r;
    const auto t0 = std::chrono::steady_clock::now();
    auto packet = enc.encode(f);
    r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!packet.ok()) {
      ADD_FAILURE() << "frame " << i << ": " << packet.error().describe();
      return r;
    }
    const PacketPtr& p = *packet;
    if (!p) {
      ADD_FAILURE() << "frame " << i << ": null packet";
      return r;
    }
    ++r.packets;
    SCOPED_TRACE("frame " + std::to_string(i));
    EXPECT_FALSE(p->data.empty());
    EXPECT_EQ(p->codec, kFwht);
    EXPECT_EQ(p->pts, f.timestamp()) << "the packet's pts is not its frame's capture time";
    EXPECT_EQ(p->sequence, f.sequence());
    EXPECT_EQ(p->size, size);
    const FwhtHeader h = parseFwht(p->data);
    EXPECT_TRUE(h.valid) << "no FWHT header magic (0x4f4f4f4f 0xffffffff) at the start of " << p->data.size()
                         << " bytes";
    EXPECT_EQ(h.version, kFwhtVersion);
    EXPECT_EQ(h.size, size) << "FWHT header size";
    EXPECT_LE(kFwhtHeaderBytes + h.payload, p->data.size()) << "FWHT payload size beyond the packet";
    if ((h.flags & kFwhtFlagIFrame) != 0) ++r.iframes;
    if (p->keyframe) ++r.keyflagged;
  }
  return r;
}

printcast::hal::Result<std::unique_ptr<Encoder>> createEncoder(const std::string& device = "") {
  printcast::codecs::V4l2M2mOptions o;
  o.device = device;
  o.devDir = "/dev";
  o.codedFormat = kFwht;
  o.pollTimeoutMs = 3000;
  return printcast::codecs::createV4l2M2mEncoder(o);
}

EncoderConfig configOf(Size size, int gop = 10) {
  EncoderConfig c;
  c.size = size;
  c.fps = 30;
  c.bitrateKbps = 2000;
  c.gopFrames = gop;
  return c;
}

// Runs `cmd` through the shell; its exit code and the wall time it took.
std::pair<int, double> timed(const std::string& cmd) {
  const auto t0 = std::chrono::steady_clock::now();
  const int st = std::system(cmd.c_str());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, s};
}

class M2mLab : public ::testing::Test {
 protected:
  void SetUp() override {
    if (vicodecDevice().empty()) {
      GTEST_SKIP() << "machine: vicodec is not loaded ("
                   << envOr("PRINTCAST_LAB_VICODEC_SKIP", "run inside the lab VM: tests/lab/run-lab.sh")
                   << ")";
    }
  }
};

TEST_F(M2mLab, FindsTheEncoderNodeByCapability) {
  const auto nodes = vicodecNodes();
  std::string roles;
  for (const auto& n : nodes) roles += n.path + "=" + n.role + (n.mplane ? "(mplane) " : " ");
  std::printf("vicodec nodes: %s\n", roles.c_str());
  ASSERT_EQ(nodes.size(), 3u) << roles;
  const auto node = encoderNode();
  ASSERT_TRUE(node) << roles;

  ASSERT_TRUE(openVideoNodes().empty());
  auto enc = createEncoder();
  ASSERT_TRUE(enc.ok()) << enc.error().describe();
  EXPECT_EQ((*enc)->info().name, "v4l2m2m");
  EXPECT_EQ((*enc)->info().codec, kFwht);
  EXPECT_EQ(openVideoNodes(), std::vector<std::string>{node->path}) << "the backend opened another node";
  enc->reset();

  // A decoder node named explicitly is not an encoder of FWHT.
  for (const auto& n : nodes) {
    if (n.role == "encoder") continue;
    auto wrong = createEncoder(n.path);
    EXPECT_FALSE(wrong.ok()) << n.path << " (" << n.role << ") was taken as an encoder";
    if (!wrong.ok()) {
      EXPECT_EQ(wrong.code(), Errc::NoDevice) << wrong.error().describe();
    }
  }
}

TEST_F(M2mLab, ThirtyFrames640x480ThenReconfigure720pThenRelease) {
  auto enc = createEncoder();
  ASSERT_TRUE(enc.ok()) << enc.error().describe();
  Encoder& e = **enc;

  // 1. 640x480 (vicodec's minimum is 640x360): 30 frames in, 30 FWHT packets out.
  ASSERT_TRUE(e.configure(configOf({640, 480})).ok());
  Source vga({640, 480});
  const Encoded a = encodeAndCheck(e, vga, {640, 480}, 30);
  EXPECT_EQ(a.packets, 30);
  EXPECT_GE(a.iframes, 1);
  EXPECT_EQ(a.keyflagged, a.iframes) << "Packet::keyframe is the FWHT header's I-frame flag";
  std::printf("640x480: %d packets, %d I-frames (FWHT header), %d with Packet::keyframe, %.1f frames/s\n",
              a.packets, a.iframes, a.keyflagged, a.packets / std::max(a.seconds, 1e-9));
  ::testing::Test::RecordProperty("fps_640x480", std::to_string(a.packets / std::max(a.seconds, 1e-9)));

  // 2. Reconfigure to 1280x720: the old session drains, 10 more frames at the new size.
  const auto t0 = std::chrono::steady_clock::now();
  auto st = e.configure(configOf({1280, 720}));
  ASSERT_TRUE(st.ok()) << st.error().describe();
  const double reconfigureS = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Source hd({1280, 720});
  const Encoded b = encodeAndCheck(e, hd, {1280, 720}, 10);
  EXPECT_EQ(b.packets, 10);
  EXPECT_GE(b.iframes, 1);
  std::printf("reconfigure to 1280x720: %.2f s; 10 frames: %d packets, %d I-frames, %.1f frames/s\n",
              reconfigureS, b.packets, b.iframes, b.packets / std::max(b.seconds, 1e-9));

  // 3. release(): the node is closed; the next encode() reopens it and starts with an I-frame.
  e.release();
  EXPECT_TRUE(openVideoNodes().empty()) << "release() left the node open";
  const Encoded c = encodeAndCheck(e, hd, {1280, 720}, 5);
  EXPECT_EQ(c.packets, 5);
  EXPECT_EQ(openVideoNodes().size(), 1u);
  auto again = e.encode(hd.next());
  ASSERT_TRUE(again.ok()) << again.error().describe();
  e.release();
  e.release();  // twice is harmless
  std::printf("after release(): %d packets, %d I-frames\n", c.packets, c.iframes);
  // The first picture after release() is an I-frame (a fresh session).
  Source hd2({1280, 720});
  auto first = e.encode(hd2.next());
  ASSERT_TRUE(first.ok()) << first.error().describe();
  EXPECT_NE(parseFwht((*first)->data).flags & kFwhtFlagIFrame, 0u) << "no I-frame after release()";
}

TEST_F(M2mLab, UnbindWhileOpenIsAnErrorNotAHang) {
  const std::string device = vicodecDevice();
  auto enc = createEncoder();
  ASSERT_TRUE(enc.ok()) << enc.error().describe();
  ASSERT_TRUE((*enc)->configure(configOf({640, 480})).ok());
  Source src({640, 480});
  ASSERT_EQ(encodeAndCheck(**enc, src, {640, 480}, 3).packets, 3);

  ASSERT_TRUE(writeSysfs(std::string(kDriverDir) + "/unbind", device)) << "unbind " << device;
  // encode() in a thread: a hang is reported (and the thread abandoned) instead of stalling the lab.
  std::shared_ptr<Encoder> shared(std::move(*enc));
  const Frame f = src.next();
  auto result = std::make_shared<std::promise<printcast::hal::Status>>();
  auto done = result->get_future();
  const auto t0 = std::chrono::steady_clock::now();
  std::thread([shared, f, result] {
    auto r = shared->encode(f);
    result->set_value(r.ok() ? printcast::hal::Status{} : printcast::hal::Status(r.error()));
  }).detach();
  const bool returned = done.wait_for(15s) == std::future_status::ready;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (returned) {
    const auto status = done.get();
    ASSERT_FALSE(status.ok()) << "encode() succeeded on an unbound vicodec";
    EXPECT_TRUE(status.code() == Errc::Disconnected || status.code() == Errc::Io)
        << status.error().describe();
    std::printf("encode() after unbind: %s after %.2f s\n", status.error().describe().c_str(), s);
    // The object stays failed: the same error again, at once.
    auto later = shared->encode(src.next());
    EXPECT_FALSE(later.ok());
    shared.reset();  // closes the node
  } else {
    ADD_FAILURE() << "encode() did not return within 15 s of the unbind (hang)";
  }

  ASSERT_TRUE(writeSysfs(std::string(kDriverDir) + "/bind", device)) << "bind " << device;
  std::optional<Node> node;
  for (int i = 0; i < 50 && !node; ++i) {
    node = encoderNode();
    if (!node) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(node) << "vicodec's encoder node did not come back after bind";
  auto fresh = createEncoder();
  ASSERT_TRUE(fresh.ok()) << fresh.error().describe();
  ASSERT_TRUE((*fresh)->configure(configOf({640, 480})).ok());
  Source src2({640, 480});
  EXPECT_EQ(encodeAndCheck(**fresh, src2, {640, 480}, 3).packets, 3);
}

// The lab's camera: vivid's capture node (by driver name, not by number).
std::string vividNode() {
  auto devices = printcast::hal::enumerateV4l2Devices();
  if (!devices.ok()) return "";
  for (const auto& d : *devices) {
    if (d.driver == "vivid") return d.path;
  }
  return "";
}

// A heap copy (FramePool, I420) of an I420 camera frame: the same pixels without a DMA-BUF.
Frame heapCopy(const Frame& f, FramePool& pool) {
  auto w = pool.acquire();
  EXPECT_TRUE(w.ok());
  if (!w.ok()) return {};
  for (int p = 0; p < 3; ++p) {
    const int rows = p == 0 ? f.size().height : f.size().height / 2;
    const int bytes = p == 0 ? f.size().width : f.size().width / 2;
    for (int r = 0; r < rows; ++r) {
      std::memcpy(w->data(p) + static_cast<ptrdiff_t>(r) * w->stride(p),
                  f.plane(p).data + static_cast<ptrdiff_t>(r) * f.plane(p).stride,
                  static_cast<size_t>(bytes));
    }
  }
  return std::move(*w).publish(f.timestamp(), f.sequence());
}

// Next frame from `cam` within 3 s (poll on its fd), or an invalid frame.
Frame nextFrame(printcast::hal::Capture& cam) {
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto f = cam.dequeue();
    if (f.ok()) return *f;
    if (f.code() != Errc::Again) {
      ADD_FAILURE() << f.error().describe();
      return {};
    }
    pollfd p{cam.pollFd(), POLLIN, 0};
    (void)::poll(&p, 1, 200);
  }
  ADD_FAILURE() << "no frame from vivid within 3 s";
  return {};
}

TEST_F(M2mLab, VividFramesAreImportedByDmabufIntoVicodec) {
  const std::string camNode = vividNode();
  if (camNode.empty()) GTEST_SKIP() << "machine: vivid is not loaded";
  auto cam = printcast::hal::createV4l2Capture(camNode);
  ASSERT_TRUE(cam.ok()) << cam.error().describe();

  // The encoder's native OUTPUT format, preferring what vivid captures (YU12 first, as the
  // backend's own order), and a capture in it at vicodec's 640x480.
  printcast::codecs::V4l2M2mOptions o;
  o.codedFormat = kFwht;
  o.pollTimeoutMs = 3000;
  std::string tried;
  std::unique_ptr<Encoder> enc;
  printcast::hal::CaptureConfig cc;
  for (FourCC want :
       {printcast::hal::fourcc::kI420, printcast::hal::fourcc::kNV12, printcast::hal::fourcc::kYUYV}) {
    o.preferredInput = want;
    auto e = printcast::codecs::createV4l2M2mEncoder(o);
    ASSERT_TRUE(e.ok()) << e.error().describe();
    ASSERT_TRUE((*e)->configure(configOf({640, 480}, 10)).ok());
    const auto inputs = (*e)->info().inputFormats;
    const FourCC native = inputs.size() > 1 ? inputs[1] : inputs[0];
    cc.format = native;
    cc.size = {640, 480};
    cc.fps = 25;
    cc.bufferCount = 3;
    const auto n = (*cam)->validate(cc);
    tried += native.str() + (n == printcast::hal::Negotiation::Valid ? "=ok " : "=no ");
    if (native == want && n == printcast::hal::Negotiation::Valid) {
      enc = std::move(*e);
      break;
    }
  }
  ASSERT_TRUE(enc) << "vivid and vicodec share no raw format at 640x480: " << tried;
  std::printf("vivid %s -> vicodec %s: %s 640x480, 3 capture buffers (tried %s)\n", camNode.c_str(),
              encoderNode() ? encoderNode()->path.c_str() : "?", cc.format.str().c_str(), tried.c_str());
  ASSERT_TRUE((*cam)->start(cc).ok());
  auto* v4l2 = printcast::hal::v4l2CameraOf(**cam);
  ASSERT_NE(v4l2, nullptr);
  EXPECT_EQ(v4l2->dmabufRefusal(), "") << "vivid did not export its buffers";

  constexpr int kFrames = 40;
  int packets = 0;
  int iframes = 0;
  double encodeSeconds = 0;
  Frame sample;
  for (int i = 0; i < kFrames; ++i) {
    Frame f = nextFrame(**cam);
    ASSERT_TRUE(f.valid());
    ASSERT_GE(f.dmabufFd(), 0) << "frame " << i << " carries no DMA-BUF";
    const auto t0 = std::chrono::steady_clock::now();
    auto packet = enc->encode(f);
    encodeSeconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_TRUE(packet.ok()) << "frame " << i << ": " << packet.error().describe();
    ASSERT_TRUE(*packet);
    const auto path = enc->inputPath();
    ASSERT_EQ(path.path, "dmabuf") << "frame " << i << ": " << path.reason;
    EXPECT_EQ(f.leaseCount(), 1) << "frame " << i << ": the encoder still holds the camera buffer";
    const FwhtHeader h = parseFwht((*packet)->data);
    EXPECT_TRUE(h.valid) << "frame " << i;
    EXPECT_EQ(h.size, (Size{640, 480}));
    EXPECT_EQ((*packet)->pts, f.timestamp());
    EXPECT_EQ((*packet)->sequence, f.sequence());
    if ((h.flags & kFwhtFlagIFrame) != 0) ++iframes;
    ++packets;
    if (i == kFrames - 1) sample = f;  // kept: the capture runs on with 2 buffers from here
  }
  const auto path = enc->inputPath();
  EXPECT_EQ(path.importedFrames, static_cast<uint64_t>(kFrames));
  EXPECT_EQ(path.copiedFrames, 0u);
  std::printf(
      "dmabuf path: %d frames from vivid -> %d FWHT packets (%d I-frames), input path \"%s\", "
      "%llu imported, %llu copied, %.1f encode() calls/s\n",
      kFrames, packets, iframes, path.path.c_str(), static_cast<unsigned long long>(path.importedFrames),
      static_cast<unsigned long long>(path.copiedFrames), packets / std::max(encodeSeconds, 1e-9));

  // The imported frame codes to the same FWHT bytes as a heap copy of it through MMAP: the
  // encoder read the camera's pixels, not stale or foreign memory. Both are a fresh session's
  // first picture (an I-frame).
  ASSERT_TRUE(sample.valid());
  if (cc.format == printcast::hal::fourcc::kI420) {
    auto pool = FramePool::create(printcast::hal::fourcc::kI420, {640, 480}, 1);
    ASSERT_TRUE(pool.ok());
    const Frame copy = heapCopy(sample, **pool);
    ASSERT_TRUE(enc->configure(configOf({640, 480}, 10)).ok());
    auto imported = enc->encode(sample);
    ASSERT_TRUE(imported.ok()) << imported.error().describe();
    EXPECT_EQ(enc->inputPath().path, "dmabuf");
    auto other = createEncoder();
    ASSERT_TRUE(other.ok());
    ASSERT_TRUE((*other)->configure(configOf({640, 480}, 10)).ok());
    auto copied = (*other)->encode(copy);
    ASSERT_TRUE(copied.ok()) << copied.error().describe();
    EXPECT_EQ((*other)->inputPath().path, "mmap");
    EXPECT_EQ((*other)->inputPath().reason, "frame carries no DMA-BUF");
    EXPECT_EQ((*imported)->data, (*copied)->data) << "DMA-BUF import and MMAP copy code different pictures";
    std::printf("same frame imported vs copied: %zu vs %zu FWHT bytes, %s\n", (*imported)->data.size(),
                (*copied)->data.size(), (*imported)->data == (*copied)->data ? "identical" : "DIFFERENT");
  }
  sample = Frame();
  enc.reset();
  (*cam)->stop();
}

double processCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

TEST_F(M2mLab, FramesPerSecondAgainstV4l2Ctl) {
  const auto node = encoderNode();
  ASSERT_TRUE(node);
  constexpr int kFrames = 60;
  auto enc = createEncoder();
  ASSERT_TRUE(enc.ok()) << enc.error().describe();
  ASSERT_TRUE((*enc)->configure(configOf({640, 480}, 30)).ok());
  Source src({640, 480});
  const double cpu0 = processCpuSeconds();
  const Encoded ours = encodeAndCheck(**enc, src, {640, 480}, kFrames);
  const double oursCpuMs = (processCpuSeconds() - cpu0) * 1000 / kFrames;
  ASSERT_EQ(ours.packets, kFrames);
  enc->reset();
  const double oursFps = ours.packets / std::max(ours.seconds, 1e-9);
  std::printf(
      "printcast v4l2m2m on %s: %d frames 640x480 I420 -> FWHT, %.1f frames/s, %.2f ms of this process's CPU "
      "per "
      "frame (vicodec's own work runs in a kernel worker, not in it)\n",
      node->path.c_str(), kFrames, oursFps, oursCpuMs);

  // x264 (the streamer's settings) on the same pictures, for scale: the CPU the M2M path saves.
  auto x264 = printcast::codecs::createX264Encoder();
  ASSERT_TRUE(x264->configure(configOf({640, 480}, 30)).ok());
  Source same({640, 480});
  const double x0 = processCpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kFrames; ++i) ASSERT_TRUE(x264->encode(same.next()).ok());
  const double xSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("x264 (ultrafast, zerolatency) on the same pictures: %.1f frames/s, %.2f ms CPU per frame\n",
              kFrames / std::max(xSeconds, 1e-9), (processCpuSeconds() - x0) * 1000 / kFrames);

  if (timed("command -v v4l2-ctl >/dev/null 2>&1").first != 0) {
    std::printf("v4l2-ctl: not installed in the VM (package v4l-utils): no comparison\n");
    return;
  }
  // v4l2-ctl fills its OUTPUT buffers from its own test pattern generator; the same sizes and GOP.
  const std::string cmd = "v4l2-ctl -d " + node->path +
                          " --set-fmt-video-out=width=640,height=480,pixelformat=YU12"
                          " --set-fmt-video=pixelformat=FWHT --set-ctrl=video_gop_size=30"
                          " --stream-mmap --stream-out-mmap --stream-count=" +
                          std::to_string(kFrames) + " --stream-to=/dev/null >/dev/null 2>&1";
  const auto [rc, secs] = timed(cmd);
  EXPECT_EQ(rc, 0) << cmd;
  if (rc == 0) {
    const double theirs = kFrames / std::max(secs, 1e-9);
    std::printf("v4l2-ctl --stream-mmap --stream-out-mmap on %s: %.1f frames/s (whole process); ratio %.2f\n",
                node->path.c_str(), theirs, oursFps / theirs);
  }
}

// Last: vicodec again with multiplanar=0 (the single-planar API), then multiplanar=1 as loaded.
TEST_F(M2mLab, SinglePlanarApi) {
  const std::string ko = envOr("PRINTCAST_LAB_VICODEC_KO", "");
  if (ko.empty() || !fs::exists(ko)) GTEST_SKIP() << "machine: PRINTCAST_LAB_VICODEC_KO names no vicodec.ko";
  const auto reload = [&](int mplane) {
    const std::string cmd = "rmmod vicodec && insmod " + ko + " multiplanar=" + std::to_string(mplane);
    const int rc = std::system(cmd.c_str());
    for (int i = 0; i < 50 && !encoderNode(); ++i) std::this_thread::sleep_for(100ms);
    return rc == 0 && encoderNode().has_value();
  };
  ASSERT_TRUE(reload(0)) << "rmmod vicodec / insmod " << ko << " multiplanar=0";
  {
    const auto node = encoderNode();
    ASSERT_TRUE(node);
    EXPECT_FALSE(node->mplane);
    auto enc = createEncoder();
    ASSERT_TRUE(enc.ok()) << enc.error().describe();
    ASSERT_TRUE((*enc)->configure(configOf({640, 480})).ok());
    Source src({640, 480});
    const Encoded r = encodeAndCheck(**enc, src, {640, 480}, 10);
    EXPECT_EQ(r.packets, 10);
    auto st = (*enc)->configure(configOf({1280, 720}));
    EXPECT_TRUE(st.ok()) << st.error().describe();
    Source hd({1280, 720});
    EXPECT_EQ(encodeAndCheck(**enc, hd, {1280, 720}, 3).packets, 3);
    std::printf("single-planar %s: %d packets, %.1f frames/s\n", node->path.c_str(), r.packets,
                r.packets / std::max(r.seconds, 1e-9));
  }
  EXPECT_TRUE(reload(1)) << "reloading vicodec multiplanar=1";
  const auto node = encoderNode();
  ASSERT_TRUE(node);
  EXPECT_TRUE(node->mplane);
}

}  // namespace
