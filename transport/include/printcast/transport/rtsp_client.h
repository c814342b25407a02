// SPDX-License-Identifier: MIT
// RTSP pull: an IP camera's H.264 video as a hal::Capture of H.264 access units, for the
// `rtsp://` source. No decode, no re-encode: the access units go to the H.264 outputs as the
// camera made them.
//
// Specs: RTSP 1.0 (RFC 2326: 6/7 request and response, 10 methods, 10.12 embedded (interleaved)
// binary data, 12.37 Session, 12.39 Transport, C.1.1 control URLs); the SDP, RTP and H.264
// payload format through rtp_h264.h (RFC 4566, 3550, 6184); Basic/Digest authentication as RTSP
// borrows it from HTTP (RFC 7617, 7616) through http_digest.h. Models read: ffmpeg's rtsp.c,
// go2rtc's pkg/rtsp (keepalive by GET_PARAMETER when listed, else OPTIONS), MediaMTX's gortsplib.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "printcast/hal/capture.h"
#include "printcast/hal/result.h"

namespace printcast::transport {

// One RTSP message header block and body: a response (RFC 2326 7.1: "RTSP/1.0 200 OK") or a
// request (6.1: "DESCRIBE rtsp://cam/live RTSP/1.0"; a server may send one too, as some ping
// with "OPTIONS * RTSP/1.0"). RtspReader reads both: the client and the server share it.
struct RtspMessage {
  int status = 0;      // a response's status code; 0 for a request
  std::string reason;  // a response's reason phrase
  std::string method;  // a request's method; empty for a response
  std::string url;     // a request's URL, as sent ("rtsp://host/path", "*")
  std::vector<std::pair<std::string, std::string>> fields;  // in order, names as sent
  std::string body;                                         // Content-Length bytes (an SDP)

  // The first value of field `name` (case-insensitive); nullptr when absent.
  const std::string* field(std::string_view name) const;
  // Every value of `name` (WWW-Authenticate may come several times).
  std::vector<std::string> fieldValues(std::string_view name) const;
  // The CSeq field's number; -1 when absent or not a number.
  long cseq() const;
};

// Incremental reader of what an RTSP server sends on its TCP connection: messages, and RTP/RTCP
// packets interleaved in it ('$', channel, 16-bit big-endian length, data; RFC 2326 10.12).
// Feed bytes as they arrive (any split); pop what completed, in order. Header names are
// case-insensitive, lines end in CRLF or LF.
// Memory: at most one message head (maxHeadBytes), one body (maxBodyBytes) or one interleaved
// packet (64 KiB) is buffered, plus what was not popped.
// Threading: one thread at a time.
class RtspReader {
 public:
  struct Limits {
    size_t maxHeadBytes = size_t{16} * 1024;
    size_t maxBodyBytes = size_t{64} * 1024;
  };
  struct Item {
    enum class Kind { Message, Data } kind = Kind::Message;
    RtspMessage message;        // Kind::Message
    uint8_t channel = 0;        // Kind::Data: the interleaved channel (RTP on even, RTCP on odd)
    std::vector<uint8_t> data;  // Kind::Data: one RTP or RTCP packet
  };

  RtspReader() : RtspReader(Limits{}) {}
  explicit RtspReader(Limits limits) : limits_(limits) {}

  // Errors (the reader stays failed; the connection is unusable): InvalidArgument (bytes that
  // are neither '$' nor a status or request line, a malformed field line or Content-Length, a head
  // or body above its limit), saying which.
  hal::Status feed(std::span<const uint8_t> bytes);
  bool pop(Item& out);
  // Interleaved packets to `sink` during feed() (the span lives for the call) instead of as
  // items: no allocation per RTP packet. Messages stay items.
  using DataSink = std::function<void(uint8_t channel, std::span<const uint8_t> packet)>;
  void setDataSink(DataSink sink) { dataSink_ = std::move(sink); }
  size_t pending() const { return items_.size(); }

 private:
  hal::Status parse();
  hal::Status fail(std::string message);

  Limits limits_;
  hal::Status failed_;
  std::vector<uint8_t> buffer_;
  size_t start_ = 0;  // parsed bytes at the front of buffer_
  std::deque<Item> items_;
  DataSink dataSink_;
};

// The Session field's value (RFC 2326 12.37): "id[;timeout=seconds]". `timeout` is 60 when not
// given (the RFC's default).
struct RtspSession {
  std::string id;
  int timeoutSeconds = 60;
};
// Errors: InvalidArgument (an empty id).
hal::Result<RtspSession> parseRtspSession(std::string_view value);

// The URL a SETUP goes to (RFC 2326 C.1.1): an absolute a=control as it is, "*" or none the base
// itself, a relative one joined to the base (the Content-Base or Content-Location of the DESCRIBE
// response, else its request URL) with one '/'.
std::string resolveRtspControl(std::string_view base, std::string_view control);

struct RtspPullOptions {
  // Interleaved in the RTSP TCP connection (the default: one connection, through NAT and
  // firewalls, no loss), or RTP/AVP over UDP unicast to two local ports.
  enum class Transport { Tcp, Udp };
  Transport transport = Transport::Tcp;
  std::chrono::milliseconds connectTimeout{3000};
  // Each request's response must come within this.
  std::chrono::milliseconds responseTimeout{5000};
  // The factory returns once PLAY was answered and the picture size is known (from the SDP's
  // sprop-parameter-sets, else the first in-band SPS), or fails with Timeout after this long.
  std::chrono::milliseconds openTimeout{10000};
  // A stream that sends no RTP packet for this long is lost (NoSignal): the no-data watchdog.
  std::chrono::milliseconds noDataTimeout{10000};
  size_t maxAccessUnitBytes = size_t{4} << 20;
  std::string userAgent = "printcast";
};

// Open an rtsp:// camera: rtsp://[user[:password]@]host[:port=554]/path. OPTIONS (its Public
// field decides the keepalive), DESCRIBE (Accept: application/sdp; the first H.264 video media is
// used: others are not set up), SETUP of that media (TCP interleaved channels 0-1, or UDP
// client ports), PLAY (Range: npt=0.000-). Every request carries CSeq, the User-Agent and, once
// the camera challenged, the URL's credentials (Digest when offered, else Basic: ClientAuth);
// from SETUP on, the Session. Keepalive: GET_PARAMETER when the camera lists it, else OPTIONS,
// at half the session timeout. TEARDOWN on stop() (best effort, not awaited).
//
// The Capture (info().driver "rtsp", name and busInfo the URL without credentials) offers one
// format, H264 at the SPS's size (cropped: 1920x1080 for a 1088-line stream) and the rate its
// VUI timing gives (else validate() keeps the asked fps: the camera's own rate is what comes).
//
// Frames: one Annex-B access unit each in plane 0 (stride 0), rebuilt by rtp::H264Depacketizer
// (SPS/PPS in front of every IDR that lacks them, from the SDP or in band; a loss drops
// everything to the next IDR); the first frame is an IDR. Timestamps: the capture clock at the
// first access unit's arrival plus the RTP timestamp's progress (90 kHz), rebased to the arrival
// time when the two drift more than 1 s apart (a camera clock jump); cameras with B-frames give
// non-monotonic times. The session runs inside dequeue(): what the socket has is read only when
// no access unit waits, so a consumer that falls behind slows the connection (TCP flow control)
// instead of queueing. requestKeyframe() is Unsupported (RTSP has
// no such request): the GOP is the camera's.
//
// Loss: the connection closing, a read error, an error answer to a keepalive (454 Session Not
// Found), no RTP for noDataTimeout, or an SPS of another size turns every later dequeue() into
// an error (Disconnected; NoSignal for the watchdog; the message says which): recovery is a new
// object, as for V4L2.
//
// Threading: no thread of its own. The factory sets the session up on the calling thread (it
// blocks until PLAY and the picture size, at most openTimeout); after that the session (RTP,
// keepalives at half the session timeout, the watchdog) runs inside dequeue(), on the thread that
// drives the capture, which must keep polling pollFd() and dequeuing (the camera thread does, at
// least every 200 ms). pollFd() is an epoll set: readable when the connection (or the UDP RTP
// socket) has bytes, or a frame or the error waits. stop() (TEARDOWN, not awaited) from that
// thread too; info() from any thread.
//
// Errors of the factory: parseUrl()'s (InvalidArgument, Unsupported for rtsps://),
// connectTcp()'s (NoDevice, Timeout, Io), PermissionDenied (401: no credentials, refused ones,
// or no challenge this client answers), NoDevice (404: no such stream), Unsupported (another
// error status, an SDP without H.264 video, packetization-mode 2, UDP refused by the camera:
// 461), InvalidArgument (a malformed response or SDP), Disconnected (closed during the
// exchange), Timeout (no response within responseTimeout; no size within openTimeout). Each
// message names the URL and step.
hal::Result<std::unique_ptr<hal::Capture>> createRtspPullCapture(const std::string& url,
                                                                 RtspPullOptions options = {});

}  // namespace printcast::transport
