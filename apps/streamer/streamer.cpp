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

#include "anycubic_mqtt.h"
#include "anycubic_rpc.h"
#include "anycubic_timelapse.h"
#include "auto_skip.h"
#include "camera_controls.h"
#include "camera_discovery.h"
#include "camera_pipeline.h"
#include "cpu_meter.h"
#include "gkcam_handover.h"
#include "h264_on_demand_decoder.h"
#include "lan_mode.h"
#include "live_settings.h"
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
#include "printcast/hal/thread_name.h"
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
#include "printcast/transport/url.h"
#include "printcast/transport/websocket.h"
#include "printcast/transport/websocket_hub.h"
#include "printcast/transport/ws_stream.h"
#include "printer_screen.h"
#include "rate_meter.h"
#include "snapshot_board.h"
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

void addNoCache(HttpResponse& r) {
  r.headers.emplace_back("Cache-Control", "no-store, no-cache, must-revalidate, proxy-revalidate, max-age=0");
  r.headers.emplace_back("Pragma", "no-cache");
  r.headers.emplace_back("Expires", "Mon, 3 Jan 2000 12:34:56 GMT");
}

// Anycubic's native timelapse requests (anycubic_timelapse.h) as TriggerEvents of the recorder that
// takes them (Streamer::Impl::nativeRecorder, null while there is none). Called on the gkapi
// client's thread; each call only queues.
class NativeTimelapseSink final : public AnycubicTimelapseSink {
 public:
  NativeTimelapseSink(std::mutex& mutex, TimelapseRecorder*& recorder, std::function<bool()> cameraUp)
      : mutex_(mutex), recorder_(recorder), cameraUp_(std::move(cameraUp)) {}
  bool cameraConnected() const override { return cameraUp_(); }
  hal::Status openRecording(const std::string& filepath) override {
    return submit({TriggerEvent::Kind::Start, filepath, "", {}, -1});
  }
  hal::Status captureFrame() override { return submit({TriggerEvent::Kind::Capture, "", "", {}, -1}); }
  void finishRecording(const std::string& reason) override {
    (void)submit({TriggerEvent::Kind::Finish, "", reason, {}, -1});
  }
  void setLed(bool) override {}  // the firmware drives the light itself

 private:
  hal::Status submit(TriggerEvent event) {
    std::lock_guard lock(mutex_);
    if (recorder_ == nullptr) return hal::Status(hal::Errc::Unsupported, "no timelapse recorder is running");
    recorder_->submit(std::move(event));
    return {};
  }
  std::mutex& mutex_;
  TimelapseRecorder*& recorder_;
  std::function<bool()> cameraUp_;
};

// An H.264 path of a camera whose entry says "h264": false.
std::string noH264Reason(const std::string& id) {
  return fmt::format(
      "camera '{}' has no H.264 outputs (its cameras entry has \"h264\": false; "
      "USB auto-discovery gives H.264 to the first camera only): use /cam/{}/stream "
      "or /cam/{}/snapshot",
      id, id, id);
}

template <typename Camera>
HttpResponse noH264Outputs(const Camera& c) {
  return HttpResponse::error(404, noH264Reason(c.id));
}

}  // namespace

struct Streamer::Impl {
  Impl(const Settings& s, const bsp::Board& b) : settings(s), board(&b), applied(s), live(s) {}
  // The settings at start; never changed afterwards (threads read them without a lock).
  Settings settings;
  const bsp::Board* board = nullptr;
  // go-klipper: the stock camera service, stopped at start and given back when this object goes
  // (gkcam_handover.h). Declared first: destroyed last, after the camera is closed.
  std::unique_ptr<GkcamHandover> gkcam;
  std::string gkcamError;
  // The settings as changed by the control API (GET/POST /api/settings), guarded by
  // settingsMutex; the threads read the runtime ones from `live`.
  Settings applied;
  std::mutex settingsMutex;
  LiveSettings live;
  std::atomic<bool> running{true};
  Timestamp startedAt = Clock::now();

  // --source ws-push: cameras push JPEGs to /ingest on the stream port (its own WebSocket hub).
  std::shared_ptr<transport::JpegPushIngest> ingest;
  std::unique_ptr<transport::WebSocketHub> wsHub;  // serves every upgraded WebSocket
  // The camera (camera_pipeline.h): its source, encoders and output streams. Before the servers:
  // they read its streams and stop first.
  // A publish target ("publish", --publish, a camera's "publish"): rtsp:// (a client of the
  // camera's rtspStream) or rtmp:// (of its flv).
  struct PublishTarget {
    std::unique_ptr<transport::RtspPublisher> rtsp;
    std::unique_ptr<transport::RtmpPublisher> rtmp;
  };
  // Every camera (Settings::cameras; one without a list): its id, name, its own live settings
  // (camera 0 shares the control API's `live`), its pipeline and its publishers. `cam` is camera
  // 0, which also serves the paths without /cam/<id>; it is there from start() to the end (the
  // control API does not remove or reopen it). The others come and go at run time (POST, PATCH,
  // DELETE /api/cameras, on the blocking worker): see "Cameras at run time" below.
  struct Camera {
    std::string id;
    std::unique_ptr<LiveSettings> ownLive;  // cameras after the first
    std::unique_ptr<CameraPipeline> pipeline;
    // Where this camera's H.264 is pushed (camera 0: the top-level targets and its entry's), one
    // publisher per target in the order given. After `pipeline`: stopped before its streams go.
    std::vector<std::string> publishTargets;
    std::vector<PublishTarget> publishers;
    // h264-streamer's port of this camera (MJPEG and snapshots), one of the three slots of
    // camera_port_base + 0..2 (cameras 1..3 at start; a camera added later takes a free one).
    // After `pipeline`: destroyed first. `port` is touched by start(), stop() and the blocking
    // worker only (a reopen hands it to the new Camera); readers use portNumber.
    std::unique_ptr<transport::HttpServer> port;
    int portSlot = -1;        // 0..2; -1 without a port
    uint16_t portNumber = 0;  // the port listening (0: none); fixed before the camera is listed
    // Its entry's "h264": false = no H.264 outputs (its H.264 paths answer 404, no RTSP path).
    bool h264Offered = true;
    // Why USB auto-discovery gave it less than asked ("" otherwise): /status, /api/cameras "plan_note".
    std::string planNote;
    mutable std::mutex nameMutex;
    std::string name;  // nameMutex (PATCH renames a running camera)
    std::string nameNow() const {
      std::lock_guard lock(nameMutex);
      return name;
    }
  };
  // The cameras (camera 0 first) and the `cameras` list as it is now (disabled entries too; empty
  // without a list), both guarded by camerasMutex. HTTP threads take a copy of the list (or of one
  // camera's shared_ptr) under the lock and use it without: a camera removed meanwhile stays
  // alive, its threads stopped and its streams ended, until the last request holding it is done.
  // Changed by the blocking worker only (one change at a time).
  mutable std::mutex camerasMutex;
  std::vector<std::shared_ptr<Camera>> cameras;
  std::vector<Settings::CameraEntry> cameraEntries;
  std::shared_ptr<Camera> primary;  // camera 0 (cameras.front()), fixed after start()
  CameraPipeline* cam = nullptr;    // primary->pipeline
  std::vector<std::shared_ptr<Camera>> cameraList() const {
    std::lock_guard lock(camerasMutex);
    return cameras;
  }
  std::shared_ptr<Camera> findCamera(std::string_view id) const {
    std::lock_guard lock(camerasMutex);
    for (const auto& c : cameras)
      if (c->id == id) return c;
    return nullptr;
  }
  std::string cameraIds() const {
    std::string ids;
    for (const auto& c : cameraList()) ids += (ids.empty() ? "" : ", ") + c->id;
    return ids;
  }
  // /api/cameras entries: id, name, source (credentials removed), state, resolution, fps, clients,
  // whether H.264 is on, last error, output paths.
  nlohmann::json cameraSummary(const Camera& c) const;
  HttpResponse camerasRequest(const HttpRequest& req);
  HttpResponse dashboardHls(std::string_view path, const HttpRequest& req);
  // The camera paths (/stream, /snapshot, /flv, /stream.mp4, /hls/..., /ws) of one camera; null
  // response status 0 when `path` is none of them. The responses hold `c` until their stream ends.
  std::optional<HttpResponse> cameraRoute(const std::shared_ptr<Camera>& c, bool h264Enabled,
                                          std::string_view path, const HttpRequest& req);

  // --- Cameras at run time (POST /api/cameras, PATCH and DELETE /api/cameras/<id>) ---
  // Each change runs on the blocking worker: validated like a config entry, the new pipeline
  // built (nothing opened yet) and its port listening, then saved to the config file's `cameras`
  // list (atomically), and only then applied; a failed save throws the new camera away, so what
  // runs is what the file says. Camera 0 is not removed, disabled or reopened (409).
  HttpResponse camerasChange(const HttpRequest& req);
  HttpResponse addCamera(const HttpRequest& req);
  HttpResponse changeCamera(const HttpRequest& req, const std::string& id);
  HttpResponse removeCamera(const HttpRequest& req, const std::string& id);
  // A camera for `entry`, its pipeline created but not started, its publishers created and, for
  // `portSlot` >= 0 (and no `reusePort`), its h264-streamer port listening. Errors: what
  // CameraPipeline::create and the port's listen return.
  hal::Result<std::shared_ptr<Camera>> buildCamera(const Settings::CameraEntry& entry, int portSlot,
                                                   bool listenOnPort);
  // Stop a camera that left the list: publishers, camera thread, every client's stream ended
  // (snapshots waiting get 503), its RTSP path gone (`unmapRtsp`), its port closed (`closePort`).
  void retireCamera(Camera& c, const std::string& reason, bool unmapRtsp, bool closePort);
  // Serve camera `c` (already listed) on RTSP and start its thread.
  void launchCamera(Camera& c);
  // The lowest free slot of camera_port_base + 0..2, -1 when all are taken or the ports are off.
  int freePortSlot() const;
  // Whether changes are saved: the streamer was started with a `cameras` list from a config file.
  // A list auto-discovery made (Settings::camerasDiscovered) is not the file's: not saved.
  bool camerasPersisted() const {
    return !settings.cameras.empty() && !settings.configFile.empty() && !settings.camerasDiscovered;
  }
  hal::Status persistCameras(const CameraListEdit& edit);
  // Create c's publishers (c.publishTargets). Errors: what a publisher's start returns.
  hal::Status startPublishers(Camera& c);
  // The listen() of start(), kept for the camera ports opened at run time.
  std::function<hal::Result<std::unique_ptr<transport::HttpServer>>(const char*, int, std::string,
                                                                    transport::HttpHandler)>
      listenPort;
  // Every stream with HTTP/WebSocket/RTSP clients, by the name /status, /api/stats and /metrics use.
  std::vector<std::pair<const char*, const transport::Fanout*>> clientStreams() const {
    auto streams = cam->clientStreams();
    streams.emplace_back("display", &screen->stream());
    return streams;
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

  // The printer's screen and touch panel (printer_screen.h). Before rtspServer: it reads the
  // screen's RTSP stream and stops first.
  std::unique_ptr<PrinterScreen> screen;
  std::atomic<uint64_t> settingsChanges{0};

  // Housekeeping.
  std::atomic<double> systemCpu{0};
  std::atomic<double> processCpu{0};
  std::mutex stopMutex;
  std::condition_variable stopWake;

  std::unique_ptr<transport::HttpServer> streamServer, controlServer, flvServer, wsServer, ingestServer;
  std::unique_ptr<transport::RtspServer> rtspServer;  // after rtspStream: stopped before it goes
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
  // Wait up to `d` unless stopping; returns false when stopping.
  bool pause(std::chrono::milliseconds d) {
    std::unique_lock lock(stopMutex);
    stopWake.wait_for(lock, d, [this] { return !running.load(); });
    return running.load();
  }

  HttpResponse cameraControls(const HttpRequest& req);
  void housekeepingLoop();
  HttpResponse handleStream(const HttpRequest& req);
  HttpResponse handleCameraPort(const std::string& id, const HttpRequest& req);
  HttpResponse handleControl(const HttpRequest& req);
  HttpResponse handleFlvPort(const HttpRequest& req);
  // `keep`: what must outlive the subscription (the camera the stream belongs to), released when
  // the connection closes.
  HttpResponse mjpegResponse(transport::MjpegStream& stream, const HttpRequest& req,
                             std::shared_ptr<const void> keep = nullptr);
  HttpResponse flvResponse(const std::shared_ptr<Camera>& c, bool slicerHeaders);
  HttpResponse fmp4Response(const std::shared_ptr<Camera>& c);
  HttpResponse wsResponse(const std::shared_ptr<Camera>& c, const HttpRequest& req, bool timestampTrailer);
  HttpResponse handleWsPort(const HttpRequest& req);
  HttpResponse touchRequest(const HttpRequest& req);
  nlohmann::json status();
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
  nlohmann::json rtspStats() const;
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
  static nlohmann::json publishStatus(const Camera& c);
  // go-klipper mode (not with encoder_type gkcam: gkcam answers these itself): Anycubic's native
  // timelapse and the slicer's live view. The firmware's video_stream_requests (its local service
  // on lan_mode_port, anycubic_rpc.h) drive the timelapse recorder while timelapse_enabled is
  // false; with it true the Moonraker-followed recording makes the video and the requests are only
  // acknowledged (no second video of one print). The slicer's live-view requests come over the
  // printer's MQTT broker (anycubic_mqtt.h) and are answered as gkcam does.
  bool nativeTimelapse() const { return settings.mode == "go-klipper" && settings.encoderType != "gkcam"; }
  std::mutex nativeMutex;                       // guards nativeRecorder
  TimelapseRecorder* nativeRecorder = nullptr;  // `timelapse` while it takes native requests
  std::atomic<bool> moonrakerTimelapseOn{false};
  std::unique_ptr<NativeTimelapseSink> nativeSink;
  std::unique_ptr<AnycubicTimelapseHandler> nativeHandler;
  std::unique_ptr<GkapiVideoClient> gkapi;
  std::unique_ptr<AnycubicMqttResponder> mqtt;
  std::string mqttError;  // why the MQTT responder is not running ("" when it is)
  nlohmann::json anycubicStatus() const;
  // POST /api/cameras/discover: ONVIF discovery on a worker of its own (network waits of seconds
  // never hold up the file work below).
  CameraDiscovery discovery;
  // The control port's file work (see handleControl). Declared last: destroyed first, while
  // everything its jobs use is still there; stop() stops it before the cameras (so that no camera
  // change runs while they stop) and the servers.
  std::unique_ptr<transport::BlockingWorker> blockingWork =
      std::make_unique<transport::BlockingWorker>("control worker");
};

// ----------------------------------------------------------------------------- touch

HttpResponse Streamer::Impl::touchRequest(const HttpRequest& req) {
  if (!screen->hasTouch()) return HttpResponse::error(503, "no touch panel: " + screen->touchError());
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
  if (duration < 1 || duration > 5000) {
    return HttpResponse::error(400, fmt::format("duration {} ms is outside 1..5000", duration));
  }
  auto response = std::make_shared<DeferredResponse>();
  auto done = [response, x, y](const hal::Status& st) {
    if (st) {
      response->complete(
          HttpResponse::json(200, nlohmann::json{{"status", "ok"}, {"x", x}, {"y", y}}.dump()));
    } else if (st.code() == hal::Errc::Unsupported) {  // the streamer stopped before the tap
      response->complete(HttpResponse::error(503, st.error().message));
    } else {
      response->complete(HttpResponse::json(
          500,
          nlohmann::json{{"status", "error"}, {"error", st.error().describe()}, {"x", x}, {"y", y}}.dump()));
    }
  };
  if (auto st = screen->tap(x, y, std::chrono::milliseconds(static_cast<int>(duration)), done); !st) {
    return HttpResponse::error(st.code() == hal::Errc::InvalidArgument ? 400 : 503, st.error().message);
  }
  HttpResponse r;
  r.deferred = response;
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
      for (auto& c : cameraList()) c->pipeline->setAutoSkipInterval(1);
    }
    const auto list = cameraList();
    if (live.autoSkip) {
      skipper.onCpuSample(sample.systemPercent, Clock::now());
      for (auto& c : list) c->pipeline->setAutoSkipInterval(skipper.interval());
    }
    for (auto& c : list) c->pipeline->expireWaiters();
    screen->expireWaiters();
  }
}

// ----------------------------------------------------------------------------- HTTP

// How a multipart client's parts are framed (transport/mjpeg.h, mjpeg::Framing): `?advance_headers=1`
// or `=0` as with ustreamer; otherwise a browser (its <img> or a tab asks for image/* or text/html)
// gets the next part's headers ahead of time, which is what lets Chromium paint a picture the
// moment it is complete, and every other client (ffmpeg, Home Assistant, scripts: Accept */*)
// gets Content-Length and X-Timestamp on every part.
namespace {
transport::mjpeg::Framing mjpegFraming(const HttpRequest& req) {
  const std::string advance = req.arg("advance_headers");
  if (advance == "1" || advance == "true") return transport::mjpeg::Framing::AdvanceHeaders;
  if (advance == "0" || advance == "false") return transport::mjpeg::Framing::ContentLength;
  const std::string accept = req.header("accept");
  const bool browser =
      accept.find("image/") != std::string::npos || accept.find("text/html") != std::string::npos;
  return browser ? transport::mjpeg::Framing::AdvanceHeaders : transport::mjpeg::Framing::ContentLength;
}
}  // namespace

HttpResponse Streamer::Impl::mjpegResponse(transport::MjpegStream& stream, const HttpRequest& req,
                                           std::shared_ptr<const void> keep) {
  HttpResponse r;
  r.contentType = transport::mjpeg::contentType();
  addNoCache(r);
  auto queue = stream.subscribe(mjpegFraming(req));
  r.stream = queue;
  r.onClose = [&stream, queue, keep = std::move(keep)] { stream.unsubscribe(queue); };
  return r;
}

HttpResponse Streamer::Impl::flvResponse(const std::shared_ptr<Camera>& c, bool slicerHeaders) {
  HttpResponse r;
  auto queue = c->pipeline->flv.subscribe();
  r.stream = queue;
  r.onClose = [c, queue] { c->pipeline->flv.unsubscribe(queue); };
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
HttpResponse Streamer::Impl::fmp4Response(const std::shared_ptr<Camera>& c) {
  HttpResponse r;
  auto queue = c->pipeline->fmp4.subscribe();
  r.stream = queue;
  r.onClose = [c, queue] { c->pipeline->fmp4.unsubscribe(queue); };
  r.contentType = "video/mp4";
  addNoCache(r);
  return r;
}

// H.264 over WebSocket: validate the handshake (a plain GET gets 426, a malformed one 400, each
// with the reason), then subscribe and let the hub serve the upgraded connection.
HttpResponse Streamer::Impl::wsResponse(const std::shared_ptr<Camera>& c, const HttpRequest& req,
                                        bool timestampTrailer) {
  auto accept = transport::ws::checkHandshake(req.method, req.headers);
  if (!accept) return transport::handshakeRefusal(accept.error());
  auto queue = c->pipeline->wsStream.subscribe(timestampTrailer);
  return wsHub->upgradeResponse(*accept, queue, [c, queue] { c->pipeline->wsStream.unsubscribe(queue); });
}

HttpResponse Streamer::Impl::handleWsPort(const HttpRequest& req) {
  if (req.path == "/") {
    if (!primary->h264Offered) return noH264Outputs(*primary);
    return wsResponse(primary, req, settings.wsPortTimestamps);
  }
  return HttpResponse::error(404, "no such endpoint: " + req.path + " (the WebSocket is at /)");
}

nlohmann::json Streamer::Impl::status() {
  const nlohmann::json clients = clientCounts();
  const nlohmann::json cameraJson = cam->cameraStatus();
  return {
      {"status", "ok"},
      // The ESP32 relay's /status fields (every profile has them): cameras pushing to the
      // ingest, viewers of any stream, and whether the camera delivers pictures.
      {"camera_clients", ingest ? ingest->stats().cameraClients : 0},
      {"viewer_clients", clients["total"]},
      {"streaming", cameraJson["signal"]},
      {"board", {{"id", std::string(board->id)}, {"name", std::string(board->name)}}},
      {"camera", cameraJson},
      {"cameras",
       [this] {
         nlohmann::json list = nlohmann::json::array();
         for (const auto& c : cameraList()) list.push_back(cameraSummary(*c));
         return list;
       }()},
      {"encoder", cam->encoderStatus()},
      {"lan_mode", lanModeStatus()},
      {"anycubic", anycubicStatus()},
      {"display",
       {{"enabled", screen->hasDisplay()},
        {"error", screen->displayError()},
        {"clients", screen->stream().clientCount()}}},
      {"touch", {{"enabled", screen->hasTouch()}, {"error", screen->touchError()}}},
      {"rings", cam->ringStats()},
      {"clients", clients},
      {"hls", cam->hlsStats()},
      {"outputs", outputs},
      {"stream_port", streamServer ? streamServer->port() : 0},
      {"control_port", controlServer ? controlServer->port() : 0},
      {"flv_port", flvServer ? flvServer->port() : 0},
      {"rtsp_port", rtspServer ? rtspServer->port() : 0},
      {"rtsp", rtspStats()},
      {"publish", publishStatus(*primary)},
      {"h264_enabled", live.h264Enabled.load()},
      // USB camera auto-discovery (usb_camera_plan.h): whether the cameras came from it, and its
      // notes (cameras left out, a bus that does not fit); each camera's own in cameras[i].plan_note.
      {"camera_plan", {{"auto_discovered", settings.camerasDiscovered}, {"notes", settings.cameraPlanNotes}}},
      {"uptime_s", std::chrono::duration<double>(Clock::now() - startedAt).count()},
  };
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

// go-klipper mode's native timelapse link (the firmware's local service) and the slicer's
// live-view responder (MQTT): {"enabled", "timelapse": {...}, "mqtt": {...}}.
nlohmann::json Streamer::Impl::anycubicStatus() const {
  if (!gkapi) {
    return {{"enabled", false},
            {"why", settings.mode != "go-klipper"
                        ? "the firmware's timelapse and live view belong to go-klipper mode"
                        : "encoder_type gkcam: the stock camera service answers them"}};
  }
  const auto rpc = gkapi->state();
  nlohmann::json gkcamJson = {{"path", settings.gkcamPath}, {"error", gkcamError}};
  if (gkcam) {
    gkcamJson["stopped"] = gkcam->stopped();
    gkcamJson["restarts_on_exit"] = gkcam->restartsOnExit();
  }
  nlohmann::json out = {
      {"enabled", true},
      {"gkcam", gkcamJson},
      {"timelapse",
       {{"connected", rpc.connected},
        {"port", settings.lanModePort},
        {"messages", rpc.messages},
        {"replies", rpc.replies},
        {"recorder", moonrakerTimelapseOn ? "moonraker (requests acknowledged only)" : "native"},
        {"last_error", rpc.lastError}}}};
  if (mqtt) {
    const auto m = mqtt->state();
    out["mqtt"] = {{"state", m.state},
                   {"connections", m.connections},
                   {"failures", m.failures},
                   {"last_error", m.lastError}};
  } else {
    out["mqtt"] = {{"state", "off"}, {"last_error", mqttError}};
  }
  return out;
}

namespace {

// "http", "rtsp", "test-pattern", "ws-push" or "v4l2".
std::string sourceKind(const std::string& source) {
  if (source.find("://") != std::string::npos) return source.substr(0, source.find("://"));
  return source == "test-pattern" || source == "ws-push" ? source : std::string("v4l2");
}

// A disabled entry of the `cameras` list in /api/cameras?all=1: what it would run, no state.
nlohmann::json disabledSummary(const Settings::CameraEntry& e) {
  const std::string source = transport::withoutUserinfo(e.source);
  return {{"id", e.id},
          {"name", e.name},
          {"primary", false},
          {"enabled", false},
          {"source", source},
          {"kind", sourceKind(source)},
          {"state", "disabled"},
          {"signal", false},
          {"resolution", e.size.empty() ? std::string() : e.size.str()},
          {"fps", e.fps},
          {"clients", 0},
          {"h264", false},
          {"last_error", ""},
          {"plan_note", ""},
          {"outputs", nlohmann::json::object()},
          {"publish", nlohmann::json::array()}};
}

// A refusal of the cameras API: {"status": "error", "error", "key"}.
HttpResponse cameraError(int code, const std::string& error, const std::string& key = "") {
  return HttpResponse::json(code, nlohmann::json{{"status", "error"}, {"error", error}, {"key", key}}.dump());
}

}  // namespace

nlohmann::json Streamer::Impl::cameraSummary(const Camera& c) const {
  const CameraPipeline& p = *c.pipeline;
  const nlohmann::json st = p.cameraStatus();
  const std::string state = p.state();
  size_t clients = 0;
  for (const auto& [name, f] : p.clientStreams()) clients += f->clientCount();
  const std::string base = "/cam/" + c.id;
  nlohmann::json paths = {{"mjpeg", base + "/stream"}, {"snapshot", base + "/snapshot"}};
  if (c.h264Offered) {  // the outputs it has: none of H.264 with its entry's "h264" false
    paths["flv"] = base + "/flv";
    paths["fmp4"] = base + "/stream.mp4";
    paths["hls"] = base + "/hls/stream.m3u8";
    paths["ws"] = base + "/ws";
    paths["hls_ts"] = "/hls/stream_" + c.id + "/playlist.m3u8";  // MPEG-TS, the dashboards' layout
    if (rtspServer) paths["rtsp"] = {{"path", base}, {"port", rtspServer->port()}};
  }
  if (c.portNumber != 0) paths["port"] = c.portNumber;  // h264-streamer's 8082-8084: /stream, /snapshot
  const std::string source = transport::withoutUserinfo(p.source());  // as /api/cameras shows it
  return {{"id", c.id},
          {"name", c.nameNow()},
          {"primary", &p == cam},
          {"enabled", true},
          {"source", source},
          {"kind", sourceKind(source)},
          {"state", state},
          {"signal", st["signal"]},
          {"resolution", fmt::format("{}x{}", st["width"].get<int>(), st["height"].get<int>())},
          {"fps", st["fps"]},
          {"clients", clients},
          // Whether its H.264 outputs (flv, fmp4, hls, ws, rtsp) answer: pages pick a player by it.
          {"h264", c.h264Offered && (c.ownLive ? c.ownLive->h264Enabled.load() : live.h264Enabled.load())},
          {"last_error", state.rfind("no-signal: ", 0) == 0 ? state.substr(11) : std::string()},
          // Why USB auto-discovery gave it less than it asked ("" when it did not).
          {"plan_note", c.planNote},
          {"outputs", paths},
          {"publish", publishStatus(c)}};
}

// GET /api/cameras: every running camera (cameraSummary), with ?all=1 the disabled entries of the
// list too ("state": "disabled"); GET /api/cameras/<id>: one, 404 naming the ids.
// POST /api/cameras, PATCH and DELETE /api/cameras/<id>: changes, on the blocking worker
// (camerasChange).
HttpResponse Streamer::Impl::camerasRequest(const HttpRequest& req) {
  const bool collection = req.path == "/api/cameras" || req.path == "/api/cameras/";
  if (req.method == "POST" || req.method == "PATCH" || req.method == "PUT" || req.method == "DELETE") {
    if (collection && req.method != "POST")
      return HttpResponse::error(405, "use GET, or POST a camera entry");
    if (!collection && req.method == "POST")
      return HttpResponse::error(405, "use GET, PATCH or DELETE (POST new cameras to /api/cameras)");
    if (req.method == "PUT")
      return HttpResponse::error(405, "use PATCH with the keys to change (PUT is not served)");
    if (req.method != "DELETE" && !req.hasMediaType("application/json"))
      return unsupportedMediaType(req, "application/json");
    return blockingWork->defer([this, copy = req] { return camerasChange(copy); });
  }
  if (req.method != "GET" && req.method != "HEAD")
    return HttpResponse::error(405, "use GET, POST (add), PATCH (change) or DELETE (remove)");
  const bool all = req.arg("all") == "1" || req.arg("all") == "true";
  std::vector<Settings::CameraEntry> disabled;
  if (all) {
    std::lock_guard lock(camerasMutex);
    for (const auto& e : cameraEntries)
      if (!e.enabled) disabled.push_back(e);
  }
  if (collection) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& c : cameraList()) list.push_back(cameraSummary(*c));
    for (const auto& e : disabled) list.push_back(disabledSummary(e));
    return HttpResponse::json(200, list.dump());
  }
  const std::string id = req.path.substr(std::string("/api/cameras/").size());
  if (const auto c = findCamera(id)) return HttpResponse::json(200, cameraSummary(*c).dump());
  for (const auto& e : disabled)
    if (e.id == id) return HttpResponse::json(200, disabledSummary(e).dump());
  return HttpResponse::error(404, fmt::format("no camera '{}' (cameras: {})", id, cameraIds()));
}

// ----------------------------------------------------------------------------- cameras at run time

hal::Status Streamer::Impl::startPublishers(Camera& c) {
  for (const auto& target : c.publishTargets) {
    PublishTarget publisher;
    if (transport::isRtmpUrl(target)) {
      auto started = transport::RtmpPublisher::start(target, c.pipeline->flv);
      if (!started) return started.error();
      publisher.rtmp = std::move(*started);
    } else {
      auto started = transport::RtspPublisher::start(target, c.pipeline->rtspStream);
      if (!started) return started.error();
      publisher.rtsp = std::move(*started);
    }
    c.publishers.push_back(std::move(publisher));
  }
  return {};
}

hal::Result<std::shared_ptr<Streamer::Impl::Camera>> Streamer::Impl::buildCamera(
    const Settings::CameraEntry& entry, int portSlot, bool listenOnPort) {
  auto c = std::make_shared<Camera>();
  c->id = entry.id;
  c->name = entry.name;
  const Settings cs = settingsForCamera(settings, entry);
  c->publishTargets = cs.publish;
  c->h264Offered = entry.h264;
  c->planNote = entry.planNote;
  c->ownLive = std::make_unique<LiveSettings>(cs);
  auto pipeline = CameraPipeline::create(cs, *board, *c->ownLive, nullptr, entry.id);
  if (!pipeline)
    return hal::Error{pipeline.code(), 0, "camera " + entry.id + ": " + pipeline.error().message};
  c->pipeline = std::move(*pipeline);
  if (auto st = startPublishers(*c); !st)
    return hal::Error{st.code(), 0, "camera " + entry.id + ": " + st.error().message};
  c->portSlot = portSlot;
  if (portSlot >= 0 && listenOnPort) {
    const int port = settings.cameraPortBase == 0 ? 0 : settings.cameraPortBase + portSlot;
    auto server = listenPort(("camera " + c->id).c_str(), port, settings.allowOrigin,
                             [this, id = c->id](const HttpRequest& r) { return handleCameraPort(id, r); });
    if (!server) {
      c->publishers.clear();
      return hal::Error{server.code(), 0, "camera " + entry.id + ": " + server.error().message};
    }
    c->port = std::move(*server);
    c->portNumber = c->port->port();
  }
  return c;
}

void Streamer::Impl::retireCamera(Camera& c, const std::string& reason, bool unmapRtsp, bool closePort) {
  c.publishers.clear();  // TEARDOWN sent, their threads joined: they read its streams
  if (unmapRtsp && rtspServer) {
    rtspServer->setStream("/cam/" + c.id, nullptr);  // its RTSP clients closed
    rtspServer->setRefusal("/cam/" + c.id, "");
  }
  c.pipeline->stop();
  CameraPipeline& p = *c.pipeline;
  p.snapshots.failAll(reason);
  p.mjpeg.closeAll();
  p.flv.closeAll();
  p.fmp4.closeAll();
  p.wsStream.closeAll();
  p.rtspStream.closeAll();
  p.hls->closeAll(reason);
  if (p.hlsTs) p.hlsTs->closeAll(reason);
  if (closePort && c.port) {
    c.port->stop();
    c.port.reset();
  }
}

void Streamer::Impl::launchCamera(Camera& c) {
  // A camera without H.264 outputs has no RTSP path (a reopen that turned them off takes the old
  // pipeline's away).
  if (rtspServer) {
    rtspServer->setStream("/cam/" + c.id, c.h264Offered ? &c.pipeline->rtspStream : nullptr);
    rtspServer->setRefusal("/cam/" + c.id, c.h264Offered ? "" : noH264Reason(c.id));
  }
  c.pipeline->start();
}

int Streamer::Impl::freePortSlot() const {
  if (settings.cameraPortBase < 0) return -1;
  std::lock_guard lock(camerasMutex);
  for (int slot = 0; slot < 3; ++slot) {
    const bool taken =
        std::any_of(cameras.begin(), cameras.end(), [&](const auto& c) { return c->portSlot == slot; });
    if (!taken) return slot;
  }
  return -1;
}

hal::Status Streamer::Impl::persistCameras(const CameraListEdit& edit) {
  if (!camerasPersisted()) return {};
  auto st = saveCameraListEdit(settings.configFile, edit);
  if (!st) spdlog::error("cameras: {}", st.error().describe());
  return st;
}

namespace {
// What a change's answer says about the config file.
void addPersistence(nlohmann::json& out, bool persisted, const std::string& configFile) {
  out["persisted"] = persisted;
  out["config_file"] = configFile;
  if (persisted) return;
  out["note"] =
      configFile.empty()
          ? std::string("not saved: the streamer runs without --config; the change lasts until it stops")
          : "not saved: the cameras of this streamer come from its flags and top-level keys or from USB "
            "camera auto-discovery, not from a cameras list in " +
                configFile + "; the change lasts until it stops (docs/architecture.md)";
}
}  // namespace

// Blocking worker: one change at a time (the worker runs one job at a time).
HttpResponse Streamer::Impl::camerasChange(const HttpRequest& req) {
  if (req.method == "POST") return addCamera(req);
  std::string id = req.path.substr(std::string("/api/cameras/").size());
  while (!id.empty() && id.back() == '/') id.pop_back();
  if (req.method == "PATCH") return changeCamera(req, id);
  return removeCamera(req, id);
}

// POST /api/cameras {"id", "name", "source", "resolution", "fps", "bitrate", "enabled", "publish"}:
// 201 with its /api/cameras/<id> object; 400 naming the key; 409 for an id taken or a full list.
HttpResponse Streamer::Impl::addCamera(const HttpRequest& req) {
  const std::string src = "POST /api/cameras";
  Settings::CameraEntry entry;
  std::vector<Settings::CameraEntry> entries;
  std::vector<std::string> runningIds;
  {
    std::lock_guard lock(camerasMutex);
    entries = cameraEntries;
    for (const auto& c : cameras) runningIds.push_back(c->id);
  }
  const std::string where = fmt::format("cameras[{}]", entries.size());
  std::string key;
  if (auto st = parseCameraEntry(req.body, src, where, entry, key); !st)
    return cameraError(400, st.error().message, key);
  const bool taken =
      std::find(runningIds.begin(), runningIds.end(), entry.id) != runningIds.end() ||
      std::any_of(entries.begin(), entries.end(), [&](const auto& e) { return e.id == entry.id; });
  if (taken) return cameraError(409, fmt::format("{}: there is already a camera '{}'", src, entry.id), "id");
  if (std::max(entries.size(), runningIds.size()) >= kMaxCameras)
    return cameraError(
        409, fmt::format("{}: {} cameras already (at most {})", src, runningIds.size(), kMaxCameras));
  std::vector<std::pair<std::string, const Settings::CameraEntry*>> others;
  for (size_t i = 0; i < entries.size(); ++i) others.emplace_back(fmt::format("cameras[{}]", i), &entries[i]);
  if (auto st = checkCameraEntry(entry, where, false, others, settings, *board, src, key); !st)
    return cameraError(400, st.error().message, key);

  std::shared_ptr<Camera> c;
  if (entry.enabled) {
    auto built = buildCamera(entry, freePortSlot(), true);
    if (!built) return cameraError(500, built.error().describe());
    c = std::move(*built);
  }
  if (auto st = persistCameras({CameraListEdit::Kind::Add, entry.id, cameraEntryJson(entry)}); !st) {
    if (c) retireCamera(*c, "not added", false, true);
    return cameraError(500, "not added: " + st.error().describe());
  }
  {
    std::lock_guard lock(camerasMutex);
    cameraEntries.push_back(entry);
    if (c) cameras.push_back(c);
  }
  if (c) launchCamera(*c);
  spdlog::info("cameras: added {} ({}){}", entry.id, transport::withoutUserinfo(entry.source),
               entry.enabled ? "" : ", disabled");
  nlohmann::json out = c ? cameraSummary(*c) : disabledSummary(entry);
  addPersistence(out, camerasPersisted(), settings.configFile);
  HttpResponse r = HttpResponse::json(201, out.dump());
  r.headers.emplace_back("Location", "/api/cameras/" + entry.id);
  return r;
}

// PATCH /api/cameras/<id> {keys to change}: name and bitrate apply live; source, resolution, fps
// and publish reopen the camera (a new pipeline; its viewers' streams end and they reconnect);
// enabled starts or stops it. Camera 0: only its name (409 otherwise).
HttpResponse Streamer::Impl::changeCamera(const HttpRequest& req, const std::string& id) {
  const std::string src = "PATCH /api/cameras/" + id;
  std::vector<Settings::CameraEntry> entries;
  std::shared_ptr<Camera> current;
  {
    std::lock_guard lock(camerasMutex);
    entries = cameraEntries;
    for (const auto& c : cameras)
      if (c->id == id) current = c;
  }
  const auto at = std::find_if(entries.begin(), entries.end(), [&](const auto& e) { return e.id == id; });
  const bool isPrimary = current == primary;
  if (at == entries.end() && !isPrimary)
    return cameraError(404, fmt::format("no camera '{}' (cameras: {})", id, cameraIds()));
  const size_t index = static_cast<size_t>(at - entries.begin());
  // Camera 0 without a list has no entry: its name is all that changes.
  Settings::CameraEntry before;
  if (at != entries.end()) {
    before = *at;
  } else {
    before.id = id;
    before.name = current->nameNow();
    before.source = cam->source();
  }
  Settings::CameraEntry entry = before;
  const std::string where = fmt::format("cameras[{}]", index);
  std::string key;
  if (auto st = parseCameraEntry(req.body, src, where, entry, key); !st)
    return cameraError(400, st.error().message, key);
  if (entry.id != id)
    return cameraError(400, src + ": id cannot be changed (remove the camera and add it)", "id");
  const bool reopen = entry.source != before.source || entry.size != before.size || entry.fps != before.fps ||
                      entry.publish != before.publish || entry.format != before.format ||
                      entry.h264 != before.h264;
  if (reopen) entry.planNote.clear();  // the plan's reason is about what the plan chose
  if (isPrimary && (reopen || !entry.enabled || entry.bitrateKbps != before.bitrateKbps)) {
    return cameraError(
        409, fmt::format("{}: camera '{}' is camera 0 (it serves /stream, /snapshot and the other paths "
                         "without /cam/, the timelapse and the rings): only its name changes at run "
                         "time; its bitrate is the control page's (POST /api/settings), the rest "
                         "changes in the config file and a restart",
                         src, id));
  }
  // The primary's index in the list: an entry before it that is enabled would be camera 0 at the
  // next start, not what runs now.
  const auto primaryAt =
      std::find_if(entries.begin(), entries.end(), [&](const auto& e) { return e.id == primary->id; });
  if (!isPrimary && entry.enabled && !before.enabled && primaryAt != entries.end() && at < primaryAt) {
    return cameraError(409, fmt::format("{}: '{}' comes before camera 0 ('{}') in the list, so at the next "
                                        "start it would be camera 0; move it after '{}' in the config file",
                                        src, id, primary->id, primary->id));
  }
  std::vector<std::pair<std::string, const Settings::CameraEntry*>> others;
  for (size_t i = 0; i < entries.size(); ++i)
    if (i != index) others.emplace_back(fmt::format("cameras[{}]", i), &entries[i]);
  if (auto st = checkCameraEntry(entry, where, isPrimary, others, settings, *board, src, key); !st)
    return cameraError(400, st.error().message, key);

  // The keys given, as the file gets them (a Change of an entry the file lacks appends it whole).
  nlohmann::json changed = nlohmann::json::object();
  const nlohmann::json full = nlohmann::json::parse(cameraEntryJson(entry, true));
  std::vector<std::string> keys;
  const nlohmann::json given = nlohmann::json::parse(req.body);
  for (const auto& item : given.items()) {
    keys.push_back(item.key());
    changed[item.key()] = full[item.key()];
  }
  if (before.enabled && !current) return cameraError(500, src + ": the camera is enabled but not running");
  const bool starting = entry.enabled && !before.enabled;
  const bool stopping = !entry.enabled && before.enabled;
  const bool restart = entry.enabled && before.enabled && reopen;
  std::shared_ptr<Camera> fresh;
  if (starting || restart) {
    // A reopened camera keeps its port (handed over below); a started one takes a free one.
    auto built = buildCamera(entry, restart ? current->portSlot : freePortSlot(), !restart);
    if (!built) return cameraError(500, built.error().describe());
    fresh = std::move(*built);
    if (restart) fresh->portNumber = current->portNumber;
  }
  CameraListEdit edit{CameraListEdit::Kind::Change, id, changed.dump()};
  if (auto st = persistCameras(edit); !st) {
    if (fresh) retireCamera(*fresh, "not changed", false, !restart);
    return cameraError(500, "not changed: " + st.error().describe());
  }
  {
    std::lock_guard lock(camerasMutex);
    if (at != entries.end()) {
      for (auto& e : cameraEntries)
        if (e.id == id) e = entry;
    }
    if (starting) cameras.push_back(fresh);
    if (stopping || restart) {
      for (auto it = cameras.begin(); it != cameras.end(); ++it) {
        if (*it != current) continue;
        if (restart) {
          *it = fresh;
        } else {
          cameras.erase(it);
        }
        break;
      }
    }
  }
  if (stopping) retireCamera(*current, "camera " + id + " was disabled", true, true);
  if (restart) {
    // New viewers get the new pipeline from here on; the old one's end now.
    retireCamera(*current, "camera " + id + " is reopening", false, false);
    fresh->port = std::move(current->port);
  }
  if (fresh) launchCamera(*fresh);  // its RTSP path replaces the old one's (whose clients are closed)
  if (!starting && !stopping && !restart && current) {
    {
      std::lock_guard lock(current->nameMutex);
      current->name = entry.name;
    }
    if (current->ownLive && entry.bitrateKbps != before.bitrateKbps && entry.bitrateKbps > 0) {
      current->ownLive->bitrateKbps = entry.bitrateKbps;
      current->ownLive->reconfigureCamera = true;
    }
  }
  spdlog::info("cameras: changed {} ({}){}", id, fmt::join(keys, ", "),
               restart    ? ": reopened"
               : starting ? ": started"
               : stopping ? ": stopped"
                          : "");
  const std::shared_ptr<Camera> now = fresh ? fresh : stopping ? nullptr : current;
  nlohmann::json out = now ? cameraSummary(*now) : disabledSummary(entry);
  out["changed"] = keys;
  out["restarted"] = restart || starting;
  addPersistence(out, camerasPersisted(), settings.configFile);
  return HttpResponse::json(200, out.dump());
}

// DELETE /api/cameras/<id>: its viewers' streams end, its paths answer 404, the entry leaves the
// config file. Camera 0: 409.
HttpResponse Streamer::Impl::removeCamera(const HttpRequest& req, const std::string& id) {
  (void)req;
  const std::string src = "DELETE /api/cameras/" + id;
  if (id == primary->id) {
    return cameraError(409,
                       fmt::format("{}: camera '{}' is camera 0: it serves /stream, /snapshot and the other "
                                   "paths without /cam/, the timelapse, the rings and the control page's "
                                   "settings, so it stays while the streamer runs; remove it from the config "
                                   "file and restart",
                                   src, id));
  }
  bool known = false;
  {
    std::lock_guard lock(camerasMutex);
    known =
        std::any_of(cameraEntries.begin(), cameraEntries.end(), [&](const auto& e) { return e.id == id; }) ||
        std::any_of(cameras.begin(), cameras.end(), [&](const auto& c) { return c->id == id; });
  }
  if (!known) return cameraError(404, fmt::format("no camera '{}' (cameras: {})", id, cameraIds()));
  if (auto st = persistCameras({CameraListEdit::Kind::Remove, id, ""}); !st)
    return cameraError(500, "not removed: " + st.error().describe());
  std::shared_ptr<Camera> gone;
  {
    std::lock_guard lock(camerasMutex);
    std::erase_if(cameraEntries, [&](const auto& e) { return e.id == id; });
    for (auto it = cameras.begin(); it != cameras.end(); ++it) {
      if ((*it)->id != id) continue;
      gone = *it;
      cameras.erase(it);
      break;
    }
  }
  // Requests that found it before it left the list hold it until their streams end (now).
  if (gone) retireCamera(*gone, "camera " + id + " was removed", true, true);
  spdlog::info("cameras: removed {}", id);
  nlohmann::json out = {{"status", "ok"}, {"removed", id}};
  addPersistence(out, camerasPersisted(), settings.configFile);
  return HttpResponse::json(200, out.dump());
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

// A camera's publish targets: one object per target, in the order given: where to (no
// credentials), the state ("publishing", "retrying in N s: why"), sessions, failures, bytes sent,
// the last error; [] when not publishing. /status "publish" is camera 0's; every camera's is in
// its /status "cameras" and /api/cameras entry.
nlohmann::json Streamer::Impl::publishStatus(const Camera& c) {
  auto json = [](const auto& st, const char* protocol) {
    return nlohmann::json{{"protocol", protocol},      {"url", st.url},
                          {"state", st.state},         {"sessions", st.sessions},
                          {"failures", st.failures},   {"bytes_sent", st.bytesSent},
                          {"last_error", st.lastError}};
  };
  nlohmann::json out = nlohmann::json::array();
  for (const auto& target : c.publishers) {
    out.push_back(target.rtsp ? json(target.rtsp->status(), "rtsp") : json(target.rtmp->status(), "rtmp"));
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
       {{"camera", cam->cameraRate.fps()},
        {"mjpeg", cam->mjpegRate.fps()},
        {"h264", cam->h264Rate.fps()},
        {"display", screen->rate().fps()}}},
      {"frames",
       {{"camera", cam->cameraRate.total()},
        {"mjpeg", cam->mjpegRate.total()},
        {"h264", cam->h264Rate.total()},
        {"display", screen->rate().total()}}},
      {"cpu", {{"system_percent", systemCpu.load()}, {"process_percent", processCpu.load()}}},
      {"skip_interval", std::max(cam->autoSkipInterval(), live.frameSkip.load())},
      {"auto_skip_interval", cam->autoSkipInterval()},
      {"clients", clientCounts()},
      {"streams", streams},
      {"websocket",
       {{"connections", wsHub ? wsHub->stats().connections : 0},
        {"pings", wsHub ? wsHub->stats().pings : 0},
        {"protocol_errors", wsHub ? wsHub->stats().protocolErrors : 0}}},
      {"rings", cam->ringStats()},
      {"hls", cam->hlsStats()},
      {"touches", screen->touches()},
      {"camera_state", cam->state()},
      {"camera", cam->cameraStatus()},
      {"h264_encoder", cam->h264EncoderStats()},
      {"encoder", cam->encoderStatus()},
      // H.264 cameras: pictures decoded for /stream, /snapshot and the JPEG ring (on demand).
      {"h264_decoder", cam->h264DecoderStats()},
  };
}

// ustreamer's /state shape (pikvm/ustreamer src/ustreamer/http/server.c, used by PiKVM and by
// Moonraker-side tools that probe a "ustreamer" webcam), filled from our camera and MJPEG stream.
nlohmann::json Streamer::Impl::ustreamerState() {
  const std::string state = cam->state();
  nlohmann::json clientsStat = nlohmann::json::object();  // ustreamer: per-client id -> stats; not kept
  return {{"ok", true},
          {"result",
           {{"instance_id", ""},
            {"encoder", {{"type", "CPU"}, {"quality", live.jpegQuality.load()}}},
            {"source",
             {{"resolution", {{"width", settings.width}, {"height", settings.height}}},
              {"online", state == "streaming"},
              {"desired_fps", settings.fps},
              {"captured_fps", static_cast<int>(std::lround(cam->cameraRate.fps()))}}},
            {"stream",
             {{"queued_fps", static_cast<int>(std::lround(cam->mjpegRate.fps()))},
              {"clients", cam->mjpeg.clientCount()},
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
  // With a `cameras` list every camera's series carry camera="<id>" (ids are [A-Za-z0-9_-]);
  // without one there is one camera and its series stay unlabelled, as before.
  // A camera added at run time to a streamer without a list is labelled (camera 0 stays as it was).
  const bool labelled = !settings.cameras.empty();
  const auto list = cameraList();  // held: a camera removed meanwhile stays alive
  std::vector<std::reference_wrapper<const Camera>> cams;
  for (const auto& c : list) cams.emplace_back(*c);
  auto labels = [&](const Camera& c, const std::string& more) {
    std::string l = labelled || &c != primary.get() ? fmt::format("camera=\"{}\"", c.id) : std::string();
    if (!more.empty()) l += (l.empty() ? "" : ",") + more;
    return l;
  };
  family("printcast_camera_up", "gauge", "1 while the camera delivers frames, 0 while it is away");
  for (const Camera& c : cams)
    sample("printcast_camera_up", labels(c, ""), c.pipeline->state() == "streaming" ? 1 : 0);
  family("printcast_camera_frames_total", "counter", "Camera frames captured");
  for (const Camera& c : cams)
    sample("printcast_camera_frames_total", labels(c, ""),
           static_cast<double>(c.pipeline->cameraRate.total()));
  family("printcast_h264_encoder_info", "gauge", "The H.264 encoder backend in use (value 1)");
  for (const Camera& c : cams) {
    sample("printcast_h264_encoder_info",
           labels(c, fmt::format("backend=\"{}\"", c.pipeline->h264->activeName())), 1);
  }
  family("printcast_h264_encoder_fallbacks_total", "counter",
         "H.264 encoder backends given up while encoding (the next one took over)");
  for (const Camera& c : cams) {
    sample("printcast_h264_encoder_fallbacks_total", labels(c, ""),
           static_cast<double>(c.pipeline->h264->fallbacks()));
  }
  family("printcast_camera_reconnects_total", "counter", "Times the camera was lost and reopened");
  for (const Camera& c : cams) {
    sample("printcast_camera_reconnects_total", labels(c, ""),
           static_cast<double>(c.pipeline->cameraReconnects.load()));
  }
  family("printcast_camera_dropped_frames_total", "counter",
         "Frames the camera source lost before the pipeline (a network camera's RTP loss, queue overflow)");
  for (const Camera& c : cams) {
    sample("printcast_camera_dropped_frames_total", labels(c, ""),
           static_cast<double>(c.pipeline->cameraDropped.load()));
  }
  family("printcast_no_signal_frames_total", "counter",
         "\"No signal\" frames served while the camera was away");
  for (const Camera& c : cams) {
    sample("printcast_no_signal_frames_total", labels(c, ""),
           static_cast<double>(c.pipeline->noSignalFrames.load()));
  }

  // Per output: every camera's camera/mjpeg/h264 rates, and the printer screen's.
  struct Rate {
    std::string labels;
    const RateMeter* meter;
  };
  std::vector<Rate> rates;
  for (const Camera& c : cams) {
    for (const auto& [name, meter] : {std::pair{"camera", &c.pipeline->cameraRate},
                                      {"mjpeg", &c.pipeline->mjpegRate},
                                      {"h264", &c.pipeline->h264Rate}})
      rates.push_back({labels(c, fmt::format("output=\"{}\"", name)), meter});
  }
  rates.push_back({"output=\"display\"", &screen->rate()});
  family("printcast_fps", "gauge", "Frames per second over the last 2 s, per source or output");
  for (const auto& r : rates) sample("printcast_fps", r.labels, r.meter->fps());
  family("printcast_frames_total", "counter", "Frames produced per output");
  for (const auto& r : rates)
    sample("printcast_frames_total", r.labels, static_cast<double>(r.meter->total()));

  // Per stream with clients: every camera's, and the printer screen's.
  struct Stream {
    std::string labels;
    const transport::Fanout* fanout;
  };
  std::vector<Stream> streams;
  for (const Camera& c : cams) {
    for (const auto& [name, f] : c.pipeline->clientStreams())
      streams.push_back({labels(c, fmt::format("stream=\"{}\"", name)), f});
  }
  streams.push_back({"stream=\"display\"", &screen->stream()});
  family("printcast_clients", "gauge", "Connected clients per stream");
  for (const auto& st : streams)
    sample("printcast_clients", st.labels, static_cast<double>(st.fanout->clientCount()));
  family("printcast_stream_units_queued_total", "counter", "Frames or access units queued to clients");
  for (const auto& st : streams) {
    sample("printcast_stream_units_queued_total", st.labels,
           static_cast<double>(st.fanout->totals().unitsQueued));
  }
  family("printcast_stream_units_dropped_total", "counter",
         "Frames or access units dropped for slow clients");
  for (const auto& st : streams) {
    sample("printcast_stream_units_dropped_total", st.labels,
           static_cast<double>(st.fanout->totals().unitsDropped));
  }
  family("printcast_stream_sent_bytes_total", "counter", "Bytes sent to clients per stream");
  for (const auto& st : streams) {
    sample("printcast_stream_sent_bytes_total", st.labels,
           static_cast<double>(st.fanout->totals().bytesSent));
  }
  family("printcast_cpu_percent", "gauge", "CPU use in percent (system: all cores, process: this streamer)");
  sample("printcast_cpu_percent", "scope=\"system\"", systemCpu.load());
  sample("printcast_cpu_percent", "scope=\"process\"", processCpu.load());
  family("printcast_h264_skip_interval", "gauge",
         "H.264 encodes every Nth camera frame (slider and auto-skip)");
  sample("printcast_h264_skip_interval", "", std::max(cam->autoSkipInterval(), live.frameSkip.load()));
  family("printcast_hls_watched", "gauge", "1 while something fetched from /hls/ in the last few seconds");
  for (const Camera& c : cams)
    sample("printcast_hls_watched", labels(c, ""), c.pipeline->hls->watched() ? 1 : 0);
  const std::tuple<const char*, const char*, const char*, double (*)(const CameraPipeline&)> hlsFamilies[] = {
      {"printcast_hls_segments_total", "counter", "HLS segments completed",
       [](const CameraPipeline& p) {
         return static_cast<double>(p.hls->segmenter().stats().segmentsProduced);
       }},
      {"printcast_hls_parts_total", "counter", "HLS partial segments (LL-HLS parts) completed",
       [](const CameraPipeline& p) { return static_cast<double>(p.hls->segmenter().stats().partsProduced); }},
      {"printcast_hls_bytes", "gauge", "Bytes of HLS segments held in memory",
       [](const CameraPipeline& p) { return static_cast<double>(p.hls->segmenter().stats().bytes); }}};
  for (const auto& [metric, type, help, value] : hlsFamilies) {
    family(metric, type, help);
    for (const Camera& c : cams) sample(metric, labels(c, ""), value(*c.pipeline));
  }
  family("printcast_hls_requests_total", "counter", "Requests under /hls/");
  for (const Camera& c : cams)
    sample("printcast_hls_requests_total", labels(c, ""), static_cast<double>(c.pipeline->hls->requests()));
  family("printcast_touches_total", "counter", "Taps injected into the touch panel");
  sample("printcast_touches_total", "", static_cast<double>(screen->touches()));
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
  const std::string state = cam->state();
  if (state != "streaming") return HttpResponse::text(503, "camera " + state + "\n");
  if (cam->cameraRate.fps() <= 0) return HttpResponse::text(503, "camera: no frame in the last 2 s\n");
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
    cam->endH264Clients();
  }
  live.frameSkip = skipIntervalForPercent(next.h264FrameratePercent);
  live.autoSkip = next.autoSkip;
  live.targetCpu = next.targetCpu;
  live.mjpegFps = next.mjpegFps;
  live.displayFps = next.displayFps;
  live.displayEnabled = next.displayEnabled;
  if (next.displayEnabled && !screen->hasDisplay() && !settings.displayEnabled)
    restartRequired.push_back("display_enabled");
  if (next.h264Enabled) cam->requestKeyframe();
  screen->wake();
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

std::optional<HttpResponse> Streamer::Impl::cameraRoute(const std::shared_ptr<Camera>& camera,
                                                        bool h264Enabled, std::string_view path,
                                                        const HttpRequest& req) {
  CameraPipeline& c = *camera->pipeline;
  if (path == "/stream") return mjpegResponse(c.mjpeg, req, camera);
  if (path == "/snapshot") {
    // A JPEG up to two frame intervals old answers at once.
    return c.snapshots.request(std::chrono::milliseconds(1000 / std::max(1, c.nominalFps()) * 2));
  }
  const bool h264Path =
      path == "/flv" || path == "/ws" || path == "/stream.mp4" || path.rfind("/hls/", 0) == 0;
  if (!h264Path) return std::nullopt;
  if (!camera->h264Offered) return noH264Outputs(*camera);
  if (!h264Enabled) return HttpResponse::error(503, "H.264 is disabled (h264_enabled = false)");
  if (path == "/stream.mp4") return fmp4Response(camera);
  if (path == "/flv") return flvResponse(camera, false);
  if (path == "/ws") return wsResponse(camera, req, req.arg("ts") == "1");
  return c.hls->handle(req, path.substr(5));  // a lookup key, never a file path
}

// The RTSP->HLS dashboards' layout: /hls/stream_<n>/playlist.m3u8 (or stream.m3u8) and its
// MPEG-TS segments, for the camera whose id is <n>, else the n-th camera counted from 0.
HttpResponse Streamer::Impl::dashboardHls(std::string_view path, const HttpRequest& req) {
  const std::string_view rest = path.substr(std::string_view("/hls/stream_").size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos)
    return HttpResponse::error(404, fmt::format("use {}/playlist.m3u8", path));
  const std::string_view key = rest.substr(0, slash);
  std::shared_ptr<Camera> c = findCamera(key);
  const auto list = cameraList();
  if (c == nullptr && !key.empty() && key.size() < 4 &&
      std::all_of(key.begin(), key.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
    const size_t index = std::stoul(std::string(key));
    if (index < list.size()) c = list[index];
  }
  if (c == nullptr) {
    return HttpResponse::error(
        404, fmt::format("no camera '{}' (stream_<n>: a camera id ({}) or its position 0..{})", key,
                         cameraIds(), list.size() - 1));
  }
  if (!c->h264Offered) return noH264Outputs(*c);
  const bool h264On = c->ownLive ? c->ownLive->h264Enabled.load() : live.h264Enabled.load();
  if (!h264On) return HttpResponse::error(503, "H.264 is disabled (h264_enabled = false)");
  std::string_view name = rest.substr(slash + 1);
  if (name == "playlist.m3u8" || name == "index.m3u8") name = "stream.m3u8";
  return c->pipeline->tsHls().handle(req, name);  // a lookup key, never a file path
}

// h264-streamer's port of cameras 1..3: /stream, /snapshot and /?action=stream|snapshot.
HttpResponse Streamer::Impl::handleCameraPort(const std::string& id, const HttpRequest& req) {
  if (req.method != "GET" && req.method != "HEAD") return HttpResponse::error(405, "only GET is served here");
  // By id at each request: a camera reopened by the control API keeps its port.
  const auto c = findCamera(id);
  if (!c) return HttpResponse::error(404, "camera " + id + " was removed");
  std::string path = req.path;
  if (path == "/" || path.empty()) {
    const std::string action = req.arg("action");
    if (action != "stream" && action != "snapshot")
      return HttpResponse::error(404, "use /?action=stream or /?action=snapshot (camera " + id + ")");
    path = "/" + action;
  }
  if (path != "/stream" && path != "/snapshot")
    return HttpResponse::error(404,
                               "no such endpoint: " + req.path + " (camera " + id + ": /stream, /snapshot)");
  return std::move(*cameraRoute(c, false, path, req));
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
  if (path.rfind("/cam/", 0) == 0) {
    // Every camera's own paths: /cam/<id>/stream, /snapshot, /flv, /stream.mp4, /hls/..., /ws.
    const std::string_view rest = std::string_view(path).substr(5);
    const auto slash = rest.find('/');
    const std::string_view id = rest.substr(0, slash);
    const auto c = findCamera(id);  // held by the responses: a camera removed meanwhile stays alive
    if (c == nullptr)
      return HttpResponse::error(404, fmt::format("no camera '{}' (cameras: {})", id, cameraIds()));
    const std::string_view sub = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
    const bool h264On = c->ownLive ? c->ownLive->h264Enabled.load() : live.h264Enabled.load();
    if (auto r = cameraRoute(c, h264On, sub, req)) return std::move(*r);
    return HttpResponse::error(404,
                               fmt::format("no such endpoint: {} (a camera has /stream, /snapshot, /flv, "
                                           "/stream.mp4, /hls/stream.m3u8 and /ws)",
                                           req.path));
  }
  if (path == "/ingest") {
    if (!ingest) return HttpResponse::error(404, "no camera ingest here (it is on with --source ws-push)");
    return ingest->accept(req);
  }
  if (path.rfind("/hls/stream_", 0) == 0) return dashboardHls(path, req);
  if (auto r = cameraRoute(primary, live.h264Enabled, path, req)) return std::move(*r);
  if (path == "/state") return HttpResponse::json(200, ustreamerState().dump());
  if (path == "/metrics") {
    HttpResponse r = HttpResponse::text(200, metrics());
    r.contentType = "text/plain; version=0.0.4; charset=utf-8";
    return r;
  }
  if (path == "/healthz") return healthz();
  if (path == "/display" || path == "/display/snapshot") {
    if (!screen->hasDisplay())
      return HttpResponse::error(503, "no display capture: " + screen->displayError());
    if (!live.displayEnabled)
      return HttpResponse::error(503, "display capture is disabled (display_enabled = false)");
    HttpResponse r;
    if (path == "/display") {
      r = mjpegResponse(screen->stream(), req);
      screen->onStreamClient();
    } else {
      r = screen->snapshots().request(0ms);  // always a fresh grab: the screen may just have been touched
    }
    screen->wake();
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
  if (req.path == "/api/cameras/discover") return discovery.handle(req);
  if (req.path == "/api/cameras" || req.path.rfind("/api/cameras/", 0) == 0) return camerasRequest(req);
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
  const std::string stableName = cam->stableName();
  return cam->withCamera([&](hal::Capture* camera) -> HttpResponse {
    hal::V4l2Camera* v4l2 = camera ? hal::v4l2CameraOf(*camera) : nullptr;
    if (v4l2 == nullptr) {
      return HttpResponse::error(503,
                                 camera ? "this camera has no V4L2 controls" : "no camera: " + cam->state());
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
      if (auto st = cam->controlStore.set(stableName, *v4l2, *it, v); !st) {
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
    return HttpResponse::json(200, nlohmann::json{{"camera", stableName},
                                                  {"controls", list},
                                                  {"saved", cam->controlStore.saved(stableName)}}
                                       .dump());
  });
}

HttpResponse Streamer::Impl::handleFlvPort(const HttpRequest& req) {
  if (req.path == "/flv") {
    if (!primary->h264Offered) return noH264Outputs(*primary);
    if (!live.h264Enabled) return HttpResponse::error(503, "H.264 is disabled (h264_enabled = false)");
    return flvResponse(primary, true);
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
  moonrakerTimelapseOn = ts.timelapseEnabled;
  if (!ts.timelapseEnabled && !ts.moonrakerRegisterWebcam && !nativeTimelapse()) return;
  if (ts.timelapseEnabled || nativeTimelapse()) {
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
        rc, [this](std::chrono::milliseconds timeout) { return cam->snapshots.next(timeout); });
    timelapse->start();
    auto folder = rc.recordingFolder();
    spdlog::info("timelapse: {}, videos in {}",
                 ts.timelapseEnabled ? ts.timelapseMode + " mode" : "the firmware's own requests",
                 folder ? folder->string() : folder.error().describe());
    if (nativeTimelapse()) {
      std::lock_guard lock(nativeMutex);
      nativeRecorder = timelapse.get();
    }
  }
  if (!ts.timelapseEnabled && !ts.moonrakerRegisterWebcam) return;
  MoonrakerConfig mc;
  mc.socketPath = ts.moonrakerSocket;
  mc.host = ts.moonrakerHost;
  mc.port = static_cast<uint16_t>(ts.moonrakerPort);
  // The handlers run on the client's thread: they reach the recorder and the client directly,
  // never through timelapseMutex (stop() joins that thread under it).
  TimelapseRecorder* recorder = ts.timelapseEnabled ? timelapse.get() : nullptr;
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
  {
    std::lock_guard lock(nativeMutex);  // the gkapi thread's requests stop reaching the recorder
    nativeRecorder = nullptr;
  }
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
  if (s.nativeTimelapse()) {
    // First, before the camera opens and before any socket exists (the guardian it spawns
    // inherits what is not close-on-exec).
    GkcamHandoverConfig gc;
    gc.executable = settings.gkcamPath;
    auto taken = GkcamHandover::take(gc);
    if (taken) {
      s.gkcam = std::move(*taken);
    } else {
      s.gkcamError = taken.error().describe();
      spdlog::warn("{}; the camera may stay gkcam's", s.gkcamError);
    }
  }
  // Timelapse recording (feat-tlrec): POST /api/timelapse/settings applies the recorder's keys live.
  s.timelapseSettings = settings;
  s.onTimelapseSettings = [&s](const Settings& next) { s.applyTimelapseSettings(next); };
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
  // Camera 0 runs on the top-level settings (the first enabled `cameras` entry was folded into
  // them) and the control API's live settings; each further camera on its own.
  {
    auto first = std::make_shared<Impl::Camera>();
    first->id = settings.cameras.empty() ? "0" : "";
    first->publishTargets = settings.publish;
    for (const auto& entry : settings.cameras) {
      if (entry.enabled && first->id.empty()) {
        first->id = entry.id;
        first->name = entry.name;
        first->publishTargets.insert(first->publishTargets.end(), entry.publish.begin(), entry.publish.end());
        first->planNote = entry.planNote;
      }
    }
    if (first->name.empty()) first->name = board.name;
    first->h264Offered = settings.h264Offered;
    auto pipeline = CameraPipeline::create(settings, board, s.live, s.ingest,
                                           settings.cameras.empty() ? std::string() : first->id);
    if (!pipeline) return pipeline.error();
    first->pipeline = std::move(*pipeline);
    s.cameras.push_back(first);
    s.primary = first;
    s.cam = first->pipeline.get();
    s.cameraEntries = settings.cameras;
    bool skippedFirst = false;
    int slot = 0;
    for (const auto& entry : settings.cameras) {
      if (!entry.enabled) continue;
      if (!skippedFirst) {
        skippedFirst = true;
        continue;
      }
      // Cameras 1..3 get h264-streamer's ports (opened below, with the other servers).
      const int portSlot = settings.cameraPortBase >= 0 && slot < 3 ? slot++ : -1;
      auto more = s.buildCamera(entry, portSlot, false);
      if (!more) return more.error();
      s.cameras.push_back(std::move(*more));
    }
  }
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
  auto screen = PrinterScreen::open(settings, board, s.live);
  if (!screen) return screen.error();
  s.screen = std::move(*screen);

  // Every port: the board's connection limit. The control port (it presses buttons on the
  // printer) takes changes only from its own pages and from scripts (transport/http_access.h).
  // Also kept as s.listenPort for the camera ports opened at run time: it reads s.settings and
  // s.board (which outlive it), not start()'s arguments.
  auto listen = [&s](const char* name, int port, std::string origin, transport::HttpHandler handler,
                     bool sameOriginWrites = false) -> hal::Result<std::unique_ptr<transport::HttpServer>> {
    const Settings& cfg = s.settings;
    transport::HttpServerConfig config;
    config.name = name;
    config.host = cfg.host;
    config.port = static_cast<uint16_t>(port);
    config.allowOrigin = std::move(origin);
    config.connectionLimit = s.board->limits.maxConnectionsPerPort;
    config.perAddressLimit =
        std::min(static_cast<unsigned>(cfg.connectionsPerAddress), config.connectionLimit);
    config.streamStallSeconds = static_cast<unsigned>(cfg.streamStallSeconds);
    if (sameOriginWrites) {
      config.policy.sameOriginWrites = true;
      config.policy.trustedOrigins = transport::splitList(cfg.controlAllowOrigin);
      config.policy.allowedHosts = transport::splitList(cfg.allowedHosts);
      if (!cfg.authTokenSha256.empty()) {
        config.authorize = [hash = cfg.authTokenSha256](const HttpRequest& r) {
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
  s.listenPort = [listen](const char* name, int port, std::string origin, transport::HttpHandler handler) {
    return listen(name, port, std::move(origin), std::move(handler));
  };
  for (auto& c : s.cameras) {
    if (c->portSlot < 0) continue;
    const int port = settings.cameraPortBase == 0 ? 0 : settings.cameraPortBase + c->portSlot;
    auto server = listen(("camera " + c->id).c_str(), port, settings.allowOrigin,
                         [&s, id = c->id](const HttpRequest& r) { return s.handleCameraPort(id, r); });
    if (!server) return hal::Error{server.code(), 0, "camera " + c->id + ": " + server.error().message};
    c->port = std::move(*server);
    c->portNumber = c->port->port();
  }
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
    // A camera without H.264 outputs (its entry's "h264": false) has no RTSP path.
    std::vector<std::pair<std::string, transport::RtspStream*>> paths;
    if (s.primary->h264Offered) paths.emplace_back("/stream", &s.cam->rtspStream);
    for (auto& c : s.cameras) {
      if (c->h264Offered) paths.emplace_back("/cam/" + c->id, &c->pipeline->rtspStream);
    }
    if (s.screen->hasDisplay()) paths.emplace_back("/display", &s.screen->rtspStream());
    auto rtsp = transport::RtspServer::start(rc, paths);
    if (!rtsp) return rtsp.error();
    s.rtspServer = std::move(*rtsp);
    // ... and its 404 says why (ffmpeg and VLC print the status line).
    if (!s.primary->h264Offered) s.rtspServer->setRefusal("/stream", noH264Reason(s.primary->id));
    for (auto& c : s.cameras) {
      if (!c->h264Offered) s.rtspServer->setRefusal("/cam/" + c->id, noH264Reason(c->id));
    }
    // Not an HTTP path: a page builds rtsp://<its host>:<port><path> from it.
    s.outputs.push_back(
        {{"name", "rtsp"}, {"path", "/stream"}, {"type", "rtsp"}, {"port", s.rtspServer->port()}});
    if (s.screen->hasDisplay()) {
      s.outputs.push_back(
          {{"name", "display-rtsp"}, {"path", "/display"}, {"type", "rtsp"}, {"port", s.rtspServer->port()}});
    }
  }
  if (!s.primary->h264Offered) {
    // Camera 0 without H.264 outputs (its entry's "h264": false): /status lists what it has.
    std::erase_if(s.outputs, [](const nlohmann::json& o) {
      const std::string name = o["name"];
      return name == "fmp4" || name == "flv" || name == "ws" || name == "hls" || name == "rtsp";
    });
  }
  if (auto st = s.startPublishers(*s.primary); !st) return st.error();
  if (settings.ingestPort >= 0 && s.ingest) {
    // Cameras only: any path upgrades (ESP32 firmwares connect to "/").
    auto ingestServer =
        listen("ingest", settings.ingestPort, "", [&s](const HttpRequest& r) { return s.ingest->accept(r); });
    if (!ingestServer) return ingestServer.error();
    s.ingestServer = std::move(*ingestServer);
  }

  for (auto& c : s.cameras) c->pipeline->start();
  s.screen->start();
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
  s.threads.emplace_back([&s] {
    hal::nameThisThread("housekeeping");
    s.housekeepingLoop();
  });
  if (s.nativeTimelapse()) {
    s.nativeSink = std::make_unique<NativeTimelapseSink>(s.nativeMutex, s.nativeRecorder,
                                                         [&s] { return s.cam->state() == "streaming"; });
    s.nativeHandler = std::make_unique<AnycubicTimelapseHandler>(
        *s.nativeSink, [&s] { return s.moonrakerTimelapseOn.load(); });
    GkapiVideoConfig gc;
    gc.port = static_cast<uint16_t>(settings.lanModePort);
    s.gkapi = std::make_unique<GkapiVideoClient>(gc, *s.nativeHandler);
    s.gkapi->start();
    // The slicer's live view: its model id is the board's (detected from api.cfg), else api.cfg's.
    AnycubicMqttConfig mc;
    if (board.detection.detector != nullptr && board.detection.key != 0)
      mc.modelId = std::to_string(board.detection.key);
    auto responder = createAnycubicMqttResponder(mc);
    hal::Status started = responder ? (*responder)->start() : hal::Status(responder.error());
    if (started) {
      s.mqtt = std::move(*responder);
    } else {
      s.mqttError = started.error().describe();
      spdlog::warn("slicer live view (MQTT): {}", s.mqttError);
    }
  }
  {
    std::lock_guard lock(s.timelapseMutex);
    s.startTimelapse(s.timelapseSettings);
  }
  s.timelapseControl = std::thread([&s] {
    hal::nameThisThread("timelapse");
    s.timelapseControlLoop();
  });
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
  for (const auto* ring : {impl_->cam->h264Ring.get(), impl_->cam->jpegRing.get()})
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
  if (s.mqtt) s.mqtt->stop();
  if (s.gkapi) s.gkapi->stop();  // no more requests; then the recording so far is finished
  if (s.nativeHandler) s.nativeHandler->close();
  {
    std::lock_guard lock(s.timelapseMutex);
    s.stopTimelapse();  // while the camera still runs: a capture in progress gets its frame
    s.timelapseClosed = true;
  }
  if (!s.running.exchange(false)) return;
  // The control port's file work first (the job running is finished, the waiting ones get 503):
  // from here on no camera is added, changed or removed.
  s.blockingWork->stop();
  s.discovery.stop();
  s.stopWake.notify_all();
  const auto cameras = s.cameraList();
  for (auto& c : cameras) c->pipeline->stop();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
  // Pending touches are answered; streams end so their suspended connections resume.
  s.screen->stop("streamer is stopping");
  for (auto& c : cameras) {
    c->pipeline->snapshots.failAll("streamer is stopping");
    c->pipeline->mjpeg.closeAll();
    c->pipeline->flv.closeAll();
    c->pipeline->fmp4.closeAll();
    c->pipeline->wsStream.closeAll();
  }
  for (auto& c : cameras) c->publishers.clear();  // TEARDOWN sent, their threads joined
  s.rtspServer.reset();  // its connections close; then nothing reads rtspStream's queues
  for (auto& c : cameras) {
    c->pipeline->rtspStream.closeAll();
    c->pipeline->hls->closeAll("streamer is stopping");
    if (c->pipeline->hlsTs) c->pipeline->hlsTs->closeAll("streamer is stopping");
  }
  s.screen->rtspStream().closeAll();
  // WebSocket clients get Close 1001 and their sockets are closed before the HTTP servers stop
  // (libmicrohttpd must close an upgraded socket itself, before its daemon goes).
  if (s.wsHub) s.wsHub->stop();
  if (s.ingest) s.ingest->stop();
  for (auto* server : {s.streamServer.get(), s.controlServer.get(), s.flvServer.get(), s.wsServer.get(),
                       s.ingestServer.get()}) {
    if (server != nullptr) server->stop();
  }
  for (auto& c : cameras) {
    if (c->port) c->port->stop();
  }
  // Retire the rings (after the servers: /status reads them): their readers are woken and wait
  // for a new producer.
  s.cam->h264Ring.reset();
  s.cam->jpegRing.reset();
}

}  // namespace printcast::streamer
