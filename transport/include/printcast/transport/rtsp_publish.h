// SPDX-License-Identifier: MIT
// RTSP publish: push an RtspStream into a media server, the way MediaMTX recommends devices
// publish (ANNOUNCE, SETUP mode=record over TCP interleaved, RECORD), for print farms where
// MediaMTX or go2rtc fans the printers out to WebRTC/LL-HLS viewers (docs/rtsp.md).
//
// Specs: RFC 2326 10.3 ANNOUNCE, 10.11 RECORD, 12.39 Transport mode=record; the SDP and RTP
// are the RTSP server's (RtspStream::describe(), its packetizer), so a publisher sends exactly
// what a player of rtsp://HOST:8554/stream gets.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "printcast/hal/result.h"
#include "printcast/transport/publish_status.h"
#include "printcast/transport/rtsp_server.h"

namespace printcast::transport {

struct RtspPublishOptions {
  std::chrono::milliseconds connectTimeout{3000};
  std::chrono::milliseconds responseTimeout{5000};
  // After a failure: wait firstRetry, doubling up to maxRetry; after a session that was
  // recording, firstRetry again.
  std::chrono::milliseconds firstRetry{1000};
  std::chrono::milliseconds maxRetry{30000};
  // Wait this long for the stream's first SPS/PPS before ANNOUNCE (the SDP then carries
  // sprop-parameter-sets); announce without them after it.
  std::chrono::milliseconds parameterSetWait{3000};
  std::string userAgent = "printcast";
};

using RtspPublishStatus = PublishStatus;

// One publisher: its own thread connects, subscribes a client queue to `stream` (so the stream is
// watched and starts at an IDR), ANNOUNCEs the SDP, SETUPs its one media with
// "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record", RECORDs, and writes the interleaved RTP and
// RTCP of the stream until the server closes or an error (a full send buffer for responseTimeout
// counts as one), then retries with backoff. Credentials in the URL answer a 401 (Digest
// preferred, else Basic: ClientAuth). Server messages while recording (RTCP receiver reports,
// answers) are read and ignored; a request from the server is answered 501.
// Threading: start() from any thread; status() from any thread; the destructor sends TEARDOWN
// (best effort) and joins. `stream` outlives the publisher.
class RtspPublisher {
 public:
  // Errors: those of parseUrl() for the URL (InvalidArgument, Unsupported for another scheme).
  static hal::Result<std::unique_ptr<RtspPublisher>> start(const std::string& url, RtspStream& stream,
                                                           RtspPublishOptions options = {});
  ~RtspPublisher();
  RtspPublisher(const RtspPublisher&) = delete;
  RtspPublisher& operator=(const RtspPublisher&) = delete;

  PublishStatus status() const;

 private:
  struct Impl;
  explicit RtspPublisher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace printcast::transport
