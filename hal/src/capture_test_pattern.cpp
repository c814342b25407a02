// SPDX-License-Identifier: MIT
// Test-pattern camera: I420 colour bars with moving shapes and an overlay, paced by a timerfd.
#include "printcast/hal/test_pattern.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <numbers>
#include <vector>

#include <fmt/format.h>

#include "bitmap_font.h"
#include "unique_fd.h"

namespace printcast::hal {

namespace {

constexpr Size kMinSize{16, 16};
constexpr Size kMaxSize{3840, 2160};
constexpr int kMaxFps = 120;
constexpr int kMaxBuffers = 32;

// BT.601 limited-range YUV of the 75% SMPTE colour bars (ITU-R BT.801 / SMPTE EG 1 values).
struct Yuv {
  uint8_t y, u, v;
};
constexpr Yuv kBlack{16, 128, 128};
constexpr Yuv kWhite{235, 128, 128};
constexpr Yuv kRed100{81, 90, 240};
constexpr std::array<Yuv, 7> kBars = {{
    {180, 128, 128},  // white
    {162, 44, 142},   // yellow
    {131, 156, 44},   // cyan
    {112, 72, 58},    // green
    {84, 184, 198},   // magenta
    {65, 100, 212},   // red
    {35, 212, 114},   // blue
}};
// The short "castellation" row under the bars: the bars' complements interleaved with black.
constexpr std::array<Yuv, 7> kCastellations = {
    {kBars[6], kBlack, kBars[4], kBlack, kBars[2], kBlack, kBars[0]}};

// The three planes of one I420 image being drawn on (sizes even: validate() guarantees it).
struct I420View {
  std::array<uint8_t*, 3> data;
  std::array<int, 3> stride;
  Size size;

  Size chromaSize() const { return Size{size.width / 2, size.height / 2}; }

  // Fill a luma-space rectangle; chroma covers the 2x2 blocks the rectangle touches.
  void fillRect(int x, int y, int w, int h, Yuv c) const {
    const int x0 = std::clamp(x, 0, size.width);
    const int y0 = std::clamp(y, 0, size.height);
    const int x1 = std::clamp(x + w, 0, size.width);
    const int y1 = std::clamp(y + h, 0, size.height);
    if (x0 >= x1 || y0 >= y1) return;
    for (int row = y0; row < y1; ++row) {
      std::memset(data[0] + static_cast<ptrdiff_t>(row) * stride[0] + x0, c.y, static_cast<size_t>(x1 - x0));
    }
    for (int row = y0 / 2; row < (y1 + 1) / 2; ++row) {
      const auto n = static_cast<size_t>((x1 + 1) / 2 - x0 / 2);
      std::memset(data[1] + static_cast<ptrdiff_t>(row) * stride[1] + x0 / 2, c.u, n);
      std::memset(data[2] + static_cast<ptrdiff_t>(row) * stride[2] + x0 / 2, c.v, n);
    }
  }

  // A filled disc: one span per row, in luma and (at half the radius) in chroma.
  void fillDisc(int cx, int cy, int r, Yuv c) const {
    discSpans(cx, cy, r, size, [&](int row, int x0, int x1) {
      std::memset(data[0] + static_cast<ptrdiff_t>(row) * stride[0] + x0, c.y, static_cast<size_t>(x1 - x0));
    });
    discSpans(cx / 2, cy / 2, r / 2, chromaSize(), [&](int row, int x0, int x1) {
      std::memset(data[1] + static_cast<ptrdiff_t>(row) * stride[1] + x0, c.u, static_cast<size_t>(x1 - x0));
      std::memset(data[2] + static_cast<ptrdiff_t>(row) * stride[2] + x0, c.v, static_cast<size_t>(x1 - x0));
    });
  }

  template <typename Span>
  static void discSpans(int cx, int cy, int r, Size bounds, Span&& span) {
    for (int dy = -r; dy <= r; ++dy) {
      const int row = cy + dy;
      if (row < 0 || row >= bounds.height) continue;
      const int half = static_cast<int>(std::sqrt(static_cast<double>(r * r - dy * dy)));
      const int x0 = std::max(cx - half, 0);
      const int x1 = std::min(cx + half + 1, bounds.width);
      if (x0 < x1) span(row, x0, x1);
    }
  }
};

// A position bouncing between 0 and `range` at one unit per step (a triangle wave).
int bounce(uint64_t step, int range) {
  if (range <= 0) return 0;
  const auto period = static_cast<uint64_t>(2 * range);
  const auto phase = static_cast<int>(step % period);
  return phase <= range ? phase : 2 * range - phase;
}

// Everything about the picture that depends only on the frame size, computed once per start().
struct Layout {
  int scale = 1;    // font scale: readable at 320x240 without covering the picture
  int margin = 2;   // overlay distance from the top-left corner
  int speed = 2;    // pixels per frame the shapes move
  int boxSize = 4;  // the moving box (a square)
  int boxTop = 0;
  int boxBorder = 1;
  int discRadius = 3;  // the orbiting disc
  int ringWidth = 1;   // its white outline
  Point orbitCentre;
  Point orbitRadii;

  explicit Layout(Size s) {
    scale = std::max(1, std::min(s.height / 80, s.width / 100));
    margin = 2 * scale;
    speed = std::max(2, s.width / 160);
    boxSize = std::max(4, s.height / 8) & ~1;
    boxTop = (s.height * 28 / 100) & ~1;
    boxBorder = std::max(1, boxSize / 10);
    discRadius = std::max(3, s.height / 12);
    ringWidth = std::max(1, discRadius / 6);
    orbitCentre = Point{s.width / 2, s.height * 66 / 100};
    orbitRadii = Point{s.width * 35 / 100, s.height * 18 / 100};
  }
};

class TestPatternCapture final : public Capture {
 public:
  TestPatternCapture() {
    // The timerfd lives as long as the object so pollFd() is stable for any thread to poll.
    timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!timer_.valid()) timerErrno_ = errno;
  }

  CaptureInfo info() const override {
    CaptureInfo i;
    i.name = "Test pattern";
    i.driver = "test-pattern";
    i.busInfo = "virtual";
    // validate() takes any even size in [16x16, 3840x2160]; these are the usual ones to offer.
    i.formats.push_back(
        CaptureFormat{fourcc::kI420, {{320, 240}, {640, 480}, {1280, 720}, {1920, 1080}}, {}});
    return i;
  }

  Negotiation validate(CaptureConfig& config) const override {
    if (config.format != fourcc::kI420) return Negotiation::Invalid;
    const CaptureConfig before = config;
    config.size.width = std::clamp(config.size.width, kMinSize.width, kMaxSize.width) & ~1;
    config.size.height = std::clamp(config.size.height, kMinSize.height, kMaxSize.height) & ~1;
    config.fps = std::clamp(config.fps, 0, kMaxFps);
    config.bufferCount = std::clamp(config.bufferCount, 1, kMaxBuffers);
    const bool same =
        before.size == config.size && before.fps == config.fps && before.bufferCount == config.bufferCount;
    return same ? Negotiation::Valid : Negotiation::Adjusted;
  }

  Status start(const CaptureConfig& config) override {
    if (streaming_) return {Errc::Busy, "test pattern: already streaming; stop() first"};
    CaptureConfig checked = config;
    if (validate(checked) != Negotiation::Valid) {
      return {Errc::InvalidArgument,
              fmt::format("test pattern: config {} {} fps {} buffers {} needs validate() first",
                          config.format.str(), config.size.str(), config.fps, config.bufferCount)};
    }
    if (!timer_.valid()) return errnoError("test pattern: timerfd_create", timerErrno_);

    auto pool = FramePool::create(fourcc::kI420, config.size, config.bufferCount);
    if (!pool) return std::move(pool).error();
    pool_ = std::move(*pool);
    config_ = config;
    layout_ = Layout(config.size);
    buildTemplate();

    // Paced: expire every period, first after 1 ns so the first frame is not a period late.
    // Unpaced (fps 0): a one-shot that is never read, so the fd stays readable for good.
    itimerspec spec{};
    spec.it_value.tv_nsec = 1;
    if (config.fps > 0) spec.it_interval.tv_nsec = 1'000'000'000L / config.fps;
    if (::timerfd_settime(timer_.get(), 0, &spec, nullptr) != 0) {
      pool_.reset();
      return errnoError("test pattern: timerfd_settime");
    }
    sequence_ = 0;
    startTime_ = Clock::now();
    streaming_ = true;
    return {};
  }

  void stop() override {
    if (!streaming_) return;
    // Disarming also clears pending expirations, so the fd stops polling readable.
    const itimerspec off{};
    (void)::timerfd_settime(timer_.get(), 0, &off, nullptr);
    pool_.reset();  // leased frames keep their buffers (FramePool guarantees it)
    streaming_ = false;
  }

  int pollFd() const override { return timer_.get(); }

  Result<Frame> dequeue() override {
    if (!streaming_) return {Errc::InvalidArgument, "test pattern: dequeue() before start()"};
    if (config_.fps > 0) {
      // Several elapsed periods still make one frame: a late consumer gets the current
      // picture, not a burst of stale ones.
      uint64_t expirations = 0;
      if (::read(timer_.get(), &expirations, sizeof expirations) < 0) {
        if (errno == EAGAIN) return {Errc::Again, "test pattern: next frame not due yet"};
        return errnoError("test pattern: read timerfd");
      }
    }
    auto writable = pool_->acquire();
    if (!writable) {
      // Paced: this period's frame is lost, which the sequence gap reports as a camera's would.
      // Unpaced there is no period to lose: the consumer simply has to release a frame first.
      if (config_.fps > 0) ++sequence_;
      return {Errc::Again, fmt::format("test pattern: all {} buffers are leased", config_.bufferCount)};
    }
    const Timestamp now = Clock::now();
    synthesize(*writable, sequence_, now);
    return std::move(*writable).publish(now, sequence_++);
  }

 private:
  // The bars never move, and all rows of one band (bars, castellations, ramp) are alike: draw
  // one row of each band once (two luma rows, so one chroma row) and memcpy it under every
  // frame's moving parts. A whole-picture template would cost a frame of memory (1.4 MB at 720p).
  void buildTemplate() {
    const Size s = config_.size;
    bandBottoms_ = {(s.height * 2 / 3) & ~1, (s.height * 3 / 4) & ~1};
    const Size rows{s.width, 2 * kBands};
    const int cw = s.width / 2;
    templateY_.assign(static_cast<size_t>(rows.width) * static_cast<size_t>(rows.height), 0);
    templateU_.assign(static_cast<size_t>(cw) * kBands, 0);
    templateV_.assign(templateU_.size(), 0);
    const I420View view{{templateY_.data(), templateU_.data(), templateV_.data()}, {s.width, cw, cw}, rows};
    for (int i = 0; i < 7; ++i) {
      const int x0 = (s.width * i / 7) & ~1;
      const int x1 = (s.width * (i + 1) / 7) & ~1;
      view.fillRect(x0, 0, x1 - x0, 2, kBars[static_cast<size_t>(i)]);
      view.fillRect(x0, 2, x1 - x0, 2, kCastellations[static_cast<size_t>(i)]);
    }
    // A luma ramp black to white: banding and crushed shadows from an encoder show up here.
    view.fillRect(0, 4, s.width, 2, kBlack);
    for (int row = 4; row < 6; ++row) {
      uint8_t* line = templateY_.data() + static_cast<ptrdiff_t>(row) * s.width;
      for (int x = 0; x < s.width; ++x) {
        line[x] = static_cast<uint8_t>(16 + (235 - 16) * x / std::max(1, s.width - 1));
      }
    }
  }

  // The band (0 bars, 1 castellations, 2 ramp) of a luma row. The band edges are even, so both
  // luma rows of a chroma row lie in one band.
  int bandOf(int lumaRow) const {
    if (lumaRow < bandBottoms_[0]) return 0;
    return lumaRow < bandBottoms_[1] ? 1 : 2;
  }

  void synthesize(FramePool::Writable& w, uint64_t sequence, Timestamp now) const {
    const Size s = config_.size;
    const I420View view{{w.data(0), w.data(1), w.data(2)}, {w.stride(0), w.stride(1), w.stride(2)}, s};
    const std::array<const uint8_t*, 3> src = {templateY_.data(), templateU_.data(), templateV_.data()};
    for (size_t p = 0; p < 3; ++p) {
      const Size ps = p == 0 ? s : view.chromaSize();
      for (int row = 0; row < ps.height; ++row) {
        // Luma: the band's first row of its two; chroma: the band's one row.
        const int band = bandOf(p == 0 ? row : 2 * row);
        const int templateRow = p == 0 ? 2 * band : band;
        std::memcpy(view.data[p] + static_cast<ptrdiff_t>(row) * view.stride[p],
                    src[p] + static_cast<ptrdiff_t>(templateRow) * ps.width, static_cast<size_t>(ps.width));
      }
    }

    const Layout& l = layout_;
    // The box sweeps left and right; positions follow the sequence so equal sequences draw equal
    // pictures and each frame moves `speed` pixels.
    const int boxX = bounce(sequence * static_cast<uint64_t>(l.speed), s.width - l.boxSize) & ~1;
    view.fillRect(boxX, l.boxTop, l.boxSize, l.boxSize, kBlack);
    view.fillRect(boxX + l.boxBorder, l.boxTop + l.boxBorder, l.boxSize - 2 * l.boxBorder,
                  l.boxSize - 2 * l.boxBorder, kWhite);

    // The disc orbits an ellipse (a different direction of motion from the box), one arc step
    // of about `speed` pixels per frame.
    const double radius = std::max(1, std::max(l.orbitRadii.x, l.orbitRadii.y));
    const double step = static_cast<double>(l.speed) / radius;
    const double angle = std::fmod(static_cast<double>(sequence) * step, 2 * std::numbers::pi);
    const int discX = l.orbitCentre.x + static_cast<int>(std::lround(l.orbitRadii.x * std::cos(angle)));
    const int discY = l.orbitCentre.y + static_cast<int>(std::lround(l.orbitRadii.y * std::sin(angle)));
    view.fillDisc(discX, discY, l.discRadius + l.ringWidth, kWhite);
    view.fillDisc(discX, discY, l.discRadius, kRed100);

    // Overlay: the sequence and the capture time (ms since start, the same clock as the
    // frame's timestamp), white on a black plate so it reads over any bar.
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - startTime_).count();
    const std::string line1 = fmt::format("SEQ {:06}", sequence);
    const std::string line2 = fmt::format("T {:08} MS", ms);
    const int pad = l.scale;
    const int lineStep = font::kLineHeight * l.scale;
    const int plateW = std::max(font::textWidth(line1, l.scale), font::textWidth(line2, l.scale)) + 2 * pad;
    const int plateH = lineStep + font::textHeight(l.scale) + 2 * pad;
    view.fillRect(l.margin, l.margin, plateW, plateH, kBlack);
    font::drawText(view.data[0], view.stride[0], s, Point{l.margin + pad, l.margin + pad}, line1, l.scale,
                   kWhite.y);
    font::drawText(view.data[0], view.stride[0], s, Point{l.margin + pad, l.margin + pad + lineStep}, line2,
                   l.scale, kWhite.y);

    // The timecode strip (see test_pattern.h): wall-clock milliseconds, low 32 bits, MSB first,
    // one black (0) or white (1) cell per bit along the bottom edge.
    const auto wallMs = static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  std::chrono::system_clock::now().time_since_epoch())
                                                  .count());
    const int cell = testPatternTimecodeCell(s);
    for (int bit = 0; bit < 32; ++bit) {
      const bool one = ((wallMs >> (31 - bit)) & 1u) != 0;
      view.fillRect(bit * cell, s.height - cell, cell, cell, one ? kWhite : kBlack);
    }
  }

  UniqueFd timer_;
  int timerErrno_ = 0;
  bool streaming_ = false;
  CaptureConfig config_;
  Layout layout_{kMinSize};
  std::shared_ptr<FramePool> pool_;
  static constexpr int kBands = 3;
  std::vector<uint8_t> templateY_, templateU_, templateV_;  // one row per band (luma: two)
  std::array<int, 2> bandBottoms_{};                        // luma rows where bands 0 and 1 end
  uint64_t sequence_ = 0;
  Timestamp startTime_{};
};

}  // namespace

std::unique_ptr<Capture> createTestPatternCapture() { return std::make_unique<TestPatternCapture>(); }

int testPatternTimecodeCell(Size size) { return std::max(2, (size.width / 32) & ~1); }

std::optional<uint32_t> readTestPatternTimecode(const uint8_t* luma, int stride, Size size) {
  const int cell = testPatternTimecodeCell(size);
  if (luma == nullptr || size.width < 32 * cell || size.height < cell) return std::nullopt;
  uint32_t value = 0;
  const int y = size.height - cell / 2 - 1;
  for (int bit = 0; bit < 32; ++bit) {
    const int x = bit * cell + cell / 2;
    const uint8_t v = luma[static_cast<ptrdiff_t>(y) * stride + x];
    if (v > 60 && v < 190) return std::nullopt;  // neither black nor white: not a timecode cell
    value = (value << 1) | (v >= 126 ? 1u : 0u);
  }
  return value;
}

}  // namespace printcast::hal
