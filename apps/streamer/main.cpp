// SPDX-License-Identifier: MIT
// printcast-streamer: camera and printer-screen streaming server (h264-streamer compatible).
#include <sys/prctl.h>
#include <sys/resource.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <tuple>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "printcast/bsp/registry.h"
#include "printcast/codecs/h264_encoders.h"
#include "printcast/hal/v4l2.h"
#include "printcast/transport/http_auth.h"
#include "settings.h"
#include "streamer.h"
#include "usb_camera_plan.h"

using namespace printcast;

namespace {

// ustreamer's --log-level takes 0..3; names are accepted too.
std::optional<spdlog::level::level_enum> parseLogLevel(const std::string& text) {
  if (text == "0") return spdlog::level::info;
  if (text == "1" || text == "2") return spdlog::level::debug;
  if (text == "3") return spdlog::level::trace;
  const auto level = spdlog::level::from_str(text);
  if (level == spdlog::level::off && text != "off") return std::nullopt;
  return level;
}

// Every HTTP port accepts up to the board's connection limit (512 on a PC, four ports): lift the
// descriptor limit from the usual soft 1024 toward the hard one, to 8192 at most (what a printer
// needs, and poll() users stay far from huge numbers).
void raiseFileLimit() {
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) != 0) return;
  const rlim_t want = std::min<rlim_t>(files.rlim_max, 8192);
  if (files.rlim_cur >= want) return;
  files.rlim_cur = want;
  if (setrlimit(RLIMIT_NOFILE, &files) != 0) spdlog::warn("cannot raise the open-file limit to {}", want);
}

// No transparent huge pages: x264 asks for them for its pictures (MADV_HUGEPAGE), and a 2 MB
// page is resident as a whole. At 720p that made 6 MB of the streamer's 22 MB anonymous memory,
// for no measurable encoding speed (bench/memory.sh, docs/benchmarks.md). Printers' kernels
// mostly lack THP; this makes a PC behave like them.
void disableHugePages() {
  if (::prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0) spdlog::debug("prctl(PR_SET_THP_DISABLE) refused");
}

}  // namespace

int main(int argc, char** argv) {
#if defined(__GLIBC__)
  // glibc gives threads that allocate arenas of their own, up to 8 per core, and memory freed
  // into an arena stays there for its next allocation. Each camera thread allocates its access
  // units and HLS segments, the HTTP threads free them: with a camera thread per camera that
  // kept ~8 MB per camera resident (bench/dashboard.sh, 4 cameras: anonymous 45 -> 39 MB with
  // two arenas, at no measurable CPU cost). Before any thread starts. MALLOC_ARENA_MAX and
  // GLIBC_TUNABLES=glibc.malloc.arena_max still win (mallopt is not called when they are set).
  //
  // Trim and mmap thresholds fixed at 4 MiB and 1 MiB: every HLS part (100-200 KB at 1080p) is a
  // fresh buffer, and a segment leaving the window frees half a megabyte at the top of the heap.
  // With glibc's defaults (a trim threshold of twice the largest freed mmap'd chunk) that top
  // went back to the kernel and the next parts faulted every page in again: 466 page faults/s,
  // a quarter of the streamer's CPU for 4 cameras (bench/dashboard.sh; perf: memcpy into new
  // pages). Fixed thresholds keep up to 4 MiB of freed heap for reuse: 129 faults/s, about 2 MB
  // more RSS. Allocations above 1 MiB are still mapped and unmapped on their own.
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr && std::getenv("GLIBC_TUNABLES") == nullptr) {
    mallopt(M_ARENA_MAX, 2);
    if (std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr &&
        std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) {
      mallopt(M_TRIM_THRESHOLD, 4 << 20);
      mallopt(M_MMAP_THRESHOLD, 1 << 20);
    }
  }
#endif
  CLI::App app{
      "printcast-streamer: camera and printer-screen streaming (MJPEG, FLV/H.264, snapshots, touch)"};
  std::string controlAllowOrigin, allowedHosts, authTokenSha256, hashToken;
  int connectionsPerAddress = 0, streamStallSeconds = 0;
  std::string configPath, boardId, device, source, resolution, host, allowOrigin, logLevel, apiConfig,
      displayNode, touchName;
  int fps = -1, port = -1, controlPort = -1, flvPort = -2, wsPort = -2, rtspPort = -2, bitrate = -1, gop = -1,
      jpegQuality = -1, mjpegFps = -1, displayFps = -1, ringSizeMb = -1, ingestMaxKb = -1;
  bool noDisplay = false, listBoards = false, unpaced = false, noRing = false, rtspAuth = false;
  std::string ringName, hlsFormat, rtspTransport, encoder, profile = "printer";
  std::vector<std::string> publish;
  int ingestPort = -2;
  double hlsSegmentSeconds = -1, hlsPartSeconds = -1;
  app.add_option("-c,--config", configPath, "JSON settings file (h264-streamer app.json keys)");
  app.add_option("--board", boardId, "Board id (default: detect; see --list-boards)");
  app.add_flag("--list-boards", listBoards, "List the built-in boards and exit");
  app.add_option("--api-config", apiConfig, "Anycubic api.cfg to detect the board from")
      ->default_str(std::string(bsp::kAnycubicApiConfig));
  app.add_option(
      "--source", source,
      "Camera: test-pattern, a V4L2 device (/dev/video0, a by-id name), an http:// MJPEG "
      "stream or JPEG snapshot URL, an rtsp:// H.264 camera URL, or ws-push (cameras push JPEGs to "
      "ws://HOST:PORT/ingest) "
      "(default: the board's camera; docs/sources.md)");
  app.add_option("-d,--device", device, "Camera device (the older name of --source)");
  std::string cameraControls;
  app.add_option("--camera-controls", cameraControls,
                 "JSON file the camera's V4L2 control values are saved in, per camera (default: not saved)");
  app.add_option("--display-node", displayNode,
                 "Display node (overrides the board's: /dev/fb0, /dev/dri/card0)");
  app.add_option("--touch-name", touchName, "Touch panel evdev name (overrides the board's)");
  app.add_option("-r,--resolution", resolution, "Camera resolution WIDTHxHEIGHT (e.g. 1280x720)");
  std::string streamResolution, snapshotResolution;
  app.add_option(
      "--stream-resolution", streamResolution,
      "MJPEG and H.264 outputs scaled to WIDTHxHEIGHT (default: the camera's; config stream_resolution)");
  app.add_option(
      "--snapshot-resolution", snapshotResolution,
      "/snapshot and timelapse stills at WIDTHxHEIGHT (default: the camera's; config snapshot_resolution)");
  int rotate = -1;
  std::string flip;
  app.add_option("--rotate", rotate,
                 "Turn the camera picture clockwise by 0, 90, 180 or 270 degrees before encoding (config "
                 "camera_rotation; 90/270 swap width and height)")
      ->check(CLI::IsMember({0, 90, 180, 270}));
  app.add_option("--flip", flip,
                 "Mirror the camera picture after --rotate: x (left-right), y (upside down), xy or none "
                 "(config camera_flip_x, camera_flip_y)")
      ->check(CLI::IsMember({"x", "y", "xy", "none"}));
  app.add_option("-f,--desired-fps", fps, "Camera frame rate")->check(CLI::Range(1, 120));
  app.add_flag(
      "--unpaced", unpaced,
      "Test pattern/benchmarks only: frames as fast as they are taken (--desired-fps stays the encoder's "
      "nominal rate)");
  app.add_option("-s,--host", host, "Numeric IPv4 address to listen on (default all)");
  app.add_option("-p,--port", port, "Streaming port (default 8080; 0 = any free port)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--control-port", controlPort, "Control API port (default 8081)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--flv-port", flvPort, "Slicer FLV port (default 18088; -1 = off)")
      ->check(CLI::Range(-1, 65535));
  app.add_option("--ws-port", wsPort,
                 "reCamera-style H.264 WebSocket port, path / with timestamps (default 8765; -1 = off)")
      ->check(CLI::Range(-1, 65535));
  app.add_option("--rtsp-port", rtspPort,
                 "RTSP server port: rtsp://HOST:PORT/stream (default 8554; -1 = off)")
      ->check(CLI::Range(-1, 65535));
  app.add_flag("--rtsp-auth", rtspAuth,
               "RTSP clients must present the control port's token (Basic password or ?token=)");
  app.add_option(
         "--publish", publish,
         "Publish the camera's H.264 to a media server: rtsp://[user:pass@]host[:port]/path (MediaMTX, "
         "go2rtc; ANNOUNCE/RECORD over TCP) or rtmp[s]://host[:port]/app/streamkey (rtmps: TLS, the "
         "system's CAs or SSL_CERT_FILE); repeat it for several servers")
      ->take_all()
      ->allow_extra_args(false);
  app.add_option("--allow-origin", allowOrigin,
                 "Access-Control-Allow-Origin of the stream ports (default *)");
  app.add_option("--control-allow-origin", controlAllowOrigin,
                 "Origins trusted by the control port besides its own: comma-separated, or * (default none)");
  app.add_option(
      "--allowed-hosts", allowedHosts,
      "Host names the control port accepts changes through besides IP addresses, localhost and this "
      "machine's name: comma-separated, or * (default none)");
  app.add_option("--auth-token-sha256", authTokenSha256,
                 "Require this token on the control port: its SHA-256 in hex (see --hash-token)");
  app.add_option(
      "--hash-token", hashToken,
      "Print the SHA-256 of TOKEN for auth_token_sha256 and exit (make one: openssl rand -hex 16)");
  app.add_option("--connections-per-address", connectionsPerAddress,
                 "Connections one client address may hold open per port; more get 503 (default 48)")
      ->check(CLI::Range(1, 4096));
  app.add_option("--stream-stall-seconds", streamStallSeconds,
                 "Drop a stream client that accepts no bytes this long (default 20)")
      ->check(CLI::Range(1, 3600));
  app.add_option("--encoder", encoder,
                 "H.264 encoder: auto (the board's list: see --list-boards), x264, v4l2m2m, vaapi; a named "
                 "one is tried first, then the board's others (config key encoder_type)")
      ->check(CLI::IsMember({"auto", "x264", "v4l2m2m", "vaapi"}));
  app.add_option("--bitrate", bitrate, "H.264 bitrate, kbit/s")->check(CLI::Range(100, 20000));
  app.add_option("--gop", gop, "H.264 frames between IDRs (default 2 s)")->check(CLI::Range(1, 1000));
  app.add_option("--jpeg-quality", jpegQuality, "JPEG quality")->check(CLI::Range(1, 100));
  app.add_option("--mjpeg-fps", mjpegFps, "MJPEG stream frame rate")->check(CLI::Range(1, 60));
  app.add_option("--display-fps", displayFps, "Printer screen capture rate")->check(CLI::Range(1, 60));
  app.add_flag("--no-display", noDisplay, "Do not capture the printer screen");
  app.add_flag("--no-ring", noRing, "No shared-memory ring for local consumers");
  app.add_option("--ring-name", ringName,
                 "Shared-memory ring name prefix: /dev/shm/NAME-h264 and NAME-jpeg (default printcast)");
  app.add_option("--profile", profile,
                 "Layout of ports and pages: printer (default: h264-streamer's), or esp32-relay (cameras "
                 "push JPEGs to ws://HOST:8765/, H.264 viewers on ws://HOST:8766/, pages on 8080)");
  app.add_option(
         "--ingest-port", ingestPort,
         "--source ws-push: a port of its own where cameras push, at any path (0 = any free port, -1 = off)")
      ->check(CLI::Range(-1, 65535));
  app.add_option("--ingest-max-message-kb", ingestMaxKb,
                 "--source ws-push: the largest JPEG message a camera may push, KiB (default 4096)");
  app.add_option("--ring-size-mb", ringSizeMb, "Frame data per ring, MiB (default 8)")
      ->check(CLI::Range(1, 256));
  app.add_option("--hls-format", hlsFormat, "HLS segments: fmp4 (default) or ts")
      ->check(CLI::IsMember({"fmp4", "ts"}));
  app.add_option("--rtsp-transport", rtspTransport,
                 "--source rtsp://: RTP interleaved in the RTSP connection (tcp, default) or over udp")
      ->check(CLI::IsMember({"tcp", "udp"}));
  app.add_option("--hls-segment-seconds", hlsSegmentSeconds, "HLS segment target duration (default 1)")
      ->check(CLI::Range(0.5, 10.0));
  app.add_option("--hls-part-seconds", hlsPartSeconds,
                 "LL-HLS part target duration (default 0.1; 0 = no parts, no low-latency mode)")
      ->check(CLI::Range(0.0, 5.0));
  app.add_option("--log-level", logLevel, "trace|debug|info|warn|error|off or ustreamer's 0..3");
  std::string timelapseFolder;  // timelapse manager
  app.add_option("--timelapse-folder", timelapseFolder,
                 "Timelapse folder (replaces the board's internal and USB folders; absolute path)");
  CLI11_PARSE(app, argc, argv);

  if (listBoards) {
    for (const auto* b : bsp::allBoards()) {
      std::vector<std::string_view> encoders;
      for (auto e : b->encoders.h264) encoders.push_back(codecs::h264BackendName(e));
      fmt::print("{:<16} {} (H.264: {})\n", b->id, b->name, fmt::join(encoders, ", "));
    }
    return 0;
  }
  if (!hashToken.empty()) {
    fmt::print("\"auth_token_sha256\": \"{}\"\n", transport::sha256Hex(hashToken));
    return 0;
  }

  streamer::Settings settings;
  std::vector<std::string> warnings;
  // The profile's defaults first: the config file and the flags override them.
  if (auto st = streamer::applyProfile(profile, settings); !st) {
    fmt::print(stderr, "printcast-streamer: {}\n", st.error().message);
    return 2;
  }
  if (!configPath.empty()) {
    if (auto st = streamer::applyConfigFile(configPath, settings, warnings); !st) {
      fmt::print(stderr, "printcast-streamer: {}\n", st.error().message);
      return 2;
    }
  }
  // Settings changed from the control page are saved back to this file.
  settings.configFile = configPath;
  // Command-line flags override the file.
  if (!boardId.empty()) settings.board = boardId;
  if (!device.empty()) settings.source = device;
  if (!source.empty()) settings.source = source;
  if (!cameraControls.empty()) settings.cameraControlsFile = cameraControls;
  if (!displayNode.empty()) settings.displayNode = displayNode;
  if (!touchName.empty()) settings.touchName = touchName;
  if (!resolution.empty()) {
    auto size = streamer::parseResolution(resolution);
    if (!size) {
      fmt::print(stderr, "printcast-streamer: --resolution: {}\n", size.error().message);
      return 2;
    }
    settings.width = size->width;
    settings.height = size->height;
  }
  for (const auto& [flag, text, out] :
       {std::tuple{"--stream-resolution", &streamResolution, &settings.streamSize},
        {"--snapshot-resolution", &snapshotResolution, &settings.snapshotSize}}) {
    if (text->empty()) continue;
    auto size = streamer::parseResolution(*text);
    if (!size) {
      fmt::print(stderr, "printcast-streamer: {}: {}\n", flag, size.error().message);
      return 2;
    }
    *out = *size;
  }
  if (fps > 0) settings.fps = fps;
  if (unpaced) settings.unpaced = true;
  if (!host.empty()) settings.host = host;
  if (port >= 0) settings.port = port;
  if (controlPort >= 0) settings.controlPort = controlPort;
  if (flvPort >= -1) settings.flvPort = flvPort;
  if (wsPort >= -1) settings.wsPort = wsPort;
  if (rtspPort >= -1) settings.rtspPort = rtspPort;
  if (!publish.empty()) settings.publish = publish;  // --publish given again: one more target
  if (rtspAuth) settings.rtspAuth = true;
  if (!allowOrigin.empty()) settings.allowOrigin = allowOrigin;
  if (!controlAllowOrigin.empty()) settings.controlAllowOrigin = controlAllowOrigin;
  if (!allowedHosts.empty()) settings.allowedHosts = allowedHosts;
  if (!authTokenSha256.empty()) settings.authTokenSha256 = authTokenSha256;
  if (connectionsPerAddress > 0) settings.connectionsPerAddress = connectionsPerAddress;
  if (streamStallSeconds > 0) settings.streamStallSeconds = streamStallSeconds;
  if (bitrate > 0) settings.bitrateKbps = bitrate;
  if (gop > 0) settings.gopFrames = gop;
  if (jpegQuality > 0) settings.jpegQuality = jpegQuality;
  if (mjpegFps > 0) settings.mjpegFps = mjpegFps;
  if (displayFps > 0) settings.displayFps = displayFps;
  if (noDisplay) settings.displayEnabled = false;
  if (noRing) settings.ring = false;
  if (!ringName.empty()) settings.ringName = ringName;
  if (ringSizeMb > 0) settings.ringSizeMb = ringSizeMb;
  if (ingestMaxKb >= 0) settings.ingestMaxMessageKb = ingestMaxKb;
  if (ingestPort >= -1) settings.ingestPort = ingestPort;
  if (!logLevel.empty()) settings.logLevel = logLevel;
  if (!hlsFormat.empty()) settings.hlsFormat = hlsFormat;
  if (!rtspTransport.empty()) settings.rtspTransport = rtspTransport;
  if (!encoder.empty()) settings.encoderType = encoder;
  if (rotate >= 0) settings.cameraRotation = rotate;
  if (!flip.empty()) {
    settings.cameraFlipX = flip.find('x') != std::string::npos;
    settings.cameraFlipY = flip.find('y') != std::string::npos;
  }
  if (hlsSegmentSeconds >= 0) settings.hlsSegmentSeconds = hlsSegmentSeconds;
  if (hlsPartSeconds >= 0) settings.hlsPartSeconds = hlsPartSeconds;
  if (!timelapseFolder.empty()) settings.timelapseFolder = timelapseFolder;  // timelapse manager

  const auto level = parseLogLevel(settings.logLevel);
  if (!level) {
    fmt::print(stderr,
               "printcast-streamer: --log-level {}: must be trace|debug|info|warn|error|off or 0..3\n",
               settings.logLevel);
    return 2;
  }
  spdlog::set_level(settings.logging && *level > spdlog::level::debug ? spdlog::level::debug : *level);
  for (const auto& w : warnings) spdlog::warn("{}", w);

  auto detected =
      apiConfig.empty() ? bsp::detectBoard(settings.board) : bsp::detectBoard(settings.board, apiConfig);
  if (!detected) {
    fmt::print(stderr, "printcast-streamer: --board: {}\n", detected.error().message);
    return 2;
  }
  if (detected->fellBack) spdlog::warn("board: {}", detected->reason);
  const bsp::Board& board = *detected->board;
  spdlog::info("board: {} ({}){}", board.id, board.name,
               detected->reason.empty() ? "" : ": " + detected->reason);

  // USB camera auto-discovery (usb_camera_plan.h): a V4L2 board without a `cameras` list and
  // without --source/--device streams every USB camera (up to 4) in formats that fit their buses.
  // With 0 or 1 USB cameras nothing changes.
  const streamer::Settings undiscovered = settings;
  if (board.camera.kind == bsp::CameraKind::V4L2 && settings.cameras.empty() && settings.source.empty() &&
      settings.device.empty()) {
    auto devices = hal::enumerateV4l2Devices();
    if (!devices) {
      if (devices.code() != hal::Errc::Unsupported)
        spdlog::warn("USB camera discovery: {}", devices.error().describe());
    } else {
      const auto plan = streamer::applyUsbCameraPlan(settings, board, *devices);
      for (const auto& c : plan.cameras) {
        spdlog::info("USB camera {}: {} ({}) on {}: {} {} at {} fps, about {:.1f} MB/s{}{}", c.id, c.name,
                     c.source, c.bus, c.format.str(), c.size.str(), c.fps, c.bytesPerSecond / 1e6,
                     c.h264 ? ", H.264" : ", MJPEG only", c.note.empty() ? "" : "; " + c.note);
      }
      for (const auto& note : plan.notes) spdlog::warn("USB cameras: {}", note);
    }
  }

  auto finalized = streamer::finalizeSettings(settings, board);
  if (!finalized && settings.camerasDiscovered) {
    // A plan the user did not write must not stop the streamer: one camera, as without discovery.
    spdlog::warn("USB cameras: the plan is not usable ({}); streaming the board's camera only",
                 finalized.error().message);
    settings = undiscovered;
    finalized = streamer::finalizeSettings(settings, board);
  }
  if (!finalized) {
    fmt::print(stderr, "printcast-streamer: {}\n", finalized.error().message);
    return 2;
  }

  // Signals are taken synchronously by the main thread; every other thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  raiseFileLimit();
  disableHugePages();
  auto streamer = streamer::Streamer::start(settings, board);
  if (!streamer) {
    spdlog::critical("{}", streamer.error().describe());
    return 1;
  }
  const std::string shownHost = settings.host.empty() ? "127.0.0.1" : settings.host;
  const auto base = fmt::format("http://{}:{}", shownHost, (*streamer)->streamPort());
  const auto control = fmt::format("http://{}:{}", shownHost, (*streamer)->controlPort());
  fmt::print("printcast-streamer on {} ({}) is running. Open:\n", board.name, board.id);
  fmt::print("  camera MJPEG      {}/stream   (also {}/?action=stream)\n", base, base);
  fmt::print("  camera snapshot   {}/snapshot\n", base);
  fmt::print("  camera H.264/MP4  {}/stream.mp4   (fragmented MP4 for a plain <video>)\n", base);
  fmt::print("  camera H.264/FLV  {}/flv\n", base);
  fmt::print("  camera H.264/WS   ws://{}:{}/ws   (?ts=1: 8-byte ms timestamp after each frame)\n", shownHost,
             (*streamer)->streamPort());
  fmt::print("  camera HLS        {}/hls/stream.m3u8   ({}{})\n", base, settings.hlsFormat,
             settings.hlsPartSeconds > 0 ? ", low-latency parts" : "");
  fmt::print("  printer screen    {}/display  and {}/display/snapshot\n", base, base);
  fmt::print("  status            {}/status\n", base);
  fmt::print("  touch API         POST {}/api/touch  {{\"x\":400,\"y\":240}}\n", control);
  fmt::print("  stats             {}/api/stats\n", control);
  fmt::print("  control page      {}/control   (settings: {}/api/settings)\n", control, control);
  fmt::print("  metrics           {}/metrics   (also {}/state, {}/healthz)\n", base, base, base);
  fmt::print("  timelapses        {}/timelapse   (API: {}/api/timelapse/list)\n", control, control);
  for (const auto& ring : (*streamer)->ringNames()) fmt::print("  local ring        /dev/shm/{}\n", ring);
  if ((*streamer)->flvPort() != 0)
    fmt::print("  slicer FLV        http://{}:{}/flv\n", shownHost, (*streamer)->flvPort());
  if ((*streamer)->wsPort() != 0) {
    fmt::print("  {} ws://{}:{}/\n", settings.wsPortTimestamps ? "reCamera H.264/WS" : "viewers H.264/WS ",
               shownHost, (*streamer)->wsPort());
  }
  if ((*streamer)->rtspPort() != 0)
    fmt::print("  camera RTSP       rtsp://{}:{}/stream\n", shownHost, (*streamer)->rtspPort());
  if (settings.source == "ws-push") {
    fmt::print("  camera ingest     ws://{}:{}/ingest   (cameras push one JPEG per message)\n", shownHost,
               (*streamer)->streamPort());
  }
  if ((*streamer)->ingestPort() != 0)
    fmt::print("  camera ingest     ws://{}:{}/\n", shownHost, (*streamer)->ingestPort());
  fmt::print("Press Ctrl+C to stop.\n");
  std::fflush(stdout);

  int received = 0;
  sigwait(&signals, &received);
  spdlog::info("signal {}: stopping", received);
  (*streamer)->stop();
  spdlog::info("stopped");
  return 0;
}
