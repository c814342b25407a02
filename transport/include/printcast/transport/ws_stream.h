// SPDX-License-Identifier: MIT
// WsStream: H.264 access units as WebSocket binary messages (RFC 6455 5.6), one per access unit.
//
// Shapes, per client:
//  - one unmasked binary frame (FIN set) per complete H.264 access unit, in Annex-B byte stream
//    format (ITU-T H.264 Annex B) with all its slices: exactly what jmuxer (Mainsail's
//    "jmuxer-stream" webcam service) feeds to its decoder whole;
//  - the first message of a client is an IDR access unit, and every IDR access unit carries SPS
//    and PPS in front of it (encoders put them there; for an H.264 camera whose IDRs lack them,
//    the packet's CodecConfig is inserted);
//  - with `timestampTrailer`, 8 more bytes end each message: a little-endian uint64 of wall-clock
//    milliseconds since the Unix epoch (reCamera's camera-streamer format, port 8765). The
//    packet's capture time (steady clock) is mapped to the system clock when it is published:
//    wallMs = system_clock::now() - (steady_clock::now() - pts), so the trailer says when the
//    frame was captured, not when it was sent.
// The access unit's bytes are shared by every client (a packetChunk referencing the packet);
// the frame header, inserted parameter sets and trailer are built once per access unit and
// shared too. Queues use the UntilKeyframe policy: a slow client loses whole access units up to
// the next IDR, never part of a message (each queued unit is one complete WebSocket frame).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>

#include "printcast/transport/fanout.h"

namespace printcast::transport {

class WsStream : public Fanout {
 public:
  // A new client's queue (serve it with WebSocketHub). Thread-safe.
  std::shared_ptr<ClientQueue> subscribe(bool timestampTrailer, QueueLimits limits = {30, 8u << 20});
  // Publish one H.264 access unit (fourcc::kH264, Annex-B). One producer thread.
  void publish(const hal::PacketPtr& accessUnit);

  // The WebSocket frame for one access unit, as the chunks a client is sent: frame header,
  // parameter sets when inserted, the packet's payload (shared, not copied), then the trailer
  // when `trailerMs` is given. Pure; public so tests can check what is shared.
  static WireUnit message(const hal::PacketPtr& accessUnit, std::optional<uint64_t> trailerMs);

  // The wall-clock milliseconds the trailer carries for a capture time (see above).
  static uint64_t wallClockMs(hal::Timestamp pts);

 private:
  std::set<const ClientQueue*> trailer_;  // clients that asked for the trailer; under mutex_
};

}  // namespace printcast::transport
