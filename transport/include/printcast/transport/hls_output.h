// SPDX-License-Identifier: MIT
// HlsOutput: an hls::Segmenter served over HttpServer — the playlist with blocking reload,
// segments, parts and init segments, viewer tracking.
//
// Routes (names relative to the playlist's folder, e.g. /hls/):
//   stream.m3u8[?_HLS_msn=M[&_HLS_part=P]]  application/vnd.apple.mpegurl, Cache-Control: no-cache.
//       Without a directive: the playlist now, or (fresh stream) once two segments are complete,
//       so a player starting at the first segment has one segment of buffer. With one (rfc8216bis 6.2.5.2):
//       held until the playlist holds segment M (and part P), answered 503 after three target durations; M
//       more than two segments (or P more than three parts) past the live edge: 400; _HLS_part without
//       _HLS_msn or a value that is not a non-negative integer: 400 with the reason. _HLS_skip is ignored (no
//       EXT-X-SKIP: the playlist is always whole).
//   <token>/init-<v>.mp4, <token>/seg-<msn>.<ext>, <token>/part-<msn>.<i>.<ext>
//       video/mp4 or video/mp2t, Cache-Control: max-age=86400 (names are never reused). The next
//       part (the preload hint) and the segment in progress are held until they are complete
//       (503 after three target durations); a resource that left the window, or any other name,
//       is 404 with the reason.
// Held requests never block a server thread: they are DeferredResponses completed from the
// producer thread when the segmenter publishes, or by expire().
//
// "Watched": a request in the last idleAfter (default max(5 s, 4 segment targets)). publish()
// feeds the segmenter only while watched and resets it otherwise, so nothing is kept while
// nobody watches. The first request after an idle period calls the onViewer callback (ask the
// encoder for an IDR so the first segment starts at once).
//
// Threading: handle() from the HTTP server thread(s); publish() from the producer thread;
// expire()/closeAll()/stats from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "printcast/transport/hls.h"
#include "printcast/transport/http_server.h"

namespace printcast::transport {

class HlsOutput {
 public:
  // `idleAfter` 0 = max(5 s, 4 segment targets); `holdFor` (how long a request is held before
  // 503) 0 = three target durations (at least 3 s).
  explicit HlsOutput(hls::Config config, std::chrono::milliseconds idleAfter = std::chrono::milliseconds(0),
                     std::chrono::milliseconds holdFor = std::chrono::milliseconds(0));
  ~HlsOutput();
  HlsOutput(const HlsOutput&) = delete;
  HlsOutput& operator=(const HlsOutput&) = delete;

  // A GET or HEAD for `name` under the playlist's folder ("stream.m3u8", "<token>/seg-3.m4s").
  HttpResponse handle(const HttpRequest& request, std::string_view name);

  // Producer: one H.264 access unit (see hls::Segmenter::push).
  void publish(const hal::PacketPtr& accessUnit);
  // True while someone fetched something within idleAfter.
  bool watched() const;
  // True when the producer should make the next access unit an IDR (the segment is due to close).
  bool keyframeDue() const { return watched() && segmenter_.keyframeDue(); }
  void setOnViewer(std::function<void()> callback);

  // Answer held requests older than three target durations with 503.
  void expire();
  // Answer every held request with 503 `reason` and forget the segments (H.264 switched off,
  // shutdown).
  void closeAll(const std::string& reason);

  const hls::Segmenter& segmenter() const { return segmenter_; }
  size_t waiting() const;
  uint64_t requests() const { return requests_.load(); }

 private:
  struct Waiter {
    enum class Kind { Playlist, Resource } kind = Kind::Playlist;
    std::optional<uint64_t> msn, part;
    std::string name;
    std::shared_ptr<DeferredResponse> response;
    hal::Timestamp since;
  };
  // Evaluate a waiter: a response when it can be answered now. Needs waitMutex_.
  std::optional<HttpResponse> tryAnswer(const Waiter& w) const;
  HttpResponse playlistResponse() const;
  HttpResponse hold(Waiter waiter);
  void onUpdate();

  hls::Segmenter segmenter_;
  std::chrono::milliseconds idleAfter_;
  std::chrono::milliseconds holdFor_;
  size_t startSegments_ = 2;               // complete segments before the first playlist is served
  std::atomic<int64_t> lastRequestNs_{0};  // steady clock, 0 = never
  std::atomic<uint64_t> requests_{0};
  std::mutex callbackMutex_;
  std::function<void()> onViewer_;
  mutable std::mutex waitMutex_;
  std::vector<Waiter> waiters_;
};

}  // namespace printcast::transport
