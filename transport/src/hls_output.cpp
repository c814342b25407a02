// SPDX-License-Identifier: MIT
// HlsOutput: HLS playlist, segments and parts over HttpServer with blocking playlist reload.
#include "printcast/transport/hls_output.h"

#include <algorithm>

using namespace std::chrono_literals;

#include <fmt/format.h>

namespace printcast::transport {
namespace {

constexpr const char* kPlaylistType = "application/vnd.apple.mpegurl";

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(hal::Clock::now().time_since_epoch()).count();
}

HttpResponse resourceResponse(const hls::Resource& resource) {
  HttpResponse r;
  r.contentType = resource.contentType;
  r.headers.emplace_back("Cache-Control", "max-age=86400");
  // The bytes stay shared with the segmenter: a closed queue holding the chunks, sent with a
  // Content-Length.
  auto queue = std::make_shared<ClientQueue>(DropPolicy::Oldest, QueueLimits{2, resource.size + 1});
  WireUnit unit;
  unit.chunks = resource.chunks;
  unit.essential = true;
  queue->push(std::move(unit));
  queue->close();
  r.stream = std::move(queue);
  r.streamSize = resource.size;
  return r;
}

}  // namespace

HlsOutput::HlsOutput(hls::Config config, std::chrono::milliseconds idleAfter,
                     std::chrono::milliseconds holdFor)
    : segmenter_(std::move(config)),
      idleAfter_(idleAfter.count() > 0 ? idleAfter
                                       : std::max<std::chrono::milliseconds>(
                                             std::chrono::seconds(5), 4 * segmenter_.config().segmentTarget)),
      holdFor_(holdFor.count() > 0 ? holdFor
                                   : 3 * std::max<std::chrono::milliseconds>(
                                             std::chrono::seconds(1), segmenter_.config().segmentTarget)) {
  startSegments_ = std::min<size_t>(2, segmenter_.config().windowSegments);
  segmenter_.setOnUpdate([this] { onUpdate(); });
}

HlsOutput::~HlsOutput() { segmenter_.setOnUpdate(nullptr); }

void HlsOutput::setOnViewer(std::function<void()> callback) {
  std::lock_guard lock(callbackMutex_);
  onViewer_ = std::move(callback);
}

bool HlsOutput::watched() const {
  const int64_t last = lastRequestNs_.load();
  return last != 0 && nowNs() - last < std::chrono::nanoseconds(idleAfter_).count();
}

size_t HlsOutput::waiting() const {
  std::lock_guard lock(waitMutex_);
  return waiters_.size();
}

void HlsOutput::publish(const hal::PacketPtr& accessUnit) {
  if (!watched()) {
    segmenter_.reset();  // nobody watches: keep nothing (no-op when already empty)
    return;
  }
  segmenter_.push(accessUnit);
}

HttpResponse HlsOutput::playlistResponse() const {
  HttpResponse r;
  r.contentType = kPlaylistType;
  r.body = segmenter_.playlist();
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

std::optional<HttpResponse> HlsOutput::tryAnswer(const Waiter& w) const {
  if (w.kind == Waiter::Kind::Playlist) {
    // A player joining a fresh stream starts at the playlist's first segment: with two there, it
    // has a segment of buffer instead of playing at the very edge (regular hls.js stalls there).
    if (segmenter_.completeSegments() < startSegments_) return std::nullopt;
    if (!w.msn) return playlistResponse();
    switch (segmenter_.check(*w.msn, w.part)) {
      case hls::Directive::Ready: return playlistResponse();
      case hls::Directive::TooFar:
        return HttpResponse::error(
            400, w.part
                     ? fmt::format("_HLS_msn={}&_HLS_part={} is too far past the live edge", *w.msn, *w.part)
                     : fmt::format("_HLS_msn={} is more than two segments past the live edge", *w.msn));
      case hls::Directive::Wait: return std::nullopt;
    }
    return std::nullopt;
  }
  hls::Resource resource;
  switch (segmenter_.find(w.name, resource)) {
    case hls::Lookup::Found: return resourceResponse(resource);
    case hls::Lookup::Pending: return std::nullopt;
    case hls::Lookup::Gone: return HttpResponse::error(404, w.name + " has left the live window");
    case hls::Lookup::NoSuch: return HttpResponse::error(404, "no such HLS resource: " + w.name);
  }
  return std::nullopt;
}

HttpResponse HlsOutput::hold(Waiter waiter) {
  std::lock_guard lock(waitMutex_);
  // Evaluated under waitMutex_: an update published meanwhile either is seen here or finds the
  // waiter in the list (onUpdate takes the same lock).
  if (auto ready = tryAnswer(waiter)) return std::move(*ready);
  HttpResponse r;
  r.deferred = std::make_shared<DeferredResponse>();
  waiter.response = r.deferred;
  waiter.since = hal::Clock::now();
  waiters_.push_back(std::move(waiter));
  return r;
}

void HlsOutput::onUpdate() {
  std::vector<std::pair<std::shared_ptr<DeferredResponse>, HttpResponse>> answers;
  {
    std::lock_guard lock(waitMutex_);
    std::erase_if(waiters_, [&](const Waiter& w) {
      auto ready = tryAnswer(w);
      if (!ready) return false;
      answers.emplace_back(w.response, std::move(*ready));
      return true;
    });
  }
  for (auto& [response, answer] : answers) response->complete(std::move(answer));
}

void HlsOutput::expire() {
  std::vector<Waiter> expired;
  {
    std::lock_guard lock(waitMutex_);
    const auto now = hal::Clock::now();
    std::erase_if(waiters_, [&](Waiter& w) {
      // The first playlist of a fresh stream waits for its first segments on top of that.
      const bool first = w.kind == Waiter::Kind::Playlist && !w.msn;
      if (now - w.since <
          holdFor_ +
              (first ? static_cast<int64_t>(startSegments_) * segmenter_.config().segmentTarget : 0ms)) {
        return false;
      }
      expired.push_back(std::move(w));
      return true;
    });
  }
  for (auto& w : expired) {
    w.response->complete(HttpResponse::error(
        503, fmt::format("{} not available within {} ms",
                         w.kind == Waiter::Kind::Playlist ? std::string("playlist update") : w.name,
                         holdFor_.count())));
  }
}

void HlsOutput::closeAll(const std::string& reason) {
  std::vector<Waiter> all;
  {
    std::lock_guard lock(waitMutex_);
    all.swap(waiters_);
  }
  for (auto& w : all) w.response->complete(HttpResponse::error(503, reason));
  lastRequestNs_ = 0;
  segmenter_.reset();
}

HttpResponse HlsOutput::handle(const HttpRequest& request, std::string_view name) {
  if (request.method != "GET" && request.method != "HEAD") return HttpResponse::error(405, "use GET");
  ++requests_;
  const int64_t now = nowNs();
  const int64_t previous = lastRequestNs_.exchange(now);
  if (previous == 0 || now - previous >= std::chrono::nanoseconds(idleAfter_).count()) {
    std::function<void()> viewer;
    {
      std::lock_guard lock(callbackMutex_);
      viewer = onViewer_;
    }
    if (viewer) viewer();
  }
  Waiter w;
  if (name == "stream.m3u8") {
    w.kind = Waiter::Kind::Playlist;
    const std::string msn = request.arg("_HLS_msn");
    const std::string part = request.arg("_HLS_part");
    if (!msn.empty() || request.query.count("_HLS_msn") != 0) {
      w.msn = hls::parseIndex(msn);
      if (!w.msn)
        return HttpResponse::error(400, "_HLS_msn must be a non-negative integer, got '" + msn + "'");
    }
    if (!part.empty() || request.query.count("_HLS_part") != 0) {
      if (!w.msn) return HttpResponse::error(400, "_HLS_part needs _HLS_msn (rfc8216bis 6.2.5.2)");
      w.part = hls::parseIndex(part);
      if (!w.part)
        return HttpResponse::error(400, "_HLS_part must be a non-negative integer, got '" + part + "'");
      if (segmenter_.config().partTarget.count() == 0) {
        return HttpResponse::error(400,
                                   "_HLS_part: this playlist has no partial segments (hls_part_seconds = 0)");
      }
    }
    return hold(std::move(w));
  }
  w.kind = Waiter::Kind::Resource;
  w.name = std::string(name);
  return hold(std::move(w));
}

}  // namespace printcast::transport
