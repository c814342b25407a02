// SPDX-License-Identifier: MIT
// Streamer engine: device threads, encoders on demand, endpoints on three ports.
#include "streamer.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "auto_skip.h"
#include "camera_controls.h"
#include "cpu_meter.h"
#include "h264_on_demand_decoder.h"
#include "lan_mode.h"
#include "moonraker_client.h"
#include "printcast/bsp/devices.h"
#include "printcast/codecs/convert.h"
#include "printcast/codecs/h264.h"
#include "printcast/codecs/h264_decoder.h"
#include "printcast/codecs/h264_encoders.h"
#include "printcast/codecs/jpeg.h"
#include "printcast/codecs/x264_encoder.h"
#include "printcast/hal/no_signal.h"
#include "printcast/hal/test_pattern.h"
#include "printcast/hal/v4l2.h"
#include "printcast/transport/fanout.h"
#include "printcast/transport/flv_pull.h"
#include "printcast/transport/hls_output.h"
#include "printcast/transport/http_auth.h"
#include "printcast/transport/http_range.h"
#include "printcast/transport/http_server.h"
#include "printcast/transport/jpeg_push.h"
#include "printcast/transport/mjpeg.h"
#include "printcast/transport/mjpeg_pull.h"
#include "printcast/transport/rtmp_publish.h"
#include "printcast/transport/rtsp_client.h"
#include "printcast/transport/rtsp_publish.h"
#include "printcast/transport/rtsp_server.h"
#include "printcast/transport/shm_ring.h"
#include "printcast/transport/websocket.h"
#include "printcast/transport/websocket_hub.h"
#include "printcast/transport/ws_stream.h"
#include "timelapse_recorder.h"
#include "timelapse_store.h"
#include "web_assets.h"

namespace printcast::streamer {

namespace {

using hal::Clock;
using hal::Timestamp;
using transport::DeferredResponse;
using transport::HttpRequest;
using transport::HttpResponse;
using namespace std::chrono_literals;

// 415 for a state-changing request whose body does not say what it is. Requiring
// application/json keeps cross-origin pages out twice: they cannot send it without a CORS
// preflight, which the control port refuses (transport/http_access.h).
HttpResponse unsupportedMediaType(const HttpRequest& req, const char* expected) {
  const std::string got = req.header("content-type");
  return HttpResponse::error(415, fmt::format("send the body with Content-Type: {} (got {})", expected,
                                              got.empty() ? "none" : "'" + got + "'"));
}

// Frames per second over the last two seconds.
class RateMeter {
 public:
  void tick(Timestamp now = Clock::now()) {
    std::lock_guard lock(mutex_);
    times_.push_back(now);
    trim(now);
    ++total_;
  }
  double fps() const {
    std::lock_guard lock(mutex_);
    const Timestamp now = Clock::now();
    size_t n = 0;
    for (auto t : times_) n += (now - t <= kWindow) ? 1 : 0;
    return static_cast<double>(n) / std::chrono::duration<double>(kWindow).count();
  }
  uint64_t total() const {
    std::lock_guard lock(mutex_);
    return total_;
  }

 private:
  static constexpr auto kWindow = 2s;
  void trim(Timestamp now) {
    while (!times_.empty() && now - times_.front() > kWindow) times_.pop_front();
  }
  mutable std::mutex mutex_;
  std::deque<Timestamp> times_;
  uint64_t total_ = 0;
};

HttpResponse jpegResponse(const hal::PacketPtr& jpeg) {
  HttpResponse r;
  r.contentType = "image/jpeg";
  r.body.assign(reinterpret_cast<const char*>(jpeg->data.data()), jpeg->data.size());
  r.headers.emplace_back("Cache-Control", "no-store, no-cache, must-revalidate, max-age=0");
  r.headers.emplace_back(
      "X-Timestamp",
      fmt::format("{:.6f}", std::chrono::duration<double>(jpeg->pts.time_since_epoch()).count()));
  return r;
}

void addNoCache(HttpResponse& r) {
  r.headers.emplace_back("Cache-Control", "no-store, no-cache, must-revalidate, proxy-revalidate, max-age=0");
  r.headers.emplace_back("Pragma", "no-cache");
  r.headers.emplace_back("Expires", "Mon, 3 Jan 2000 12:34:56 GMT");
}

// The newest JPEG of a source and the requests waiting for the next one.
class SnapshotBoard {
 public:
  // A fresh-enough JPEG answers at once; otherwise the request waits for the next one.
  HttpResponse request(std::chrono::milliseconds maxAge) {
    std::lock_guard lock(mutex_);
    if (latest_ && Clock::now() - publishedAt_ <= maxAge) return jpegResponse(latest_);
    HttpResponse r;
    r.deferred = std::make_shared<DeferredResponse>();
    waiters_.push_back(Waiter{r.deferred, Clock::now()});
    return r;
  }
  bool hasWaiters() const {
    std::lock_guard lock(mutex_);
    return !waiters_.empty() || !packetWaiters_.empty();
  }
  // The next JPEG published (never one from before the call), for in-process consumers such as
  // the timelapse. Blocks up to `timeout`. Errors: Timeout (with `why()` of the source).
  hal::Result<hal::PacketPtr> next(std::chrono::milliseconds timeout) {
    auto promise = std::make_shared<std::promise<hal::PacketPtr>>();
    auto future = promise->get_future();
    {
      std::lock_guard lock(mutex_);
      packetWaiters_.push_back(promise);
    }
    if (future.wait_for(timeout) == std::future_status::ready) {
      auto packet = future.get();
      if (packet) return packet;
      return hal::Result<hal::PacketPtr>(hal::Errc::Timeout, "no JPEG: the source is stopping");
    }
    std::lock_guard lock(mutex_);
    std::erase(packetWaiters_, promise);
    return hal::Result<hal::PacketPtr>(hal::Errc::Timeout,
                                       fmt::format("no JPEG within {} ms", timeout.count()));
  }
  void publish(const hal::PacketPtr& jpeg) {
    std::vector<Waiter> waiters;
    std::vector<std::shared_ptr<std::promise<hal::PacketPtr>>> packetWaiters;
    {
      std::lock_guard lock(mutex_);
      latest_ = jpeg;
      publishedAt_ = Clock::now();
      waiters.swap(waiters_);
      packetWaiters.swap(packetWaiters_);
    }
    for (auto& w : waiters) w.response->complete(jpegResponse(jpeg));
    for (auto& p : packetWaiters) p->set_value(jpeg);
  }
  // Answer requests waiting longer than `timeout` with 503 and `reason`.
  void expire(std::chrono::milliseconds timeout, const std::string& reason) {
    std::vector<Waiter> expired;
    {
      std::lock_guard lock(mutex_);
      const auto now = Clock::now();
      std::erase_if(waiters_, [&](const Waiter& w) {
        if (now - w.since < timeout) return false;
        expired.push_back(w);
        return true;
      });
    }
    for (auto& w : expired) w.response->complete(HttpResponse::error(503, reason));
  }
  void failAll(const std::string& reason) {
    expire(0ms, reason);
    std::vector<std::shared_ptr<std::promise<hal::PacketPtr>>> packetWaiters;
    {
      std::lock_guard lock(mutex_);
      packetWaiters.swap(packetWaiters_);
    }
    for (auto& p : packetWaiters) p->set_value(nullptr);
  }

 private:
  struct Waiter {
    std::shared_ptr<DeferredResponse> response;
    Timestamp since;
  };
  mutable std::mutex mutex_;
  hal::PacketPtr latest_;
  Timestamp publishedAt_{};
  std::vector<Waiter> waiters_;
  std::vector<std::shared_ptr<std::promise<hal::PacketPtr>>> packetWaiters_;
};

struct TouchJob {
  hal::Point panelPos;
  std::chrono::milliseconds hold{100};
  double viewX = 0;
  double viewY = 0;
  std::shared_ptr<DeferredResponse> response;
};

}  // namespace

struct Streamer::Impl {
  Impl(const Settings& s, const bsp::Board& b) : settings(s), board(&b), applied(s), flv(s.fps), fmp4(s.fps) {
    live.h264Enabled = s.h264Enabled;
    live.bitrateKbps = s.bitrateKbps;
    live.frameSkip = skipIntervalForPercent(s.h264FrameratePercent);
    live.autoSkip = s.autoSkip;
    live.targetCpu = s.targetCpu;
    live.jpegQuality = s.jpegQuality;
    live.mjpegFps = s.mjpegFps;
    live.displayEnabled = s.displayEnabled;
    live.displayFps = s.displayFps;
  }
  // The settings at start; never changed afterwards (threads read them without a lock).
  Settings settings;
  const bsp::Board* board = nullptr;
  // The settings as changed by the control API (GET/POST /api/settings), guarded by
  // settingsMutex; the threads read the runtime ones from `live`.
  Settings applied;
  std::mutex settingsMutex;
  struct Live {
    std::atomic<bool> h264Enabled{true};
    std::atomic<int> bitrateKbps{512};
    std::atomic<int> frameSkip{1};  // the frame-rate slider's skip interval
    std::atomic<bool> autoSkip{false};
    std::atomic<int> targetCpu{60};
    std::atomic<int> jpegQuality{80};
    std::atomic<int> mjpegFps{10};
    std::atomic<bool> displayEnabled{true};
    std::atomic<int> displayFps{5};
    std::atomic<bool> reconfigureCamera{false};   // camera thread: re-apply bitrate/JPEG quality
    std::atomic<bool> reconfigureDisplay{false};  // display thread: re-apply JPEG quality
  } live;
  std::atomic<bool> running{true};
  Timestamp startedAt = Clock::now();

  // Camera side. `camera` is replaced only by the camera thread, under cameraMutex; the camera
  // thread reads it without the lock, other threads (the control API) only under it.
  std::unique_ptr<hal::Capture> camera;
  std::mutex cameraMutex;
  std::string cameraName;                // guarded by stateMutex
  std::string cameraState = "starting";  // guarded by stateMutex
  // The name a lost camera is reopened by (its by-id link or "bus:<bus_info>"), remembered from
  // the first open: device numbers change on replug, this does not. Guarded by stateMutex.
  std::string cameraStableName;
  hal::Size cameraActiveSize;  // what the open camera delivers (empty before the first open); stateMutex
  std::string streamSizeShown, snapshotSizeShown;  // streamSize, snapshotSize for /status; stateMutex
  hal::FourCC cameraActiveFormat;                  // and in which format; stateMutex
  // H.264 cameras: the camera's own IDR interval, measured (its GOP is what viewers wait for).
  std::atomic<int64_t> cameraGopMs{0};
  Timestamp lastCameraIdr{};  // camera thread
  hal::FourCC cameraFormat;   // what the camera delivers (camera thread)
  hal::Size cameraSize;       // camera thread
  std::atomic<uint64_t> cameraReconnects{0};
  std::atomic<uint64_t> noSignalFrames{0};
  std::shared_ptr<hal::FramePool> i420Pool;  // YUYV/NV12/MJPEG -> I420 for the encoders
  // camera_rotation / camera_flip_*: applied once per frame while converting to I420 (libyuv).
  // An MJPEG camera's JPEGs are then decoded into decodePool first, and re-encoded for /stream
  // and /snapshot instead of passed through.
  hal::Transform pictureTransform;
  std::shared_ptr<hal::FramePool> decodePool;
  hal::Size pictureSize;  // the camera's picture with pictureTransform applied (camera thread)
  // stream_resolution / snapshot_resolution (pictureTransform applied): what the MJPEG stream and
  // the H.264 encoder get, and what /snapshot and the timelapse get. A size other than
  // pictureSize is scaled into its pool (libyuv); snapshots at their own size get their own JPEG
  // encoder, used only while someone waits for a snapshot. Camera thread.
  hal::Size streamSize;
  hal::Size snapshotSize;
  std::shared_ptr<hal::FramePool> streamPool;
  std::shared_ptr<hal::FramePool> snapshotPool;
  std::unique_ptr<hal::Encoder> snapshotJpeg;
  std::shared_ptr<hal::FramePool> noSignalPool;  // the "no signal" picture
  hal::Size encoderSize;                         // what jpeg/h264 are configured for (camera thread)
  int encoderFps = 0;
  std::shared_ptr<const hal::CodecConfig> cameraH264Config;  // H.264 cameras: SPS/PPS seen last
  // H.264 cameras: pictures for the JPEG outputs, decoded only while one wants them (camera
  // thread; stats() from any). Per camera open: decode errors are logged once, then once a
  // minute with a count; "no JPEG possible" (no decoder, a 10-bit stream) once.
  H264OnDemandDecoder h264Pictures;
  Timestamp h264DecodeErrorLoggedAt{};
  uint64_t h264DecodeErrorsUnlogged = 0;
  bool h264NoJpegLogged = false;
  CameraControlStore controlStore{settings.cameraControlsFile};  // after `settings`: initialised from it
  std::unique_ptr<hal::Encoder> jpeg;
  // H.264: the first of the board's backends (or --encoder's) that works here; see encoderStatus().
  std::unique_ptr<codecs::SelectingEncoder> h264;
  std::vector<std::string> h264Order;  // backend names in the order tried
  // The H.264 encoder gives its working memory back (Encoder::release) once nobody has wanted
  // H.264 for kEncoderIdleRelease; the next viewer's first frame reopens it (an IDR, the same
  // SPS/PPS). Camera thread only.
  static constexpr auto kEncoderIdleRelease = std::chrono::seconds(10);
  Timestamp h264LastWanted{};
  std::atomic<bool> h264Open{false};      // written by the camera thread, read by /api/stats
  std::atomic<uint64_t> h264Releases{0};  // idle releases so far
  transport::MjpegStream mjpeg;
  transport::FlvStream flv;
  transport::Fmp4Stream fmp4;                      // /stream.mp4
  transport::RtspStream rtspStream;                // rtsp://HOST:8554/stream
  transport::RtspStream displayRtspStream;         // rtsp://HOST:8554/display (the printer's screen)
  transport::WsStream wsStream;                    // /ws and the reCamera port: one AU per message
  std::unique_ptr<transport::HlsOutput> hls;       // /hls/stream.m3u8 (segments in memory)
  std::unique_ptr<transport::WebSocketHub> wsHub;  // serves every upgraded WebSocket
  // --source ws-push: cameras push JPEGs to /ingest on the stream port (its own WebSocket hub).
  std::shared_ptr<transport::JpegPushIngest> ingest;
  SnapshotBoard snapshots;
  RateMeter cameraRate, mjpegRate, h264Rate;
  std::atomic<int> skipInterval{1};
  std::atomic<bool> keyframeWanted{false};

  // Every consumer of the camera's H.264 access units (/flv, and each output added later: fMP4,
  // HLS, WebSocket, the shared-memory ring). The list is fixed in start(), before the threads
  // run. H.264 is encoded only while at least one output wants it; a new client of any output
  // sets keyframeWanted so it starts on a fresh IDR instead of waiting a whole GOP.
  struct H264Output {
    std::string name;
    std::function<bool()> wanted;                        // has clients/readers now
    std::function<void(const hal::PacketPtr&)> publish;  // camera thread
    // End every client's stream (H.264 switched off in the settings): players see the end at
    // once instead of a stall. Empty for outputs without connections (the ring).
    std::function<void()> endClients = {};
  };
  std::vector<H264Output> h264Outputs;

  // Shared-memory rings for local consumers (docs/ring.md); null when off or not creatable.
  // Published from the camera thread; their readers are counted from any thread.
  std::unique_ptr<transport::ShmRing> h264Ring, jpegRing;
  std::string ringError;
  // Every stream with HTTP/WebSocket/RTSP clients, by the name /status, /api/stats and /metrics use.
  std::vector<std::pair<const char*, const transport::Fanout*>> clientStreams() const {
    return {{"mjpeg", &mjpeg}, {"flv", &flv},         {"fmp4", &fmp4},
            {"ws", &wsStream}, {"rtsp", &rtspStream}, {"display", &displayStream}};
  }
  nlohmann::json clientCounts() const {
    nlohmann::json counts = nlohmann::json::object();
    size_t total = 0;
    for (const auto& [name, f] : clientStreams()) {
      counts[name] = f->clientCount();
      total += f->clientCount();
    }
    counts["total"] = total;
    return counts;
  }
  bool jpegRingWanted() const { return jpegRing && jpegRing->liveReaders() > 0; }
  bool h264Wanted() const {
    if (!live.h264Enabled) return false;
    return std::any_of(h264Outputs.begin(), h264Outputs.end(),
                       [](const H264Output& o) { return o.wanted(); });
  }
  // h264Wanted(), and the encoder's memory released after kEncoderIdleRelease without demand.
  // Camera thread.
  bool encodeH264Now() {
    const Timestamp now = Clock::now();
    if (h264Wanted()) {
      h264LastWanted = now;
      h264Open = true;
      return true;
    }
    if (h264Open && now - h264LastWanted >= kEncoderIdleRelease) {
      h264->release();
      h264Open = false;
      ++h264Releases;
    }
    return false;
  }
  void publishH264(const hal::PacketPtr& packet) {
    for (const auto& o : h264Outputs) o.publish(packet);
    h264Rate.tick();
  }

  // Display side.
  std::unique_ptr<hal::DisplayCapture> display;
  std::unique_ptr<hal::TouchInjector> touch;
  std::string displayError, touchError;
  std::unique_ptr<hal::Encoder> displayJpeg;
  std::shared_ptr<hal::FramePool> uprightPool;
  // rtsp://HOST:8554/display: the screen as H.264 (x264: a small picture at a low rate, and the
  // board's hardware encoder stays the camera's), encoded only while an RTSP client plays it, at
  // most at display_fps and at least once a second when the screen does not change (MediaMTX
  // drops a source after 10 s without packets, go2rtc after 5 s). Display thread.
  std::unique_ptr<hal::Encoder> displayH264;
  bool displayH264Open = false;
  Timestamp displayH264LastFrame{};
  Timestamp displayH264LastWanted{};
  uint64_t displayH264Frames = 0;
  std::atomic<bool> displayKeyframeWanted{false};
  transport::MjpegStream displayStream;
  SnapshotBoard displaySnapshots;
  RateMeter displayRate;
  std::atomic<bool> displayNewClient{false};
  std::mutex displayMutex;
  std::condition_variable displayWake;

  // Touch worker.
  std::mutex touchMutex;
  std::condition_variable touchWake;
  std::deque<TouchJob> touchJobs;
  std::atomic<uint64_t> touchCount{0};
  std::atomic<uint64_t> settingsChanges{0};
  static constexpr size_t kMaxTouchJobs = 8;

  // Housekeeping.
  std::atomic<double> systemCpu{0};
  std::atomic<double> processCpu{0};
  std::mutex stateMutex;
  std::mutex stopMutex;
  std::condition_variable stopWake;

  std::unique_ptr<transport::HttpServer> streamServer, controlServer, flvServer, wsServer, ingestServer;
  std::unique_ptr<transport::RtspServer> rtspServer;  // after rtspStream: stopped before it goes
  // --publish, one per target in the order given: rtsp:// (a client of rtspStream) or rtmp:// (of
  // flv). After both streams: stopped before they go.
  struct PublishTarget {
    std::unique_ptr<transport::RtspPublisher> rtsp;
    std::unique_ptr<transport::RtmpPublisher> rtmp;
  };
  std::vector<PublishTarget> publishers;
  std::vector<std::thread> threads;

  // --- timelapse recording (feat-tlrec; docs/timelapse.md) ---
  // timelapseMutex guards the two objects and timelapseSettings (the timelapse_* and moonraker_*
  // keys in force). Neither object's threads take it, so stopping them under it cannot deadlock.
  std::mutex timelapseMutex;
  Settings timelapseSettings;
  bool timelapseClosed = false;                  // stop() ran: nothing starts again
  std::unique_ptr<TimelapseRecorder> timelapse;  // null when timelapse_enabled is false
  std::unique_ptr<MoonrakerClient> moonraker;    // for the timelapse and/or the webcam entry
  std::mutex webcamMutex;
  std::string webcamAddress;  // the address last registered with Moonraker (guarded by webcamMutex)
  void startTimelapse(const Settings& s);  // timelapseMutex held
  void stopTimelapse();                    // timelapseMutex held
  // Apply changed timelapse_* / moonraker_* keys live (for POST /api/timelapse/settings): hands
  // them to the timelapse control thread, which restarts the client and the recorder (stopping
  // them may wait for a capture or a connection attempt: never inside an HTTP callback). A print
  // in progress continues in its working folder.
  void applyTimelapseSettings(const Settings& next);
  void timelapseControlLoop();
  std::mutex timelapseApplyMutex;
  std::condition_variable timelapseApplyWake;
  std::optional<Settings> timelapsePending;  // guarded by timelapseApplyMutex
  bool timelapseApplyStop = false;           // guarded by timelapseApplyMutex
  std::thread timelapseControl;
  void registerWebcam(MoonrakerClient& client, bool onlyIfAddressChanged);
  HttpResponse timelapseStatusRequest(const HttpRequest& req);
  // --- end of timelapse recording ---

  // --- helpers ---
  // The opened display's own size: a generic board (DisplayKind::Auto) knows it only from the device.
  hal::Size uprightDisplaySize() const {
    return board->display.orientation.apply(display ? display->info().size : board->display.nativeSize);
  }
  void setCameraState(std::string s) {
    std::lock_guard lock(stateMutex);
    cameraState = std::move(s);
  }
  std::string getCameraState() {
    std::lock_guard lock(stateMutex);
    return cameraState;
  }
  // Wait up to `d` unless stopping; returns false when stopping.
  bool pause(std::chrono::milliseconds d) {
    std::unique_lock lock(stopMutex);
    stopWake.wait_for(lock, d, [this] { return !running.load(); });
    return running.load();
  }

  hal::Status openCamera();
  hal::Status configureEncoders(hal::Size size, int fps);
  void cameraLoop();
  void onCameraFrame(const hal::Frame& frame, Timestamp& nextJpegDue);
  void onH264CameraFrame(const hal::Frame& frame, Timestamp& nextJpegDue);
  // Whether a JPEG output wants camera pictures now: MJPEG clients, snapshot waiters (the
  // timelapse too), readers of the JPEG ring.
  bool jpegWanted() const { return mjpeg.clientCount() > 0 || snapshots.hasWaiters() || jpegRingWanted(); }
  // Serve the JPEG outputs a camera picture stamped `timestamp`: when one wants it (MJPEG and
  // the ring at mjpeg_fps, on the schedule kept in nextJpegDue; a snapshot waiter at once),
  // `makeJpeg` is called once and its JPEG published to those that want it. With
  // `makeSnapshot` (snapshot_resolution differs from the stream's), snapshot waiters get its
  // JPEG instead. Camera thread.
  using JpegMaker = std::function<hal::Result<hal::PacketPtr>()>;
  void serveJpegOutputs(Timestamp timestamp, Timestamp& nextJpegDue, const JpegMaker& makeJpeg,
                        const JpegMaker& makeSnapshot = {});
  void publishNoSignal(const std::string& reason);
  void loseCamera(const hal::Error& error);
  HttpResponse cameraControls(const HttpRequest& req);
  std::string getCameraName() {
    std::lock_guard lock(stateMutex);
    return cameraName;
  }
  void displayLoop();
  bool displayWatched() const {
    return displayStream.clientCount() > 0 || displaySnapshots.hasWaiters() ||
           displayRtspStream.clientCount() > 0;
  }
  void encodeDisplayH264(bool changed, Timestamp now,
                         const std::function<hal::Result<hal::Frame>()>& upright);
  void releaseIdleDisplayH264();
  void touchLoop();
  void housekeepingLoop();
  HttpResponse handleStream(const HttpRequest& req);
  HttpResponse handleControl(const HttpRequest& req);
  HttpResponse handleFlvPort(const HttpRequest& req);
  HttpResponse mjpegResponse(transport::MjpegStream& stream);
  HttpResponse flvResponse(bool slicerHeaders);
  HttpResponse fmp4Response();
  HttpResponse wsResponse(const HttpRequest& req, bool timestampTrailer);
  HttpResponse handleWsPort(const HttpRequest& req);
  HttpResponse touchRequest(const HttpRequest& req);
  nlohmann::json status();
  nlohmann::json cameraStatus();
  nlohmann::json stats();
  nlohmann::json ustreamerState();
  std::string metrics();
  HttpResponse healthz();
  HttpResponse settingsRequest(const HttpRequest& req);
  // Save the `keys` of `next` (as `json` gives them) to the config file, when there is one.
  // Errors: what saveSettingsFile() returns.
  hal::Status persistSettings(const Settings& next, const std::string& json,
                              const std::vector<std::string>& keys);

  // --- timelapse manager (timelapse_store.h): /api/timelapse/* on the control port ---
  TimelapseStore timelapseStore{timelapseStorageOptions(settings, *board), settings.timelapseStorage};
  // Called (under settingsMutex) after POST /api/timelapse/settings applied a change, with the
  // new settings: the recorder re-reads its timelapse_ and moonraker_ keys here.
  std::function<void(const Settings&)> onTimelapseSettings;
  HttpResponse timelapseRequest(const HttpRequest& req);
  HttpResponse timelapseSettingsRequest(const HttpRequest& req);
  HttpResponse timelapseFileResponse(const HttpRequest& req, hal::Result<TimelapseFile> file,
                                     const std::string& contentType, bool ranges);
  // --- end timelapse manager ---
  // The streams this streamer serves on the stream port, for pages choosing a player:
  // {"name","path","type"}; type is "mjpeg", "jpeg", "flv", "fmp4", "hls" or "ws-h264".
  // Filled in start(); every new output adds its entry there.
  std::vector<nlohmann::json> outputs;
  nlohmann::json ringStats();
  nlohmann::json h264DecoderStats() const;
  nlohmann::json rtspStats() const;
  nlohmann::json encoderStatus() const;
  // go-klipper mode: Anycubic's LAN printing (lan_mode.h), asked at start (opened when
  // autolanmode) and switched by POST /api/lan_mode; null client in vanilla-klipper. The state is
  // "unknown" until the first answer, then "open", "closed" or "unavailable: <why>". The calls
  // block: they run on the blocking worker, never on a server thread.
  std::unique_ptr<LanModeClient> lanMode;
  mutable std::mutex lanModeMutex;
  std::string lanModeState = "unknown";
  std::string lanModeError;
  void setLanModeState(const hal::Result<bool>& state);
  nlohmann::json lanModeStatus() const;
  HttpResponse lanModeRequest(const HttpRequest& req);
  nlohmann::json publishStatus() const;
  // The H.264 decoder's name ("libavcodec 59.37.100"), or "not-built".
  const std::string h264DecoderBackend = [] {
    auto decoder = codecs::createH264Decoder();
    return decoder ? (*decoder)->name() : std::string("not-built");
  }();
  nlohmann::json hlsStats();
  // The control port's file work (see handleControl). Declared last: destroyed first, while
  // everything its jobs use is still there; stop() stops it after the servers.
  std::unique_ptr<transport::BlockingWorker> blockingWork =
      std::make_unique<transport::BlockingWorker>("control worker");
};

// ----------------------------------------------------------------------------- camera

namespace {

// The camera `source` names (Settings::source): the board's, the test pattern, a V4L2 device,
// an http:// or rtsp:// network camera, or the cameras pushing to `ingest` (ws-push).
hal::Result<std::unique_ptr<hal::Capture>> openSource(const bsp::Board& board, const Settings& settings,
                                                      transport::JpegPushIngest* ingest) {
  const std::string& source = settings.source;
  if (transport::isHttpFlvUrl(source)) return transport::createFlvPullCapture(source);
  if (source.rfind("http://", 0) == 0) return transport::createMjpegPullCapture(source);
  if (source.rfind("rtsp://", 0) == 0) {
    transport::RtspPullOptions options;
    if (settings.rtspTransport == "udp") options.transport = transport::RtspPullOptions::Transport::Udp;
    return transport::createRtspPullCapture(source, options);
  }
  if (source == "ws-push" && ingest != nullptr) return ingest->openCapture();
  if (source == "test-pattern") return hal::createTestPatternCapture();
  return bsp::openCamera(board, source);
}

}  // namespace

hal::Status Streamer::Impl::openCamera() {
  std::string stableName;
  {
    std::lock_guard lock(stateMutex);
    stableName = cameraStableName;
  }
  // The first open follows the board (or --source); every reopen of a V4L2 camera asks for the
  // same camera by its stable name, never by index.
  auto cam =
      stableName.empty() ? openSource(*board, settings, ingest.get()) : hal::createV4l2Capture(stableName);
  if (!cam) return cam.error();
  hal::Capture& c = **cam;
  const std::string name = c.info().name;

  // The board's preferred format first, then what costs least to serve: raw I420 needs no
  // conversion, NV12/YUYV one libyuv pass, MJPEG is passed through to /stream and /snapshot,
  // H.264 straight to /flv.
  std::vector<hal::FourCC> candidates;
  // h264-streamer's encoder_type picks the camera format: rkmpi-yuyv YUYV, rkmpi MJPEG.
  if (settings.encoderType == "rkmpi-yuyv") candidates.push_back(hal::fourcc::kYUYV);
  if (settings.encoderType == "rkmpi") candidates.push_back(hal::fourcc::kMJPEG);
  if (board->camera.preferredFormat.code != 0 &&
      std::find(candidates.begin(), candidates.end(), board->camera.preferredFormat) == candidates.end())
    candidates.push_back(board->camera.preferredFormat);
  for (auto f : {hal::fourcc::kI420, hal::fourcc::kNV12, hal::fourcc::kYUYV, hal::fourcc::kMJPEG,
                 hal::fourcc::kH264}) {
    if (std::find(candidates.begin(), candidates.end(), f) == candidates.end()) candidates.push_back(f);
  }
  hal::CaptureConfig config;
  hal::Negotiation n = hal::Negotiation::Invalid;
  for (auto f : candidates) {
    config = hal::CaptureConfig{};
    config.format = f;
    config.size = hal::Size{settings.width, settings.height};
    config.fps = settings.unpaced ? 0 : settings.fps;
    n = c.validate(config);
    if (n != hal::Negotiation::Invalid && config.format == f) break;
    n = hal::Negotiation::Invalid;
  }
  if (n == hal::Negotiation::Invalid) {
    return hal::Status(
        hal::Errc::Unsupported,
        fmt::format("camera {}: offers none of I420, NV12, YUYV, MJPEG, H264 near {} at {} fps", name,
                    hal::Size{settings.width, settings.height}.str(), settings.fps));
  }
  if (n == hal::Negotiation::Adjusted) {
    spdlog::warn("camera {}: adjusted to {} {} at {} fps", name, config.format.str(), config.size.str(),
                 config.fps);
  }
  if (auto st = c.start(config); !st) return st;

  int fps = config.fps;
  std::string newStableName;
  if (auto* v4l2 = hal::v4l2CameraOf(c)) {
    newStableName = v4l2->device().stableName;
    const hal::CaptureConfig active = v4l2->activeConfig();
    if (active.fps > 0) fps = active.fps;
    for (const auto& refused : controlStore.apply(newStableName, *v4l2)) {
      spdlog::warn("camera {}: saved control not applied: {}", name, refused);
    }
  }
  const bool turned = pictureTransform != hal::Transform::identity();
  i420Pool.reset();
  decodePool.reset();
  streamPool.reset();
  snapshotPool.reset();
  pictureSize = config.size;
  streamSize = snapshotSize = config.size;
  if (config.format == hal::fourcc::kH264) {
    if (turned || !settings.streamSize.empty() || !settings.snapshotSize.empty()) {
      spdlog::warn(
          "camera {}: its H.264 is passed through as it comes: camera_rotation, camera_flip_*, "
          "stream_resolution and snapshot_resolution are not applied to an H.264 camera",
          name);
    }
  } else {
    pictureSize = pictureTransform.apply(config.size);
    streamSize = pictureTransform.apply(settings.streamSize.empty() ? config.size : settings.streamSize);
    snapshotSize =
        pictureTransform.apply(settings.snapshotSize.empty() ? config.size : settings.snapshotSize);
    if (streamSize != pictureSize) {
      auto pool = hal::FramePool::create(hal::fourcc::kI420, streamSize, 3);
      if (!pool) return pool.error();
      streamPool = std::move(*pool);
    }
    if (snapshotSize != streamSize && snapshotSize != pictureSize) {
      auto pool = hal::FramePool::create(hal::fourcc::kI420, snapshotSize, 2);
      if (!pool) return pool.error();
      snapshotPool = std::move(*pool);
    }
    if (config.format != hal::fourcc::kI420 || turned) {
      auto pool = hal::FramePool::create(hal::fourcc::kI420, pictureSize, 3);
      if (!pool) return pool.error();
      i420Pool = std::move(*pool);
    }
    if (config.format == hal::fourcc::kMJPEG && turned) {
      auto pool = hal::FramePool::create(hal::fourcc::kI420, config.size, 2);
      if (!pool) return pool.error();
      decodePool = std::move(*pool);
    }
  }
  cameraFormat = config.format;
  cameraSize = config.size;
  cameraH264Config.reset();
  h264Pictures.reset();  // a new stream: its first IDR starts the next kept GOP
  h264NoJpegLogged = false;
  lastCameraIdr = {};
  h264DecodeErrorLoggedAt = {};
  h264DecodeErrorsUnlogged = 0;
  if (auto st = configureEncoders(streamSize, settings.unpaced ? settings.fps : std::max(1, fps)); !st)
    return st;
  {
    std::lock_guard lock(cameraMutex);
    camera = std::move(*cam);
  }
  {
    std::lock_guard lock(stateMutex);
    cameraName = name;
    cameraActiveSize = config.size;
    cameraActiveFormat = config.format;
    streamSizeShown = streamSize.str();
    snapshotSizeShown = snapshotSize.str();
    if (!newStableName.empty()) cameraStableName = newStableName;
    cameraState = "streaming";
  }
  keyframeWanted = true;
  if (settings.unpaced) {
    spdlog::info("camera {}: {} {} unpaced (encoder nominal {} fps)", name, config.format.str(),
                 config.size.str(), settings.fps);
  } else {
    spdlog::info("camera {}: {} {} at {} fps{}", name, config.format.str(), config.size.str(), fps,
                 newStableName.empty() ? "" : " (" + newStableName + ")");
  }
  return {};
}

hal::Status Streamer::Impl::configureEncoders(hal::Size size, int fps) {
  fps = std::max(1, fps);
  const bool reconfigure = live.reconfigureCamera.exchange(false);
  if (size == encoderSize && fps == encoderFps && !reconfigure) return {};
  hal::EncoderConfig enc;
  enc.size = size;
  enc.fps = fps;
  enc.bitrateKbps = live.bitrateKbps;
  enc.gopFrames = settings.gopFrames;
  enc.jpegQuality = live.jpegQuality;
  enc.fullRange = cameraFormat == hal::fourcc::kMJPEG;  // decoded JPEG: full range (JFIF)
  if (auto st = jpeg->configure(enc); !st) return st;
  if (!snapshotSize.empty() && snapshotSize != size) {
    hal::EncoderConfig still = enc;
    still.size = snapshotSize;
    if (!snapshotJpeg) snapshotJpeg = codecs::createJpegEncoder();
    if (auto st = snapshotJpeg->configure(still); !st) return st;
  }
  if (auto st = h264->configure(enc); !st) return st;
  h264Open = true;
  h264LastWanted = Clock::now();
  encoderSize = size;
  encoderFps = fps;
  return {};
}

void Streamer::Impl::loseCamera(const hal::Error& error) {
  {
    std::lock_guard lock(cameraMutex);
    camera.reset();  // a disconnected device stays dead: recovery is a new object
  }
  ++cameraReconnects;
  setCameraState("no-signal: " + error.describe());
}

// The grey "NO SIGNAL" picture, to every kind of client, while there is no camera: players keep
// their connection and show why, and snapshot consumers (timelapse) get an answer.
void Streamer::Impl::publishNoSignal(const std::string& reason) {
  hal::Size size = streamSize;
  if (size.empty()) {
    size = pictureTransform.apply(settings.streamSize.empty() ? hal::Size{settings.width, settings.height}
                                                              : settings.streamSize);
  }
  if (!noSignalPool || !(noSignalPool->size() == size)) {
    auto pool = hal::FramePool::create(hal::fourcc::kI420, size, 2);
    if (!pool) return;
    noSignalPool = std::move(*pool);
  }
  if (auto st = configureEncoders(size, encoderFps > 0 ? encoderFps : settings.fps); !st) {
    spdlog::warn("no-signal frame: {}", st.error().describe());
    return;
  }
  auto frame = hal::drawNoSignalFrame(*noSignalPool, reason, Clock::now(), noSignalFrames++);
  if (!frame) return;
  const bool ringWanted = jpegRingWanted();
  if (mjpeg.clientCount() > 0 || snapshots.hasWaiters() || ringWanted) {
    if (auto packet = jpeg->encode(*frame)) {
      mjpeg.publish(*packet);
      snapshots.publish(*packet);
      if (ringWanted) (void)jpegRing->publish(*packet);
    }
  }
  if (encodeH264Now()) {
    if (keyframeWanted.exchange(false)) h264->requestKeyframe();
    if (auto packet = h264->encode(*frame)) publishH264(*packet);
  }
}

void Streamer::Impl::cameraLoop() {
  constexpr auto kFirstRetry = 500ms;
  constexpr auto kMaxRetry = 8000ms;
  constexpr auto kNoSignalInterval = 1000ms;  // ~1 fps of "no signal" while the camera is away
  auto backoff = kFirstRetry;
  Timestamp nextAttempt = Clock::now();
  Timestamp nextNoSignal = Clock::now();
  Timestamp nextJpegDue{};
  std::string lastError;
  while (running) {
    if (!camera) {
      const Timestamp now = Clock::now();
      if (now >= nextAttempt) {
        if (auto st = openCamera(); st) {
          backoff = kFirstRetry;
          lastError.clear();
          continue;
        } else {
          const std::string error = st.error().describe();
          if (error != lastError) {  // log each new reason once, not every retry
            spdlog::error("camera: {} (retrying with backoff up to {} s)", error, kMaxRetry.count() / 1000);
            lastError = error;
          }
          setCameraState("no-signal: " + error);
          nextAttempt = now + backoff;
          // A source that is there but has no picture yet (no camera pushing, ws-push) is asked
          // again soon: its open already waited; a camera that starts pushing is shown at once.
          if (st.code() != hal::Errc::NoSignal)
            backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxRetry);
        }
      }
      if (now >= nextNoSignal) {
        std::string name;
        {
          std::lock_guard lock(stateMutex);
          name = cameraStableName.empty() ? cameraName : cameraStableName;
        }
        publishNoSignal(name.empty() ? "WAITING FOR CAMERA" : "RECONNECTING " + name);
        nextNoSignal = now + kNoSignalInterval;
      }
      const auto wake = std::min(nextAttempt, nextNoSignal);
      if (!pause(std::chrono::duration_cast<std::chrono::milliseconds>(
              std::max(wake - Clock::now(), Clock::duration(1ms))))) {
        break;
      }
      continue;
    }
    pollfd pfd{camera->pollFd(), POLLIN, 0};
    if (pfd.fd >= 0) ::poll(&pfd, 1, 200);
    auto frame = camera->dequeue();
    if (!frame) {
      if (frame.code() == hal::Errc::Again) continue;
      spdlog::error("camera {}: {}; serving \"no signal\" and reopening {}", getCameraName(),
                    frame.error().describe(),
                    cameraStableName.empty() ? std::string("it") : "by " + cameraStableName);
      loseCamera(frame.error());
      nextAttempt = Clock::now() + kFirstRetry;
      nextNoSignal = Clock::now();
      backoff = 2 * kFirstRetry;
      continue;
    }
    onCameraFrame(*frame, nextJpegDue);
  }
  if (camera) camera->stop();
}

void Streamer::Impl::onCameraFrame(const hal::Frame& frame, Timestamp& nextJpegDue) {
  cameraRate.tick(frame.timestamp());
  if (live.reconfigureCamera.load() && !encoderSize.empty()) {
    // A new bitrate or JPEG quality from the control API: the encoders are reconfigured here,
    // on the thread that drives them; H.264 clients get the new parameter sets with the next IDR.
    if (auto st = configureEncoders(encoderSize, encoderFps); !st) {
      spdlog::warn("settings: reconfiguring the encoders: {}", st.error().describe());
    }
    keyframeWanted = true;
  }
  if (frame.format() == hal::fourcc::kH264) {
    onH264CameraFrame(frame, nextJpegDue);
    return;
  }
  // The encoders take I420: convert (YUYV/NV12) or decode (MJPEG) once per frame, only when an
  // encoder needs it.
  hal::Frame i420;
  const bool turned = pictureTransform != hal::Transform::identity();
  auto toI420 = [&]() -> const hal::Frame* {
    if (frame.format() == hal::fourcc::kI420 && !turned) return &frame;
    if (i420.valid()) return &i420;
    if (!i420Pool) return nullptr;
    hal::Result<hal::Frame> converted = hal::Error{hal::Errc::Io, 0, "no pool"};
    if (frame.format() != hal::fourcc::kMJPEG) {
      converted = codecs::convertToI420(frame, pictureTransform, *i420Pool);
    } else if (!turned) {
      converted = codecs::decodeJpegToI420({frame.plane(0).data, frame.bytesUsed()}, *i420Pool,
                                           frame.timestamp(), frame.sequence());
    } else if (decodePool) {
      converted = codecs::decodeJpegToI420({frame.plane(0).data, frame.bytesUsed()}, *decodePool,
                                           frame.timestamp(), frame.sequence());
      if (converted) converted = codecs::convertToI420(*converted, pictureTransform, *i420Pool);
    }
    if (!converted) {
      spdlog::warn("camera {}: to I420: {}", frame.format().str(), converted.error().describe());
      return nullptr;
    }
    i420 = std::move(*converted);
    return &i420;
  };

  // The picture at stream_resolution and at snapshot_resolution: the full picture, or scaled
  // from it once per frame when first asked for.
  hal::Frame scaledStream;
  hal::Frame scaledSnapshot;
  auto scaled = [&](hal::FramePool* pool, hal::Frame& out) -> const hal::Frame* {
    const hal::Frame* full = toI420();
    if (full == nullptr || pool == nullptr) return full;
    if (out.valid()) return &out;
    auto r = codecs::scaleI420(*full, *pool);
    if (!r) {
      spdlog::warn("camera: scaling to {}: {}", pool->size().str(), r.error().describe());
      return nullptr;
    }
    out = std::move(*r);
    return &out;
  };
  auto toStream = [&] { return scaled(streamPool.get(), scaledStream); };
  // The camera's JPEG as it is (hal inserted Huffman tables if it had none), when it is the
  // picture asked for: no re-encode.
  auto cameraJpeg = [&](hal::Size wanted) -> std::optional<hal::PacketPtr> {
    if (frame.format() != hal::fourcc::kMJPEG || turned || wanted != frame.size()) return std::nullopt;
    auto p = std::make_shared<hal::Packet>();
    p->codec = hal::fourcc::kMJPEG;
    p->data.assign(frame.plane(0).data, frame.plane(0).data + frame.bytesUsed());
    p->keyframe = true;
    p->pts = frame.timestamp();
    p->sequence = frame.sequence();
    p->size = frame.size();
    return hal::PacketPtr(std::move(p));
  };
  JpegMaker snapshotJpegMaker;
  if (snapshotSize != streamSize) {
    snapshotJpegMaker = [&]() -> hal::Result<hal::PacketPtr> {
      if (auto p = cameraJpeg(snapshotSize)) return *p;
      const hal::Frame* src =
          snapshotSize == pictureSize ? toI420() : scaled(snapshotPool.get(), scaledSnapshot);
      if (src == nullptr || !snapshotJpeg) return {hal::Errc::Io, "no picture"};
      return snapshotJpeg->encode(*src);
    };
  }
  serveJpegOutputs(
      frame.timestamp(), nextJpegDue,
      [&]() -> hal::Result<hal::PacketPtr> {
        if (auto p = cameraJpeg(streamSize)) return *p;
        if (const hal::Frame* src = toStream()) return jpeg->encode(*src);
        return {hal::Errc::Io, "no picture"};
      },
      snapshotJpegMaker);
  if (!encodeH264Now()) return;  // no encoding while nobody watches
  if (keyframeWanted.exchange(false)) h264->requestKeyframe();
  const int skip = std::max(skipInterval.load(), live.frameSkip.load());
  if (skip > 1 && frame.sequence() % static_cast<uint64_t>(skip) != 0) return;
  const hal::Frame* src = toStream();
  if (src == nullptr) return;
  auto packet = h264->encode(*src);
  if (!packet) {
    if (packet.code() != hal::Errc::Again) spdlog::warn("h264: {}", packet.error().describe());
    return;
  }
  publishH264(*packet);
}

void Streamer::Impl::serveJpegOutputs(Timestamp timestamp, Timestamp& nextJpegDue, const JpegMaker& makeJpeg,
                                      const JpegMaker& makeSnapshot) {
  const bool mjpegWanted = mjpeg.clientCount() > 0;
  const bool snapshotWanted = snapshots.hasWaiters();
  const bool ringWanted = jpegRingWanted();  // JPEGs for the ring at the MJPEG rate
  if (!mjpegWanted && !snapshotWanted && !ringWanted) return;
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(1.0 / std::max(1, live.mjpegFps.load())));
  // A frame up to a quarter interval early still counts: network cameras are stamped on
  // arrival, and with jitter a source at exactly mjpeg_fps would otherwise lose every frame
  // that came a little early. The schedule still advances one interval per frame sent, so the
  // average rate stays at most mjpeg_fps.
  const bool due = timestamp + interval / 4 >= nextJpegDue;
  if (makeSnapshot && snapshotWanted) {
    // Snapshots at their own size: a JPEG of their own, made only for a waiter.
    if (auto still = makeSnapshot()) {
      snapshots.publish(*still);
    } else {
      spdlog::warn("snapshot jpeg: {}", still.error().describe());
    }
  }
  if (!due && (!snapshotWanted || makeSnapshot)) return;
  if (makeSnapshot && !mjpegWanted && !ringWanted) return;
  if (due) {
    nextJpegDue = (timestamp - nextJpegDue > interval) ? timestamp + interval : nextJpegDue + interval;
  }
  auto packet = makeJpeg();
  if (!packet) {
    spdlog::warn("jpeg: {}", packet.error().describe());
    return;
  }
  if (due && mjpegWanted) {
    mjpeg.publish(*packet);
    mjpegRate.tick();
  }
  if (due && ringWanted) {
    if (auto st = jpegRing->publish(*packet); !st) spdlog::warn("{}", st.error().describe());
  }
  if (!makeSnapshot) snapshots.publish(*packet);
}

// An H.264 camera's access units go to the H.264 outputs as they are: no decode, no re-encode.
// The JPEG outputs get pictures decoded from them (H264OnDemandDecoder), only while one of them
// wants pictures, and JPEG-encoded at the MJPEG rate as a raw camera's frames are.
void Streamer::Impl::onH264CameraFrame(const hal::Frame& frame, Timestamp& nextJpegDue) {
  const std::span<const uint8_t> au(frame.plane(0).data, frame.bytesUsed());
  if (auto config = codecs::h264::extractCodecConfig(au)) {
    if (!cameraH264Config || !(*cameraH264Config == *config)) {
      cameraH264Config = std::make_shared<const hal::CodecConfig>(std::move(*config));
    }
  }
  // Built for every access unit, wanted or not: the on-demand decoder keeps the GOP.
  auto p = std::make_shared<hal::Packet>();
  p->codec = hal::fourcc::kH264;
  p->data.assign(au.begin(), au.end());
  p->keyframe = codecs::h264::containsIdr(au);
  p->pts = frame.timestamp();
  p->sequence = frame.sequence();
  p->size = frame.size();
  p->config = cameraH264Config;
  const hal::PacketPtr packet = std::move(p);
  if (packet->keyframe) {
    if (lastCameraIdr != Timestamp{} && packet->pts > lastCameraIdr) {
      cameraGopMs =
          std::chrono::duration_cast<std::chrono::milliseconds>(packet->pts - lastCameraIdr).count();
    }
    lastCameraIdr = packet->pts;
  }
  if (h264Wanted()) {
    if (keyframeWanted.exchange(false)) {
      if (auto st = camera->requestKeyframe(); !st && st.code() != hal::Errc::Unsupported) {
        spdlog::warn("camera: keyframe request: {}", st.error().describe());
      }
    }
    publishH264(packet);
  }

  auto picture = h264Pictures.push(packet, jpegWanted());
  if (picture) {
    serveJpegOutputs(frame.timestamp(), nextJpegDue, [&] { return jpeg->encode(*picture); });
    return;
  }
  const hal::Error& error = picture.error();
  if (error.code == hal::Errc::Again) return;  // not wanted, or waiting for the camera's next IDR
  if (error.code == hal::Errc::Unsupported) {
    // No decoder in this build (or a stream it cannot carry): snapshot requests get the reason
    // now instead of a 3 s timeout.
    const std::string reason = "no JPEG from this H.264 camera: " + error.message;
    if (!h264NoJpegLogged) {
      spdlog::warn("camera {}: {}; /stream and /snapshot stay without pictures", getCameraName(), reason);
      h264NoJpegLogged = true;
    }
    snapshots.expire(0ms, reason);
    return;
  }
  // Corrupt data (a camera glitch, lost packets): logged once, then once a minute with a count.
  const Timestamp now = Clock::now();
  if (h264DecodeErrorLoggedAt == Timestamp{} || now - h264DecodeErrorLoggedAt >= 60s) {
    spdlog::warn("camera {}: {}{}", getCameraName(), error.describe(),
                 h264DecodeErrorsUnlogged > 0
                     ? fmt::format(" ({} more since the last report)", h264DecodeErrorsUnlogged)
                     : std::string());
    h264DecodeErrorLoggedAt = now;
    h264DecodeErrorsUnlogged = 0;
  } else {
    ++h264DecodeErrorsUnlogged;
  }
}

// ----------------------------------------------------------------------------- display

void Streamer::Impl::displayLoop() {
  uint64_t lastSequence = UINT64_MAX;
  hal::PacketPtr cached;
  Timestamp lastPublish{};
  while (running) {
    {
      std::unique_lock lock(displayMutex);
      displayWake.wait_for(lock, 500ms, [this] { return !running || displayWatched(); });
    }
    if (!running) break;
    releaseIdleDisplayH264();
    if (!displayWatched()) continue;  // nobody watches
    if (!live.displayEnabled) {
      displaySnapshots.failAll("display capture is disabled (display_enabled = false)");
      continue;
    }
    if (live.reconfigureDisplay.exchange(false)) {
      hal::EncoderConfig enc;
      enc.size = uprightDisplaySize();
      enc.jpegQuality = live.jpegQuality;
      if (auto st = displayJpeg->configure(enc); !st) {
        spdlog::warn("settings: display JPEG quality: {}", st.error().describe());
      }
      cached.reset();  // re-encode the current screen at the new quality
    }
    const auto interval = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::duration<double>(1.0 / std::max(1, live.displayFps.load())));

    const Timestamp tickStart = Clock::now();
    auto grab = display->grab();
    if (!grab) {
      if (grab.code() != hal::Errc::Again) {
        spdlog::warn("display {}: {}", display->info().name, grab.error().describe());
        displaySnapshots.failAll("display unavailable: " + grab.error().describe());
      }
    } else {
      const bool changed = grab->sequence() != lastSequence || !cached;
      const bool joined = displayNewClient.exchange(false);
      const bool keepAlive = tickStart - lastPublish >= 2s;
      hal::Frame uprightFrame;  // converted at most once per tick, when an encoder needs it
      auto upright = [&]() -> hal::Result<hal::Frame> {
        if (uprightFrame.valid()) return uprightFrame;
        auto r = codecs::convertToI420(*grab, board->display.orientation, *uprightPool);
        if (r) uprightFrame = *r;
        return r;
      };
      if (changed) {
        if (auto picture = upright()) {
          auto packet = displayJpeg->encode(*picture);
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
      if (displayRtspStream.clientCount() > 0) encodeDisplayH264(changed, tickStart, upright);
      if (cached) {
        displaySnapshots.publish(cached);
        // Unchanged pixels are not encoded again; the stream only re-sends the last JPEG for
        // a client that just joined and as a keep-alive.
        if (changed || joined || keepAlive) {
          displayStream.publish(cached);
          displayRate.tick();
          lastPublish = tickStart;
        }
      }
    }
    std::unique_lock lock(displayMutex);
    displayWake.wait_until(lock, tickStart + interval,
                           [this] { return !running || displaySnapshots.hasWaiters(); });
  }
}

// One display picture for rtsp://.../display: when the screen changed, a client asked for a
// keyframe, or a second passed (keep-alive for a static screen). Display thread.
void Streamer::Impl::encodeDisplayH264(bool changed, Timestamp now,
                                       const std::function<hal::Result<hal::Frame>()>& upright) {
  displayH264LastWanted = now;
  const bool keyframe = displayKeyframeWanted.exchange(false);
  if (!changed && !keyframe && now - displayH264LastFrame < 1s) return;
  if (!displayH264Open) {
    hal::EncoderConfig enc;
    enc.size = uprightDisplaySize();
    enc.fps = std::max(1, live.displayFps.load());
    enc.bitrateKbps = std::min(live.bitrateKbps.load(), 2000);
    enc.gopFrames = 2 * enc.fps;  // an IDR every ~2 s at display_fps (a joining client asks for one anyway)
    enc.fullRange = false;
    if (auto st = displayH264->configure(enc); !st) {
      spdlog::warn("display h264: {}", st.error().describe());
      return;
    }
    displayH264Open = true;
  }
  auto picture = upright();
  if (!picture) return;
  if (keyframe) displayH264->requestKeyframe();
  auto packet = displayH264->encode(*picture);
  if (!packet) {
    if (packet.code() != hal::Errc::Again) spdlog::warn("display h264: {}", packet.error().describe());
    return;
  }
  // The grab's timestamp may repeat for an unchanged screen; the RTP clock wants the send time.
  auto stamped = std::make_shared<hal::Packet>(**packet);
  stamped->pts = now;
  stamped->sequence = displayH264Frames++;
  displayRtspStream.publish(stamped);
  displayH264LastFrame = now;
}

// The display's H.264 encoder gives its memory back 10 s after the last RTSP display client.
void Streamer::Impl::releaseIdleDisplayH264() {
  if (!displayH264Open || displayRtspStream.clientCount() > 0) return;
  if (Clock::now() - displayH264LastWanted < kEncoderIdleRelease) return;
  displayH264->release();
  displayH264Open = false;
}

// ----------------------------------------------------------------------------- touch

void Streamer::Impl::touchLoop() {
  while (true) {
    TouchJob job;
    {
      std::unique_lock lock(touchMutex);
      touchWake.wait(lock, [this] { return !running || !touchJobs.empty(); });
      if (touchJobs.empty()) return;  // stopping
      job = std::move(touchJobs.front());
      touchJobs.pop_front();
    }
    const hal::Status st = touch->tap(job.panelPos, job.hold);
    if (st) {
      ++touchCount;
      spdlog::debug("touch: view ({}, {}) -> panel ({}, {})", job.viewX, job.viewY, job.panelPos.x,
                    job.panelPos.y);
      job.response->complete(HttpResponse::json(
          200, nlohmann::json{{"status", "ok"}, {"x", job.viewX}, {"y", job.viewY}}.dump()));
    } else {
      spdlog::warn("touch: {}", st.error().describe());
      job.response->complete(HttpResponse::json(
          500,
          nlohmann::json{
              {"status", "error"}, {"error", st.error().describe()}, {"x", job.viewX}, {"y", job.viewY}}
              .dump()));
    }
  }
}

HttpResponse Streamer::Impl::touchRequest(const HttpRequest& req) {
  if (!touch) return HttpResponse::error(503, "no touch panel: " + touchError);
  // JSON {"x","y","duration"} or form-encoded x=&y=&duration=, each with its Content-Type.
  nlohmann::json body;
  if (req.hasMediaType("application/json")) {
    body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object())
      return HttpResponse::error(400, "body is not a JSON object");
  } else if (req.hasMediaType("application/x-www-form-urlencoded")) {
    for (const auto& [k, v] : transport::parseFormUrlEncoded(req.body)) body[k] = v;
  } else {
    return unsupportedMediaType(req, "application/json, or application/x-www-form-urlencoded");
  }
  auto number = [&](const char* key, double& out, bool required) -> std::string {
    if (!body.contains(key)) return required ? fmt::format("missing '{}'", key) : "";
    const auto& v = body[key];
    if (v.is_number()) {
      out = v.get<double>();
    } else if (v.is_string()) {
      const auto& s = v.get_ref<const std::string&>();
      char* end = nullptr;
      out = std::strtod(s.c_str(), &end);
      if (s.empty() || end != s.c_str() + s.size())
        return fmt::format("'{}' is not a number: {}", key, v.dump());
    } else {
      return fmt::format("'{}' is not a number: {}", key, v.dump());
    }
    if (!std::isfinite(out)) return fmt::format("'{}' is not a finite number", key);
    return "";
  };
  double x = 0;
  double y = 0;
  double duration = 100;
  for (auto [key, ptr, required] :
       {std::tuple{"x", &x, true}, {"y", &y, true}, {"duration", &duration, false}}) {
    if (auto err = number(key, *ptr, required); !err.empty()) return HttpResponse::error(400, err);
  }
  const hal::Size view = uprightDisplaySize();
  if (view.empty()) return HttpResponse::error(503, "no display size to map touches from: " + displayError);
  if (x < 0 || y < 0 || x > view.width || y > view.height) {
    return HttpResponse::error(400,
                               fmt::format("point ({}, {}) is outside the {} display", x, y, view.str()));
  }
  if (duration < 1 || duration > 5000) {
    return HttpResponse::error(400, fmt::format("duration {} ms is outside 1..5000", duration));
  }
  // viewPos (upright image) -> panelPos via the board's touch transform, then scaled to the
  // panel's raw range when it differs from the display's size.
  const hal::Point viewPos{static_cast<int>(std::lround(x)), static_cast<int>(std::lround(y))};
  const hal::Point mapped = board->touch.transform.apply(viewPos, view);
  const hal::Size mappedSpace = board->touch.transform.apply(view);
  const hal::Size range = touch->info().range;  // the board's range, or the device's own (TouchKind::Auto)
  const hal::Point panelPos{
      static_cast<int>(std::lround(static_cast<double>(mapped.x) * range.width / mappedSpace.width)),
      static_cast<int>(std::lround(static_cast<double>(mapped.y) * range.height / mappedSpace.height))};
  TouchJob job{panelPos, std::chrono::milliseconds(static_cast<int>(duration)), x, y,
               std::make_shared<DeferredResponse>()};
  HttpResponse r;
  r.deferred = job.response;
  {
    std::lock_guard lock(touchMutex);
    if (touchJobs.size() >= kMaxTouchJobs) return HttpResponse::error(503, "touch queue full, try again");
    touchJobs.push_back(std::move(job));
  }
  touchWake.notify_one();
  return r;  // answered by the touch worker once the tap is injected
}

// ----------------------------------------------------------------------------- housekeeping

void Streamer::Impl::housekeepingLoop() {
  CpuMeter meter;
  int target = live.targetCpu;
  AutoSkip skipper(target);
  int ticks = 0;
  while (pause(500ms)) {
    if (++ticks % 20 == 0) {  // every 10 s: a new address is registered again
      std::lock_guard lock(timelapseMutex);
      if (moonraker && timelapseSettings.moonrakerRegisterWebcam) registerWebcam(*moonraker, true);
    }
    const auto sample = meter.sample();
    systemCpu = sample.systemPercent;
    processCpu = sample.processPercent;
    if (live.targetCpu != target || !live.autoSkip) {
      // A new target (or auto-skip turned off) starts over from encoding every frame.
      target = live.targetCpu;
      skipper = AutoSkip(target);
      skipInterval = 1;
    }
    if (live.autoSkip) {
      skipper.onCpuSample(sample.systemPercent, Clock::now());
      skipInterval = skipper.interval();
    }
    snapshots.expire(3s, "no camera frame within 3 s: " + getCameraState());
    hls->expire();
    displaySnapshots.expire(3s, "no display frame within 3 s");
  }
}

// ----------------------------------------------------------------------------- HTTP

HttpResponse Streamer::Impl::mjpegResponse(transport::MjpegStream& stream) {
  HttpResponse r;
  r.contentType = transport::mjpeg::contentType();
  addNoCache(r);
  auto queue = stream.subscribe();
  r.stream = queue;
  r.onClose = [&stream, queue] { stream.unsubscribe(queue); };
  return r;
}

HttpResponse Streamer::Impl::flvResponse(bool slicerHeaders) {
  HttpResponse r;
  auto queue = flv.subscribe();
  r.stream = queue;
  r.onClose = [this, queue] { flv.unsubscribe(queue); };
  if (slicerHeaders) {
    // Exactly what the stock camera service sends (the slicer expects it): see protocols.md.
    r.contentType = "text/plain";
    r.customCors = true;
    r.headers.emplace_back("Access-Control-Allow-Origin", "*");
    r.streamSize = 99999999999ULL;
  } else {
    r.contentType = "video/x-flv";
    addNoCache(r);
  }
  return r;
}

// Fragmented MP4 for `<video src=/stream.mp4>`: the client's init segment then a fragment per
// access unit, from the next IDR (its subscription requests one).
HttpResponse Streamer::Impl::fmp4Response() {
  HttpResponse r;
  auto queue = fmp4.subscribe();
  r.stream = queue;
  r.onClose = [this, queue] { fmp4.unsubscribe(queue); };
  r.contentType = "video/mp4";
  addNoCache(r);
  return r;
}

// H.264 over WebSocket: validate the handshake (a plain GET gets 426, a malformed one 400, each
// with the reason), then subscribe and let the hub serve the upgraded connection.
HttpResponse Streamer::Impl::wsResponse(const HttpRequest& req, bool timestampTrailer) {
  auto accept = transport::ws::checkHandshake(req.method, req.headers);
  if (!accept) return transport::handshakeRefusal(accept.error());
  auto queue = wsStream.subscribe(timestampTrailer);
  return wsHub->upgradeResponse(*accept, queue, [this, queue] { wsStream.unsubscribe(queue); });
}

HttpResponse Streamer::Impl::handleWsPort(const HttpRequest& req) {
  if (req.path == "/") return wsResponse(req, settings.wsPortTimestamps);
  return HttpResponse::error(404, "no such endpoint: " + req.path + " (the WebSocket is at /)");
}

nlohmann::json Streamer::Impl::status() {
  const nlohmann::json clients = clientCounts();
  const nlohmann::json cameraJson = cameraStatus();
  return {
      {"status", "ok"},
      // The ESP32 relay's /status fields (every profile has them): cameras pushing to the
      // ingest, viewers of any stream, and whether the camera delivers pictures.
      {"camera_clients", ingest ? ingest->stats().cameraClients : 0},
      {"viewer_clients", clients["total"]},
      {"streaming", cameraJson["signal"]},
      {"board", {{"id", std::string(board->id)}, {"name", std::string(board->name)}}},
      {"camera", cameraJson},
      {"encoder", encoderStatus()},
      {"lan_mode", lanModeStatus()},
      {"display",
       {{"enabled", display != nullptr}, {"error", displayError}, {"clients", displayStream.clientCount()}}},
      {"touch", {{"enabled", touch != nullptr}, {"error", touchError}}},
      {"rings", ringStats()},
      {"clients", clients},
      {"hls", hlsStats()},
      {"outputs", outputs},
      {"stream_port", streamServer ? streamServer->port() : 0},
      {"control_port", controlServer ? controlServer->port() : 0},
      {"flv_port", flvServer ? flvServer->port() : 0},
      {"rtsp_port", rtspServer ? rtspServer->port() : 0},
      {"rtsp", rtspStats()},
      {"publish", publishStatus()},
      {"h264_enabled", live.h264Enabled.load()},
      {"uptime_s", std::chrono::duration<double>(Clock::now() - startedAt).count()},
  };
}

// The H.264 encoder backend in use ("none" until the camera's first configuration; an H.264
// camera's access units pass through it untouched), each backend not used and why, and how
// many backends failed while encoding (the next took over on an IDR).
nlohmann::json Streamer::Impl::encoderStatus() const {
  nlohmann::json refused = nlohmann::json::array();
  for (const auto& r : h264->refusals()) {
    refused.push_back({{"backend", r.backend}, {"reason", r.reason}, {"while_encoding", r.runtime}});
  }
  return {{"h264", h264->activeName()},
          {"order", h264Order},
          {"refused", refused},
          {"fallbacks", h264->fallbacks()}};
}

void Streamer::Impl::setLanModeState(const hal::Result<bool>& state) {
  std::lock_guard lock(lanModeMutex);
  if (state) {
    lanModeState = *state ? "open" : "closed";
    lanModeError.clear();
  } else {
    lanModeState = "unavailable";
    lanModeError = state.error().describe();
  }
}

// {"enabled", "state": "unknown" | "open" | "closed" | "unavailable" | "off", "auto", "error"}
nlohmann::json Streamer::Impl::lanModeStatus() const {
  if (!lanMode) {
    return {{"enabled", false},
            {"state", "off"},
            {"auto", settings.autolanmode},
            {"error", ""},
            {"why", "LAN mode belongs to the go-klipper firmware (mode = " + settings.mode + ")"}};
  }
  std::lock_guard lock(lanModeMutex);
  return {
      {"enabled", true}, {"state", lanModeState}, {"auto", settings.autolanmode}, {"error", lanModeError}};
}

// GET: ask the firmware now. POST {"open": true|false}: open or close LAN printing. Both answer
// lanModeStatus(); 502 when the firmware's service did not answer, 409 in vanilla-klipper.
// Blocking worker.
HttpResponse Streamer::Impl::lanModeRequest(const HttpRequest& req) {
  if (!lanMode) {
    return HttpResponse::json(
        409, nlohmann::json{{"status", "error"}, {"error", "LAN mode needs mode = go-klipper"}}.dump());
  }
  if (req.method == "GET" || req.method == "HEAD") {
    setLanModeState(lanMode->query());
  } else if (req.method == "POST") {
    if (!req.hasMediaType("application/json")) return unsupportedMediaType(req, "application/json");
    const auto body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("open") || !body["open"].is_boolean()) {
      return HttpResponse::error(400, "POST {\"open\": true} or {\"open\": false}");
    }
    const bool open = body["open"].get<bool>();
    auto state = lanMode->setOpen(open);
    setLanModeState(state);
    if (state) spdlog::info("LAN mode: {} from the control API", *state ? "open" : "closed");
  } else {
    return HttpResponse::error(405, "use GET, or POST {\"open\": true|false}");
  }
  auto out = lanModeStatus();
  const bool answered = out["state"] == "open" || out["state"] == "closed";
  return HttpResponse::json(answered ? 200 : 502, out.dump());
}

// The RTSP server's connections and sessions; null when it is off.
nlohmann::json Streamer::Impl::rtspStats() const {
  if (!rtspServer) return nullptr;
  const auto st = rtspServer->stats();
  return {{"port", rtspServer->port()},      {"connections", st.connections},
          {"playing", st.playing},           {"accepted", st.accepted},
          {"refused", st.refused},           {"timed_out", st.timedOut},
          {"bad_requests", st.badRequests},  {"udp_dropped", st.udpDropped},
          {"unauthorized", st.unauthorized}, {"auth", settings.rtspAuth}};
}

// --publish: one object per target, in the order given: where to (no credentials), the state
// ("publishing", "retrying in N s: why"), sessions, failures, bytes sent, the last error; [] when
// not publishing.
nlohmann::json Streamer::Impl::publishStatus() const {
  auto json = [](const auto& st, const char* protocol) {
    return nlohmann::json{{"protocol", protocol},      {"url", st.url},
                          {"state", st.state},         {"sessions", st.sessions},
                          {"failures", st.failures},   {"bytes_sent", st.bytesSent},
                          {"last_error", st.lastError}};
  };
  nlohmann::json out = nlohmann::json::array();
  for (const auto& target : publishers) {
    out.push_back(target.rtsp ? json(target.rtsp->status(), "rtsp") : json(target.rtmp->status(), "rtmp"));
  }
  return out;
}

// The camera's state for /status and /api/stats. `state` is "starting", "streaming" or
// "no-signal: <reason>" (the camera is away: clients get the "no signal" picture while it is
// reopened by `stable_name`); `reconnects` counts losses since start; `format` the FourCC the
// camera delivers; for an H.264 camera `h264` says its access units are passed through and its
// measured IDR interval (`gop_ms`), which is what a joining viewer waits at most.
nlohmann::json Streamer::Impl::cameraStatus() {
  nlohmann::json pushed;
  if (ingest) {
    const auto st = ingest->stats();
    pushed = {{"camera_clients", st.cameraClients},
              {"messages", st.messages},
              {"frames", st.frames},
              {"dropped", st.dropped},
              {"takeovers", st.takeovers},
              {"refused", st.refused}};
  }
  std::lock_guard lock(stateMutex);
  nlohmann::json out = {{"name", cameraName},
                        {"state", cameraState},
                        {"signal", cameraState == "streaming"},
                        {"stable_name", cameraStableName},
                        {"width", cameraActiveSize.empty() ? settings.width : cameraActiveSize.width},
                        {"height", cameraActiveSize.empty() ? settings.height : cameraActiveSize.height},
                        {"fps", cameraRate.fps()},
                        {"reconnects", cameraReconnects.load()},
                        {"no_signal_frames", noSignalFrames.load()},
                        {"rotation", settings.cameraRotation},
                        {"flip_x", settings.cameraFlipX},
                        {"flip_y", settings.cameraFlipY},
                        {"stream_size", streamSizeShown},
                        {"snapshot_size", snapshotSizeShown}};
  if (!pushed.is_null()) out["ingest"] = std::move(pushed);
  out["format"] = cameraActiveFormat.code == 0 ? std::string() : cameraActiveFormat.str();
  if (cameraActiveFormat == hal::fourcc::kH264) {
    // The camera's H.264 is passed through: a viewer who joins waits for the camera's next IDR.
    out["h264"] = {{"passthrough", true}, {"gop", "camera"}, {"gop_ms", cameraGopMs.load()}};
  }
  return out;
}

nlohmann::json Streamer::Impl::stats() {
  nlohmann::json streams = nlohmann::json::object();
  for (const auto& [name, f] : clientStreams()) {
    const auto t = f->totals();
    streams[name] = {{"clients", f->clientCount()},
                     {"frames_queued", t.unitsQueued},
                     {"frames_dropped", t.unitsDropped},
                     {"bytes_sent", t.bytesSent}};
  }
  return {
      {"fps",
       {{"camera", cameraRate.fps()},
        {"mjpeg", mjpegRate.fps()},
        {"h264", h264Rate.fps()},
        {"display", displayRate.fps()}}},
      {"frames",
       {{"camera", cameraRate.total()},
        {"mjpeg", mjpegRate.total()},
        {"h264", h264Rate.total()},
        {"display", displayRate.total()}}},
      {"cpu", {{"system_percent", systemCpu.load()}, {"process_percent", processCpu.load()}}},
      {"skip_interval", std::max(skipInterval.load(), live.frameSkip.load())},
      {"auto_skip_interval", skipInterval.load()},
      {"clients", clientCounts()},
      {"streams", streams},
      {"websocket",
       {{"connections", wsHub ? wsHub->stats().connections : 0},
        {"pings", wsHub ? wsHub->stats().pings : 0},
        {"protocol_errors", wsHub ? wsHub->stats().protocolErrors : 0}}},
      {"rings", ringStats()},
      {"hls", hlsStats()},
      {"touches", touchCount.load()},
      {"camera_state", getCameraState()},
      {"camera", cameraStatus()},
      // open: holding its working memory; idle_releases: times it gave it back after 10 s
      // without an H.264 viewer (the next viewer reopens it).
      {"h264_encoder",
       {{"backend", h264->activeName()},
        {"open", h264Open.load()},
        {"idle_releases", h264Releases.load()},
        {"fallbacks", h264->fallbacks()}}},
      {"encoder", encoderStatus()},
      // H.264 cameras: pictures decoded for /stream, /snapshot and the JPEG ring (on demand).
      {"h264_decoder", h264DecoderStats()},
  };
}

nlohmann::json Streamer::Impl::h264DecoderStats() const {
  const auto st = h264Pictures.stats();
  return {{"backend", h264DecoderBackend},
          {"decoding", st.decoding},
          {"pictures", st.pictures},
          {"catch_ups", st.catchUps},
          {"catch_up_access_units", st.catchUpAccessUnits},
          {"errors", st.errors},
          {"kept_access_units", st.keptAccessUnits},
          {"kept_bytes", st.keptBytes},
          {"gop_overflows", st.gopOverflows},
          {"idle_releases", st.idleReleases}};
}

// ustreamer's /state shape (pikvm/ustreamer src/ustreamer/http/server.c, used by PiKVM and by
// Moonraker-side tools that probe a "ustreamer" webcam), filled from our camera and MJPEG stream.
nlohmann::json Streamer::Impl::ustreamerState() {
  std::string state;
  {
    std::lock_guard lock(stateMutex);
    state = cameraState;
  }
  nlohmann::json clientsStat = nlohmann::json::object();  // ustreamer: per-client id -> stats; not kept
  return {{"ok", true},
          {"result",
           {{"instance_id", ""},
            {"encoder", {{"type", "CPU"}, {"quality", live.jpegQuality.load()}}},
            {"source",
             {{"resolution", {{"width", settings.width}, {"height", settings.height}}},
              {"online", state == "streaming"},
              {"desired_fps", settings.fps},
              {"captured_fps", static_cast<int>(std::lround(cameraRate.fps()))}}},
            {"stream",
             {{"queued_fps", static_cast<int>(std::lround(mjpegRate.fps()))},
              {"clients", mjpeg.clientCount()},
              {"clients_stat", clientsStat}}}}}};
}

// Prometheus text exposition format 0.0.4: HELP and TYPE before each family, counters end in
// _total, label values escaped (ours are fixed names).
std::string Streamer::Impl::metrics() {
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  auto sample = [&](const char* name, const std::string& labels, double value) {
    out += labels.empty() ? fmt::format("{} {}\n", name, value)
                          : fmt::format("{}{{{}}} {}\n", name, labels, value);
  };
  const bool streaming = getCameraState() == "streaming";
  family("printcast_camera_up", "gauge", "1 while the camera delivers frames, 0 while it is away");
  sample("printcast_camera_up", "", streaming ? 1 : 0);
  family("printcast_camera_frames_total", "counter", "Camera frames captured");
  sample("printcast_camera_frames_total", "", static_cast<double>(cameraRate.total()));
  family("printcast_h264_encoder_info", "gauge", "The H.264 encoder backend in use (value 1)");
  sample("printcast_h264_encoder_info", fmt::format("backend=\"{}\"", h264->activeName()), 1);
  family("printcast_h264_encoder_fallbacks_total", "counter",
         "H.264 encoder backends given up while encoding (the next one took over)");
  sample("printcast_h264_encoder_fallbacks_total", "", static_cast<double>(h264->fallbacks()));
  family("printcast_camera_reconnects_total", "counter", "Times the camera was lost and reopened");
  sample("printcast_camera_reconnects_total", "", static_cast<double>(cameraReconnects.load()));
  family("printcast_no_signal_frames_total", "counter",
         "\"No signal\" frames served while the camera was away");
  sample("printcast_no_signal_frames_total", "", static_cast<double>(noSignalFrames.load()));

  family("printcast_fps", "gauge", "Frames per second over the last 2 s, per source or output");
  const std::pair<const char*, const RateMeter*> rates[] = {
      {"camera", &cameraRate}, {"mjpeg", &mjpegRate}, {"h264", &h264Rate}, {"display", &displayRate}};
  for (const auto& [name, meter] : rates)
    sample("printcast_fps", fmt::format("output=\"{}\"", name), meter->fps());
  family("printcast_frames_total", "counter", "Frames produced per output");
  for (const auto& [name, meter] : rates) {
    sample("printcast_frames_total", fmt::format("output=\"{}\"", name), static_cast<double>(meter->total()));
  }

  const auto streams = clientStreams();
  family("printcast_clients", "gauge", "Connected clients per stream");
  for (const auto& [name, f] : streams) {
    sample("printcast_clients", fmt::format("stream=\"{}\"", name), static_cast<double>(f->clientCount()));
  }
  family("printcast_stream_units_queued_total", "counter", "Frames or access units queued to clients");
  for (const auto& [name, f] : streams) {
    sample("printcast_stream_units_queued_total", fmt::format("stream=\"{}\"", name),
           static_cast<double>(f->totals().unitsQueued));
  }
  family("printcast_stream_units_dropped_total", "counter",
         "Frames or access units dropped for slow clients");
  for (const auto& [name, f] : streams) {
    sample("printcast_stream_units_dropped_total", fmt::format("stream=\"{}\"", name),
           static_cast<double>(f->totals().unitsDropped));
  }
  family("printcast_stream_sent_bytes_total", "counter", "Bytes sent to clients per stream");
  for (const auto& [name, f] : streams) {
    sample("printcast_stream_sent_bytes_total", fmt::format("stream=\"{}\"", name),
           static_cast<double>(f->totals().bytesSent));
  }
  family("printcast_cpu_percent", "gauge", "CPU use in percent (system: all cores, process: this streamer)");
  sample("printcast_cpu_percent", "scope=\"system\"", systemCpu.load());
  sample("printcast_cpu_percent", "scope=\"process\"", processCpu.load());
  family("printcast_h264_skip_interval", "gauge",
         "H.264 encodes every Nth camera frame (slider and auto-skip)");
  sample("printcast_h264_skip_interval", "", std::max(skipInterval.load(), live.frameSkip.load()));
  const auto hlsNow = hls->segmenter().stats();
  family("printcast_hls_watched", "gauge", "1 while something fetched from /hls/ in the last few seconds");
  sample("printcast_hls_watched", "", hls->watched() ? 1 : 0);
  family("printcast_hls_segments_total", "counter", "HLS segments completed");
  sample("printcast_hls_segments_total", "", static_cast<double>(hlsNow.segmentsProduced));
  family("printcast_hls_parts_total", "counter", "HLS partial segments (LL-HLS parts) completed");
  sample("printcast_hls_parts_total", "", static_cast<double>(hlsNow.partsProduced));
  family("printcast_hls_bytes", "gauge", "Bytes of HLS segments held in memory");
  sample("printcast_hls_bytes", "", static_cast<double>(hlsNow.bytes));
  family("printcast_hls_requests_total", "counter", "Requests under /hls/");
  sample("printcast_hls_requests_total", "", static_cast<double>(hls->requests()));
  family("printcast_touches_total", "counter", "Taps injected into the touch panel");
  sample("printcast_touches_total", "", static_cast<double>(touchCount.load()));
  // The HTTP ports' limits and origin rule (transport/http_server.h HttpServerStats).
  std::vector<std::pair<const char*, transport::HttpServerStats>> ports;
  for (const auto& [name, server] :
       {std::pair{"stream", streamServer.get()}, std::pair{"control", controlServer.get()},
        std::pair{"flv", flvServer.get()}, std::pair{"ws", wsServer.get()},
        std::pair{"ingest", ingestServer.get()}}) {
    if (server != nullptr) ports.emplace_back(name, server->stats());
  }
  using Field = uint64_t transport::HttpServerStats::*;
  for (const auto& [metric, help, field] :
       {std::tuple<const char*, const char*, Field>{"printcast_http_connections_total",
                                                    "Connections accepted per port",
                                                    &transport::HttpServerStats::connections},
        {"printcast_http_address_limit_refused_total",
         "Connections refused (closed or 503) because their address had too many open",
         &transport::HttpServerStats::addressLimitRefused},
        {"printcast_http_cross_origin_refused_total",
         "State-changing requests and CORS preflights refused by the same-origin rule (403)",
         &transport::HttpServerStats::crossOriginRefused},
        {"printcast_http_unauthorized_total", "Requests without valid credentials (401)",
         &transport::HttpServerStats::unauthorized},
        {"printcast_http_stream_stalls_total", "Streams dropped because the client accepted no bytes",
         &transport::HttpServerStats::streamStalls},
        {"printcast_http_timeouts_total", "Other connections closed by the request-head or idle timeout",
         &transport::HttpServerStats::timeouts}}) {
    family(metric, "counter", help);
    for (const auto& [port, st] : ports)
      sample(metric, fmt::format("port=\"{}\"", port), static_cast<double>(st.*field));
  }
  if (ingest) {  // --source ws-push (transport/jpeg_push.h JpegPushStats)
    const auto st = ingest->stats();
    family("printcast_ingest_cameras", "gauge", "Cameras connected to the push ingest");
    sample("printcast_ingest_cameras", "", static_cast<double>(st.cameraClients));
    for (const auto& [metric, help, value] :
         {std::tuple<const char*, const char*, uint64_t>{"printcast_ingest_messages_total",
                                                         "Messages the cameras pushed", st.messages},
          {"printcast_ingest_frames_total", "Pushed JPEGs handed to the camera pipeline", st.frames},
          {"printcast_ingest_dropped_total",
           "Pushed messages without a usable JPEG, or dropped for a slow pipeline", st.dropped},
          {"printcast_ingest_takeovers_total", "Times a newer camera connection replaced the older one",
           st.takeovers},
          {"printcast_ingest_refused_total",
           "Camera connections closed for a protocol error or a message too big", st.refused}}) {
      family(metric, "counter", help);
      sample(metric, "", static_cast<double>(value));
    }
  }
  family("printcast_uptime_seconds", "gauge", "Seconds since the streamer started");
  sample("printcast_uptime_seconds", "", std::chrono::duration<double>(Clock::now() - startedAt).count());
  return out;
}

// 200 "ok" while the camera delivers frames; 503 with the reason otherwise (starting, no signal).
HttpResponse Streamer::Impl::healthz() {
  const std::string state = getCameraState();
  if (state != "streaming") return HttpResponse::text(503, "camera " + state + "\n");
  if (cameraRate.fps() <= 0) return HttpResponse::text(503, "camera: no frame in the last 2 s\n");
  return HttpResponse::text(200, "ok\n");
}

namespace {
// The members of the JSON object text `json` named in `keys`.
nlohmann::json onlyKeys(const std::string& json, const std::vector<std::string>& keys) {
  nlohmann::json out = nlohmann::json::parse(json);
  for (auto it = out.begin(); it != out.end();) {
    it = std::find(keys.begin(), keys.end(), it.key()) == keys.end() ? out.erase(it) : std::next(it);
  }
  return out;
}
}  // namespace

// GET: the runtime settings. POST {"bitrate": 1024, ...}: validate all (400 naming the key,
// nothing applied or written), apply live, save to the config file.
HttpResponse Streamer::Impl::settingsRequest(const HttpRequest& req) {
  auto reply = [&](int code, const nlohmann::json& extra) {
    nlohmann::json body = nlohmann::json::parse(runtimeSettingsJson(applied));
    nlohmann::json out{{"settings", body},
                       {"persisted", !applied.configFile.empty()},
                       {"config_file", applied.configFile},
                       {"display_max_fps", board->display.maxFps},
                       {"camera_fps", settings.fps}};
    out.update(extra);
    return HttpResponse::json(code, out.dump());
  };
  std::lock_guard lock(settingsMutex);
  if (req.method == "GET" || req.method == "HEAD") return reply(200, {{"status", "ok"}});
  if (req.method != "POST") return HttpResponse::error(405, "use GET, or POST a JSON object of settings");
  if (!req.hasMediaType("application/json")) return unsupportedMediaType(req, "application/json");
  Settings next;
  std::vector<std::string> keys;
  std::string errorKey;
  if (auto st = validateSettingsChange(req.body, *board, applied, next, keys, errorKey); !st) {
    return HttpResponse::json(
        400, nlohmann::json{{"status", "error"}, {"error", st.error().message}, {"key", errorKey}}.dump());
  }
  // Save first: a change that cannot be saved is not applied either (it would be lost silently).
  const std::string json = runtimeSettingsJson(next);
  if (auto st = persistSettings(next, json, keys); !st) {
    return HttpResponse::json(
        500, nlohmann::json{{"status", "error"}, {"error", st.error().describe()}, {"key", ""}}.dump());
  }
  const nlohmann::json changes = onlyKeys(json, keys);
  nlohmann::json restartRequired = nlohmann::json::array();
  if (next.bitrateKbps != applied.bitrateKbps || next.jpegQuality != applied.jpegQuality) {
    live.bitrateKbps = next.bitrateKbps;
    live.jpegQuality = next.jpegQuality;
    live.reconfigureCamera = true;
    live.reconfigureDisplay = true;
  }
  live.h264Enabled = next.h264Enabled;
  if (!next.h264Enabled && applied.h264Enabled) {
    for (const auto& o : h264Outputs) {
      if (o.endClients) o.endClients();
    }
  }
  live.frameSkip = skipIntervalForPercent(next.h264FrameratePercent);
  live.autoSkip = next.autoSkip;
  live.targetCpu = next.targetCpu;
  live.mjpegFps = next.mjpegFps;
  live.displayFps = next.displayFps;
  live.displayEnabled = next.displayEnabled;
  if (next.displayEnabled && !display && !settings.displayEnabled)
    restartRequired.push_back("display_enabled");
  if (next.h264Enabled) keyframeWanted = true;
  displayWake.notify_all();
  applied = next;
  ++settingsChanges;
  spdlog::info("settings: changed {}{}", changes.dump(),
               applied.configFile.empty() ? " (not saved: no --config)" : "");
  return reply(200, {{"status", "ok"}, {"changed", keys}, {"restart_required", restartRequired}});
}

hal::Status Streamer::Impl::persistSettings(const Settings& next, const std::string& json,
                                            const std::vector<std::string>& keys) {
  if (next.configFile.empty()) return {};
  auto st = saveSettingsFile(next.configFile, onlyKeys(json, keys).dump());
  if (!st) spdlog::error("settings: {}", st.error().describe());
  return st;
}

// ----------------------------------------------------------------------------- timelapse manager

namespace {
int statusFor(hal::Errc code) {
  switch (code) {
    case hal::Errc::InvalidArgument: return 400;
    case hal::Errc::NoDevice: return 404;
    default: return 500;
  }
}
}  // namespace

// A video or thumbnail as the body: the whole file (200), or for a GET with a satisfiable Range
// the first range asked for (206), or 416. libmicrohttpd sends the file with sendfile() as fast
// as the client reads, so a slow download never holds the control port's thread.
HttpResponse Streamer::Impl::timelapseFileResponse(const HttpRequest& req, hal::Result<TimelapseFile> file,
                                                   const std::string& contentType, bool ranges) {
  if (!file) return HttpResponse::error(statusFor(file.code()), file.error().message);
  const uint64_t size = file->sizeBytes;
  auto body = std::make_shared<transport::FileBody>(file->fd, 0, size);  // owns the fd from here
  HttpResponse r;
  r.contentType = contentType;
  r.headers.emplace_back("Cache-Control", "no-cache");
  if (ranges) r.headers.emplace_back("Accept-Ranges", "bytes");
  // Validators, so a download that stopped can resume with If-Range (curl -C -, browsers).
  const std::string etag = transport::fileEtag(size, file->modifiedUnix, file->modifiedNs);
  const std::string lastModified = transport::httpDate(file->modifiedUnix);
  r.headers.emplace_back("ETag", etag);
  r.headers.emplace_back("Last-Modified", lastModified);
  transport::ByteRangeAnswer answer;
  // RFC 9110 14.2: ranges only for GET; under an If-Range only while the file is the one the
  // client saw (13.1.5), otherwise the whole file, which is always correct.
  if (ranges && req.method == "GET" && transport::ifRangeAllows(req.header("if-range"), etag, lastModified)) {
    answer = transport::parseByteRange(req.header("range"), size);
  }
  switch (answer.kind) {
    case transport::ByteRangeAnswer::Kind::Unsatisfiable: {
      HttpResponse e =
          HttpResponse::error(416, fmt::format("range not satisfiable: the file has {} bytes", size));
      e.headers.emplace_back("Content-Range", transport::contentRangeValue(answer, size));
      e.headers.emplace_back("Accept-Ranges", "bytes");
      return e;  // `body` closes the file
    }
    case transport::ByteRangeAnswer::Kind::Partial:
      r.status = 206;
      r.headers.emplace_back("Content-Range", transport::contentRangeValue(answer, size));
      r.file = std::make_shared<transport::FileBody>(body->release(), answer.first, answer.length);
      return r;
    case transport::ByteRangeAnswer::Kind::Full: break;
  }
  r.file = std::move(body);
  return r;
}

// GET /api/timelapse/list | storage | settings, GET /api/timelapse/thumb/<name>,
// GET|HEAD /api/timelapse/video/<name>[.mp4], DELETE /api/timelapse/delete/<name>,
// POST /api/timelapse/settings. `?storage=internal|usb` picks the storage of a name (default:
// the current one, then the others). Names are checked before any file is touched.
HttpResponse Streamer::Impl::timelapseRequest(const HttpRequest& req) {
  const std::string& path = req.path;
  const bool get = req.method == "GET" || req.method == "HEAD";
  auto tail = [&](std::string_view prefix) -> std::optional<std::string> {
    if (path.size() < prefix.size() || path.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
    return path.substr(prefix.size());
  };
  if (path == "/api/timelapse/settings") return timelapseSettingsRequest(req);
  if (path == "/api/timelapse/list") {
    if (!get) return HttpResponse::error(405, "use GET");
    HttpResponse r = HttpResponse::json(200, timelapseStore.listJson());
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
  }
  if (path == "/api/timelapse/storage") {
    if (!get) return HttpResponse::error(405, "use GET");
    return HttpResponse::json(200, timelapseStore.storageJson());
  }
  const std::string storage = req.arg("storage");
  if (auto name = tail("/api/timelapse/video/")) {
    if (!get) return HttpResponse::error(405, "use GET or HEAD");
    return timelapseFileResponse(req, timelapseStore.openVideo(*name, storage), "video/mp4", true);
  }
  if (auto name = tail("/api/timelapse/thumb/")) {
    if (!get) return HttpResponse::error(405, "use GET");
    return timelapseFileResponse(req, timelapseStore.openThumbnail(*name, storage), "image/jpeg", false);
  }
  if (auto name = tail("/api/timelapse/delete/")) {
    if (req.method != "DELETE") return HttpResponse::error(405, "use DELETE");
    auto removed = timelapseStore.remove(*name, storage);
    if (!removed) return HttpResponse::error(statusFor(removed.code()), removed.error().message);
    spdlog::info("timelapse: deleted {}", fmt::join(*removed, ", "));
    return HttpResponse::json(200, nlohmann::json{{"status", "ok"}, {"deleted", *removed}}.dump());
  }
  return HttpResponse::error(404, "no such endpoint: " + path);
}

// GET: the timelapse settings (every timelapse_ and moonraker_ key). POST {"timelapse_storage":
// "usb", ...}: validated like /api/settings (400 naming the key, nothing applied or written),
// saved atomically to the config file, then applied.
HttpResponse Streamer::Impl::timelapseSettingsRequest(const HttpRequest& req) {
  auto reply = [&](int code, const nlohmann::json& extra) {
    nlohmann::json out{{"settings", nlohmann::json::parse(timelapseSettingsJson(applied))},
                       {"changeable", timelapseSettingKeys()},
                       {"persisted", !applied.configFile.empty()},
                       {"config_file", applied.configFile}};
    out.update(extra);
    return HttpResponse::json(code, out.dump());
  };
  std::lock_guard lock(settingsMutex);
  if (req.method == "GET" || req.method == "HEAD") return reply(200, {{"status", "ok"}});
  if (req.method != "POST") return HttpResponse::error(405, "use GET, or POST a JSON object of settings");
  if (!req.hasMediaType("application/json")) return unsupportedMediaType(req, "application/json");
  Settings next;
  std::vector<std::string> keys;
  std::string errorKey;
  if (auto st =
          validateSettingsChange(req.body, *board, applied, next, keys, errorKey, timelapseSettingKeys());
      !st) {
    return HttpResponse::json(
        400, nlohmann::json{{"status", "error"}, {"error", st.error().message}, {"key", errorKey}}.dump());
  }
  if (auto st = persistSettings(next, timelapseSettingsJson(next), keys); !st) {
    return HttpResponse::json(
        500, nlohmann::json{{"status", "error"}, {"error", st.error().describe()}, {"key", ""}}.dump());
  }
  applied = next;
  timelapseStore.configure(timelapseStorageOptions(applied, *board), applied.timelapseStorage);
  if (onTimelapseSettings) onTimelapseSettings(applied);
  ++settingsChanges;
  spdlog::info("timelapse settings: changed {}{}", fmt::join(keys, ", "),
               applied.configFile.empty() ? " (not saved: no --config)" : "");
  return reply(200, {{"status", "ok"}, {"changed", keys}});
}

// The shared-memory rings for /status and /api/stats: per ring its object name, live readers,
// frames and bytes published, publish errors, reader keyframe requests and generation.
nlohmann::json Streamer::Impl::ringStats() {
  nlohmann::json out = {{"enabled", h264Ring != nullptr || jpegRing != nullptr}, {"error", ringError}};
  for (auto [key, ring] : {std::pair{"h264", h264Ring.get()}, {"jpeg", jpegRing.get()}}) {
    if (ring == nullptr) continue;
    const auto st = ring->stats();
    out[key] = {{"name", ring->name()},
                {"readers", st.liveReaders},
                {"frames_published", st.framesPublished},
                {"bytes_published", st.bytesPublished},
                {"frames_rejected", st.framesRejected},
                {"keyframe_requests", st.keyframeRequests},
                {"generation", st.generation}};
  }
  return out;
}

// HLS for /status and /api/stats: whether someone watches, held (blocking) requests, the window.
nlohmann::json Streamer::Impl::hlsStats() {
  const auto st = hls->segmenter().stats();
  return {{"watched", hls->watched()},
          {"requests", hls->requests()},
          {"waiting", hls->waiting()},
          {"media_sequence", st.mediaSequence},
          {"segments", st.segments},
          {"segments_produced", st.segmentsProduced},
          {"parts_produced", st.partsProduced},
          {"bytes", st.bytes},
          {"target_duration_s", st.targetDurationS},
          {"format", settings.hlsFormat}};
}

// A page showing one stream full width, with the /status counters under it (refreshed each second).
HttpResponse playerPage(std::string_view what, std::string_view element) {
  HttpResponse r;
  r.contentType = "text/html; charset=utf-8";
  r.body = fmt::format(
      "<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width\"><link rel=icon "
      "href=\"data:,\">"
      "<title>printcast {0}</title><style>body{{margin:0;background:#111;color:#ccc;font:14px sans-serif}}"
      "img,video{{display:block;width:100%;max-height:92vh;object-fit:contain}}p{{margin:6px}}</style>"
      "{1}<p id=s>camera: ?</p><p><a href=/>H.264</a> · <a href=/mjpeg>MJPEG</a> · <a href=/status>status</a>"
      "<script>setInterval(async()=>{{try{{const s=await(await fetch('/status')).json();"
      "document.getElementById('s').textContent='camera: '+(s.streaming?'streaming':'no signal')+"
      "' · cameras '+s.camera_clients+' · viewers '+s.viewer_clients}}catch(e){{}}}},1000)</script>",
      what, element);
  return r;
}

HttpResponse Streamer::Impl::handleStream(const HttpRequest& req) {
  if (req.method != "GET" && req.method != "HEAD") return HttpResponse::error(405, "only GET is served here");
  std::string path = req.path;
  if (path == "/" || path.empty()) {
    const std::string action = req.arg("action");
    if (action == "stream")
      path = "/stream";
    else if (action == "snapshot")
      path = "/snapshot";
    else if (!action.empty())
      return HttpResponse::error(404, "unknown action '" + action + "'");
  }
  const auto snapshotMaxAge = std::chrono::milliseconds(1000 / std::max(1, settings.fps) * 2);
  if (path == "/stream") return mjpegResponse(mjpeg);
  if (path == "/ingest") {
    if (!ingest) return HttpResponse::error(404, "no camera ingest here (it is on with --source ws-push)");
    return ingest->accept(req);
  }
  if (path == "/snapshot") return snapshots.request(snapshotMaxAge);
  if (path == "/flv" || path == "/ws" || path == "/stream.mp4") {
    if (!live.h264Enabled) return HttpResponse::error(503, "H.264 is disabled (h264_enabled = false)");
    if (path == "/stream.mp4") return fmp4Response();
    return path == "/flv" ? flvResponse(false) : wsResponse(req, req.arg("ts") == "1");
  }
  if (path.rfind("/hls/", 0) == 0) {
    if (!live.h264Enabled) return HttpResponse::error(503, "H.264 is disabled (h264_enabled = false)");
    return hls->handle(req, std::string_view(path).substr(5));  // a lookup key, never a file path
  }
  if (path == "/state") return HttpResponse::json(200, ustreamerState().dump());
  if (path == "/metrics") {
    HttpResponse r = HttpResponse::text(200, metrics());
    r.contentType = "text/plain; version=0.0.4; charset=utf-8";
    return r;
  }
  if (path == "/healthz") return healthz();
  if (path == "/display" || path == "/display/snapshot") {
    if (!display) return HttpResponse::error(503, "no display capture: " + displayError);
    if (!live.displayEnabled)
      return HttpResponse::error(503, "display capture is disabled (display_enabled = false)");
    HttpResponse r;
    if (path == "/display") {
      r = mjpegResponse(displayStream);
      displayNewClient = true;
    } else {
      r = displaySnapshots.request(0ms);  // always a fresh grab: the screen may just have been touched
    }
    displayWake.notify_all();
    return r;
  }
  if (path == "/status") return HttpResponse::json(200, status().dump());
  if (path == "/mjpeg") return playerPage("MJPEG", "<img src=/stream alt=\"camera MJPEG stream\">");
  if (path == "/" && settings.profile == "esp32-relay") {
    // The relay's H.264 page: a plain <video> of /stream.mp4 (no script library to serve).
    return playerPage("H.264", "<video src=/stream.mp4 autoplay muted playsinline></video>");
  }
  if (path == "/") {
    HttpResponse r;
    r.contentType = "text/html; charset=utf-8";
    r.body = fmt::format(
        "<!doctype html><meta charset=utf-8><title>printcast</title><h1>printcast on {}</h1><ul>"
        "<li><a href=/stream>/stream</a> MJPEG<li><a href=/snapshot>/snapshot</a> JPEG"
        "<li><a href=/stream.mp4>/stream.mp4</a> H.264 in fragmented MP4 (a plain &lt;video&gt;)"
        "<li><a href=/hls/stream.m3u8>/hls/stream.m3u8</a> HLS"
        "<li><a href=/flv>/flv</a> H.264 in FLV<li>/ws H.264 over WebSocket (?ts=1: timestamps)<li><a "
        "href=/display>/display</a> printer screen"
        "<li><a href=/display/snapshot>/display/snapshot</a><li><a href=/status>/status</a></ul>",
        board->name);
    return r;
  }
  return HttpResponse::error(404, "no such endpoint: " + req.path);
}

HttpResponse Streamer::Impl::handleControl(const HttpRequest& req) {
  if (req.method == "GET" || req.method == "HEAD") {
    if (req.path == "/" || req.path.empty()) {
      HttpResponse r = HttpResponse::text(302, "see /control");
      r.headers.emplace_back("Location", "/control");
      return r;
    }
    if (const WebAsset* asset = findWebAsset(req.path)) {
      HttpResponse r;
      r.contentType = std::string(asset->contentType);
      r.body.assign(reinterpret_cast<const char*>(asset->data.data()), asset->data.size());
      r.headers.emplace_back("Cache-Control", "no-cache");
      return r;
    }
  }
  if (req.path == "/healthz") return healthz();
  // What touches files (fsync of the config, folder scans, the moov of each video, camera
  // controls saved to a file) runs on the blocking worker, never on the server thread.
  auto onWorker = [this, &req](HttpResponse (Impl::*handler)(const HttpRequest&)) {
    return blockingWork->defer([this, handler, copy = req] { return (this->*handler)(copy); });
  };
  if (req.path == "/api/settings") return onWorker(&Impl::settingsRequest);
  if (req.path == "/api/touch") {
    if (req.method != "POST") return HttpResponse::error(405, "use POST with {\"x\",\"y\",\"duration\"}");
    return touchRequest(req);
  }
  if (req.path == "/api/stats") return HttpResponse::json(200, stats().dump());
  if (req.path == "/api/lan_mode") return onWorker(&Impl::lanModeRequest);
  if (req.path == "/api/camera/controls") return onWorker(&Impl::cameraControls);
  if (req.path == "/api/timelapse/moonraker" || req.path == "/api/timelapse/status")
    return timelapseStatusRequest(req);
  if (req.path.rfind("/api/timelapse/", 0) == 0) return onWorker(&Impl::timelapseRequest);  // the manager
  if (req.path == "/status") return HttpResponse::json(200, status().dump());
  return HttpResponse::error(404, "no such endpoint: " + req.path);
}

// GET: the camera's V4L2 controls with their values and what is saved for it.
// POST {"Brightness": 140, "9963778": 20}: set controls by name or id, saved per camera.
// The ioctls are short; the lock only keeps the camera from being replaced meanwhile.
HttpResponse Streamer::Impl::cameraControls(const HttpRequest& req) {
  if (req.method != "GET" && req.method != "POST") return HttpResponse::error(405, "use GET or POST");
  nlohmann::json body;
  if (req.method == "POST") {
    if (!req.hasMediaType("application/json")) return unsupportedMediaType(req, "application/json");
    body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return HttpResponse::error(400, "body is a JSON object of control name (or id) -> integer value");
    }
  }
  std::string stableName;
  {
    std::lock_guard lock(stateMutex);
    stableName = cameraStableName;
  }
  std::lock_guard lock(cameraMutex);
  hal::V4l2Camera* v4l2 = camera ? hal::v4l2CameraOf(*camera) : nullptr;
  if (v4l2 == nullptr) {
    return HttpResponse::error(
        503, camera ? "this camera has no V4L2 controls" : "no camera: " + getCameraState());
  }
  auto controls = v4l2->listControls();
  if (!controls) return HttpResponse::error(503, controls.error().describe());
  for (const auto& item : body.items()) {
    const std::string& key = item.key();
    const auto& value = item.value();
    auto it = std::find_if(controls->begin(), controls->end(), [&](const hal::V4l2Control& c) {
      return c.name == key || std::to_string(c.id) == key;
    });
    if (it == controls->end()) return HttpResponse::error(400, fmt::format("no control named '{}'", key));
    if (!value.is_number_integer() && !value.is_boolean()) {
      return HttpResponse::error(400, fmt::format("'{}': value {} is not an integer", key, value.dump()));
    }
    const int64_t v = value.is_boolean() ? (value.get<bool>() ? 1 : 0) : value.get<int64_t>();
    if (auto st = controlStore.set(stableName, *v4l2, *it, v); !st) {
      return HttpResponse::error(st.code() == hal::Errc::Io ? 500 : 400,
                                 fmt::format("'{}' = {}: {}", key, v, st.error().describe()));
    }
  }
  if (!body.empty()) {
    controls = v4l2->listControls();
    if (!controls) return HttpResponse::error(503, controls.error().describe());
  }
  nlohmann::json list = nlohmann::json::array();
  for (const auto& c : *controls) list.push_back(controlToJson(c));
  return HttpResponse::json(
      200,
      nlohmann::json{{"camera", stableName}, {"controls", list}, {"saved", controlStore.saved(stableName)}}
          .dump());
}

HttpResponse Streamer::Impl::handleFlvPort(const HttpRequest& req) {
  if (req.path == "/flv") {
    if (!live.h264Enabled) return HttpResponse::error(503, "H.264 is disabled (h264_enabled = false)");
    return flvResponse(true);
  }
  return HttpResponse::error(404, "no such endpoint: " + req.path);
}

// ----------------------------------------------------------------------------- timelapse
// (feat-tlrec) Moonraker client, recorder and webcam registration; docs/timelapse.md.

namespace {

// The first non-loopback IPv4 address (what a browser elsewhere on the LAN reaches us at).
std::string lanAddress() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "127.0.0.1";
  std::string out;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    char text[INET_ADDRSTRLEN] = {};
    sockaddr_in in{};  // copied: a sockaddr* need not be aligned for sockaddr_in (armhf -Wcast-align)
    std::memcpy(&in, a->ifa_addr, sizeof in);
    if (::inet_ntop(AF_INET, &in.sin_addr, text, sizeof text) == nullptr) continue;
    if (std::string(text).rfind("127.", 0) == 0) continue;
    out = text;
    break;
  }
  ::freeifaddrs(list);
  return out.empty() ? "127.0.0.1" : out;
}

}  // namespace

void Streamer::Impl::startTimelapse(const Settings& ts) {
  if (!ts.timelapseEnabled && !ts.moonrakerRegisterWebcam) return;
  if (ts.timelapseEnabled) {
    RecorderConfig rc;
    rc.mode = ts.timelapseMode == "hyperlapse" ? TimelapseMode::Hyperlapse : TimelapseMode::Layer;
    rc.interval = std::chrono::seconds(ts.timelapseIntervalS);
    rc.delay = std::chrono::milliseconds(ts.timelapseStreamDelayMs);
    // The manager's current storage (internal while the USB stick is away), created when missing.
    rc.recordingFolder = [this] { return timelapseStore.recordingFolder(); };
    rc.assembly.crf = ts.timelapseCrf;
    rc.assembly.fps = ts.timelapseFps;
    rc.assembly.variableFps = ts.timelapseVariableFps;
    rc.assembly.targetLengthS = ts.timelapseTargetLengthS;
    rc.assembly.minFps = ts.timelapseMinFps;
    rc.assembly.maxFps = ts.timelapseMaxFps;
    rc.assembly.flipX = ts.timelapseFlipX;
    rc.assembly.flipY = ts.timelapseFlipY;
    rc.assembly.duplicateLast = ts.timelapseDuplicateLast;
    timelapse = std::make_unique<TimelapseRecorder>(
        rc, [this](std::chrono::milliseconds timeout) { return snapshots.next(timeout); });
    timelapse->start();
    auto folder = rc.recordingFolder();
    spdlog::info("timelapse: {} mode, videos in {}", ts.timelapseMode,
                 folder ? folder->string() : folder.error().describe());
  }
  MoonrakerConfig mc;
  mc.socketPath = ts.moonrakerSocket;
  mc.host = ts.moonrakerHost;
  mc.port = static_cast<uint16_t>(ts.moonrakerPort);
  // The handlers run on the client's thread: they reach the recorder and the client directly,
  // never through timelapseMutex (stop() joins that thread under it).
  TimelapseRecorder* recorder = timelapse.get();
  const bool registerCam = ts.moonrakerRegisterWebcam;
  moonraker = std::make_unique<MoonrakerClient>(
      mc,
      [recorder](const PrintStatus& ps) {
        if (recorder != nullptr) recorder->onStatus(ps);
      },
      [this, registerCam](MoonrakerClient& client) {
        if (registerCam) registerWebcam(client, false);
      });
  moonraker->start();
}

void Streamer::Impl::stopTimelapse() {
  if (moonraker) moonraker->stop();  // first: its thread feeds the recorder
  if (timelapse) timelapse->stop();
  moonraker.reset();
  timelapse.reset();
}

void Streamer::Impl::applyTimelapseSettings(const Settings& next) {
  {
    std::lock_guard lock(timelapseApplyMutex);
    timelapsePending = next;  // a newer change replaces one not yet applied
  }
  timelapseApplyWake.notify_all();
}

void Streamer::Impl::timelapseControlLoop() {
  while (true) {
    Settings next;
    {
      std::unique_lock lock(timelapseApplyMutex);
      timelapseApplyWake.wait(lock, [this] { return timelapseApplyStop || timelapsePending.has_value(); });
      if (timelapseApplyStop) return;
      next = std::move(*timelapsePending);
      timelapsePending.reset();
    }
    std::lock_guard lock(timelapseMutex);
    // Only a change of the recorder's keys restarts it (a storage change applies at the next
    // print: the folder is asked from the store at the start of each).
    if (timelapseClosed ||
        timelapseRecordingSettingsJson(next) == timelapseRecordingSettingsJson(timelapseSettings)) {
      continue;
    }
    spdlog::info("timelapse: applying new settings (restarting the Moonraker client and the recorder)");
    stopTimelapse();
    timelapseSettings = next;
    {
      std::lock_guard webcamLock(webcamMutex);
      webcamAddress.clear();
    }
    startTimelapse(next);
  }
}

// Upsert our webcam in Moonraker (server.webcams.post_item, the JSON-RPC form of
// POST /server/webcams/item): MJPEG with the adaptive service, a snapshot URL without '&'
// (moonraker-timelapse runs wget on it unquoted).
void Streamer::Impl::registerWebcam(MoonrakerClient& client, bool onlyIfAddressChanged) {
  const std::string address =
      !settings.host.empty() && settings.host != "0.0.0.0" ? settings.host : lanAddress();
  {
    std::lock_guard lock(webcamMutex);
    if (onlyIfAddressChanged && address == webcamAddress) return;
    webcamAddress = address;
  }
  const uint16_t port = streamServer ? streamServer->port() : static_cast<uint16_t>(settings.port);
  const std::string base = fmt::format("http://{}:{}", address, port);
  const nlohmann::json item{{"name", "printcast"},
                            {"location", "printer"},
                            {"icon", "mdiWebcam"},
                            {"enabled", true},
                            {"service", "mjpegstreamer-adaptive"},
                            {"target_fps", live.mjpegFps.load()},
                            {"target_fps_idle", 5},
                            {"stream_url", base + "/stream"},
                            {"snapshot_url", base + "/snapshot"},
                            {"flip_horizontal", false},
                            {"flip_vertical", false},
                            {"rotation", 0},
                            {"aspect_ratio", "16:9"}};
  spdlog::info("moonraker: registering webcam at {}/stream", base);
  client.call("server.webcams.post_item", item);
}

// GET /api/timelapse/moonraker and /api/timelapse/status (the same JSON): the Moonraker
// connection, the print it reports, the recording and the assembly progress.
HttpResponse Streamer::Impl::timelapseStatusRequest(const HttpRequest& req) {
  if (req.method != "GET" && req.method != "HEAD") return HttpResponse::error(405, "use GET");
  std::lock_guard lock(timelapseMutex);
  nlohmann::json out{{"enabled", timelapse != nullptr}};
  if (moonraker) {
    const auto m = moonraker->state();
    out["moonraker"] = {
        {"state", m.state},
        {"connected", m.state == "connected" || m.state == "subscribed"},
        {"endpoint", m.endpoint},
        {"klippy", m.klippy},
        {"connections", m.connections},
        {"notifications", m.notifications},
        {"retry_in_ms", m.retryIn.count()},
        {"last_error", m.lastError},
        {"print",
         {{"state", m.print.state},
          {"filename", m.print.filename},
          {"current_layer", m.print.currentLayer ? nlohmann::json(*m.print.currentLayer) : nlohmann::json()},
          {"total_layer", m.print.totalLayer ? nlohmann::json(*m.print.totalLayer) : nlohmann::json()}}}};
  } else {
    out["moonraker"] = {{"state", "off"}, {"connected", false}};
  }
  out["webcam_registration"] = timelapseSettings.moonrakerRegisterWebcam;
  if (timelapse) {
    out.update(timelapse->status());
    out["state"] = out["assembly"]["state"] == "assembling" ? "assembling" : out["recording"]["state"];
  } else {
    out["state"] = "disabled";
  }
  return HttpResponse::json(200, out.dump());
}

// ----------------------------------------------------------------------------- lifecycle

Streamer::Streamer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Streamer::~Streamer() { stop(); }

hal::Result<std::unique_ptr<Streamer>> Streamer::start(const Settings& settings, const bsp::Board& board) {
  auto impl = std::make_unique<Impl>(settings, board);
  Impl& s = *impl;
  s.pictureTransform = cameraTransform(settings);
  s.jpeg = codecs::createJpegEncoder();
  // Timelapse recording (feat-tlrec): POST /api/timelapse/settings applies the recorder's keys live.
  s.timelapseSettings = settings;
  s.onTimelapseSettings = [&s](const Settings& next) { s.applyTimelapseSettings(next); };
  // The H.264 backends to try: the board's list, encoder_type's choice first.
  std::string_view choice = settings.encoderType;
  if (settings.encoderType == "rkmpi" || settings.encoderType == "rkmpi-yuyv") {
    // h264-streamer's values (settings.cpp kEncoderTypes): the Rockchip MPI encoder is a vendor
    // SDK backend; without one the board's next backend stands in.
    choice = "vendor";
    spdlog::warn(
        "encoder_type {}: the Rockchip MPI hardware encoder needs the vendor SDK, which this build does "
        "not have; using the board's next H.264 encoder (camera format {} as {} asks)",
        settings.encoderType, settings.encoderType == "rkmpi" ? "MJPEG" : "YUYV", settings.encoderType);
  } else if (settings.encoderType == "gkcam") {
    choice = "auto";
    spdlog::info(
        "encoder_type gkcam: the camera is the stock camera service's H.264 ({}), passed through; its FLV "
        "port stays gkcam's{}",
        settings.source, settings.flvPort < 0 ? " (printcast's own FLV port is off)" : "");
  }
  auto order = codecs::h264BackendOrder(board.encoders.h264, choice);
  if (!order) return hal::Error{order.code(), 0, "encoder_type: " + order.error().message};
  for (auto backend : *order) s.h264Order.emplace_back(codecs::h264BackendName(backend));
  s.h264 = codecs::createH264Encoder(*order);
  s.flv.setOnSubscribe([&s] { s.keyframeWanted = true; });  // every client starts on a fresh IDR
  s.h264Outputs.push_back({"flv", [&s] { return s.flv.clientCount() > 0; },
                           [&s](const hal::PacketPtr& p) { s.flv.publish(p); }, [&s] { s.flv.closeAll(); }});
  s.fmp4.setOnSubscribe([&s] { s.keyframeWanted = true; });
  s.h264Outputs.push_back({"fmp4", [&s] { return s.fmp4.clientCount() > 0; },
                           [&s](const hal::PacketPtr& p) { s.fmp4.publish(p); },
                           [&s] { s.fmp4.closeAll(); }});
  s.wsStream.setOnSubscribe([&s] { s.keyframeWanted = true; });
  s.h264Outputs.push_back({"ws", [&s] { return s.wsStream.clientCount() > 0; },
                           [&s](const hal::PacketPtr& p) { s.wsStream.publish(p); },
                           [&s] { s.wsStream.closeAll(); }});
  s.rtspStream.setOnSubscribe([&s] { s.keyframeWanted = true; });
  s.h264Outputs.push_back({"rtsp", [&s] { return s.rtspStream.clientCount() > 0; },
                           [&s](const hal::PacketPtr& p) { s.rtspStream.publish(p); },
                           [&s] { s.rtspStream.closeAll(); }});
  {
    transport::hls::Config hc;
    hc.format = settings.hlsFormat == "ts" ? transport::hls::Format::MpegTs : transport::hls::Format::Fmp4;
    hc.segmentTarget = std::chrono::milliseconds(std::lround(settings.hlsSegmentSeconds * 1000));
    hc.partTarget = std::chrono::milliseconds(std::lround(settings.hlsPartSeconds * 1000));
    s.hls = std::make_unique<transport::HlsOutput>(hc);
  }
  // HLS has no connections to count: it is watched while someone fetched from it recently. A
  // viewer arriving after an idle spell gets a fresh IDR; while watched, the encoder is asked
  // for an IDR whenever a segment is due to close, so segments last about hls_segment_seconds.
  s.hls->setOnViewer([&s] { s.keyframeWanted = true; });
  s.h264Outputs.push_back({"hls", [&s] { return s.hls->watched(); },
                           [&s](const hal::PacketPtr& p) {
                             s.hls->publish(p);
                             if (s.hls->keyframeDue()) s.keyframeWanted = true;
                           },
                           [&s] { s.hls->closeAll("H.264 is disabled (h264_enabled = false)"); }});
  auto hub = transport::WebSocketHub::start({});
  if (!hub) return hub.error();
  s.wsHub = std::move(*hub);
  if (settings.source == "ws-push") {
    transport::JpegPushConfig ingestConfig;
    ingestConfig.name = "ws-push camera (/ingest)";
    ingestConfig.maxMessageBytes = static_cast<size_t>(settings.ingestMaxMessageKb) * 1024;
    auto ingest = transport::JpegPushIngest::start(ingestConfig);
    if (!ingest) return ingest.error();
    s.ingest = std::move(*ingest);
  }
  if (auto st = s.controlStore.load(); !st) spdlog::warn("{}", st.error().describe());
  // What /status lists under "outputs" (pages choose their player from it). An output added to
  // the streamer adds its entry here.
  s.outputs = {{{"name", "mjpeg"}, {"path", "/stream"}, {"type", "mjpeg"}},
               {{"name", "snapshot"}, {"path", "/snapshot"}, {"type", "jpeg"}},
               {{"name", "fmp4"}, {"path", "/stream.mp4"}, {"type", "fmp4"}},
               {{"name", "flv"}, {"path", "/flv"}, {"type", "flv"}},
               {{"name", "ws"}, {"path", "/ws"}, {"type", "h264-annexb-websocket"}},
               {{"name", "hls"},
                {"path", "/hls/stream.m3u8"},
                {"type", "hls"},
                {"format", settings.hlsFormat},
                {"low_latency", settings.hlsPartSeconds > 0}}};
  if (settings.displayEnabled) {
    s.outputs.push_back({{"name", "display"}, {"path", "/display"}, {"type", "mjpeg"}});
    s.outputs.push_back({{"name", "display-snapshot"}, {"path", "/display/snapshot"}, {"type", "jpeg"}});
  }
  if (settings.ring) {
    // A ring that cannot be made (no /dev/shm, full) is logged, not fatal: the network streams
    // do not need it.
    auto makeRing = [&](const char* stream, hal::FourCC codec,
                        uint32_t slots) -> std::unique_ptr<transport::ShmRing> {
      auto ring = transport::ShmRing::create({settings.ringName + "-" + stream, codec,
                                              static_cast<size_t>(settings.ringSizeMb) << 20, slots, 32});
      if (ring) return std::move(*ring);
      s.ringError = ring.error().describe();
      spdlog::warn("shared-memory ring: {}", s.ringError);
      return nullptr;
    };
    s.h264Ring = makeRing("h264", hal::fourcc::kH264, 128);
    s.jpegRing = makeRing("jpeg", hal::fourcc::kMJPEG, 64);
  } else {
    s.ringError = "disabled (ring = false)";
  }
  if (s.h264Ring) {
    // Encoding for the ring only while it has readers; a reader's keyframe request (or one
    // that attached with no IDR in the ring) gets a fresh IDR like a new FLV client.
    s.h264Outputs.push_back({"ring",
                             [&s] {
                               if (s.h264Ring->keyframeRequested()) s.keyframeWanted = true;
                               return s.h264Ring->liveReaders() > 0;
                             },
                             [&s](const hal::PacketPtr& p) {
                               if (auto st = s.h264Ring->publish(p); !st)
                                 spdlog::warn("{}", st.error().describe());
                               if (s.h264Ring->keyframeRequested()) s.keyframeWanted = true;
                             }});
  }

  if (settings.displayEnabled) {
    auto screen = bsp::openScreen(board, {settings.displayNode, settings.touchName, ""});
    s.display = std::move(screen.display);
    s.touch = std::move(screen.touch);
    s.displayError = screen.displayError;
    s.touchError = screen.touchError;
  } else {
    s.displayError = "display capture is disabled (display_enabled = false)";
    s.touchError = "display is disabled";
  }
  if (s.display) {
    s.displayJpeg = codecs::createJpegEncoder();
    hal::EncoderConfig enc;
    enc.size = s.uprightDisplaySize();
    enc.jpegQuality = settings.jpegQuality;
    if (auto st = s.displayJpeg->configure(enc); !st) return st.error();
    auto pool = hal::FramePool::create(hal::fourcc::kI420, s.uprightDisplaySize(), 3);
    if (!pool) return pool.error();
    s.uprightPool = *pool;
    s.displayStream.setOnSubscribe([&s] { s.displayWake.notify_all(); });
    s.displayH264 = codecs::createX264Encoder();
    s.displayRtspStream.setOnSubscribe([&s] {
      s.displayKeyframeWanted = true;  // every RTSP client starts on a fresh IDR
      s.displayWake.notify_all();
    });
  } else {
    spdlog::warn("display: {}", s.displayError);
  }
  if (!s.touch) spdlog::warn("touch: {}", s.touchError);

  // Every port: the board's connection limit. The control port (it presses buttons on the
  // printer) takes changes only from its own pages and from scripts (transport/http_access.h).
  auto listen = [&](const char* name, int port, std::string origin, transport::HttpHandler handler,
                    bool sameOriginWrites = false) -> hal::Result<std::unique_ptr<transport::HttpServer>> {
    transport::HttpServerConfig config;
    config.name = name;
    config.host = settings.host;
    config.port = static_cast<uint16_t>(port);
    config.allowOrigin = std::move(origin);
    config.connectionLimit = board.limits.maxConnectionsPerPort;
    config.perAddressLimit =
        std::min(static_cast<unsigned>(settings.connectionsPerAddress), config.connectionLimit);
    config.streamStallSeconds = static_cast<unsigned>(settings.streamStallSeconds);
    if (sameOriginWrites) {
      config.policy.sameOriginWrites = true;
      config.policy.trustedOrigins = transport::splitList(settings.controlAllowOrigin);
      config.policy.allowedHosts = transport::splitList(settings.allowedHosts);
      if (!settings.authTokenSha256.empty()) {
        config.authorize = [hash = settings.authTokenSha256](const HttpRequest& r) {
          return transport::tokenMatches(
              hash, transport::presentedToken(r.header("authorization"), r.arg("token")));
        };
      }
    }
    return transport::HttpServer::start(config, std::move(handler));
  };
  auto stream = listen("stream", settings.port, settings.allowOrigin,
                       [&s](const HttpRequest& r) { return s.handleStream(r); });
  if (!stream) return stream.error();
  s.streamServer = std::move(*stream);
  auto control = listen(
      "control", settings.controlPort, "", [&s](const HttpRequest& r) { return s.handleControl(r); }, true);
  if (!control) return control.error();
  s.controlServer = std::move(*control);
  if (settings.flvPort >= 0) {
    auto flvServer =
        listen("flv", settings.flvPort, "*", [&s](const HttpRequest& r) { return s.handleFlvPort(r); });
    if (!flvServer) return flvServer.error();
    s.flvServer = std::move(*flvServer);
  }
  if (settings.wsPort >= 0) {
    auto wsServer = listen("ws", settings.wsPort, settings.allowOrigin,
                           [&s](const HttpRequest& r) { return s.handleWsPort(r); });
    if (!wsServer) return wsServer.error();
    s.wsServer = std::move(*wsServer);
  }
  if (settings.rtspPort >= 0) {
    transport::RtspServerConfig rc;
    rc.bindAddress = settings.host;
    rc.port = static_cast<uint16_t>(settings.rtspPort);
    rc.maxPerAddress = static_cast<size_t>(settings.connectionsPerAddress);  // as on the HTTP ports
    rc.maxConnections = std::max(rc.maxConnections, rc.maxPerAddress);
    if (settings.rtspAuth) {
      rc.authorize = [hash = settings.authTokenSha256](std::string_view authorization,
                                                       std::string_view token) {
        return transport::tokenMatches(hash, transport::presentedToken(authorization, token));
      };
    }
    std::vector<std::pair<std::string, transport::RtspStream*>> paths{{"/stream", &s.rtspStream}};
    if (s.display) paths.emplace_back("/display", &s.displayRtspStream);
    auto rtsp = transport::RtspServer::start(rc, paths);
    if (!rtsp) return rtsp.error();
    s.rtspServer = std::move(*rtsp);
    // Not an HTTP path: a page builds rtsp://<its host>:<port><path> from it.
    s.outputs.push_back(
        {{"name", "rtsp"}, {"path", "/stream"}, {"type", "rtsp"}, {"port", s.rtspServer->port()}});
    if (s.display) {
      s.outputs.push_back(
          {{"name", "display-rtsp"}, {"path", "/display"}, {"type", "rtsp"}, {"port", s.rtspServer->port()}});
    }
  }
  for (const auto& target : settings.publish) {
    Impl::PublishTarget publisher;
    if (target.rfind("rtmp://", 0) == 0) {
      auto started = transport::RtmpPublisher::start(target, s.flv);
      if (!started) return started.error();
      publisher.rtmp = std::move(*started);
    } else {
      auto started = transport::RtspPublisher::start(target, s.rtspStream);
      if (!started) return started.error();
      publisher.rtsp = std::move(*started);
    }
    s.publishers.push_back(std::move(publisher));
  }
  if (settings.ingestPort >= 0 && s.ingest) {
    // Cameras only: any path upgrades (ESP32 firmwares connect to "/").
    auto ingestServer =
        listen("ingest", settings.ingestPort, "", [&s](const HttpRequest& r) { return s.ingest->accept(r); });
    if (!ingestServer) return ingestServer.error();
    s.ingestServer = std::move(*ingestServer);
  }

  s.threads.emplace_back([&s] { s.cameraLoop(); });
  if (s.display) s.threads.emplace_back([&s] { s.displayLoop(); });
  if (settings.mode == "go-klipper") {
    s.lanMode =
        std::make_unique<LanModeClient>(LanModeConfig{.port = static_cast<uint16_t>(settings.lanModePort)});
    // At start, as h264-streamer: ask, and open it when autolanmode says so (a few seconds at
    // most, on a thread of its own: the firmware may still be starting).
    s.threads.emplace_back([&s, autoOpen = settings.autolanmode] {
      auto state = s.lanMode->query();
      if (state && !*state && autoOpen) {
        spdlog::info("LAN mode: closed; opening it (autolanmode)");
        state = s.lanMode->setOpen(true);
      }
      if (!state) spdlog::warn("LAN mode: {}", state.error().describe());
      s.setLanModeState(state);
    });
  }
  if (s.touch) s.threads.emplace_back([&s] { s.touchLoop(); });
  s.threads.emplace_back([&s] { s.housekeepingLoop(); });
  {
    std::lock_guard lock(s.timelapseMutex);
    s.startTimelapse(s.timelapseSettings);
  }
  s.timelapseControl = std::thread([&s] { s.timelapseControlLoop(); });
  return std::unique_ptr<Streamer>(new Streamer(std::move(impl)));
}

uint16_t Streamer::streamPort() const { return impl_->streamServer ? impl_->streamServer->port() : 0; }
uint16_t Streamer::controlPort() const { return impl_->controlServer ? impl_->controlServer->port() : 0; }
uint16_t Streamer::flvPort() const { return impl_->flvServer ? impl_->flvServer->port() : 0; }
uint16_t Streamer::wsPort() const { return impl_->wsServer ? impl_->wsServer->port() : 0; }
uint16_t Streamer::rtspPort() const { return impl_->rtspServer ? impl_->rtspServer->port() : 0; }
uint16_t Streamer::ingestPort() const { return impl_->ingestServer ? impl_->ingestServer->port() : 0; }
std::vector<std::string> Streamer::ringNames() const {
  std::vector<std::string> names;
  for (const auto* ring : {impl_->h264Ring.get(), impl_->jpegRing.get()})
    if (ring != nullptr) names.push_back(ring->name());
  return names;
}

void Streamer::stop() {
  if (!impl_) return;
  Impl& s = *impl_;
  if (!s.running.load()) return;
  {
    std::lock_guard lock(s.timelapseApplyMutex);
    s.timelapseApplyStop = true;
  }
  s.timelapseApplyWake.notify_all();
  if (s.timelapseControl.joinable()) s.timelapseControl.join();
  {
    std::lock_guard lock(s.timelapseMutex);
    s.stopTimelapse();  // while the camera still runs: a capture in progress gets its frame
    s.timelapseClosed = true;
  }
  if (!s.running.exchange(false)) return;
  s.stopWake.notify_all();
  s.displayWake.notify_all();
  s.touchWake.notify_all();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
  // Pending touches are answered; streams end so their suspended connections resume.
  for (auto& job : s.touchJobs) job.response->complete(HttpResponse::error(503, "streamer is stopping"));
  s.touchJobs.clear();
  s.snapshots.failAll("streamer is stopping");
  s.displaySnapshots.failAll("streamer is stopping");
  s.mjpeg.closeAll();
  s.flv.closeAll();
  s.fmp4.closeAll();
  s.displayStream.closeAll();
  s.wsStream.closeAll();
  s.publishers.clear();  // TEARDOWN sent, their threads joined
  s.rtspServer.reset();  // its connections close; then nothing reads rtspStream's queues
  s.rtspStream.closeAll();
  s.displayRtspStream.closeAll();
  s.hls->closeAll("streamer is stopping");
  // WebSocket clients get Close 1001 and their sockets are closed before the HTTP servers stop
  // (libmicrohttpd must close an upgraded socket itself, before its daemon goes).
  if (s.wsHub) s.wsHub->stop();
  if (s.ingest) s.ingest->stop();
  for (auto* server : {s.streamServer.get(), s.controlServer.get(), s.flvServer.get(), s.wsServer.get(),
                       s.ingestServer.get()}) {
    if (server != nullptr) server->stop();
  }
  s.blockingWork->stop();
  // Retire the rings (after the servers: /status reads them): their readers are woken and wait
  // for a new producer.
  s.h264Ring.reset();
  s.jpegRing.reset();
}

}  // namespace printcast::streamer
