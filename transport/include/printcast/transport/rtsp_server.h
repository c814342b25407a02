// SPDX-License-Identifier: MIT
// RTSP server: the camera's H.264 as rtsp://HOST:8554/stream for NVRs, VLC, Home Assistant,
// Frigate, MediaMTX/go2rtc pulling from us.
//
// Specs: RTSP 1.0 (RFC 2326: 10 methods, 10.12 interleaved binary data, 12.37 Session, 12.39
// Transport), SDP (RFC 4566; RFC 6184 8.2.1 fmtp), RTP (RFC 3550) with the H.264 payload format
// (RFC 6184) through rtp::H264Packetizer. Models read: MediaMTX's gortsplib server, live555's
// RTSPServer, gst-rtsp-server (session timeout, keepalive by GET_PARAMETER/OPTIONS/RTCP).
//
// Transports: RTP/AVP/TCP interleaved (channels 0-1) and RTP/AVP unicast UDP (to the RTSP
// client's address only); multicast gets 461. RTCP: a sender report with the capture time as NTP
// time about every second. Not yet: authentication.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "printcast/hal/packet.h"
#include "printcast/hal/result.h"
#include "printcast/transport/fanout.h"
#include "printcast/transport/rtp_h264.h"

namespace printcast::transport {

// One H.264 stream of the server (a path): every access unit is packetized once (RFC 6184:
// STAP-A for SPS/PPS, single NAL units, FU-A) into interleaved RTP for channel 0 and the same bytes
// go to every client's bounded queue (a stalled client drops to the next IDR, never blocking the
// others or the producer). Each client starts at an IDR. RTP timestamps are the access unit's
// capture time at 90 kHz (plus a random offset, RFC 3550 5.1); one SSRC and sequence for all
// clients (a client's first sequence number is whatever its first packet has, as when joining a
// multicast group). About every second an RTCP sender report (the capture time on the wall clock
// as NTP time, the RTP timestamp, packet and octet counts) goes on channel 1.
// Threading: publish() from one producer thread; subscribe(), describe() and the Fanout calls
// from any thread.
class RtspStream : public Fanout {
 public:
  explicit RtspStream(size_t maxPayload = 1400);

  // Publish one H.264 access unit (fourcc::kH264, Annex-B; keyframes carry SPS/PPS and `config`).
  void publish(const hal::PacketPtr& accessUnit);
  std::shared_ptr<ClientQueue> subscribe(QueueLimits limits = {120, 16u << 20});

  // The SDP a DESCRIBE answers (RFC 4566): one H.264 video media, payload type 96, a=control
  // "trackID=0", profile-level-id and sprop-parameter-sets from the newest SPS/PPS (without them
  // before the first keyframe: the parameter sets come in band before every IDR anyway).
  std::string describe(const std::string& serverAddress) const;
  // Whether an IDR with its SPS/PPS went through (describe() then carries them).
  bool hasParameterSets() const;

 private:
  // An RTCP sender report + SDES CNAME (RFC 3550 6.4.1, 6.5) for the access unit at `pts`.
  std::vector<uint8_t> senderReport(hal::Timestamp pts, uint32_t rtpTimestamp) const;

  rtp::H264Packetizer packetizer_;                  // producer thread
  uint32_t packetCount_ = 0;                        // RTP packets sent (producer thread)
  uint32_t octetCount_ = 0;                         // their payload bytes (wrapping, as RFC 3550 says)
  hal::Timestamp lastReport_{};                     // producer thread
  uint32_t timestampOffset_;                        // random (RFC 3550 5.1)
  std::shared_ptr<const hal::CodecConfig> config_;  // the newest SPS/PPS; Fanout::mutex_
};

struct RtspServerConfig {
  std::string bindAddress;  // "" = every interface
  uint16_t port = 8554;     // 0 = any free port (port() tells)
  // Connections at once, in all and from one address (a slowloris or a runaway NVR cannot take
  // the port away from the others). Beyond, a connection is closed at once (counted).
  size_t maxConnections = 128;
  size_t maxPerAddress = 16;  // the streamer sets connections_per_address (48)
  // A session with no request and no interleaved RTCP for this long is closed (announced in the
  // Session field). A connection that has not completed a request head within headTimeout (no
  // session yet) is closed too.
  std::chrono::seconds sessionTimeout{60};
  std::chrono::seconds headTimeout{10};
  // Optional credentials: when set, every request but OPTIONS must be authorized (its
  // Authorization field and the URL's ?token=) or gets 401 with a Basic challenge. Called on
  // the server thread; must not block.
  std::function<bool(std::string_view authorization, std::string_view queryToken)> authorize;
};

struct RtspServerStats {
  uint64_t connections = 0;   // open now
  uint64_t playing = 0;       // sessions sending RTP now
  uint64_t accepted = 0;      // since start
  uint64_t refused = 0;       // over a connection limit
  uint64_t timedOut = 0;      // sessions and silent connections closed by the timeouts
  uint64_t badRequests = 0;   // 400s and unparsable input
  uint64_t udpDropped = 0;    // RTP datagrams a UDP client's socket buffer could not take
  uint64_t unauthorized = 0;  // 401s (RtspServerConfig::authorize)
};

// The server: one thread polls the listening socket and every connection (never blocking: reads
// and writes are non-blocking, and a client's RTP waits in its bounded queue). Requests: OPTIONS,
// DESCRIBE (404 for an unknown path), SETUP (TCP interleaved or UDP; 461 otherwise), PLAY (starts the
// client at the next IDR), GET_PARAMETER / SET_PARAMETER (keepalive), TEARDOWN; anything else 405.
// Paths: the request URL's path, with a trailing "/" or "/trackID=0" (the media's control) taken
// off. Threading: start() from any thread; the server runs on its own thread until destroyed.
class RtspServer {
 public:
  // `streams`: path ("/stream") -> stream; each stream outlives the server, or its path's
  // setStream() that replaces or removes it.
  // Errors: Io (socket, bind: the message names the address and port).
  static hal::Result<std::unique_ptr<RtspServer>> start(
      RtspServerConfig config, std::vector<std::pair<std::string, RtspStream*>> streams);
  ~RtspServer();
  RtspServer(const RtspServer&) = delete;
  RtspServer& operator=(const RtspServer&) = delete;

  uint16_t port() const;
  RtspServerStats stats() const;

  // Serve `stream` at `path` from now on, replacing the path's stream if it has one; nullptr takes
  // the path away (DESCRIBE and SETUP then get 404). Connections set up on the path's previous
  // stream are closed (their clients see the connection end) before this returns, so the previous
  // stream may go then. For cameras added, reopened and removed at run time. Any thread but the
  // server's own; waits for one turn of the server's loop (it is woken: well under a millisecond
  // when idle).
  void setStream(const std::string& path, RtspStream* stream);
  // Why `path` has no stream (a camera without H.264 outputs), for the 404 that DESCRIBE and
  // SETUP of it get while it has none: "RTSP/1.0 404 Not Found (<reason>)" and the reason as a
  // text/plain body. CR and LF in `reason` become spaces; "" forgets it. Any thread.
  void setRefusal(const std::string& path, std::string reason);

 private:
  struct Impl;
  explicit RtspServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace printcast::transport
