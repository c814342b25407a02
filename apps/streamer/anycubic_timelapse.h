// SPDX-License-Identifier: MIT
// Anycubic's native timelapse (go-klipper firmware): the firmware's `video_stream_request`s to
// the camera program, answered as its stock camera service (gkcam) answers them, driving a
// recording through an abstract sink. Pure: no I/O, no threads, no clock.
//
// Wire format (../shared/design/protocols.md, "Anycubic firmware integration"; learned from
// h264-streamer's rpc_client.c and TIMELAPSE_PROTOCOL.md, which were written from gkcam packet
// captures). The firmware's local service (gkapi, TCP 127.0.0.1:18086, JSON messages ended by
// byte 0x03) sends to every connected client:
//   {"id":0,"method":"process_status_update","params":{"eventtime":0,"response":"",
//     "status":{"video_stream_request":{"id":<int>,"method":"<m>","params":{...}}}}}
// and expects, on the same connection:
//   {"id":0,"method":"Video/VideoStreamReply","params":{"eventtime":0,
//     "status":{"video_stream_reply":{"id":<the request's id>,"method":"<m>","result":{}}}}}
// or, instead of "result", "error":{"code":"11401"} (gkcam's "camera not connected"; a string).
// Methods: SetLed {"enable":0|1}; openDelayCamera {"filepath":"/useremain/app/gk/gcodes/X.gcode"}
// (a print with timelapse starts); stopLanCapture {} (sent at print start, before the first
// capture: it does NOT end the recording); startLanCapture {appid, channel, ...: RTC fields, unused}
// (take one frame now: once at print start and once per layer change). There is no "close": the
// recording ends when the same messages carry status.print_stats.state complete, cancelled or
// error (or the next openDelayCamera starts another print).
//
// Threading: none of its own; one caller at a time (the gkapi client's I/O thread). The sink is
// called on the caller's thread and must not block (queue the work).
// Ownership: the handler keeps a reference to the sink, which must outlive it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "printcast/hal/result.h"

namespace printcast::streamer {

// What the handler drives: the streamer implements it over its TimelapseRecorder (a Start /
// Capture / Finish TriggerEvent each) and its camera. Every call comes from the handler's caller
// thread and must return quickly (no disk or camera I/O inline: queue it).
class AnycubicTimelapseSink {
 public:
  virtual ~AnycubicTimelapseSink() = default;

  // Whether the camera can deliver a frame now. false makes openDelayCamera and startLanCapture
  // answer error "11401" (camera not connected), as gkcam does; the firmware then refuses to
  // start a print with timelapse ("Camera not connected" on the screen and in the slicer).
  virtual bool cameraConnected() const = 0;

  // openDelayCamera: a print with timelapse begins. `filepath` is the gcode's path as the
  // firmware sent it (absolute, e.g. "/useremain/app/gk/gcodes/Cube_PLA_0.2_6m.gcode"; never
  // empty); the video is named after its base name without ".gcode". Any recording the sink
  // still has open was finished by the handler first (finishRecording("new print")).
  // Errors: whatever the recorder reports (Io, NoDevice: no storage). They are logged and
  // counted; the firmware still gets a success reply so the print is not blocked by storage.
  virtual hal::Status openRecording(const std::string& filepath) = 0;

  // startLanCapture while a recording is open: take one frame now (the firmware sends it at the
  // layer change). Queue it; errors: as openRecording (the reply stays a success).
  virtual hal::Status captureFrame() = 0;

  // The print ended: `reason` is print_stats.state ("complete", "cancelled", "error"),
  // "new print" (another openDelayCamera) or "stopped" (the handler's owner is shutting down).
  // The sink assembles what it has (a cancelled print keeps a partial video, as the Moonraker
  // timelapse does).
  virtual void finishRecording(const std::string& reason) = 0;

  // SetLed: the firmware asks for the light on (true) or off before a capture. The firmware
  // drives the light itself; a sink may ignore this.
  virtual void setLed(bool on) = 0;
};

// One video_stream_request object, checked. Shapes: see the file comment.
struct AnycubicVideoRequest {
  int64_t id = 0;
  std::string method;
  std::string filepath;       // openDelayCamera: params.filepath ("" otherwise)
  std::optional<bool> ledOn;  // SetLed: params.enable (0/1 or false/true)
};

// Check a video_stream_request object. Errors: InvalidArgument (not an object, no integer "id",
// no string "method", "params" present but not an object or null) with the reason.
hal::Result<AnycubicVideoRequest> parseVideoStreamRequest(const nlohmann::json& request);

// The answer to one request.
struct AnycubicVideoReply {
  int64_t id = 0;
  std::string method;
  std::string errorCode;  // "" = success ("result":{}); else the error code, e.g. "11401"
};

// gkcam's "camera not connected" (a string on the wire).
inline constexpr std::string_view kAnycubicCameraNotConnected = "11401";

// The Video/VideoStreamReply message for `reply` (compact JSON, without the 0x03 terminator).
std::string videoStreamReplyMessage(const AnycubicVideoReply& reply);

class AnycubicTimelapseHandler {
 public:
  // `moonrakerTimelapseEnabled` is asked on every request: while it returns true (printcast's own
  // timelapse, timelapse_enabled, records prints followed through Moonraker) the requests are
  // acknowledged with success and otherwise ignored, so one print never makes two videos
  // (h264-streamer does the same: "custom mode"). SetLed is passed on in both cases.
  AnycubicTimelapseHandler(AnycubicTimelapseSink& sink, std::function<bool()> moonrakerTimelapseEnabled);

  struct Outcome {
    std::optional<AnycubicVideoReply> reply;  // what to send back; none when the request has no
                                              // usable id or its method is unknown
    hal::Status status;  // why the request was refused or not acted upon (InvalidArgument: bad
                         // shape; Unsupported: unknown method; NoDevice: camera not connected;
                         // a sink error); ok when it did what was asked
  };

  // One video_stream_request object, from either path.
  Outcome handleRequest(const nlohmann::json& request);

  // One gkapi message (the bytes between two 0x03, any content): a process_status_update's
  // status.video_stream_request is handled as above and its status.print_stats.state applied
  // (onPrintState). Returns the Video/VideoStreamReply messages to send (0 or 1). Anything else
  // (other methods, malformed JSON, other status fields) is ignored: gkapi broadcasts all of its
  // traffic to every client.
  std::vector<std::string> handleRpcMessage(std::string_view message);

  // A print state from the firmware (or Moonraker's print_stats.state): complete, cancelled and
  // error finish an open recording; other states change nothing.
  void onPrintState(std::string_view state);

  // Finish an open recording ("stopped"): call before destroying the handler when it may be
  // mid-print, so the frames taken so far become a video.
  void close();

  struct Stats {
    uint64_t requests = 0;    // video_stream_requests seen (valid or not)
    uint64_t invalid = 0;     // refused as malformed or unknown
    uint64_t ignored = 0;     // acknowledged but not acted on (Moonraker timelapse on, no recording)
    uint64_t frames = 0;      // captureFrame() calls that the sink accepted, this recording
    uint64_t recordings = 0;  // openRecording() calls that the sink accepted
    bool recording = false;   // between openDelayCamera and the end of the print
    std::string lastError;    // the last refusal or sink error, "" if none
  };
  const Stats& stats() const { return stats_; }

 private:
  void fail(const hal::Error& error);

  AnycubicTimelapseSink& sink_;
  std::function<bool()> moonrakerTimelapseEnabled_;
  Stats stats_;
};

}  // namespace printcast::streamer
