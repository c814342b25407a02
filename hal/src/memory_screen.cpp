// SPDX-License-Identifier: MIT
// MemoryScreen: a simulated printer LCD (XRGB8888 scan-out buffer) with its touch panel.
#include "printcast/hal/memory_screen.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bitmap_font.h"

namespace printcast::hal {

namespace {

// Pixels are handled as native uint32 0xXXRRGGBB, which is the DRM_FORMAT_XRGB8888 byte order
// B, G, R, X only on little-endian hosts (every printer SoC and build host printcast targets).
static_assert(std::endian::native == std::endian::little, "XRGB8888 pixels are written as native uint32");

constexpr uint32_t rgb(uint32_t r, uint32_t g, uint32_t b) { return 0xFF000000U | (r << 16) | (g << 8) | b; }

// Half way to white: the highlight strip along a button's top edge.
constexpr uint32_t lighter(uint32_t c) { return ((c >> 1) & 0x7F7F7FU) + 0xFF808080U; }

constexpr uint32_t kBackground = rgb(22, 26, 34);
constexpr uint32_t kTitleBar = rgb(0, 86, 160);
constexpr uint32_t kPanel = rgb(44, 52, 66);
constexpr uint32_t kStatusLine = rgb(36, 36, 40);
constexpr uint32_t kText = rgb(240, 240, 240);
constexpr uint32_t kDimText = rgb(170, 176, 186);
constexpr uint32_t kBarEmpty = rgb(70, 78, 92);
constexpr uint32_t kBarFull = rgb(60, 200, 90);
constexpr uint32_t kMarkOutline = rgb(0, 0, 0);
constexpr uint32_t kMarkCentre = rgb(255, 255, 255);
// Tap marks cycle through these so consecutive taps are told apart.
constexpr std::array<uint32_t, 8> kMarkColours = {rgb(255, 40, 40), rgb(40, 220, 60),  rgb(40, 120, 255),
                                                  rgb(255, 220, 0), rgb(230, 50, 230), rgb(0, 220, 230),
                                                  rgb(255, 140, 0), rgb(160, 255, 160)};

constexpr int kMarkRadius = 12;
constexpr int kMarkOutlineWidth = 2;
constexpr int kSwipeRadius = 4;
constexpr size_t kMaxMarks = 32;
// The progress bar advances one step per tick: the picture changes at most twice a second,
// so most grabs of an idle screen keep their sequence and cost viewers nothing.
constexpr std::chrono::milliseconds kTick{500};
constexpr int kPermillePerTick = 5;
// Bytes of padding after each scan-out row, as some fbdev drivers have (line_length > width*4),
// so consumers that assume packed rows fail here rather than on a printer.
constexpr int kRowPaddingBytes = 64;

struct Rect {
  int x = 0, y = 0, w = 0, h = 0;
};

// A 32-bit image being drawn on, `strideWords` uint32 per row.
struct Canvas {
  uint32_t* pixels;
  int strideWords;
  Size size;

  void fillRect(Rect r, uint32_t colour) const {
    const int x0 = std::clamp(r.x, 0, size.width);
    const int x1 = std::clamp(r.x + r.w, 0, size.width);
    const int y0 = std::clamp(r.y, 0, size.height);
    const int y1 = std::clamp(r.y + r.h, 0, size.height);
    for (int y = y0; y < y1; ++y) std::fill(row(y) + x0, row(y) + x1, colour);
  }

  void fillDisc(Point centre, int radius, uint32_t colour) const {
    for (int dy = -radius; dy <= radius; ++dy) {
      const int y = centre.y + dy;
      if (y < 0 || y >= size.height) continue;
      const int half = static_cast<int>(std::sqrt(static_cast<double>(radius * radius - dy * dy)));
      const int x0 = std::max(centre.x - half, 0);
      const int x1 = std::min(centre.x + half + 1, size.width);
      if (x0 < x1) std::fill(row(y) + x0, row(y) + x1, colour);
    }
  }

  void text(Point origin, std::string_view s, int scale, uint32_t colour) const {
    font::drawText(pixels, strideWords, size, origin, s, scale, colour);
  }

  // Text centred in `r`.
  void centredText(Rect r, std::string_view s, int scale, uint32_t colour) const {
    text(Point{r.x + (r.w - font::textWidth(s, scale)) / 2, r.y + (r.h - font::textHeight(scale)) / 2}, s,
         scale, colour);
  }

  uint32_t* row(int y) const { return pixels + static_cast<ptrdiff_t>(y) * strideWords; }
};

// Where the upright UI's parts go; depends only on the upright size, so computed once.
struct UiLayout {
  Rect titleBar;
  int titleScale = 1;
  Rect statusLine;
  int statusScale = 1;
  Rect panel;
  int panelScale = 1;
  Point nozzleText, bedText, progressText;
  Rect progressBar;
  std::array<Rect, 4> tiles{};
  int tileScale = 1;

  explicit UiLayout(Size s) {
    const int shortSide = std::min(s.width, s.height);
    const int unit = std::max(2, shortSide / 48);  // 10 px on an 800x480 panel
    const int titleH = std::max(12, shortSide / 10);
    titleBar = Rect{0, 0, s.width, titleH};
    titleScale = std::max(1, titleH * 45 / 100 / font::kGlyphHeight);
    const int statusH = std::max(10, titleH * 8 / 10);
    statusLine = Rect{0, s.height - statusH, s.width, statusH};
    statusScale = std::max(1, statusH * 45 / 100 / font::kGlyphHeight);

    const int left = unit;
    const int right = s.width - unit;
    const int top = titleH + unit;
    const int bottom = s.height - statusH - unit;

    panelScale = std::max(1, unit * 3 / 10);
    const int lineStep = font::kLineHeight * panelScale + unit / 2;
    const int pad = unit;
    panel = Rect{left, top, right - left, 0};
    nozzleText = Point{left + pad, top + pad};
    bedText = Point{left + pad, top + pad + lineStep};
    progressBar = Rect{left + pad, top + pad + 2 * lineStep, right - left - 2 * pad, 2 * unit};
    progressText = Point{left + pad, progressBar.y + progressBar.h + unit / 2};
    panel.h = progressText.y + font::textHeight(panelScale) + pad - top;

    // Four big buttons: a row on a landscape screen, a 2x2 grid on a portrait one.
    const bool landscape = s.width >= s.height;
    const int cols = landscape ? 4 : 2;
    const int rows = landscape ? 1 : 2;
    const int tilesTop = panel.y + panel.h + unit;
    const int tileW = (right - left - (cols - 1) * unit) / cols;
    const int tileH = (bottom - tilesTop - (rows - 1) * unit) / rows;
    for (int i = 0; i < 4; ++i) {
      tiles[static_cast<size_t>(i)] =
          Rect{left + (i % cols) * (tileW + unit), tilesTop + (i / cols) * (tileH + unit), tileW, tileH};
    }
    tileScale = std::max(1, std::min(tileW / (6 * font::kAdvance), tileH / 20));
  }
};

struct TileStyle {
  std::string_view label;
  uint32_t colour;
};
constexpr std::array<TileStyle, 4> kTiles = {{{"HOME", rgb(40, 110, 200)},
                                              {"PRINT", rgb(40, 150, 80)},
                                              {"TEMP", rgb(210, 110, 30)},
                                              {"MOVE", rgb(120, 70, 170)}}};

// A touch drawn on the scan-out buffer: a tap is one point, a swipe its path.
struct Mark {
  std::vector<Point> points;  // scan-out pixels
  uint32_t colour = 0;
  bool swipe = false;
};

class Screen final : public MemoryScreen, public std::enable_shared_from_this<Screen> {
 public:
  explicit Screen(const MemoryScreenConfig& config)
      : config_(config),
        panelSize_(config.panelSize),
        uprightSize_(config.orientation.apply(config.panelSize)),
        toPanel_(config.orientation.inverse()),
        strideBytes_(config.panelSize.width * 4 + kRowPaddingBytes),
        layout_(uprightSize_),
        start_(Clock::now()) {}

  std::unique_ptr<DisplayCapture> displayCapture() override;
  std::unique_ptr<TouchInjector> touchInjector() override;

  int touchCount() const override {
    std::lock_guard lock(mutex_);
    return touchCount_;
  }

  DisplayInfo displayInfo() const {
    return DisplayInfo{"memory", panelSize_, fourcc::kXRGB8888, strideBytes_};
  }
  TouchInfo touchInfo() const { return TouchInfo{"memory", panelSize_, 1}; }

  // Bring the scan-out buffer up to date and copy it into `out`. Returns the content generation
  // copied: it changes exactly when the scan-out pixels did.
  uint64_t copyScanOut(const FramePool::Writable& out) {
    std::lock_guard lock(mutex_);
    const long tick = static_cast<long>((Clock::now() - start_) / kTick);
    if (dirty_ || tick != renderedTick_) {
      render(tick);
      renderedTick_ = tick;
      dirty_ = false;
      ++generation_;
    }
    const auto rowBytes = static_cast<size_t>(panelSize_.width) * 4;
    const auto* src = reinterpret_cast<const uint8_t*>(scanOut_.data());
    for (int y = 0; y < panelSize_.height; ++y) {
      std::memcpy(out.data(0) + static_cast<ptrdiff_t>(y) * out.stride(0),
                  src + static_cast<ptrdiff_t>(y) * strideBytes_, rowBytes);
    }
    return generation_;
  }

  Status tap(Point panelPos, std::chrono::milliseconds hold, const std::function<void()>& pressed) {
    if (!inRange(panelPos)) return outOfRange("tap", panelPos);
    if (hold.count() < 0) return {Errc::InvalidArgument, "memory touch: negative hold time"};
    std::lock_guard gesture(gestureMutex_);
    press(panelPos, false);
    if (pressed) pressed();
    // The mark stays after release, so only the hold is simulated here, outside the state lock
    // so grabs go on meanwhile.
    std::this_thread::sleep_for(hold);
    return {};
  }

  Status swipe(Point from, Point to, std::chrono::milliseconds duration, int steps) {
    if (!inRange(from)) return outOfRange("swipe start", from);
    if (!inRange(to)) return outOfRange("swipe end", to);
    if (steps < 1) return {Errc::InvalidArgument, fmt::format("memory touch: swipe steps {} < 1", steps)};
    if (duration.count() < 0) return {Errc::InvalidArgument, "memory touch: negative swipe duration"};
    std::lock_guard gesture(gestureMutex_);
    press(from, true);
    for (int i = 1; i <= steps; ++i) {
      std::this_thread::sleep_for(duration / steps);
      const Point p{from.x + (to.x - from.x) * i / steps, from.y + (to.y - from.y) * i / steps};
      std::lock_guard lock(mutex_);
      // gestureMutex_ is held, so the newest mark is still this swipe's.
      marks_.back().points.push_back(toPixel(p));
      lastTouchUpright_ = config_.orientation.apply(p, panelSize_);
      dirty_ = true;
    }
    return {};
  }

 private:
  bool inRange(Point p) const {
    return p.x >= 0 && p.y >= 0 && p.x <= panelSize_.width && p.y <= panelSize_.height;
  }

  Status outOfRange(std::string_view what, Point p) const {
    return {Errc::InvalidArgument, fmt::format("memory touch: {} at {},{} is outside 0..{} x 0..{}", what,
                                               p.x, p.y, panelSize_.width, panelSize_.height)};
  }

  // Touch coordinates are continuous (x == width is the right edge); marks go on the pixel there.
  Point toPixel(Point panelPos) const {
    return Point{std::min(panelPos.x, panelSize_.width - 1), std::min(panelPos.y, panelSize_.height - 1)};
  }

  void press(Point panelPos, bool swipe) {
    std::lock_guard lock(mutex_);
    marks_.push_back(Mark{{toPixel(panelPos)}, kMarkColours[nextColour_++ % kMarkColours.size()], swipe});
    if (marks_.size() > kMaxMarks) marks_.pop_front();
    lastTouchUpright_ = config_.orientation.apply(panelPos, panelSize_);
    ++touchCount_;
    dirty_ = true;
  }

  // Draw the UI upright, store it through the inverse orientation as the printer's UI toolkit
  // would, then put the touch marks on top in scan-out (panel) space.
  void render(long tick) {
    // The pixel buffers (two screens' worth, 3 MB at 800x480) exist once someone looks: a
    // streamer nobody watches does not pay for them.
    if (scanOut_.empty()) {
      upright_.resize(static_cast<size_t>(uprightSize_.width) * static_cast<size_t>(uprightSize_.height));
      scanOut_.assign(static_cast<size_t>(strideBytes_ / 4) * static_cast<size_t>(panelSize_.height),
                      rgb(0, 0, 0));
    }
    drawUi(Canvas{upright_.data(), uprightSize_.width, uprightSize_}, tick);
    blitToPanel();
    const Canvas panel{scanOut_.data(), strideBytes_ / 4, panelSize_};
    for (const Mark& m : marks_) {
      if (m.swipe) {
        drawPath(panel, m);
      } else {
        panel.fillDisc(m.points.front(), kMarkRadius + kMarkOutlineWidth, kMarkOutline);
        panel.fillDisc(m.points.front(), kMarkRadius, m.colour);
        panel.fillDisc(m.points.front(), 1, kMarkCentre);
      }
    }
  }

  void drawUi(const Canvas& c, long tick) const {
    const UiLayout& l = layout_;
    c.fillRect(Rect{0, 0, c.size.width, c.size.height}, kBackground);

    c.fillRect(l.titleBar, kTitleBar);
    const int titleInset = (l.titleBar.h - font::textHeight(l.titleScale)) / 2;
    c.text(Point{l.titleBar.x + titleInset, l.titleBar.y + titleInset}, config_.title, l.titleScale, kText);

    // The print job: fixed temperatures, progress advancing one step per tick and wrapping.
    const int permille = static_cast<int>((tick * kPermillePerTick) % 1001);
    const long seconds = tick * kTick.count() / 1000;
    c.fillRect(l.panel, kPanel);
    c.text(l.nozzleText, "NOZZLE 210/210C", l.panelScale, kText);
    c.text(l.bedText, "BED 60/60C", l.panelScale, kText);
    c.fillRect(l.progressBar, kBarEmpty);
    c.fillRect(Rect{l.progressBar.x, l.progressBar.y, l.progressBar.w * permille / 1000, l.progressBar.h},
               kBarFull);
    c.text(l.progressText,
           fmt::format("PRINTING {}%  {:02}:{:02}", permille / 10, seconds / 60 % 60, seconds % 60),
           l.panelScale, kDimText);

    for (size_t i = 0; i < kTiles.size(); ++i) {
      const Rect& t = l.tiles[i];
      c.fillRect(t, kTiles[i].colour);
      c.fillRect(Rect{t.x, t.y, t.w, std::max(2, t.h / 12)}, lighter(kTiles[i].colour));
      c.centredText(t, kTiles[i].label, l.tileScale, kText);
    }

    c.fillRect(l.statusLine, kStatusLine);
    const std::string status = lastTouchUpright_ ? fmt::format("TOUCH: {},{}  ({})", lastTouchUpright_->x,
                                                               lastTouchUpright_->y, touchCount_)
                                                 : std::string("TOUCH: NONE");
    const int statusInset = (l.statusLine.h - font::textHeight(l.statusScale)) / 2;
    c.text(Point{l.statusLine.x + statusInset, l.statusLine.y + statusInset}, status, l.statusScale,
           kDimText);
  }

  // Each upright row lands on a straight run of scan-out pixels with a constant step (±1 pixel
  // or ±1 row), so two applyToPixel() calls per row give the whole mapping.
  void blitToPanel() {
    const int strideWords = strideBytes_ / 4;
    for (int v = 0; v < uprightSize_.height; ++v) {
      const Point first = toPanel_.applyToPixel(Point{0, v}, uprightSize_);
      ptrdiff_t step = 1;
      if (uprightSize_.width > 1) {
        const Point second = toPanel_.applyToPixel(Point{1, v}, uprightSize_);
        step = static_cast<ptrdiff_t>(second.y - first.y) * strideWords + (second.x - first.x);
      }
      const uint32_t* src = upright_.data() + static_cast<ptrdiff_t>(v) * uprightSize_.width;
      uint32_t* dst = scanOut_.data() + static_cast<ptrdiff_t>(first.y) * strideWords + first.x;
      if (step == 1) {
        std::memcpy(dst, src, static_cast<size_t>(uprightSize_.width) * 4);
        continue;
      }
      for (int u = 0; u < uprightSize_.width; ++u) dst[u * step] = src[u];
    }
  }

  static void drawPath(const Canvas& c, const Mark& m) {
    Point prev = m.points.front();
    for (const Point& p : m.points) {
      const int n = std::max({std::abs(p.x - prev.x), std::abs(p.y - prev.y), 1});
      for (int i = 0; i <= n; i += 2) {
        c.fillDisc(Point{prev.x + (p.x - prev.x) * i / n, prev.y + (p.y - prev.y) * i / n}, kSwipeRadius,
                   m.colour);
      }
      prev = p;
    }
    c.fillDisc(m.points.front(), kSwipeRadius + 3, m.colour);  // where the finger went down
  }

  const MemoryScreenConfig config_;
  const Size panelSize_;
  const Size uprightSize_;
  const Transform toPanel_;  // upright -> scan-out
  const int strideBytes_;
  const UiLayout layout_;
  const Timestamp start_;

  std::mutex gestureMutex_;        // serialises whole gestures (taps block for their hold)
  mutable std::mutex mutex_;       // guards everything below
  std::vector<uint32_t> upright_;  // empty until the first render()
  std::vector<uint32_t> scanOut_;  // empty until the first render()
  std::deque<Mark> marks_;
  std::optional<Point> lastTouchUpright_;
  int touchCount_ = 0;
  size_t nextColour_ = 0;
  bool dirty_ = true;
  long renderedTick_ = -1;
  uint64_t generation_ = 0;
};

class MemoryDisplayCapture final : public DisplayCapture {
 public:
  explicit MemoryDisplayCapture(std::shared_ptr<Screen> screen) : screen_(std::move(screen)) {}

  DisplayInfo info() const override { return screen_->displayInfo(); }

  Result<Frame> grab() override {
    if (!pool_) {
      auto pool = FramePool::create(fourcc::kXRGB8888, screen_->displayInfo().size, kPoolBuffers);
      if (!pool) return std::move(pool).error();
      pool_ = std::move(*pool);
    }
    auto writable = pool_->acquire();
    if (!writable) return std::move(writable).error();
    const uint64_t generation = screen_->copyScanOut(*writable);
    // Unchanged pixels keep the previous sequence (see DisplayCapture::grab) so callers can
    // skip re-encoding an idle screen.
    if (grabbed_ && generation != lastGeneration_) ++sequence_;
    grabbed_ = true;
    lastGeneration_ = generation;
    return std::move(*writable).publish(Clock::now(), sequence_);
  }

 private:
  static constexpr int kPoolBuffers = 4;
  std::shared_ptr<Screen> screen_;
  std::shared_ptr<FramePool> pool_;
  bool grabbed_ = false;
  uint64_t lastGeneration_ = 0;
  uint64_t sequence_ = 0;
};

class MemoryTouchInjector final : public TouchInjector {
 public:
  explicit MemoryTouchInjector(std::shared_ptr<Screen> screen) : screen_(std::move(screen)) {}
  TouchInfo info() const override { return screen_->touchInfo(); }
  Status tap(Point panelPos, std::chrono::milliseconds hold,
             const std::function<void()>& pressed = nullptr) override {
    return screen_->tap(panelPos, hold, pressed);
  }
  Status swipe(Point from, Point to, std::chrono::milliseconds duration, int steps) override {
    return screen_->swipe(from, to, duration, steps);
  }

 private:
  std::shared_ptr<Screen> screen_;
};

std::unique_ptr<DisplayCapture> Screen::displayCapture() {
  return std::make_unique<MemoryDisplayCapture>(shared_from_this());
}

std::unique_ptr<TouchInjector> Screen::touchInjector() {
  return std::make_unique<MemoryTouchInjector>(shared_from_this());
}

constexpr Size kMaxPanel{8192, 8192};

}  // namespace

std::shared_ptr<MemoryScreen> MemoryScreen::create(const MemoryScreenConfig& config) {
  const Size s = config.panelSize;
  if (s.empty() || s.width > kMaxPanel.width || s.height > kMaxPanel.height) return nullptr;
  return std::make_shared<Screen>(config);
}

}  // namespace printcast::hal
