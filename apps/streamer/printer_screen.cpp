// SPDX-License-Identifier: MIT
#include "printer_screen.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "printcast/bsp/devices.h"
#include "printcast/codecs/convert.h"
#include "printcast/codecs/jpeg.h"
#include "printcast/codecs/x264_encoder.h"
#include "printcast/hal/thread_name.h"

namespace printcast::streamer {

using hal::Clock;
using hal::Timestamp;
using namespace std::chrono_literals;

namespace {
constexpr size_t kMaxTouchJobs = 8;
// The display's H.264 encoder gives its memory back this long after the last RTSP display client.
constexpr auto kEncoderIdleRelease = 10s;
// How long after a touch the display is grabbed at the board's maximum rate (printers redraw a
// pressed button within a few hundred milliseconds).
constexpr auto kTouchFollowUp = 1500ms;
}  // namespace

PrinterScreen::PrinterScreen(const Settings& settings, const bsp::Board& board, LiveSettings& live)
    : board_(board), live_(live) {
  if (settings.displayEnabled) {
    auto screen = bsp::openScreen(board, {settings.displayNode, settings.touchName, ""});
    display_ = std::move(screen.display);
    touch_ = std::move(screen.touch);
    displayError_ = screen.displayError;
    touchError_ = screen.touchError;
  } else {
    displayError_ = "display capture is disabled (display_enabled = false)";
    touchError_ = "display is disabled";
  }
}

hal::Result<std::unique_ptr<PrinterScreen>> PrinterScreen::open(const Settings& settings,
                                                                const bsp::Board& board, LiveSettings& live) {
  std::unique_ptr<PrinterScreen> s(new PrinterScreen(settings, board, live));
  if (s->display_) {
    s->jpeg_ = codecs::createJpegEncoder();
    hal::EncoderConfig enc;
    enc.size = s->uprightSize();
    enc.jpegQuality = settings.jpegQuality;
    if (auto st = s->jpeg_->configure(enc); !st) return st.error();
    auto pool = hal::FramePool::create(hal::fourcc::kI420, s->uprightSize(), 3);
    if (!pool) return pool.error();
    s->uprightPool_ = *pool;
    PrinterScreen* self = s.get();
    s->stream_.setOnSubscribe([self] { self->wake(); });
    s->h264_ = codecs::createX264Encoder();
    s->rtspStream_.setOnSubscribe([self] {
      self->keyframeWanted_ = true;  // every RTSP client starts on a fresh IDR
      self->wake();
    });
  } else {
    spdlog::warn("display: {}", s->displayError_);
  }
  if (!s->touch_) spdlog::warn("touch: {}", s->touchError_);
  return s;
}

PrinterScreen::~PrinterScreen() { stop("streamer is stopping"); }

void PrinterScreen::start() {
  if (running_.exchange(true)) return;
  if (display_) {
    displayThread_ = std::thread([this] {
      hal::nameThisThread("display");
      displayLoop();
    });
  }
  if (touch_) {
    touchThread_ = std::thread([this] {
      hal::nameThisThread("touch");
      touchLoop();
    });
  }
}

void PrinterScreen::stop(const std::string& reason) {
  {
    std::lock_guard lock(mutex_);
    std::lock_guard touchLock(touchMutex_);
    running_ = false;
    closed_ = true;
  }
  wake_.notify_all();
  touchWake_.notify_all();
  if (displayThread_.joinable()) displayThread_.join();
  if (touchThread_.joinable()) touchThread_.join();
  std::deque<TouchJob> left;
  {
    std::lock_guard lock(touchMutex_);
    left.swap(touchJobs_);
  }
  for (auto& job : left) job.done(hal::Status(hal::Errc::Unsupported, reason));
  snapshots_.failAll(reason);
  stream_.closeAll();
}

hal::Size PrinterScreen::uprightSize() const {
  return board_.display.orientation.apply(display_ ? display_->info().size : board_.display.nativeSize);
}

void PrinterScreen::onStreamClient() {
  newClient_ = true;
  wake();
}

void PrinterScreen::wake() {
  // Under the mutex: a wake between the display thread's predicate check and its sleep is not lost.
  {
    std::lock_guard lock(mutex_);
    wakeRequested_ = true;
  }
  wake_.notify_all();
}

void PrinterScreen::followTouch() {
  followTouchUntil_ = (Clock::now() + kTouchFollowUp).time_since_epoch().count();
  wake();
}

void PrinterScreen::expireWaiters() { snapshots_.expire(3s, "no display frame within 3 s"); }

bool PrinterScreen::watched() const {
  return stream_.clientCount() > 0 || snapshots_.hasWaiters() || rtspStream_.clientCount() > 0;
}

// ----------------------------------------------------------------------------- display

void PrinterScreen::displayLoop() {
  uint64_t lastSequence = UINT64_MAX;
  hal::PacketPtr cached;
  Timestamp lastPublish{};
  while (running_) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, 500ms, [this] { return !running_ || watched(); });
    }
    if (!running_) break;
    releaseIdleH264();
    if (!watched()) continue;  // nobody watches
    if (!live_.displayEnabled) {
      snapshots_.failAll("display capture is disabled (display_enabled = false)");
      continue;
    }
    if (live_.reconfigureDisplay.exchange(false)) {
      hal::EncoderConfig enc;
      enc.size = uprightSize();
      enc.jpegQuality = live_.jpegQuality;
      if (auto st = jpeg_->configure(enc); !st) {
        spdlog::warn("settings: display JPEG quality: {}", st.error().describe());
      }
      cached.reset();  // re-encode the current screen at the new quality
    }
    const bool followingTouch = Clock::now().time_since_epoch().count() < followTouchUntil_.load();
    const int fps = std::max(1, followingTouch ? std::max(live_.displayFps.load(), board_.display.maxFps)
                                               : live_.displayFps.load());
    const auto interval =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double>(1.0 / fps));

    const Timestamp tickStart = Clock::now();
    auto grab = display_->grab();
    if (!grab) {
      if (grab.code() != hal::Errc::Again) {
        spdlog::warn("display {}: {}", display_->info().name, grab.error().describe());
        snapshots_.failAll("display unavailable: " + grab.error().describe());
      }
    } else {
      const bool changed = grab->sequence() != lastSequence || !cached;
      const bool joined = newClient_.exchange(false);
      const bool keepAlive = tickStart - lastPublish >= 2s;
      hal::Frame uprightFrame;  // converted at most once per tick, when an encoder needs it
      auto upright = [&]() -> hal::Result<hal::Frame> {
        if (uprightFrame.valid()) return uprightFrame;
        auto r = codecs::convertToI420(*grab, board_.display.orientation, *uprightPool_);
        if (r) uprightFrame = *r;
        return r;
      };
      if (changed) {
        if (auto picture = upright()) {
          auto packet = jpeg_->encode(*picture);
          if (packet) {
            cached = *packet;
            lastSequence = grab->sequence();
          } else {
            spdlog::warn("display jpeg: {}", packet.error().describe());
          }
        } else {
          spdlog::warn("display convert: {}", picture.error().describe());
        }
      }
      if (rtspStream_.clientCount() > 0) encodeH264(changed, tickStart, upright);
      if (cached) {
        snapshots_.publish(cached);
        // Unchanged pixels are not encoded again; the stream only re-sends the last JPEG for
        // a client that just joined and as a keep-alive.
        if (changed || joined || keepAlive) {
          stream_.publish(cached);
          rate_.tick();
          lastPublish = tickStart;
        }
      }
    }
    std::unique_lock lock(mutex_);
    wake_.wait_until(lock, tickStart + interval,
                     [this] { return !running_ || snapshots_.hasWaiters() || wakeRequested_; });
    wakeRequested_ = false;
  }
}

// One display picture for rtsp://.../display: when the screen changed, a client asked for a
// keyframe, or a second passed (keep-alive for a static screen). Display thread.
void PrinterScreen::encodeH264(bool changed, Timestamp now,
                               const std::function<hal::Result<hal::Frame>()>& upright) {
  h264LastWanted_ = now;
  const bool keyframe = keyframeWanted_.exchange(false);
  if (!changed && !keyframe && now - h264LastFrame_ < 1s) return;
  if (!h264Open_) {
    hal::EncoderConfig enc;
    enc.size = uprightSize();
    enc.fps = std::max(1, live_.displayFps.load());
    enc.bitrateKbps = std::min(live_.bitrateKbps.load(), 2000);
    enc.gopFrames = 2 * enc.fps;  // an IDR every ~2 s at display_fps (a joining client asks for one anyway)
    enc.fullRange = false;
    if (auto st = h264_->configure(enc); !st) {
      spdlog::warn("display h264: {}", st.error().describe());
      return;
    }
    h264Open_ = true;
  }
  auto picture = upright();
  if (!picture) return;
  if (keyframe) h264_->requestKeyframe();
  auto packet = h264_->encode(*picture);
  if (!packet) {
    if (packet.code() != hal::Errc::Again) spdlog::warn("display h264: {}", packet.error().describe());
    return;
  }
  // The grab's timestamp may repeat for an unchanged screen; the RTP clock wants the send time.
  auto stamped = std::make_shared<hal::Packet>(**packet);
  stamped->pts = now;
  stamped->sequence = h264Frames_++;
  rtspStream_.publish(stamped);
  h264LastFrame_ = now;
}

void PrinterScreen::releaseIdleH264() {
  if (!h264Open_ || rtspStream_.clientCount() > 0) return;
  if (Clock::now() - h264LastWanted_ < kEncoderIdleRelease) return;
  h264_->release();
  h264Open_ = false;
}

// ----------------------------------------------------------------------------- touch

hal::Status PrinterScreen::tap(double x, double y, std::chrono::milliseconds hold,
                               std::function<void(const hal::Status&)> done) {
  if (!touch_) return hal::Status(hal::Errc::Unsupported, "no touch panel: " + touchError_);
  const hal::Size view = uprightSize();
  if (view.empty())
    return hal::Status(hal::Errc::Unsupported, "no display size to map touches from: " + displayError_);
  if (x < 0 || y < 0 || x > view.width || y > view.height) {
    return hal::Status(hal::Errc::InvalidArgument,
                       fmt::format("point ({}, {}) is outside the {} display", x, y, view.str()));
  }
  // viewPos (upright image) -> panelPos via the board's touch transform, then scaled to the
  // panel's raw range when it differs from the display's size.
  const hal::Point viewPos{static_cast<int>(std::lround(x)), static_cast<int>(std::lround(y))};
  const hal::Point mapped = board_.touch.transform.apply(viewPos, view);
  const hal::Size mappedSpace = board_.touch.transform.apply(view);
  const hal::Size range = touch_->info().range;  // the board's range, or the device's own (TouchKind::Auto)
  const hal::Point panelPos{
      static_cast<int>(std::lround(static_cast<double>(mapped.x) * range.width / mappedSpace.width)),
      static_cast<int>(std::lround(static_cast<double>(mapped.y) * range.height / mappedSpace.height))};
  {
    std::lock_guard lock(touchMutex_);
    if (closed_) return hal::Status(hal::Errc::Unsupported, "streamer is stopping");
    if (touchJobs_.size() >= kMaxTouchJobs)
      return hal::Status(hal::Errc::Busy, "touch queue full, try again");
    touchJobs_.push_back(TouchJob{panelPos, hold, std::move(done)});
  }
  touchWake_.notify_one();
  spdlog::debug("touch: view ({}, {}) -> panel ({}, {})", x, y, panelPos.x, panelPos.y);
  return {};
}

void PrinterScreen::touchLoop() {
  while (true) {
    TouchJob job;
    {
      std::unique_lock lock(touchMutex_);
      touchWake_.wait(lock, [this] { return !running_ || !touchJobs_.empty(); });
      if (touchJobs_.empty()) return;  // stopping
      job = std::move(touchJobs_.front());
      touchJobs_.pop_front();
    }
    // Grab at once and fast from the press on (some screens react to it), and again from the
    // release (most buttons react to that).
    const hal::Status st = touch_->tap(job.panelPos, job.hold, [this] { followTouch(); });
    followTouch();
    if (st) {
      ++touches_;
    } else {
      spdlog::warn("touch: {}", st.error().describe());
    }
    job.done(st);
  }
}

}  // namespace printcast::streamer
