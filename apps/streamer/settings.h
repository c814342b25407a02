// SPDX-License-Identifier: MIT
// Streamer settings: defaults, the board's defaults, the JSON config file (h264-streamer's
// app.json keys) and the command line, merged in that order, with range checks that name the key.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "printcast/bsp/board.h"
#include "printcast/hal/result.h"
#include "printcast/hal/transform.h"

namespace printcast::streamer {

// The slicer's FLV port (h264-streamer's and the stock gkcam's), and gkcam's own stream there.
inline constexpr int kDefaultFlvPort = 18088;
inline constexpr std::string_view kGkcamFlvUrl = "http://127.0.0.1:18088/flv";
// Entries of a `cameras` list at most (each is a camera thread, its encoders and its outputs).
inline constexpr size_t kMaxCameras = 8;

struct Settings {
  // --- keys shared with h264-streamer's app.json (see product.md) ---
  std::string mode = "vanilla-klipper";  // "go-klipper" | "vanilla-klipper"
  // H.264 encoder: "auto" (the board's list), "x264", "v4l2m2m", "vaapi" (that one first, the
  // board's others after it); h264-streamer's "rkmpi"/"rkmpi-yuyv" (the vendor encoder) and "gkcam".
  // The camera picture turned upright before anything is encoded: "camera_rotation" 0/90/180/270
  // degrees clockwise, then "camera_flip_x" (mirror left-right) and "camera_flip_y" (upside
  // down). 90 and 270 swap the output's width and height. See cameraTransform().
  int cameraRotation = 0;
  // "stream_resolution": the MJPEG stream and every H.264 output scaled to this size (empty: the
  // camera's); "snapshot_resolution": /snapshot and the timelapse's stills (empty: the camera's),
  // so a failure detector or a timelapse gets full-size pictures while viewers get a small
  // stream. Both in the camera's orientation, like "resolution" (camera_rotation applies).
  hal::Size streamSize;
  hal::Size snapshotSize;
  bool cameraFlipX = false;
  bool cameraFlipY = false;
  std::string encoderType = "auto";
  bool autolanmode = false;
  // go-klipper: the firmware's LAN mode service on 127.0.0.1 ("lan_mode_port"; tests move it).
  int lanModePort = 18086;
  // go-klipper (not encoder_type gkcam): the stock camera service's executable, stopped at start and
  // started again when printcast exits ("gkcam_path"; gkcam_handover.h; tests use a stand-in).
  std::string gkcamPath = "/userdata/app/gk/gkcam";
  bool autoSkip = false;
  int targetCpu = 60;     // %, 20..95: auto frame skipping aims for this system CPU load
  int bitrateKbps = 512;  // "bitrate", kbit/s, 100..20000
  int mjpegFps = 10;      // MJPEG stream rate, 1..60
  int jpegQuality = 80;   // 1..100
  int port = 8080;        // streaming port, 1..65535 (0 = any free port, for tests)
  bool logging = false;   // verbose logging (same as --log-level debug)
  bool displayEnabled = true;
  int displayFps = 5;  // 1..board maximum

  // --- printcast's own, changeable from the control page ---
  bool h264Enabled = true;  // "h264_enabled": false = no H.264 output at all (/flv... answer 503)
  // "h264_framerate": the frame-rate slider, 0..100 % of the camera's frames encoded to H.264.
  // It sets a fixed skip interval N (encode every Nth camera frame): N = round(100 / percent)
  // clamped to 1..10, and 0 % means the slowest rate (N = 10) rather than off (that is
  // h264_enabled). With auto_skip on, the larger of this N and the auto-skip N wins.
  int h264FrameratePercent = 100;

  // --- printcast's own ---
  std::string board;  // board id; "" = detect
  // The camera ("source", --source; --device and "device" are older names for it):
  //  "" = the board's camera; "test-pattern"; a V4L2 node, by-id/by-path name or card-name
  //  substring (see hal/v4l2.h); "http://[user:pass@]host[:port]/path" = a network camera's
  //  MJPEG stream or JPEG snapshot URL (transport/mjpeg_pull.h); "rtsp://[user:pass@]host[:port]/path"
  //  = an IP camera's H.264 over RTSP (transport/rtsp_client.h); "ws-push". docs/sources.md.
  std::string source;
  // An rtsp:// source's RTP transport ("rtsp_transport", --rtsp-transport): "tcp" (interleaved in
  // the RTSP connection, the default) or "udp" (RTP/AVP unicast).
  std::string rtspTransport = "tcp";
  // "ws-push": the largest message (one JPEG) a pushing camera may send, KiB; larger ones are
  // refused with WebSocket close code 1009 ("ingest_max_message_kb", 64..65536).
  int ingestMaxMessageKb = 4096;
  // "ingest_port": a port of its own where pushing cameras connect at any path (the ESP32 relay's
  // ws://HOST:8765/), besides /ingest on `port` (0 = any free port, -1 = off). Needs ws-push.
  int ingestPort = -1;
  // "ws_port_timestamps": the wsPort's messages carry reCamera's 8-byte timestamp trailer (false:
  // plain Annex-B access units, as /ws and jmuxer want them).
  bool wsPortTimestamps = true;
  // --profile: which product layout the defaults follow ("printer", or "esp32-relay"; see
  // applyProfile()). The relay profile also serves its player pages at / and /mjpeg.
  std::string profile = "printer";
  std::string device;  // camera device override ("" = the board's camera); folded into `source`
  // V4L2 control values saved per camera (keyed by its stable name) and re-applied when it is
  // opened; "" = not persisted. See camera_controls.h.
  std::string cameraControlsFile;
  std::string displayNode;  // display node override ("/dev/fb0", "/dev/dri/card0"; "" = the board's)
  std::string touchName;    // touch panel evdev name override ("" = the board's)
  int width = 0;            // camera size; 0 = the board's default
  int height = 0;
  int fps = 0;  // camera rate, 0 = the board's default
  // Test pattern / benchmarks only: the camera delivers frames as fast as the consumers take
  // them (CaptureConfig.fps = 0) instead of at `fps`, which stays the encoder's nominal rate.
  bool unpaced = false;
  int gopFrames = 0;              // "h264_gop": frames between IDRs, 0 = 2 seconds' worth
  std::string host;               // numeric IPv4 address to listen on, "" = all
  int controlPort = 8081;         // control API port (0 = any free port)
  int flvPort = kDefaultFlvPort;  // slicer FLV port (0 = any free port, -1 = off)
  // reCamera-compatible H.264 over WebSocket on path "/", every message with the 8-byte
  // timestamp trailer (0 = any free port, -1 = off). /ws on `port` serves the same without it.
  int wsPort = 8765;
  // h264-streamer's ports of cameras 1..3 (the second to fourth of the `cameras` list): MJPEG and
  // snapshots of camera i on camera_port_base + i - 1 (8082, 8083, 8084). -1 = off; 0 = ports the
  // kernel picks (tests); /api/cameras names them.
  int cameraPortBase = 8082;
  // RTSP server (transport/rtsp_server.h): rtsp://HOST:8554/stream, the camera's H.264 over RTP
  // (0 = any free port, -1 = off).
  int rtspPort = 8554;
  // Publish the camera's H.264 into a media server ("publish", --publish): an rtsp:// URL that
  // accepts ANNOUNCE/RECORD (MediaMTX: rtsp://mediamtx:8554/printer1), credentials in the URL
  // (transport/rtsp_publish.h), or an RTMP ingest rtmp://host[:1935]/app/streamkey or
  // rtmps://host[:443]/app/streamkey (transport/rtmp_publish.h; TLS builds only). Several targets: a list
  // ("publish": [...], --publish repeated), each published to on its own; empty = off.
  std::vector<std::string> publish;
  // "cameras": several cameras in one streamer (issue 11). Each entry is a camera with its own
  // pipeline and its own paths (/cam/<id>/stream, /snapshot, /flv, /stream.mp4, /hls/stream.m3u8,
  // /ws; rtsp://HOST:8554/cam/<id>). The first enabled entry is camera 0: it also keeps today's
  // paths, and its source, resolution, fps and bitrate replace the top-level ones. Empty: the one
  // camera of the flags and top-level keys.
  struct CameraEntry {
    std::string id;       // [A-Za-z0-9_-]{1,32}, unique
    std::string name;     // shown in /api/cameras (default: the id)
    std::string source;   // as "source": test-pattern, a V4L2 device, http://, rtsp://, ws-push (first only)
    hal::Size size;       // "resolution"; empty: the top-level resolution
    int fps = 0;          // 0: the top-level fps
    int bitrateKbps = 0;  // 0: the top-level bitrate
    bool enabled = true;
    // "publish": this camera's H.264 pushed into media servers, as the top-level key (a URL or a
    // list; rtsp:// RECORD or rtmp://host/app/key). The first enabled entry's targets are camera
    // 0's together with the top-level ones. A URL may belong to one camera only.
    std::vector<std::string> publish;
    // "format": the V4L2 format this camera is asked for: "auto" (the board's preferred format,
    // then the pipeline's order: I420, NV12, YUYV, MJPEG, H264), "mjpeg", "yuyv" or "h264" (only
    // that one: a camera that does not offer it stays "no signal" with the reason). For a USB bus
    // shared by several cameras MJPEG costs a quarter of YUYV's bandwidth (usb_camera_plan.h).
    std::string format = "auto";
    // "h264": whether this camera has H.264 outputs (/flv, /stream.mp4, HLS, /ws, RTSP, publish);
    // false = MJPEG and snapshots only, its H.264 paths answer 404 with the reason and no encoder
    // runs for it. Default true; the lists auto-discovery makes (camerasDiscovered) set it false
    // for every camera but the first, as h264-streamer does.
    bool h264 = true;
    // Not a key: why auto-discovery gave this camera less than asked (usb_camera_plan.h; /status
    // and /api/cameras "plan_note"), "" otherwise.
    std::string planNote;
  };
  std::vector<CameraEntry> cameras;
  // Not keys: the `cameras` list came from USB camera auto-discovery (usb_camera_plan.h), not from
  // the config file, so run-time changes of the list are not saved to the file; and the plan's own
  // notes (cameras left out, a bus that does not fit), shown in /status "camera_plan".
  bool camerasDiscovered = false;
  std::vector<std::string> cameraPlanNotes;
  // Not keys: camera 0's (and, in settingsForCamera(), each camera's) entry "format" and "h264"
  // (see CameraEntry); without a list "auto" and true.
  std::string cameraFormat = "auto";
  bool h264Offered = true;
  // The RTSP server asks for the control port's token ("rtsp_auth"): Basic with the token as the
  // password (any user), or rtsp://HOST:8554/stream?token=TOKEN. Needs auth_token_sha256.
  bool rtspAuth = false;
  std::string allowOrigin = "*";  // Access-Control-Allow-Origin of the stream ports
  // The control port's same-origin rule (transport/http_access.h): origins trusted to change
  // state and read the API besides the port's own ("http://mainsail.local, https://farm:8443",
  // or "*"), and Host names accepted besides IP literals, localhost and this machine's name
  // ("printer.lan, farm.example", or "*"). Config file and flags only: the API cannot change them.
  std::string controlAllowOrigin;
  std::string allowedHosts;
  // Every HTTP port (transport/http_server.h): connections one client address may hold open
  // (more get 503), and seconds a stream client may accept no bytes before it is dropped.
  // Credentials for the control port (transport/http_auth.h): the SHA-256 (64 hex digits) of
  // its token, "" = none. Config file and flags only.
  std::string authTokenSha256;
  int connectionsPerAddress = 48;
  int streamStallSeconds = 20;
  // Shared-memory ring for local consumers (docs/ring.md): /dev/shm/<ring_name>-h264 and
  // <ring_name>-jpeg, each ring_size_mb of frame data (1..256). Encoding for a ring happens only
  // while it has live readers.
  bool ring = true;
  std::string ringName = "printcast";  // 1..180 of [A-Za-z0-9._-]
  int ringSizeMb = 8;
  std::string logLevel = "info";  // trace|debug|info|warn|error|off
  // HLS (/hls/stream.m3u8, docs/hls.md): segments close at the first IDR after
  // "hls_segment_seconds" (0.5..10; the encoder is asked for an IDR then); "hls_format" "fmp4"
  // (EXT-X-MAP + .m4s) or "ts" (MPEG-TS); "hls_part_seconds" the LL-HLS part target (0.1..5 and
  // at most half a segment; 0 = no partial segments, no low-latency mode).
  double hlsSegmentSeconds = 1.0;
  std::string hlsFormat = "fmp4";
  double hlsPartSeconds = 0.1;

  // --- timelapse manager (timelapse_store.h; GET/POST /api/timelapse/settings) ---
  // "timelapse_storage": where new recordings go, "internal" | "usb" (usb only on boards that
  // have a USB stick folder, see bsp::StorageSpec; falls back to internal while it is unplugged).
  std::string timelapseStorage = "internal";
  // "timelapse_folder" (--timelapse-folder): replaces the internal storage folder and turns USB
  // storage off; "" = the board's folder. Config file and command line only: a folder is not
  // changed over HTTP.
  std::string timelapseFolder;
  // --- end timelapse manager ---

  // --- timelapse recording (feat-tlrec; docs/timelapse.md) ---
  // The keys are h264-streamer's app.json names and units (product.md); printcast's earlier
  // names are read as aliases (settingKeyAliases()).
  bool timelapseEnabled = false;        // "timelapse_enabled": record prints watched via Moonraker
  std::string timelapseMode = "layer";  // "timelapse_mode": layer | hyperlapse
  int timelapseIntervalS = 30;          // "timelapse_hyperlapse_interval": hyperlapse period, s, 5..300
  // "timelapse_stream_delay": layer change -> capture, in SECONDS in the file (0.05), 0..10 s
  int timelapseStreamDelayMs = 50;
  int timelapseCrf = 23;              // "timelapse_crf": x264 constant quality, 0..51
  int timelapseFps = 30;              // "timelapse_output_fps": output rate, 1..120
  bool timelapseVariableFps = false;  // "timelapse_variable_fps": fps = frames / target length
  int timelapseTargetLengthS = 10;    // "timelapse_target_length": s, 1..3600
  int timelapseMinFps = 5;            // "timelapse_variable_fps_min": 1..120, <= max
  int timelapseMaxFps = 60;           // "timelapse_variable_fps_max": 1..120
  bool timelapseFlipX = false;        // "timelapse_flip_x": mirror left-right
  bool timelapseFlipY = false;        // "timelapse_flip_y": upside down
  int timelapseDuplicateLast = 0;     // "timelapse_duplicate_last_frame": repeat the last frame, 0..600
  // "timelapse_usb_path": the USB stick's timelapse folder (absolute), "" = the board's. Config
  // file only, like timelapse_folder.
  std::string timelapseUsbPath;
  std::string moonrakerHost = "127.0.0.1";  // "moonraker_host": WebSocket /websocket
  int moonrakerPort = 7125;                 // "moonraker_port": 1..65535
  std::string moonrakerSocket;              // "moonraker_socket": unix socket path; set = used instead
  bool moonrakerRegisterWebcam = false;     // "moonraker_register_webcam": upsert our webcam entry
  // --- end of timelapse recording ---

  // The JSON config file settings changed from the control API are saved to ("" = changes are
  // applied but not saved). Set from --config, not a key of the file itself.
  std::string configFile;
};

// The skip interval N (encode every Nth camera frame) of the frame-rate slider (see
// Settings::h264FrameratePercent). `percent` is clamped to 0..100.
int skipIntervalForPercent(int percent);

// Apply a JSON config file's keys onto `settings`. `//` comments are allowed (Rinkhals app.json).
// Numbers may be given as JSON numbers or numeric strings, booleans as true/false or
// "true"/"false"/"1"/"0". Unknown keys are reported in `warnings` and ignored.
// Errors: InvalidArgument naming the file and key with the allowed values
// ("config.json: bitrate = 50: must be an integer in 100..20000"); Io when unreadable.
hal::Status applyConfigFile(const std::filesystem::path& path, Settings& settings,
                            std::vector<std::string>& warnings);

// The same from JSON text (for tests); `source` names it in messages.
hal::Status applyConfigJson(const std::string& text, const std::string& source, Settings& settings,
                            std::vector<std::string>& warnings);

// Check every value and fill board defaults (camera size/fps, display fps cap).
// Errors: InvalidArgument naming the key and its allowed range.
// Set the defaults of a product layout on `s` before the config file and the flags (which
// override them):
//  - "printer": the defaults above (h264-streamer's ports);
//  - "esp32-relay": the ESP32 camera relay's layout: source ws-push with cameras pushing to
//    ws://HOST:8765/ (ingest_port 8765), viewers of H.264 over WebSocket on 8766 (ws_port, plain
//    Annex-B messages), HTTP on 8080 with an H.264 page at / and an MJPEG page at /mjpeg; no slicer
//    FLV port.
// Errors: InvalidArgument naming --profile and the known profiles.
hal::Status applyProfile(const std::string& name, Settings& s);

hal::Status finalizeSettings(Settings& settings, const bsp::Board& board);

// ---- the control API (GET/POST /api/settings on the control port) ----

// The keys the control page may change; every one takes effect without a restart except
// display_enabled turned on when the streamer started without a display (reported by the API).
const std::vector<std::string>& runtimeSettingKeys();

// The runtime keys and their current values as a JSON object text (app.json key names).
std::string runtimeSettingsJson(const Settings& settings);

// Validate a POST body: a JSON object of runtime keys and values, checked by the same per-key
// rules as the config file (applyConfigJson) and the board's limits (finalizeSettings). All or
// nothing: on success `next` is `current` with every change applied and `changedKeys` lists the
// keys given; on error nothing is changed and `errorKey` names the offending key ("" when the
// body itself is not a JSON object).
// Errors: InvalidArgument ("settings: bitrate = 50: must be an integer in 100..20000",
// "settings: port: cannot be changed from the control API (edit the config file)").
hal::Status validateSettingsChange(const std::string& body, const bsp::Board& board, const Settings& current,
                                   Settings& next, std::vector<std::string>& changedKeys,
                                   std::string& errorKey);

// The same over another set of keys the API may change (`allowedKeys`, e.g.
// timelapseSettingKeys()); a known key outside it is refused as "cannot be changed from the
// control API".
hal::Status validateSettingsChange(const std::string& body, const bsp::Board& board, const Settings& current,
                                   Settings& next, std::vector<std::string>& changedKeys,
                                   std::string& errorKey, const std::vector<std::string>& allowedKeys);

// ---- timelapse settings (GET/POST /api/timelapse/settings) ----
// Every key starting with "timelapse_" or "moonraker_" and its value, as a JSON object text.
std::string timelapseSettingsJson(const Settings& settings);
// The keys of timelapseSettingsJson() that POST /api/timelapse/settings may change: all of them
// but timelapse_folder (a folder path is not set over HTTP).
const std::vector<std::string>& timelapseSettingKeys();

// printcast's earlier names of h264-streamer's documented app.json keys, as {alias, documented
// name}: a file may use either (the documented name is what printcast writes, and saving it drops
// the alias from the file); "timelapse_interval" -> "timelapse_hyperlapse_interval", ...
const std::vector<std::pair<std::string, std::string>>& settingKeyAliases();

// Save `changes` (a JSON object text of app.json keys) into the config file at `path`: the file's
// other keys are kept (its `//` comments are not), and the file is replaced atomically: a temp
// file in the same folder is written and fsync'd, renamed over `path`, and the folder fsync'd,
// so a crash leaves either the old or the new file, never a half-written one or a temp file.
// A missing file is created. Errors: InvalidArgument (the existing file or `changes` is not a JSON
// object), Io (with errno: unwritable folder, disk full).
hal::Status saveSettingsFile(const std::filesystem::path& path, const std::string& changes);

// The recorder's keys (timelapse_* and moonraker_* of feat-tlrec) and values as a JSON object text,
// part of timelapseSettingsJson() (GET/POST /api/timelapse/settings).
std::string timelapseRecordingSettingsJson(const Settings& settings);

// Parse "1280x720". Errors: InvalidArgument.
hal::Result<hal::Size> parseResolution(const std::string& text);

// camera_rotation, then camera_flip_x and camera_flip_y, as one transform of the camera picture.
hal::Transform cameraTransform(const Settings& s);

// The settings of one camera of `s.cameras`: `s` with the entry's source, resolution, fps,
// bitrate, format, h264 and publish targets (replacing the top-level ones); cameras after the first have no
// shared-memory rings and no push ingest (those are camera 0's). `s` must have passed finalizeSettings().
Settings settingsForCamera(const Settings& s, const Settings::CameraEntry& camera);

// ---- run-time changes of the `cameras` list (POST, PATCH, DELETE /api/cameras) ----

// Apply the keys of `body` (a JSON object text of entry keys: id, name, source, resolution, fps,
// bitrate, enabled, publish, format, h264) onto `entry` with the config file's rules for an entry of the
// list; keys not in `body` keep entry's values (a POST starts from a default entry, a PATCH from the running
// one). `where` names the entry in messages ("cameras[2]"). `errorKey` gets the entry key at fault ("fps"),
// "" when the body is not a JSON object; `entry` may be half changed on error. Errors: InvalidArgument
// ("<src>: cameras[2].fps = 500: must be an integer in 1..120").
hal::Status parseCameraEntry(const std::string& body, const std::string& src, const std::string& where,
                             Settings::CameraEntry& entry, std::string& errorKey);

// Check `entry` as finalizeSettings() checks an entry of the list: its id (and that none of `others`
// has it), name, source, resolution and fps within the board's limits, publish targets (none
// that `s`'s top level or an enabled entry of `others` has). `others` are the entries it must not
// clash with, each with its place in messages ("cameras[0]"). `first`: it is camera 0 (the only one
// that may be ws-push). Fills the default name. `errorKey` as for parseCameraEntry.
// Errors: InvalidArgument naming the entry and the key.
hal::Status checkCameraEntry(Settings::CameraEntry& entry, const std::string& where, bool first,
                             const std::vector<std::pair<std::string, const Settings::CameraEntry*>>& others,
                             const Settings& s, const bsp::Board& board, const std::string& src,
                             std::string& errorKey);

// An entry as the config file's JSON object text: every key with `full`, else only the keys that
// differ from an entry's defaults (name when it is not the id, resolution, fps and bitrate when
// set, enabled when false, publish when there are targets, format when not "auto", h264 when false).
std::string cameraEntryJson(const Settings::CameraEntry& entry, bool full = false);

// One run-time change of the `cameras` list as it edits the config file: Add appends `entry` (an
// entry's JSON object text); Change sets the keys of `entry` on the file's entry with `id` (and
// appends `entry` when the file has none: `entry` must then be the whole entry); Remove takes the
// entry with `id` out (nothing when the file has none). Other entries and their keys are kept.
struct CameraListEdit {
  enum class Kind { Add, Change, Remove };
  Kind kind = Kind::Add;
  std::string id;
  std::string entry;
};

// The `cameras` list of the config text `config` (`//` comments allowed; "" = an empty file) with
// `edit` applied, as a JSON array text. Errors: InvalidArgument when `config` is not a JSON object,
// its `cameras` is not a list, or `edit.entry` is not a JSON object.
hal::Result<std::string> editCameraList(const std::string& config, const CameraListEdit& edit);

// Apply `edit` to the `cameras` list of the config file at `path` and save it atomically, as
// saveSettingsFile() does (every other key kept). Errors: those of editCameraList, Io (unreadable
// file, what saveSettingsFile returns).
hal::Status saveCameraListEdit(const std::filesystem::path& path, const CameraListEdit& edit);

}  // namespace printcast::streamer
