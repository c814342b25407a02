// SPDX-License-Identifier: MIT
// HTTP-FLV pull: an H.264 camera served as an FLV stream over HTTP (a printer's stock camera
// service, another printcast's /flv, ffmpeg's `-f flv -listen 1`; docs/sources.md) as a
// hal::Capture of H.264 access units, passed through as the camera made them (no decode, no
// re-encode), as the RTSP pull does.
// Formats: HTTP/1.1 through HttpResponseReader (http_response.h); FLV through FlvDemuxer
// (flv_demux.h: Adobe FLV spec v10.1 annex E, ISO/IEC 14496-15 5.3.3.1).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "printcast/hal/capture.h"
#include "printcast/hal/result.h"
#include "printcast/transport/flv_demux.h"
#include "printcast/transport/http_response.h"

namespace printcast::transport {

// True for an http:// URL whose path ends in "flv" ("/flv", "/live.flv"; the query aside): the
// sources openSource() sends to createFlvPullCapture().
bool isHttpFlvUrl(std::string_view url);

// Reader of one HTTP response carrying an FLV stream: Content-Type video/x-flv (or video/flv);
// application/octet-stream or none when the body starts with "FLV" (ffmpeg's -listen server).
// Errors of feed(): HttpResponseReader's, Unsupported (another Content-Type, or an octet-stream
// body that is not FLV: the message says which), and FlvDemuxer's (InvalidArgument).
// Threading: one thread at a time.
class FlvResponseReader final : public HttpResponseReader {
 public:
  struct Limits {
    size_t maxHeadBytes = size_t{16} * 1024;
    size_t maxTagBytes = size_t{8} * 1024 * 1024;  // one FLV tag; also one HTTP chunk
  };
  FlvResponseReader() : FlvResponseReader(Limits{}) {}
  explicit FlvResponseReader(Limits limits);

  // The oldest access unit not yet popped; false when there is none.
  bool pop(flv::AccessUnit& out) { return demuxer_.pop(out); }
  size_t pending() const { return demuxer_.pending(); }
  const flv::FlvDemuxer& demuxer() const { return demuxer_; }

 private:
  hal::Status onHead() override;
  hal::Status onBody(const uint8_t* data, size_t size) override;

  flv::FlvDemuxer demuxer_;
  bool sniff_ = false;  // octet-stream or no Content-Type: the body must start with "FLV"
  size_t sniffed_ = 0;  // signature bytes checked
};

struct FlvPullOptions {
  std::chrono::milliseconds connectTimeout{3000};
  // The factory returns once the picture size is known (the first SPS: the sequence header's),
  // or fails with Timeout after this long.
  std::chrono::milliseconds openTimeout{10000};
  // A stream that sends no byte for this long is lost (NoSignal): the no-data watchdog.
  std::chrono::milliseconds noDataTimeout{10000};
  FlvResponseReader::Limits limits{};
  std::string userAgent = "printcast";
};

// Open an HTTP-FLV camera: connect, GET the URL (User-Agent, Accept: video/x-flv), read the FLV
// stream as it comes. Credentials in the URL answer a 401 as for the MJPEG pull (ClientAuth:
// Digest when offered, else Basic; the first request goes without).
//
// The Capture (info().driver "http-flv", name and busInfo the URL without credentials) offers one
// format, H264 at the SPS's size (cropped) and the rate its VUI timing gives (else validate()
// keeps the asked fps). Frames: one Annex-B access unit each in plane 0 (stride 0), SPS/PPS in
// front of every IDR that lacks them (from the sequence header, or in band); the first frame is an
// IDR. Timestamps: the capture clock at the first access unit's arrival plus the FLV timestamps'
// progress (tag time + CompositionTime, ms), rebased to the arrival time when the two drift more
// than 1 s apart. Up to FrameQueue::kH264Backlog (60) access units wait for dequeue(); beyond,
// they are dropped to the next IDR (counted, droppedFrames()). requestKeyframe() is Unsupported:
// the GOP is the camera's.
//
// Loss: the connection closing, a read error, no byte for noDataTimeout, a stream the demuxer
// refuses (another codec, a tag above the limit), or an SPS of another size turns every later
// dequeue() into an error (Disconnected; NoSignal for the watchdog; InvalidArgument for the
// stream; the message says which): recovery is a new object, as for V4L2.
//
// Threading: one I/O thread per object, started by the factory, joined by stop() or the
// destructor; pollFd() is an eventfd, readable while a frame or the error waits. dequeue() and
// stop() from the thread that drives the capture; info() from any thread.
//
// Errors of the factory: those of parseHttpUrl(), of connectTcp() (NoDevice, Timeout, Io), of
// FlvResponseReader (PermissionDenied, Unsupported, InvalidArgument), Disconnected (closed
// before the size was known), Timeout (no SPS within openTimeout). Each message names the URL.
hal::Result<std::unique_ptr<hal::Capture>> createFlvPullCapture(const std::string& url,
                                                                FlvPullOptions options = {});

}  // namespace printcast::transport
