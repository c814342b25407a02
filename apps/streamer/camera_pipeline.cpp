// SPDX-License-Identifier: MIT
#include "camera_pipeline.h"

#include <poll.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <span>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "printcast/bsp/devices.h"
#include "printcast/codecs/convert.h"
#include "printcast/codecs/h264.h"
#include "printcast/codecs/h264_decoder.h"
#include "printcast/codecs/jpeg.h"
#include "printcast/hal/no_signal.h"
#include "printcast/hal/test_pattern.h"
#include "printcast/hal/thread_name.h"
#include "printcast/hal/v4l2.h"
#include "printcast/transport/flv_pull.h"
#include "printcast/transport/mjpeg_pull.h"
#include "printcast/transport/rtsp_client.h"

namespace printcast::streamer {

using namespace std::chrono_literals;

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

// A `cameras` entry's "format" as a FourCC; 0 for "auto".
hal::FourCC cameraFormatOf(const std::string& key) {
  if (key == "mjpeg") return hal::fourcc::kMJPEG;
  if (key == "yuyv") return hal::fourcc::kYUYV;
  if (key == "h264") return hal::fourcc::kH264;
  return {};
}

}  // namespace

CameraPipeline::CameraPipeline(const Settings& s, const bsp::Board& b, LiveSettings& l,
                               std::shared_ptr<transport::JpegPushIngest> pushIngest)
    : flv(s.fps),
      fmp4(s.fps),
      controlStore(s.cameraControlsFile),
      pictureTransform(cameraTransform(s)),
      settings(s),
      board(&b),
      live(l),
      ingest(std::move(pushIngest)) {}

hal::Result<std::unique_ptr<CameraPipeline>> CameraPipeline::create(
    const Settings& settings, const bsp::Board& board, LiveSettings& live,
    std::shared_ptr<transport::JpegPushIngest> ingest, const std::string& id) {
  std::unique_ptr<CameraPipeline> p(new CameraPipeline(settings, board, live, std::move(ingest)));
  if (!id.empty()) p->logPrefix = "[" + id + "] ";
  if (!id.empty()) p->threadName = "cam " + id;
  CameraPipeline* self = p.get();
  p->jpeg = codecs::createJpegEncoder();
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
  for (auto backend : *order) p->h264Order.emplace_back(codecs::h264BackendName(backend));
  // A V4L2 M2M encoder takes the camera's own raw format when it can (no conversion, and its buffer
  // imported by DMA-BUF): the board's camera format (rkmpi-yuyv: YUYV), else its usual YU12, which
  // is also the camera format tried first.
  codecs::H264BackendOptions backendOptions;
  const hal::FourCC cameraFormat =
      settings.encoderType == "rkmpi-yuyv" ? hal::fourcc::kYUYV : board.camera.preferredFormat;
  for (auto raw : {hal::fourcc::kI420, hal::fourcc::kNV12, hal::fourcc::kYUYV}) {
    if (cameraFormat == raw) backendOptions.v4l2m2m.preferredInput = raw;
  }
  p->h264 = codecs::createH264Encoder(*order, backendOptions);
  // The H.264 outputs with connections: each is encoded for while it has clients, every client
  // starts on a fresh IDR, and switching H.264 off ends its clients' streams.
  auto addStream = [&](const char* name, auto& stream) {
    stream.setOnSubscribe([self] { self->keyframeWanted = true; });
    p->h264Outputs.push_back({name, [&stream] { return stream.clientCount() > 0; },
                              [&stream](const hal::PacketPtr& pk) { stream.publish(pk); },
                              [&stream] { stream.closeAll(); }});
  };
  addStream("flv", p->flv);
  addStream("fmp4", p->fmp4);
  addStream("ws", p->wsStream);
  addStream("rtsp", p->rtspStream);
  // HLS has no connections to count: a window is watched while someone fetched from it
  // recently. A viewer arriving after an idle spell gets a fresh IDR; while watched, the encoder
  // is asked for an IDR whenever a segment is due to close, so segments last about
  // hls_segment_seconds.
  auto addHls = [&](const char* name, std::unique_ptr<transport::HlsOutput>& window,
                    transport::hls::Format format, double partSeconds) {
    transport::hls::Config hc;
    hc.format = format;
    hc.segmentTarget = std::chrono::milliseconds(std::lround(settings.hlsSegmentSeconds * 1000));
    hc.partTarget = std::chrono::milliseconds(std::lround(partSeconds * 1000));
    window = std::make_unique<transport::HlsOutput>(hc);
    transport::HlsOutput* w = window.get();
    w->setOnViewer([self] { self->keyframeWanted = true; });
    p->h264Outputs.push_back({name, [w] { return w->watched(); },
                              [self, w](const hal::PacketPtr& pk) {
                                w->publish(pk);
                                if (w->keyframeDue()) self->keyframeWanted = true;
                              },
                              [w] { w->closeAll("H.264 is disabled (h264_enabled = false)"); }});
  };
  const bool hlsIsTs = settings.hlsFormat == "ts";
  addHls("hls", p->hls, hlsIsTs ? transport::hls::Format::MpegTs : transport::hls::Format::Fmp4,
         settings.hlsPartSeconds);
  // The RTSP->HLS dashboards' layout (/hls/stream_<n>/playlist.m3u8) is MPEG-TS without parts,
  // as ffmpeg's hls muxer writes it: a second window when /hls/stream.m3u8 is fMP4. Unwatched it
  // holds nothing (publish() feeds a window only while it is watched).
  if (!hlsIsTs) addHls("hls-ts", p->hlsTs, transport::hls::Format::MpegTs, 0);
  if (auto st = p->controlStore.load(); !st) spdlog::warn("{}", st.error().describe());
  if (settings.ring) {
    // A ring that cannot be made (no /dev/shm, full) is logged, not fatal: the network streams
    // do not need it.
    auto makeRing = [&](const char* stream, hal::FourCC codec,
                        uint32_t slots) -> std::unique_ptr<transport::ShmRing> {
      auto ring = transport::ShmRing::create({settings.ringName + "-" + stream, codec,
                                              static_cast<size_t>(settings.ringSizeMb) << 20, slots, 32});
      if (ring) return std::move(*ring);
      p->ringError = ring.error().describe();
      spdlog::warn("shared-memory ring: {}", p->ringError);
      return nullptr;
    };
    p->h264Ring = makeRing("h264", hal::fourcc::kH264, 128);
    p->jpegRing = makeRing("jpeg", hal::fourcc::kMJPEG, 64);
  } else {
    p->ringError = "disabled (ring = false)";
  }
  if (p->h264Ring) {
    // Encoding for the ring only while it has readers; a reader's keyframe request (or one
    // that attached with no IDR in the ring) gets a fresh IDR like a new FLV client.
    p->h264Outputs.push_back({"ring",
                              [self] {
                                if (self->h264Ring->keyframeRequested()) self->keyframeWanted = true;
                                return self->h264Ring->liveReaders() > 0;
                              },
                              [self](const hal::PacketPtr& pk) {
                                if (auto st = self->h264Ring->publish(pk); !st)
                                  spdlog::warn("{}", st.error().describe());
                                if (self->h264Ring->keyframeRequested()) self->keyframeWanted = true;
                              }});
  }
  return p;
}

CameraPipeline::~CameraPipeline() { stop(); }

void CameraPipeline::start() {
  if (running.exchange(true)) return;
  thread = std::thread([this] {
    hal::nameThisThread(threadName);  // "camera", or "cam <id>" with a cameras list
    cameraLoop();
  });
}

void CameraPipeline::stop() {
  {
    std::lock_guard lock(stopMutex);
    running = false;
  }
  stopWake.notify_all();
  if (thread.joinable()) thread.join();
}

bool CameraPipeline::pause(std::chrono::milliseconds d) {
  std::unique_lock lock(stopMutex);
  stopWake.wait_for(lock, d, [this] { return !running.load(); });
  return running.load();
}

std::string CameraPipeline::state() const {
  std::lock_guard lock(stateMutex);
  return cameraState;
}

std::string CameraPipeline::name() const {
  std::lock_guard lock(stateMutex);
  return cameraName;
}

std::string CameraPipeline::stableName() const {
  std::lock_guard lock(stateMutex);
  return cameraStableName;
}

void CameraPipeline::setCameraState(std::string s) {
  std::lock_guard lock(stateMutex);
  cameraState = std::move(s);
}

void CameraPipeline::endH264Clients() {
  for (const auto& o : h264Outputs) {
    if (o.endClients) o.endClients();
  }
}

void CameraPipeline::expireWaiters() {
  snapshots.expire(3s, "no camera frame within 3 s: " + state());
  hls->expire();
  if (hlsTs) hlsTs->expire();
}

bool CameraPipeline::h264Wanted() const {
  if (!live.h264Enabled || !settings.h264Offered) return false;
  return std::any_of(h264Outputs.begin(), h264Outputs.end(), [](const H264Output& o) { return o.wanted(); });
}

bool CameraPipeline::encodeH264Now() {
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

void CameraPipeline::publishH264(const hal::PacketPtr& packet) {
  for (const auto& o : h264Outputs) o.publish(packet);
  h264Rate.tick();
}

// open: holding its working memory; idle_releases: times it gave it back after 10 s without an
// H.264 viewer (the next viewer reopens it).
nlohmann::json CameraPipeline::h264EncoderStats() const {
  return {{"backend", h264->activeName()},
          {"open", h264Open.load()},
          {"idle_releases", h264Releases.load()},
          {"fallbacks", h264->fallbacks()}};
}

// The H.264 encoder backend in use ("none" until the camera's first configuration; an H.264
// camera's access units pass through it untouched), each backend not used and why, and how
// many backends failed while encoding (the next took over on an IDR).
nlohmann::json CameraPipeline::encoderStatus() const {
  nlohmann::json refused = nlohmann::json::array();
  for (const auto& r : h264->refusals()) {
    refused.push_back({{"backend", r.backend}, {"reason", r.reason}, {"while_encoding", r.runtime}});
  }
  // How camera frames reach the encoder: "dmabuf" (a V4L2 M2M encoder imports the camera's
  // buffer), "mmap" (copied into the encoder's buffers), "copy" (software encoders), and why not
  // dmabuf; camera_dmabuf: "" when the camera exports its buffers, else why not.
  const hal::EncoderInputPath input = h264->inputPath();
  std::string cameraDmabuf;
  {
    std::lock_guard lock(stateMutex);
    cameraDmabuf = cameraDmabufRefusal;
  }
  return {{"h264", h264->activeName()},
          {"order", h264Order},
          {"refused", refused},
          {"fallbacks", h264->fallbacks()},
          {"input",
           {{"path", input.path},
            {"reason", input.reason},
            {"imported", input.importedFrames},
            {"copied", input.copiedFrames},
            {"camera_dmabuf", cameraDmabuf}}}};
}

// The camera's state for /status and /api/stats. `state` is "starting", "streaming" or
// "no-signal: <reason>" (the camera is away: clients get the "no signal" picture while it is
// reopened by `stable_name`); `reconnects` counts losses since start; `format` the FourCC the
// camera delivers; for an H.264 camera `h264` says its access units are passed through and its
// measured IDR interval (`gop_ms`), which is what a joining viewer waits at most.
nlohmann::json CameraPipeline::cameraStatus() const {
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
                        {"dropped_frames", cameraDropped.load()},
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

nlohmann::json CameraPipeline::h264DecoderStats() const {
  const auto st = h264Pictures.stats();
  // Asked now, not at construction: libavcodec is loaded at its first use (h264_decoder.h).
  return {{"backend", codecs::h264DecoderName()},
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

// The shared-memory rings for /status and /api/stats: per ring its object name, live readers,
// frames and bytes published, publish errors, reader keyframe requests and generation.
nlohmann::json CameraPipeline::ringStats() const {
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
nlohmann::json CameraPipeline::hlsStats() const {
  const auto st = hls->segmenter().stats();
  nlohmann::json out = {{"watched", hls->watched()},
                        {"requests", hls->requests()},
                        {"waiting", hls->waiting()},
                        {"media_sequence", st.mediaSequence},
                        {"segments", st.segments},
                        {"segments_produced", st.segmentsProduced},
                        {"parts_produced", st.partsProduced},
                        {"bytes", st.bytes},
                        {"target_duration_s", st.targetDurationS},
                        {"format", settings.hlsFormat}};
  // The MPEG-TS window of /hls/stream_<n>/ (absent when hls_format is "ts": the same window).
  if (hlsTs) {
    const auto ts = hlsTs->segmenter().stats();
    out["ts_window"] = {{"watched", hlsTs->watched()},
                        {"requests", hlsTs->requests()},
                        {"segments", ts.segments},
                        {"segments_produced", ts.segmentsProduced},
                        {"bytes", ts.bytes}};
  }
  return out;
}

hal::Status CameraPipeline::openCamera() {
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
  // A `cameras` entry's "format" asks for that format only (a USB bus planned for MJPEG must not
  // get YUYV instead: usb_camera_plan.h).
  const hal::FourCC asked = cameraFormatOf(settings.cameraFormat);
  if (asked.code != 0) candidates.push_back(asked);
  // h264-streamer's encoder_type picks the camera format: rkmpi-yuyv YUYV, rkmpi MJPEG.
  if (asked.code == 0 && settings.encoderType == "rkmpi-yuyv") candidates.push_back(hal::fourcc::kYUYV);
  if (asked.code == 0 && settings.encoderType == "rkmpi") candidates.push_back(hal::fourcc::kMJPEG);
  if (asked.code == 0 && board->camera.preferredFormat.code != 0 &&
      std::find(candidates.begin(), candidates.end(), board->camera.preferredFormat) == candidates.end())
    candidates.push_back(board->camera.preferredFormat);
  for (auto f : {hal::fourcc::kI420, hal::fourcc::kNV12, hal::fourcc::kYUYV, hal::fourcc::kMJPEG,
                 hal::fourcc::kH264}) {
    if (asked.code != 0) break;
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
  if (n == hal::Negotiation::Invalid && asked.code != 0) {
    return hal::Status(
        hal::Errc::Unsupported,
        fmt::format("camera {}: does not offer {} near {} at {} fps (its \"format\" is \"{}\")", name,
                    asked.str(), hal::Size{settings.width, settings.height}.str(), settings.fps,
                    settings.cameraFormat));
  }
  if (n == hal::Negotiation::Invalid) {
    return hal::Status(
        hal::Errc::Unsupported,
        fmt::format("camera {}: offers none of I420, NV12, YUYV, MJPEG, H264 near {} at {} fps", name,
                    hal::Size{settings.width, settings.height}.str(), settings.fps));
  }
  if (n == hal::Negotiation::Adjusted) {
    spdlog::warn("{}camera {}: adjusted to {} {} at {} fps", logPrefix, name, config.format.str(),
                 config.size.str(), config.fps);
  }
  if (auto st = c.start(config); !st) return st;

  int fps = config.fps;
  std::string newStableName;
  std::string dmabufRefusal = "not a V4L2 camera";
  if (auto* v4l2 = hal::v4l2CameraOf(c)) {
    newStableName = v4l2->device().stableName;
    dmabufRefusal = v4l2->dmabufRefusal();
    const hal::CaptureConfig active = v4l2->activeConfig();
    if (active.fps > 0) fps = active.fps;
    for (const auto& refused : controlStore.apply(newStableName, *v4l2)) {
      spdlog::warn("{}camera {}: saved control not applied: {}", logPrefix, name, refused);
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
          "{}camera {}: its H.264 is passed through as it comes: camera_rotation, camera_flip_*, "
          "stream_resolution and snapshot_resolution are not applied to an H.264 camera",
          logPrefix, name);
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
  if (auto st = configureEncoders(streamSize, settings.unpaced ? settings.fps : std::max(1, fps),
                                  cameraFormat != hal::fourcc::kH264);
      !st)
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
    cameraDmabufRefusal = dmabufRefusal;
    streamSizeShown = streamSize.str();
    snapshotSizeShown = snapshotSize.str();
    if (!newStableName.empty()) cameraStableName = newStableName;
    cameraState = "streaming";
  }
  keyframeWanted = true;
  if (settings.unpaced) {
    spdlog::info("{}camera {}: {} {} unpaced (encoder nominal {} fps)", logPrefix, name, config.format.str(),
                 config.size.str(), settings.fps);
  } else {
    spdlog::info("{}camera {}: {} {} at {} fps{}", logPrefix, name, config.format.str(), config.size.str(),
                 fps, newStableName.empty() ? "" : " (" + newStableName + ")");
  }
  return {};
}

hal::Status CameraPipeline::configureEncoders(hal::Size size, int fps, bool withH264) {
  fps = std::max(1, fps);
  // A camera without H.264 outputs (its entry's "h264": false) never opens an H.264 encoder.
  const bool h264Needed = withH264 && settings.h264Offered;
  if (!withH264 && h264Open) {
    // An H.264 camera is back after "no signal": its access units pass through, the encoder's
    // working memory goes back (it stays configured for the next "no signal").
    h264->release();
    h264Open = false;
  }
  const bool reconfigure = live.reconfigureCamera.exchange(false);
  if (size == encoderSize && fps == encoderFps && !reconfigure && (!h264Needed || h264Configured)) return {};
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
  h264Configured = false;  // configured for another size or rate, or not at all
  if (h264Needed) {
    if (auto st = h264->configure(enc); !st) return st;
    h264Configured = true;
    h264Open = true;
    h264LastWanted = Clock::now();
  }
  encoderSize = size;
  encoderFps = fps;
  return {};
}

void CameraPipeline::loseCamera(const hal::Error& error) {
  if (camera) cameraDroppedBase += transport::droppedFrames(*camera);
  cameraDropped = cameraDroppedBase;
  {
    std::lock_guard lock(cameraMutex);
    camera.reset();  // a disconnected device stays dead: recovery is a new object
  }
  ++cameraReconnects;
  setCameraState("no-signal: " + error.describe());
}

// The grey "NO SIGNAL" picture, to every kind of client, while there is no camera: players keep
// their connection and show why, and snapshot consumers (timelapse) get an answer.
void CameraPipeline::publishNoSignal(const std::string& reason) {
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
  if (auto st = configureEncoders(size, encoderFps > 0 ? encoderFps : settings.fps, true); !st) {
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

void CameraPipeline::cameraLoop() {
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
            spdlog::error("{}camera: {} (retrying with backoff up to {} s)", logPrefix, error,
                          kMaxRetry.count() / 1000);
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
      spdlog::error("{}camera {}: {}; serving \"no signal\" and reopening {}", logPrefix, name(),
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

void CameraPipeline::onCameraFrame(const hal::Frame& frame, Timestamp& nextJpegDue) {
  // Arrival time, not the frame's timestamp: a network camera's timestamps come from its media
  // clock (transport's MediaClock), which may run up to a second behind arrival, and a meter
  // ticked in the past reads low against now (22-26 fps for a 30 fps RTSP camera).
  cameraRate.tick();
  if (camera) cameraDropped = cameraDroppedBase + transport::droppedFrames(*camera);
  if (live.reconfigureCamera.load() && !encoderSize.empty()) {
    // A new bitrate or JPEG quality from the control API: the encoders are reconfigured here,
    // on the thread that drives them; H.264 clients get the new parameter sets with the next IDR.
    if (auto st = configureEncoders(encoderSize, encoderFps, cameraFormat != hal::fourcc::kH264); !st) {
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
      spdlog::warn("{}camera {}: to I420: {}", logPrefix, frame.format().str(), converted.error().describe());
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
      spdlog::warn("{}camera: scaling to {}: {}", logPrefix, pool->size().str(), r.error().describe());
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
  // The camera's frame itself when the encoder takes its format as it is and nothing is turned or
  // scaled (a V4L2 M2M encoder then imports the camera's buffer: no copy); else I420.
  const std::vector<hal::FourCC> native = h264->info().inputFormats;
  const bool asItIs = !turned && streamSize == pictureSize && frame.format() != hal::fourcc::kMJPEG &&
                      std::find(native.begin(), native.end(), frame.format()) != native.end();
  const hal::Frame* src = asItIs ? &frame : toStream();
  if (src == nullptr) return;
  auto packet = h264->encode(*src);
  if (!packet) {
    if (packet.code() != hal::Errc::Again) spdlog::warn("h264: {}", packet.error().describe());
    return;
  }
  publishH264(*packet);
}

void CameraPipeline::serveJpegOutputs(Timestamp timestamp, Timestamp& nextJpegDue, const JpegMaker& makeJpeg,
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
void CameraPipeline::onH264CameraFrame(const hal::Frame& frame, Timestamp& nextJpegDue) {
  const std::span<const uint8_t> au(frame.plane(0).data, frame.bytesUsed());
  // Split once: the packet carries its NAL units' places to every muxer after this.
  const auto units = codecs::h264::splitAnnexB(au);
  if (auto config = codecs::h264::extractCodecConfig(units)) {
    if (!cameraH264Config || !(*cameraH264Config == *config)) {
      cameraH264Config = std::make_shared<const hal::CodecConfig>(std::move(*config));
    }
  }
  // Built for every access unit, wanted or not: the on-demand decoder keeps the GOP.
  auto p = std::make_shared<hal::Packet>();
  p->codec = hal::fourcc::kH264;
  p->data.assign(au.begin(), au.end());
  p->nals = codecs::h264::nalRanges(au, units);  // same offsets in the copy
  p->keyframe = codecs::h264::containsIdr(units);
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
        spdlog::warn("{}camera: keyframe request: {}", logPrefix, st.error().describe());
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
      spdlog::warn("{}camera {}: {}; /stream and /snapshot stay without pictures", logPrefix, name(), reason);
      h264NoJpegLogged = true;
    }
    snapshots.expire(0ms, reason);
    return;
  }
  // Corrupt data (a camera glitch, lost packets): logged once, then once a minute with a count.
  const Timestamp now = Clock::now();
  if (h264DecodeErrorLoggedAt == Timestamp{} || now - h264DecodeErrorLoggedAt >= 60s) {
    spdlog::warn("{}camera {}: {}{}", logPrefix, name(), error.describe(),
                 h264DecodeErrorsUnlogged > 0
                     ? fmt::format(" ({} more since the last report)", h264DecodeErrorsUnlogged)
                     : std::string());
    h264DecodeErrorLoggedAt = now;
    h264DecodeErrorsUnlogged = 0;
  } else {
    ++h264DecodeErrorsUnlogged;
  }
}

}  // namespace printcast::streamer
