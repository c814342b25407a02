// SPDX-License-Identifier: MIT
// CameraPipeline: one camera as streams. Its source (a V4L2 camera, the test pattern, an http://,
// rtsp:// or pushing network camera) -> the camera thread (turn, scale, JPEG and H.264 encoding on
// demand, or an H.264 camera's access units passed through and decoded for JPEG only on demand)
// -> its fan-outs: MJPEG, snapshots, FLV, fMP4, the WebSocket stream, RTSP, HLS and the
// shared-memory rings. It knows no HTTP routes: the streamer's route tables find a pipeline and
// answer from its streams (docs/architecture.md, "Parts of the streamer").
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "camera_controls.h"
#include "h264_on_demand_decoder.h"
#include "live_settings.h"
#include "printcast/bsp/board.h"
#include "printcast/codecs/h264_encoders.h"
#include "printcast/hal/capture.h"
#include "printcast/hal/encoder.h"
#include "printcast/hal/transform.h"
#include "printcast/transport/fanout.h"
#include "printcast/transport/hls_output.h"
#include "printcast/transport/jpeg_push.h"
#include "printcast/transport/mjpeg.h"
#include "printcast/transport/rtsp_server.h"
#include "printcast/transport/shm_ring.h"
#include "printcast/transport/ws_stream.h"
#include "rate_meter.h"
#include "settings.h"
#include "snapshot_board.h"

namespace printcast::streamer {

// Threading: one camera thread (start()/stop()) drives the capture and the encoders; the
// streams, the snapshot board, the rates and the status calls may be used from any thread.
// Members marked "camera thread" are touched by that thread only. The board, `live` and `ingest`
// must outlive the pipeline.
class CameraPipeline {
 public:
  // The camera keys of `settings` (source, size, fps, rotation, stream/snapshot resolution,
  // encoder_type, gop, HLS, ring). Nothing is opened yet: the camera thread opens the source.
  // Errors: InvalidArgument naming encoder_type when the board's encoder list has no such backend;
  // what ShmRing/WebSocket set-up returns is logged, not fatal.
  // `id` (the `cameras` entry's, "" for the one camera of the flags) prefixes its log lines.
  static hal::Result<std::unique_ptr<CameraPipeline>> create(
      const Settings& settings, const bsp::Board& board, LiveSettings& live,
      std::shared_ptr<transport::JpegPushIngest> ingest, const std::string& id = "");
  ~CameraPipeline();
  CameraPipeline(const CameraPipeline&) = delete;
  CameraPipeline& operator=(const CameraPipeline&) = delete;

  // Start the camera thread (it opens the source, retrying with backoff, and serves "no signal"
  // meanwhile). Once.
  void start();
  // Stop and join the camera thread and stop the capture. The streams stay open (the streamer
  // closes them in its shutdown order). Idempotent.
  void stop();

  // The camera's state: "starting", "streaming" or "no-signal: <reason>".
  std::string state() const;
  int nominalFps() const { return settings.fps; }  // what the camera is asked for
  const std::string& source() const { return settings.source; }
  std::string name() const;
  // /status "camera" (see cameraStatus in docs/control-panel.md), "encoder", "rings", "hls",
  // /api/stats "h264_decoder" and "h264_encoder".
  nlohmann::json cameraStatus() const;
  nlohmann::json encoderStatus() const;
  nlohmann::json ringStats() const;
  nlohmann::json hlsStats() const;
  nlohmann::json h264DecoderStats() const;
  nlohmann::json h264EncoderStats() const;
  // Every stream with clients, by the names /status, /api/stats and /metrics use.
  std::vector<std::pair<const char*, const transport::Fanout*>> clientStreams() const {
    return {{"mjpeg", &mjpeg}, {"flv", &flv}, {"fmp4", &fmp4}, {"ws", &wsStream}, {"rtsp", &rtspStream}};
  }
  // H.264 switched off in the settings: every H.264 client's stream ends now.
  void endH264Clients();
  // A new H.264 client (or a settings change) wants a fresh IDR.
  void requestKeyframe() { keyframeWanted = true; }
  // The auto frame skip's interval (housekeeping, from the CPU load).
  void setAutoSkipInterval(int interval) { skipInterval = interval; }
  int autoSkipInterval() const { return skipInterval.load(); }
  // Snapshot waiters older than 3 s get 503 with the camera's state; HLS waiters past their time
  // get theirs (housekeeping, every 500 ms).
  void expireWaiters();

  // Run `fn` with the open V4L2 camera (null when the camera is away or not V4L2), under the lock
  // that keeps the camera thread from replacing it meanwhile. Any thread; `fn` must not block
  // long (it holds the camera thread's reopen).
  template <typename Fn>
  auto withCamera(Fn&& fn) {
    std::lock_guard lock(cameraMutex);
    return fn(camera.get());
  }
  // The stable name the camera is reopened by ("" before the first open of a V4L2 camera).
  std::string stableName() const;

  // The outputs. Clients subscribe from any thread; the camera thread publishes.
  transport::MjpegStream mjpeg;
  transport::FlvStream flv;
  transport::Fmp4Stream fmp4;                 // /stream.mp4
  transport::RtspStream rtspStream;           // rtsp://HOST:8554/stream
  transport::WsStream wsStream;               // /ws and the reCamera port: one AU per message
  std::unique_ptr<transport::HlsOutput> hls;  // /hls/stream.m3u8 (segments in memory)
  // /hls/stream_<n>/playlist.m3u8: MPEG-TS, no parts; null when `hls` is MPEG-TS itself.
  std::unique_ptr<transport::HlsOutput> hlsTs;
  transport::HlsOutput& tsHls() { return hlsTs ? *hlsTs : *hls; }
  SnapshotBoard snapshots;
  // Shared-memory rings for local consumers (docs/ring.md); null when off or not creatable.
  std::unique_ptr<transport::ShmRing> h264Ring, jpegRing;
  std::string ringError;
  CameraControlStore controlStore;  // saved V4L2 control values, applied at every open
  RateMeter cameraRate, mjpegRate, h264Rate;
  std::atomic<uint64_t> cameraReconnects{0};
  // Frames the camera source dropped before the pipeline saw them (a network camera's: RTP loss,
  // a queue overflow; transport::droppedFrames()), summed over reopens.
  std::atomic<uint64_t> cameraDropped{0};
  uint64_t cameraDroppedBase = 0;  // camera thread: the sum before the current capture
  std::atomic<uint64_t> noSignalFrames{0};
  const hal::Transform pictureTransform;  // camera_rotation / camera_flip_*
  std::unique_ptr<codecs::SelectingEncoder> h264;

 private:
  CameraPipeline(const Settings& settings, const bsp::Board& board, LiveSettings& live,
                 std::shared_ptr<transport::JpegPushIngest> ingest);

  using Clock = hal::Clock;
  using Timestamp = hal::Timestamp;
  const Settings settings;
  const bsp::Board* board;
  LiveSettings& live;
  std::shared_ptr<transport::JpegPushIngest> ingest;  // --source ws-push: the pushing cameras
  std::string logPrefix;                              // "[<id>] " with a `cameras` list, else ""
  std::string threadName = "camera";                  // the camera thread's ("cam <id>" with a list)
  std::atomic<bool> running{false};
  std::mutex stopMutex;
  std::condition_variable stopWake;
  std::thread thread;
  // Wait up to `d` unless stopping; returns false when stopping.
  bool pause(std::chrono::milliseconds d);

  // `camera` is replaced only by the camera thread, under cameraMutex; the camera thread reads it
  // without the lock, other threads only under it (withCamera).
  std::unique_ptr<hal::Capture> camera;
  std::mutex cameraMutex;
  mutable std::mutex stateMutex;
  std::string cameraName;                // stateMutex
  std::string cameraState = "starting";  // stateMutex
  // The name a lost camera is reopened by (its by-id link or "bus:<bus_info>"), remembered from
  // the first open: device numbers change on replug, this does not. stateMutex.
  std::string cameraStableName;
  hal::Size cameraActiveSize;  // what the open camera delivers (empty before the first open); stateMutex
  std::string streamSizeShown, snapshotSizeShown;  // streamSize, snapshotSize for /status; stateMutex
  hal::FourCC cameraActiveFormat;                  // and in which format; stateMutex
  std::string
      cameraDmabufRefusal;  // why the camera's buffers are not exported ("" when they are); stateMutex
  // H.264 cameras: the camera's own IDR interval, measured (its GOP is what viewers wait for).
  std::atomic<int64_t> cameraGopMs{0};
  Timestamp lastCameraIdr{};                 // camera thread
  hal::FourCC cameraFormat;                  // what the camera delivers (camera thread)
  hal::Size cameraSize;                      // camera thread
  std::shared_ptr<hal::FramePool> i420Pool;  // YUYV/NV12/MJPEG -> I420 for the encoders
  // With a pictureTransform an MJPEG camera's JPEGs are decoded into decodePool first, and
  // re-encoded for /stream and /snapshot instead of passed through.
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
  // thread; stats from any). Per camera open: decode errors are logged once, then once a
  // minute with a count; "no JPEG possible" (no decoder, a 10-bit stream) once.
  H264OnDemandDecoder h264Pictures;
  Timestamp h264DecodeErrorLoggedAt{};
  uint64_t h264DecodeErrorsUnlogged = 0;
  bool h264NoJpegLogged = false;
  std::unique_ptr<hal::Encoder> jpeg;
  std::vector<std::string> h264Order;  // H.264 backend names in the order tried
  // The H.264 encoder gives its working memory back (Encoder::release) once nobody has wanted
  // H.264 for kEncoderIdleRelease; the next viewer's first frame reopens it (an IDR, the same
  // SPS/PPS). Camera thread only.
  static constexpr auto kEncoderIdleRelease = std::chrono::seconds(10);
  Timestamp h264LastWanted{};
  std::atomic<bool> h264Open{false};      // written by the camera thread, read by the stats
  bool h264Configured = false;            // configured for encoderSize/encoderFps (camera thread)
  std::atomic<uint64_t> h264Releases{0};  // idle releases so far
  std::atomic<int> skipInterval{1};       // auto frame skip
  std::atomic<bool> keyframeWanted{false};

  // Every consumer of the camera's H.264 access units. The list is fixed in create(), before the
  // thread runs. H.264 is encoded only while at least one output wants it; a new client of any
  // output sets keyframeWanted so it starts on a fresh IDR instead of waiting a whole GOP.
  struct H264Output {
    std::string name;
    std::function<bool()> wanted;                        // has clients/readers now
    std::function<void(const hal::PacketPtr&)> publish;  // camera thread
    // End every client's stream (H.264 switched off in the settings): players see the end at
    // once instead of a stall. Empty for outputs without connections (the ring).
    std::function<void()> endClients = {};
  };
  std::vector<H264Output> h264Outputs;

  bool jpegRingWanted() const { return jpegRing && jpegRing->liveReaders() > 0; }
  bool h264Wanted() const;
  // h264Wanted(), and the encoder's memory released after kEncoderIdleRelease without demand.
  // Camera thread.
  bool encodeH264Now();
  void publishH264(const hal::PacketPtr& packet);
  void setCameraState(std::string s);

  hal::Status openCamera();
  // (Re)configure the JPEG encoders, and the H.264 encoder when `withH264`: an H.264 camera's
  // access units pass through, so its encoder is configured only for the "no signal" picture.
  hal::Status configureEncoders(hal::Size size, int fps, bool withH264);
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
};

}  // namespace printcast::streamer
