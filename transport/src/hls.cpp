// SPDX-License-Identifier: MIT
// HLS segmenter: access units -> fMP4 or MPEG-TS segments and parts, and the media playlist.
#include "printcast/transport/hls.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>

#include <fmt/format.h>

#include "printcast/codecs/h264.h"
#include "printcast/transport/mp4.h"

namespace printcast::transport::hls {
namespace {

constexpr uint32_t kTimescale = 90000;

uint64_t ticksOf(std::chrono::milliseconds d) { return static_cast<uint64_t>(d.count()) * kTimescale / 1000; }

double seconds(uint64_t ticks) { return static_cast<double>(ticks) / kTimescale; }

std::string isoTime(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms % 1000);
}

std::chrono::system_clock::time_point wallClockOf(hal::Timestamp pts) {
  return std::chrono::system_clock::now() -
         std::chrono::duration_cast<std::chrono::system_clock::duration>(hal::Clock::now() - pts);
}

// "<prefix><number><suffix>" -> number.
std::optional<uint64_t> numberBetween(std::string_view s, std::string_view prefix, std::string_view suffix) {
  if (s.size() <= prefix.size() + suffix.size() || s.substr(0, prefix.size()) != prefix ||
      s.substr(s.size() - suffix.size()) != suffix) {
    return std::nullopt;
  }
  return parseIndex(s.substr(prefix.size(), s.size() - prefix.size() - suffix.size()));
}

}  // namespace

std::optional<uint64_t> parseIndex(std::string_view text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

Segmenter::Segmenter(Config config) : config_(std::move(config)) {
  config_.windowSegments = std::max<size_t>(1, config_.windowSegments);
  if (config_.streamToken.empty()) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    config_.streamToken = fmt::format("{:08x}", static_cast<uint32_t>(ms));
  }
  targetDurationS_ = std::max(1, static_cast<int>(std::ceil(config_.segmentTarget.count() / 1000.0)));
}

void Segmenter::setOnUpdate(std::function<void()> callback) {
  std::lock_guard lock(mutex_);
  onUpdate_ = std::move(callback);
}

uint64_t Segmenter::estimateTicksLocked() const {
  // The last access unit's interval; before there is one, a 30 fps guess.
  return lastIntervalTicks_ > 0 ? lastIntervalTicks_ : kTimescale / 30;
}

uint64_t Segmenter::currentMsnLocked() const { return segments_.empty() ? nextMsn_ : segments_.back().msn; }

bool Segmenter::keyframeDue() const {
  std::lock_guard lock(mutex_);
  if (!started_) return true;  // waiting for an IDR to start the (next) segment
  if (segments_.empty()) return false;
  const uint64_t est = estimateTicksLocked();
  const uint64_t nextTicks = lastTicks_ + est;
  return nextTicks - segments_.back().startTicks + est / 2 >= ticksOf(config_.segmentTarget);
}

bool Segmenter::startSegmentLocked(const hal::Packet& idr, uint64_t ticks) {
  bool discontinuity = discontinuityNext_;
  if (!config264_ || !idr.config || !(*config264_ == *idr.config) || initVersion_ == 0) {
    std::shared_ptr<const hal::CodecConfig> cfg = idr.config;
    if (!cfg) {
      auto extracted = codecs::h264::extractCodecConfig(idr.data);
      if (!extracted) return false;  // an IDR without parameter sets anywhere: cannot start here
      cfg = std::make_shared<const hal::CodecConfig>(std::move(*extracted));
    }
    if (!config264_ || !(*config264_ == *cfg)) {
      if (config_.format == Format::Fmp4) {
        auto track = mp4::trackInfo(*cfg, kTimescale);
        if (!track) return false;
        inits_[initVersion_ + 1] = std::make_shared<const std::vector<uint8_t>>(mp4::initSegment(*track));
      }
      if (config264_) discontinuity = true;  // new parameter sets: a new decoder configuration
      ++initVersion_;
      config264_ = std::move(cfg);
    }
  }
  Segment s;
  s.msn = nextMsn_++;
  s.initVersion = initVersion_;
  s.discontinuity = discontinuity;
  s.startTicks = ticks;
  s.wallStart = wallClockOf(idr.pts);
  segments_.push_back(std::move(s));
  discontinuityNext_ = false;
  started_ = true;
  return true;
}

void Segmenter::closePartLocked(uint64_t endTicks) {
  if (pending_.empty() || segments_.empty()) return;
  auto bytes = std::make_shared<std::vector<uint8_t>>();
  if (config_.format == Format::Fmp4) {
    std::vector<std::vector<uint8_t>> data;
    std::vector<mp4::Sample> samples;
    data.reserve(pending_.size());
    samples.reserve(pending_.size());
    for (size_t i = 0; i < pending_.size(); ++i) {
      data.push_back(
          codecs::h264::annexBToLengthPrefixed(codecs::h264::nalUnits(*pending_[i].accessUnit), true));
      const uint64_t next = i + 1 < pending_.size() ? pending_[i + 1].ticks : endTicks;
      samples.push_back(mp4::Sample{static_cast<uint32_t>(data.back().size()),
                                    static_cast<uint32_t>(next - pending_[i].ticks),
                                    pending_[i].accessUnit->keyframe});
    }
    *bytes = mp4::fragmentHeader(fragmentSequence_++, pending_.front().ticks, samples);
    size_t total = bytes->size();
    for (const auto& d : data) total += d.size();
    bytes->reserve(total);  // exactly: a window holds segments, not vector growth slack
    for (const auto& d : data) bytes->insert(bytes->end(), d.begin(), d.end());
  } else {
    // Reserved to a bound of what the muxer writes (each access unit with its PES header, AUD
    // and any SPS/PPS it inserts, 128 bytes at most for camera parameter sets, in 184-byte
    // payloads of 188-byte packets, plus one packet for the rest): a window holds segments, not
    // vector growth slack (a parameter set beyond the bound only costs a reallocation).
    size_t bound = 0;
    for (const auto& p : pending_) bound += (p.accessUnit->data.size() + 128) / 184 * 188 + 2 * 188;
    *bytes = tsMuxer_.programTables();
    bytes->reserve(bytes->size() + bound);
    for (const auto& p : pending_) tsMuxer_.writeAccessUnit(*p.accessUnit, p.ticks, *bytes);
  }
  Segment& seg = segments_.back();
  Part part;
  part.durationTicks = endTicks - pending_.front().ticks;
  part.independent = pending_.front().accessUnit->keyframe;
  seg.bytes += bytes->size();
  bytes_ += bytes->size();
  part.bytes = std::move(bytes);
  seg.parts.push_back(std::move(part));
  ++partsProduced_;
  pending_.clear();
}

void Segmenter::closeSegmentLocked() {
  if (segments_.empty() || segments_.back().complete) return;
  Segment& seg = segments_.back();
  seg.complete = true;
  seg.durationTicks = 0;
  for (const auto& p : seg.parts) seg.durationTicks += p.durationTicks;
  ++segmentsProduced_;
  // EXTINF rounded to the nearest integer must not exceed the target duration (RFC 8216
  // 4.3.3.1): a segment that ran long (no IDR in time) raises it for good.
  targetDurationS_ = std::max(targetDurationS_, static_cast<int>(std::lround(seconds(seg.durationTicks))));
  trimLocked();
}

void Segmenter::trimLocked() {
  auto completeCount = [this] {
    return static_cast<size_t>(
        std::count_if(segments_.begin(), segments_.end(), [](const Segment& s) { return s.complete; }));
  };
  // Drop the oldest complete segments beyond the window or the byte budget; the newest complete
  // one and the one in progress always stay.
  while (!segments_.empty() && segments_.front().complete && completeCount() > 1 &&
         (completeCount() > config_.windowSegments || bytes_ > config_.maxBytes)) {
    if (segments_.front().discontinuity) ++discontinuitySequence_;
    bytes_ -= segments_.front().bytes;
    segments_.pop_front();
  }
  mediaSequence_ = segments_.empty() ? nextMsn_ : segments_.front().msn;
  // Init segments no segment refers to any more.
  const uint32_t oldest = segments_.empty() ? initVersion_ : segments_.front().initVersion;
  for (auto it = inits_.begin(); it != inits_.end();)
    it = it->first < oldest ? inits_.erase(it) : std::next(it);
}

void Segmenter::push(const hal::PacketPtr& accessUnit) {
  if (!accessUnit || accessUnit->codec != hal::fourcc::kH264) return;
  std::function<void()> notify;
  {
    std::lock_guard lock(mutex_);
    if (!haveOrigin_) {
      if (!accessUnit->keyframe) {
        ++dropped_;
        return;
      }
      origin_ = accessUnit->pts;
      haveOrigin_ = true;
    }
    uint64_t ticks = mp4::ticksFromNs(
        std::chrono::duration_cast<std::chrono::nanoseconds>(accessUnit->pts - origin_).count(), kTimescale);
    if (started_ && ticks <= lastTicks_) ticks = lastTicks_ + 1;  // strictly increasing decode times
    if (!started_) {
      if (!accessUnit->keyframe || !startSegmentLocked(*accessUnit, ticks)) {
        ++dropped_;
        return;
      }
      lastIntervalTicks_ = 0;
      if (ticks <= lastTicks_ && segmentsProduced_ > 0) ticks = lastTicks_ + 1;
      segments_.back().startTicks = ticks;
    } else {
      const uint64_t est = estimateTicksLocked();
      const Segment& seg = segments_.back();
      const bool newConfig =
          accessUnit->keyframe && accessUnit->config && config264_ && !(*accessUnit->config == *config264_);
      const bool segmentDone = accessUnit->keyframe && (newConfig || ticks - seg.startTicks + est / 2 >=
                                                                         ticksOf(config_.segmentTarget));
      const uint64_t partTicks = ticksOf(config_.partTarget);
      const bool partDone =
          partTicks > 0 && !pending_.empty() && ticks - pending_.front().ticks + est * 9 / 10 > partTicks;
      lastIntervalTicks_ = ticks - lastTicks_;
      if (segmentDone) {
        closePartLocked(ticks);
        closeSegmentLocked();
        if (!startSegmentLocked(*accessUnit, ticks)) {
          started_ = false;
          ++dropped_;
          notify = onUpdate_;
        }
        notify = onUpdate_;
      } else if (partDone) {
        closePartLocked(ticks);
        notify = onUpdate_;
      }
    }
    if (started_) {
      pending_.push_back(Pending{accessUnit, ticks});
      // A source that sends no IDR (an H.264 camera ignoring keyframe requests with a very long
      // GOP) must not grow the segment in progress without bound: close it as it is, drop access
      // units until the next IDR and mark the gap as a discontinuity.
      const Segment& seg = segments_.back();
      size_t pendingBytes = 0;
      for (const auto& p : pending_) pendingBytes += p.accessUnit->data.size();
      const uint64_t maxTicks = std::max(4 * ticksOf(config_.segmentTarget), uint64_t{10} * kTimescale);
      if (ticks - seg.startTicks >= maxTicks || seg.bytes + pendingBytes > config_.maxBytes / 2) {
        pending_.pop_back();
        closePartLocked(ticks);
        if (segments_.back().parts.empty()) {  // one huge access unit: nothing was published
          segments_.pop_back();
          --nextMsn_;
        } else {
          closeSegmentLocked();
        }
        started_ = false;
        discontinuityNext_ = true;
        ++dropped_;
        notify = onUpdate_;
      }
    }
    lastTicks_ = ticks;
  }
  if (notify) notify();
}

void Segmenter::reset() {
  std::function<void()> notify;
  {
    std::lock_guard lock(mutex_);
    if (!started_ && segments_.empty()) return;
    if (!segments_.empty())
      discontinuitySequence_ += static_cast<uint64_t>(std::count_if(
          segments_.begin(), segments_.end(), [](const Segment& s) { return s.discontinuity; }));
    segments_.clear();
    pending_.clear();
    inits_.clear();
    config264_.reset();  // the next IDR brings a fresh init segment
    bytes_ = 0;
    started_ = false;
    discontinuityNext_ = segmentsProduced_ > 0;
    mediaSequence_ = nextMsn_;
    notify = onUpdate_;
  }
  if (notify) notify();
}

size_t Segmenter::completeSegments() const {
  std::lock_guard lock(mutex_);
  return static_cast<size_t>(
      std::count_if(segments_.begin(), segments_.end(), [](const Segment& s) { return s.complete; }));
}

std::string Segmenter::playlist() const {
  std::lock_guard lock(mutex_);
  const bool anyComplete =
      std::any_of(segments_.begin(), segments_.end(), [](const Segment& s) { return s.complete; });
  if (!anyComplete) return {};
  const bool ll = config_.partTarget.count() > 0;
  // PART-TARGET is an upper bound on part durations (rfc8216bis 4.4.3.7): parts are cut at
  // capture timestamps, which jitter by a few milliseconds, so the advertised bound is 10 % above
  // the configured target the cutting aims at.
  const double partTarget = config_.partTarget.count() * 1.1 / 1000.0;
  const char* ext = segmentExtension();
  const std::string& tok = config_.streamToken;
  std::string out;
  out.reserve(2048);
  out += "#EXTM3U\n#EXT-X-VERSION:6\n";
  out += fmt::format("#EXT-X-TARGETDURATION:{}\n", targetDurationS_);
  out += fmt::format("#EXT-X-MEDIA-SEQUENCE:{}\n", segments_.front().msn);
  out += fmt::format("#EXT-X-DISCONTINUITY-SEQUENCE:{}\n", discontinuitySequence_);
  out += "#EXT-X-INDEPENDENT-SEGMENTS\n";
  if (ll) {
    // PART-HOLD-BACK: at least twice the part target (rfc8216bis 4.4.3.8); three is the advice.
    out += fmt::format("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3f}\n", 3 * partTarget);
    out += fmt::format("#EXT-X-PART-INF:PART-TARGET={:.3f}\n", partTarget);
  } else {
    out += "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n";
  }
  // Parts are listed for the segments within three target durations of the live edge.
  uint64_t tail = 0;
  size_t partsFrom = segments_.size();
  for (size_t i = segments_.size(); i-- > 0;) {
    partsFrom = i;
    tail += segments_[i].complete ? segments_[i].durationTicks : 0;
    if (tail >= 3 * static_cast<uint64_t>(targetDurationS_) * kTimescale) break;
  }
  uint32_t mapVersion = 0;
  for (size_t i = 0; i < segments_.size(); ++i) {
    const Segment& s = segments_[i];
    if (!s.complete && (!ll || s.parts.empty())) continue;
    if (s.discontinuity) out += "#EXT-X-DISCONTINUITY\n";
    if (config_.format == Format::Fmp4 && s.initVersion != mapVersion) {
      out += fmt::format("#EXT-X-MAP:URI=\"{}/init-{}.mp4\"\n", tok, s.initVersion);
      mapVersion = s.initVersion;
    }
    out += fmt::format("#EXT-X-PROGRAM-DATE-TIME:{}\n", isoTime(s.wallStart));
    if (ll && i >= partsFrom) {
      for (size_t p = 0; p < s.parts.size(); ++p) {
        out += fmt::format("#EXT-X-PART:DURATION={:.5f},URI=\"{}/part-{}.{}.{}\"{}\n",
                           seconds(s.parts[p].durationTicks), tok, s.msn, p, ext,
                           s.parts[p].independent ? ",INDEPENDENT=YES" : "");
      }
    }
    if (s.complete)
      out += fmt::format("#EXTINF:{:.5f},\n{}/seg-{}.{}\n", seconds(s.durationTicks), tok, s.msn, ext);
  }
  if (ll && started_ && !segments_.empty() && !segments_.back().complete) {
    const Segment& s = segments_.back();
    out += fmt::format("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}/part-{}.{}.{}\"\n", tok, s.msn, s.parts.size(),
                       ext);
  }
  return out;
}

Lookup Segmenter::find(std::string_view name, Resource& out) const {
  const std::string prefix = config_.streamToken + "/";
  if (name.substr(0, prefix.size()) != prefix) {
    const auto slash = name.find('/');
    return slash != std::string_view::npos ? Lookup::Gone : Lookup::NoSuch;  // another stream's
  }
  name.remove_prefix(prefix.size());
  const std::string ext = std::string(".") + segmentExtension();
  std::lock_guard lock(mutex_);
  const uint64_t first = segments_.empty() ? nextMsn_ : segments_.front().msn;
  auto segmentAt = [&](uint64_t msn) -> const Segment* {
    if (segments_.empty() || msn < segments_.front().msn || msn > segments_.back().msn) return nullptr;
    return &segments_[static_cast<size_t>(msn - segments_.front().msn)];
  };
  if (auto v = numberBetween(name, "init-", ".mp4")) {
    if (config_.format != Format::Fmp4) return Lookup::NoSuch;
    auto it = inits_.find(static_cast<uint32_t>(*v));
    if (it == inits_.end()) return *v <= initVersion_ ? Lookup::Gone : Lookup::NoSuch;
    out.chunks = {WireChunk{it->second, {it->second->data(), it->second->size()}}};
    out.size = it->second->size();
    out.contentType = "video/mp4";
    return Lookup::Found;
  }
  const std::string type = config_.format == Format::Fmp4 ? "video/mp4" : "video/mp2t";
  if (auto msn = numberBetween(name, "seg-", ext)) {
    if (*msn < first) return Lookup::Gone;
    const Segment* s = segmentAt(*msn);
    if (s == nullptr) return Lookup::NoSuch;
    if (!s->complete) return Lookup::Pending;
    out.chunks.clear();
    out.size = 0;
    for (const auto& p : s->parts) {
      out.chunks.push_back(WireChunk{p.bytes, {p.bytes->data(), p.bytes->size()}});
      out.size += p.bytes->size();
    }
    out.contentType = type;
    return Lookup::Found;
  }
  if (name.substr(0, 5) == "part-" && name.size() > ext.size() &&
      name.substr(name.size() - ext.size()) == ext) {
    const std::string_view body = name.substr(5, name.size() - 5 - ext.size());
    const auto dot = body.find('.');
    if (dot == std::string_view::npos) return Lookup::NoSuch;
    const auto msn = parseIndex(body.substr(0, dot));
    const auto index = parseIndex(body.substr(dot + 1));
    if (!msn || !index) return Lookup::NoSuch;
    if (*msn < first) return Lookup::Gone;
    const Segment* s = segmentAt(*msn);
    if (s == nullptr) return Lookup::NoSuch;
    if (*index < s->parts.size()) {
      const Part& p = s->parts[static_cast<size_t>(*index)];
      out.chunks = {WireChunk{p.bytes, {p.bytes->data(), p.bytes->size()}}};
      out.size = p.bytes->size();
      out.contentType = type;
      return Lookup::Found;
    }
    // The preload hint: the next part of the segment in progress.
    if (!s->complete && *index == s->parts.size()) return Lookup::Pending;
    return Lookup::NoSuch;
  }
  return Lookup::NoSuch;
}

Directive Segmenter::check(uint64_t msn, std::optional<uint64_t> part) const {
  std::lock_guard lock(mutex_);
  const uint64_t current = currentMsnLocked();  // the segment in progress (or the next one)
  const bool inProgress = !segments_.empty() && !segments_.back().complete;
  const size_t parts = inProgress ? segments_.back().parts.size() : 0;
  if (msn > current + 2) return Directive::TooFar;
  if (!inProgress) {
    // Nothing is being built (start, reset): anything at or after the next segment waits.
    return msn < nextMsn_ && !segments_.empty() ? Directive::Ready : Directive::Wait;
  }
  if (msn < current) return Directive::Ready;  // that segment is complete (or gone)
  if (msn > current) return Directive::Wait;
  if (!part) return Directive::Wait;  // the segment itself is not complete yet
  if (*part > parts + 3) return Directive::TooFar;
  return *part < parts ? Directive::Ready : Directive::Wait;
}

Segmenter::Stats Segmenter::stats() const {
  std::lock_guard lock(mutex_);
  Stats s;
  s.mediaSequence = segments_.empty() ? nextMsn_ : segments_.front().msn;
  s.segmentsProduced = segmentsProduced_;
  s.partsProduced = partsProduced_;
  s.segments = static_cast<size_t>(
      std::count_if(segments_.begin(), segments_.end(), [](const Segment& x) { return x.complete; }));
  s.bytes = bytes_;
  s.discontinuities = discontinuitySequence_;
  s.accessUnitsDropped = dropped_;
  s.targetDurationS = targetDurationS_;
  return s;
}

}  // namespace printcast::transport::hls
