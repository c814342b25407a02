// SPDX-License-Identifier: MIT
// HLS (HTTP Live Streaming): a live media playlist of real segments cut at IDRs, held in memory,
// with low-latency partial segments (LL-HLS).
//
// Specs: RFC 8216 (media playlist 4.3, fMP4 segments 3.3 with EXT-X-MAP, MPEG-TS segments 3.2),
// draft-pantos-hls-rfc8216bis (LL-HLS: EXT-X-PART-INF 4.4.3.7, EXT-X-SERVER-CONTROL 4.4.3.8,
// EXT-X-PART 4.4.4.9, EXT-X-PRELOAD-HINT 4.4.5.3, delivery directives _HLS_msn/_HLS_part 6.2.5.2).
//
// Model: H.264 access units go in (push(), Annex-B hal::Packets, keyframes carry SPS/PPS); out
// come immutable resources named relative to the playlist:
//   <stream>/init-<v>.mp4           fMP4 initialisation segment version v (a new one when the
//                                   SPS/PPS change; that segment gets EXT-X-DISCONTINUITY)
//   <stream>/seg-<msn>.m4s | .ts    media segment number msn (EXT-X-MEDIA-SEQUENCE numbering)
//   <stream>/part-<msn>.<i>.m4s|.ts partial segment i (from 0) of segment msn
// <stream> is a token fixed per Segmenter (from its start time), so a long cache lifetime is safe
// across streamer restarts that start numbering again.
//  - A segment starts at an IDR; it closes at the first IDR that arrives once it has lasted
//    about segmentTarget (keyframeDue() says when the producer should ask the encoder for one).
//  - A part closes when the next access unit would take it past partTarget (PART-TARGET is
//    advertised 10 % higher: capture times jitter); it is one
//    moof+mdat (fMP4) or PAT+PMT+PES packets (TS) holding several access units; a segment is its
//    parts' bytes back to back, shared, not copied. A part starting at an IDR is INDEPENDENT=YES.
//    An access unit's duration is known when the next one arrives (capture timestamps), so a
//    part is published when the access unit after its last one is pushed.
//  - The window keeps the last windowSegments complete segments and at most maxBytes; the
//    oldest leave first and EXT-X-MEDIA-SEQUENCE (and EXT-X-DISCONTINUITY-SEQUENCE) advance.
//  - A segment that reaches max(4 segment targets, 10 s) or half of maxBytes without an IDR
//    (a camera ignoring keyframe requests) is closed as it is; access units are dropped until
//    the next IDR, whose segment is marked as a discontinuity. Memory stays bounded.
//  - reset() (nobody watches) drops everything; numbering continues and the next segment is
//    marked as a discontinuity.
// Timestamps: 90 kHz ticks since the first access unit ever pushed (tfdt / PTS), so they only
// grow, across discontinuities too.
//
// Threading: every call from any thread, serialised by one internal mutex held briefly (push()
// normally comes from one producer thread; reset() may come from another). The update callback
// runs on the thread that called push()/reset(), after the mutex is released.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "printcast/hal/packet.h"
#include "printcast/transport/fanout.h"
#include "printcast/transport/mpegts.h"

namespace printcast::transport::hls {

enum class Format { Fmp4, MpegTs };

struct Config {
  Format format = Format::Fmp4;
  std::chrono::milliseconds segmentTarget{1000};
  std::chrono::milliseconds partTarget{200};  // 0 = no partial segments (no LL-HLS)
  size_t windowSegments = 6;                  // complete segments kept (>= 1)
  size_t maxBytes = 16u << 20;                // bytes of segments kept (the newest always stays)
  std::string streamToken;                    // "" = from the start time
};

// A resource's bytes: chunks sent back to back (shared with the segmenter, never copied).
struct Resource {
  std::vector<WireChunk> chunks;
  size_t size = 0;
  std::string contentType;
};

enum class Lookup {
  Found,    // `out` is filled
  Pending,  // the next part to be produced, or the segment in progress: wait for an update
  Gone,     // it existed and left the window (or is from another stream token)
  NoSuch,   // malformed name, wrong extension or a future resource
};

// Where a blocking playlist request stands (_HLS_msn / _HLS_part, rfc8216bis 6.2.5.2).
enum class Directive {
  Ready,   // the playlist already holds that segment or part (or a later one)
  Wait,    // not yet: hold the request
  TooFar,  // more than two segments (or 3 parts) ahead of the live edge: 400
};

class Segmenter {
 public:
  explicit Segmenter(Config config);
  const Config& config() const { return config_; }

  // --- producer ---
  // One H.264 access unit. Access units before the first IDR (and after reset()) are dropped.
  void push(const hal::PacketPtr& accessUnit);
  // Forget every segment (nobody watches). Numbering continues; the next segment starts at an
  // IDR and carries EXT-X-DISCONTINUITY.
  void reset();
  // True when the next access unit should be an IDR: the segment is due to close, or the
  // segmenter waits for an IDR to start one (after a forced cut; not before the first push).
  bool keyframeDue() const;
  // Called (on the producer thread, no lock held) after every new part, segment or reset.
  void setOnUpdate(std::function<void()> callback);

  // --- readers ---
  // The media playlist (RFC 8216 4.3). Empty while no segment is complete yet.
  std::string playlist() const;
  size_t completeSegments() const;
  bool empty() const { return completeSegments() == 0; }
  // A resource by its name relative to the playlist (see above).
  Lookup find(std::string_view name, Resource& out) const;
  // A delivery directive against the current state. `part` without `msn` is the caller's error.
  Directive check(uint64_t msn, std::optional<uint64_t> part) const;

  // For /status: window and counters.
  struct Stats {
    uint64_t mediaSequence = 0;     // of the first segment in the window
    uint64_t segmentsProduced = 0;  // complete segments since start
    uint64_t partsProduced = 0;
    size_t segments = 0;  // complete segments in the window
    size_t bytes = 0;     // bytes held (window + segment in progress)
    uint64_t discontinuities = 0;
    uint64_t accessUnitsDropped = 0;  // before the first IDR
    int targetDurationS = 0;
  };
  Stats stats() const;
  std::string token() const { return config_.streamToken; }
  const char* segmentExtension() const { return config_.format == Format::Fmp4 ? "m4s" : "ts"; }

 private:
  struct Part {
    std::shared_ptr<const std::vector<uint8_t>> bytes;
    uint64_t durationTicks = 0;
    bool independent = false;
  };
  struct Segment {
    uint64_t msn = 0;
    uint32_t initVersion = 0;
    bool discontinuity = false;
    bool complete = false;
    uint64_t startTicks = 0;
    uint64_t durationTicks = 0;
    size_t bytes = 0;
    std::chrono::system_clock::time_point wallStart;
    std::vector<Part> parts;
  };
  struct Pending {
    hal::PacketPtr accessUnit;
    uint64_t ticks = 0;
  };

  // All *Locked() need mutex_.
  void closePartLocked(uint64_t endTicks);
  void closeSegmentLocked();
  bool startSegmentLocked(const hal::Packet& idr, uint64_t ticks);
  void trimLocked();
  uint64_t estimateTicksLocked() const;
  uint64_t currentMsnLocked() const;

  Config config_;
  mutable std::mutex mutex_;
  std::function<void()> onUpdate_;
  std::deque<Segment> segments_;  // the back one may be in progress
  std::map<uint32_t, std::shared_ptr<const std::vector<uint8_t>>> inits_;
  std::vector<Pending> pending_;  // access units of the part being built
  bool started_ = false;          // an IDR opened the segment in progress
  bool discontinuityNext_ = false;
  bool haveOrigin_ = false;
  hal::Timestamp origin_{};
  uint64_t lastTicks_ = 0;
  uint64_t lastIntervalTicks_ = 0;
  uint64_t nextMsn_ = 0;
  uint64_t mediaSequence_ = 0;
  uint64_t discontinuitySequence_ = 0;
  uint32_t initVersion_ = 0;
  std::shared_ptr<const hal::CodecConfig> config264_;
  uint32_t fragmentSequence_ = 1;
  mpegts::Muxer tsMuxer_;
  int targetDurationS_ = 1;
  size_t bytes_ = 0;
  uint64_t segmentsProduced_ = 0, partsProduced_ = 0, dropped_ = 0;
};

// Parse a non-negative decimal query value ("12"); nullopt when empty, signed, not a number or
// too large.
std::optional<uint64_t> parseIndex(std::string_view text);

}  // namespace printcast::transport::hls
