// SPDX-License-Identifier: MIT
// Per-client bounded queues and the MJPEG, FLV and fragmented MP4 fan-out streams.
#include "printcast/transport/fanout.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>

#include "printcast/codecs/h264.h"
#include "printcast/transport/flv.h"
#include "printcast/transport/mjpeg.h"
#include "printcast/transport/mp4.h"

namespace printcast::transport {

size_t WireUnit::size() const {
  size_t n = 0;
  for (const auto& c : chunks) n += c.bytes.size();
  return n;
}

WireChunk ownedChunk(std::string bytes) {
  auto owner = std::make_shared<const std::string>(std::move(bytes));
  return WireChunk{owner, {reinterpret_cast<const uint8_t*>(owner->data()), owner->size()}};
}

WireChunk ownedChunk(std::vector<uint8_t> bytes) {
  auto owner = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  return WireChunk{owner, {owner->data(), owner->size()}};
}

WireChunk packetChunk(const hal::PacketPtr& packet) {
  return WireChunk{packet, {packet->data.data(), packet->data.size()}};
}

// ---------------------------------------------------------------------------------------------

ClientQueue::ClientQueue(DropPolicy policy, QueueLimits limits) : policy_(policy), limits_(limits) {}

void ClientQueue::setWakeup(std::function<void()> wakeup) {
  std::lock_guard lock(mutex_);
  wakeup_ = std::move(wakeup);
}

void ClientQueue::setDirectSocket(int fd) {
  std::lock_guard lock(mutex_);
  directFd_ = fd;
}

bool ClientQueue::sendFrontLocked() {
  const WireUnit& unit = units_.front();
  std::array<iovec, 16> iov{};
  size_t count = 0;
  for (size_t i = chunkIndex_; i < unit.chunks.size() && count < iov.size(); ++i) {
    const auto& bytes = unit.chunks[i].bytes;
    const size_t skip = i == chunkIndex_ ? chunkOffset_ : 0;
    if (bytes.size() == skip) continue;
    iov[count].iov_base = const_cast<uint8_t*>(bytes.data() + skip);  // NOLINT: sendmsg does not write
    iov[count].iov_len = bytes.size() - skip;
    ++count;
  }
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = count;
  const ssize_t sent = ::sendmsg(directFd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  // EAGAIN (the viewer is behind), or an error: the reader's own send sees it and ends the
  // connection.
  if (sent <= 0) return false;
  size_t left = static_cast<size_t>(sent);
  pendingBytes_ -= left;
  stats_.bytesSent += left;
  while (left > 0 && chunkIndex_ < unit.chunks.size()) {
    const size_t n = std::min(left, unit.chunks[chunkIndex_].bytes.size() - chunkOffset_);
    left -= n;
    chunkOffset_ += n;
    if (chunkOffset_ == unit.chunks[chunkIndex_].bytes.size()) {
      ++chunkIndex_;
      chunkOffset_ = 0;
    }
  }
  while (chunkIndex_ < unit.chunks.size() && unit.chunks[chunkIndex_].bytes.empty()) ++chunkIndex_;
  if (chunkIndex_ < unit.chunks.size()) return false;  // a partial send: the reader sends the rest
  units_.pop_front();
  chunkIndex_ = 0;
  chunkOffset_ = 0;
  return true;
}

bool ClientQueue::dropLocked() {
  // Candidates: units not started yet (all but a partly sent front unit) and not essential.
  const bool frontStarted = !units_.empty() && (chunkIndex_ != 0 || chunkOffset_ != 0);
  const auto first = units_.begin() + (frontStarted ? 1 : 0);
  auto droppable = [](const WireUnit& u) { return !u.essential; };
  if (policy_ == DropPolicy::UntilKeyframe) {
    for (auto it = first; it != units_.end();) {
      if (droppable(*it)) {
        pendingBytes_ -= it->size();
        ++stats_.unitsDropped;
        it = units_.erase(it);
      } else {
        ++it;
      }
    }
    waitKeyframe_ = true;
    return true;
  }
  const auto victim = std::find_if(first, units_.end(), droppable);
  if (victim != units_.end()) {
    pendingBytes_ -= victim->size();
    ++stats_.unitsDropped;
    units_.erase(victim);
    return true;
  }
  return false;
}

void ClientQueue::push(WireUnit unit) {
  std::function<void()> wake;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    if (unit.essential) {
      // Preambles bypass limits and keyframe waiting: without them nothing after can play.
    } else if (waitKeyframe_) {
      if (!unit.keyframe) {
        ++stats_.unitsDropped;
        return;
      }
      waitKeyframe_ = false;
    }
    const size_t size = unit.size();
    auto full = [&] { return units_.size() >= limits_.maxUnits || pendingBytes_ + size > limits_.maxBytes; };
    if (!unit.essential && !units_.empty() && full()) {
      if (policy_ == DropPolicy::UntilKeyframe) {
        dropLocked();
        if (!unit.keyframe) {
          ++stats_.unitsDropped;
          return;
        }
        waitKeyframe_ = false;
      } else {
        while (full() && dropLocked()) {
        }
        if (full() && !units_.empty()) {
          ++stats_.unitsDropped;  // only unsendable units left: the incoming frame goes
          return;
        }
      }
    }
    pendingBytes_ += size;
    units_.push_back(std::move(unit));
    ++stats_.unitsQueued;
    if (parked_) {
      // Parked: nothing else waits, and the reader's connection is suspended. Written here when
      // the socket takes it all; else the reader is woken for the rest.
      if (directFd_ >= 0 && readerSent_ && units_.size() == 1 && sendFrontLocked()) return;
      parked_ = false;
      wake = wakeup_;
    }
  }
  // Outside the lock: the parked connection stays suspended until this call, so it is alive.
  if (wake) wake();
}

void ClientQueue::close() {
  std::function<void()> wake;
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    if (parked_) {
      parked_ = false;
      wake = wakeup_;
    }
  }
  if (wake) wake();
}

size_t ClientQueue::read(uint8_t* dst, size_t max, const std::function<void()>& park) {
  std::lock_guard lock(mutex_);
  size_t written = 0;
  while (written < max && !units_.empty()) {
    WireUnit& unit = units_.front();
    if (chunkIndex_ >= unit.chunks.size()) {
      units_.pop_front();
      chunkIndex_ = 0;
      chunkOffset_ = 0;
      continue;
    }
    const auto& bytes = unit.chunks[chunkIndex_].bytes;
    const size_t n = std::min(max - written, bytes.size() - chunkOffset_);
    std::memcpy(dst + written, bytes.data() + chunkOffset_, n);
    written += n;
    chunkOffset_ += n;
    pendingBytes_ -= n;
    if (chunkOffset_ == bytes.size()) {
      ++chunkIndex_;
      chunkOffset_ = 0;
    }
  }
  if (!units_.empty() && chunkIndex_ >= units_.front().chunks.size()) {
    units_.pop_front();
    chunkIndex_ = 0;
    chunkOffset_ = 0;
  }
  stats_.bytesSent += written;
  if (written > 0) {
    readerSent_ = true;
    return written;
  }
  if (closed_) return kEnd;
  parked_ = true;
  if (park) park();
  return 0;
}

QueueStats ClientQueue::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

size_t ClientQueue::pendingBytes() const {
  std::lock_guard lock(mutex_);
  return pendingBytes_;
}

// ---------------------------------------------------------------------------------------------

size_t Fanout::clientCount() const {
  std::lock_guard lock(mutex_);
  return clients_.size();
}

void Fanout::setOnSubscribe(std::function<void()> callback) {
  std::lock_guard lock(mutex_);
  onSubscribe_ = std::move(callback);
}

std::shared_ptr<ClientQueue> Fanout::addClient(DropPolicy policy, QueueLimits limits,
                                               const std::function<void(Client&)>& setup) {
  auto queue = std::make_shared<ClientQueue>(policy, limits);
  std::function<void()> notify;
  {
    std::lock_guard lock(mutex_);
    Client client;
    client.queue = queue;
    if (setup) setup(client);
    clients_.push_back(std::move(client));
    notify = onSubscribe_;
  }
  if (notify) notify();
  return queue;
}

void Fanout::unsubscribe(const std::shared_ptr<ClientQueue>& queue) {
  std::lock_guard lock(mutex_);
  std::erase_if(clients_, [&](const Client& c) { return c.queue == queue; });
}

void Fanout::closeAll() {
  std::vector<std::shared_ptr<ClientQueue>> queues;
  {
    std::lock_guard lock(mutex_);
    for (auto& c : clients_) queues.push_back(c.queue);
  }
  for (auto& q : queues) q->close();
}

QueueStats Fanout::totals() const {
  std::lock_guard lock(mutex_);
  QueueStats t;
  for (const auto& c : clients_) {
    const QueueStats s = c.queue->stats();
    t.unitsQueued += s.unitsQueued;
    t.unitsDropped += s.unitsDropped;
    t.bytesSent += s.bytesSent;
  }
  return t;
}

// ---------------------------------------------------------------------------------------------

std::shared_ptr<ClientQueue> MjpegStream::subscribe(mjpeg::Framing framing, QueueLimits limits) {
  // The preamble is queued before the client is visible to publish(), so it always comes first.
  return addClient(DropPolicy::Oldest, limits, [framing](Client& c) {
    c.advanceHeaders = framing == mjpeg::Framing::AdvanceHeaders;
    WireUnit preamble;
    preamble.essential = true;
    preamble.chunks.push_back(
        ownedChunk(mjpeg::preamble() + (c.advanceHeaders ? mjpeg::advancePartHeader() : "")));
    c.queue->push(std::move(preamble));
  });
}

void MjpegStream::publish(const hal::PacketPtr& jpeg) {
  static const WireChunk kTrailer = ownedChunk(mjpeg::partTrailer());
  static const WireChunk kTrailerAndNextHeader =
      ownedChunk(mjpeg::partTrailer() + mjpeg::advancePartHeader());
  std::optional<WireUnit> withLength;   // Framing::ContentLength: headers, JPEG, boundary
  std::optional<WireUnit> withAdvance;  // Framing::AdvanceHeaders: JPEG, boundary, next headers
  std::lock_guard lock(mutex_);
  for (auto& c : clients_) {
    std::optional<WireUnit>& unit = c.advanceHeaders ? withAdvance : withLength;
    if (!unit) {
      unit.emplace();
      unit->keyframe = true;
      if (!c.advanceHeaders)
        unit->chunks.push_back(ownedChunk(mjpeg::partHeader(jpeg->data.size(), jpeg->pts)));
      unit->chunks.push_back(packetChunk(jpeg));
      unit->chunks.push_back(c.advanceHeaders ? kTrailerAndNextHeader : kTrailer);
    }
    c.queue->push(*unit);
  }
}

// ---------------------------------------------------------------------------------------------

std::shared_ptr<ClientQueue> FlvStream::subscribe(QueueLimits limits) {
  return addClient(DropPolicy::UntilKeyframe, limits);
}

void FlvStream::publish(const hal::PacketPtr& accessUnit) {
  // Nobody to convert for (the other H.264 outputs are why the access unit came).
  if (clientCount() == 0) return;
  // Converted once and shared by every client: the payload is never copied per client.
  auto payload = std::make_shared<const std::vector<uint8_t>>(
      codecs::h264::annexBToLengthPrefixed(codecs::h264::nalUnits(*accessUnit), /*dropParameterSets=*/true));
  const WireChunk payloadChunk{payload, {payload->data(), payload->size()}};

  std::lock_guard lock(mutex_);
  for (auto& c : clients_) {
    if (!c.started) {
      // Every client starts on an IDR, with the FLV header and its own sequence header.
      if (!accessUnit->keyframe || !accessUnit->config) continue;
      auto record = codecs::h264::avcDecoderConfigurationRecord(*accessUnit->config);
      if (!record) continue;
      std::vector<uint8_t> head = flv::fileHeader();
      const auto meta = flv::metadataTag(accessUnit->size, fps_);
      head.insert(head.end(), meta.begin(), meta.end());
      const auto seq = flv::avcSequenceHeaderTag(*record, 0);
      head.insert(head.end(), seq.begin(), seq.end());
      WireUnit preamble;
      preamble.essential = true;
      preamble.chunks.push_back(ownedChunk(std::move(head)));
      c.queue->push(std::move(preamble));
      c.started = true;
      c.firstPts = accessUnit->pts;
      c.codecConfig = accessUnit->config;
    }
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(accessUnit->pts - c.firstPts);
    // FLV timestamps are whole milliseconds and a demuxer wants them strictly increasing
    // (ffmpeg: "non monotonically increasing dts"): two captures less than 1 ms apart (a late
    // frame followed at once by the next under load) get the next millisecond.
    const int64_t ms = std::max<int64_t>({0, elapsed.count(), c.lastTimestampMs + 1});
    c.lastTimestampMs = ms;
    const auto timestampMs = static_cast<uint32_t>(ms);
    auto framing = std::make_shared<const flv::TagFraming>(
        flv::avcNaluTagFraming(payload->size(), timestampMs, accessUnit->keyframe));
    WireUnit unit;
    unit.keyframe = accessUnit->keyframe;
    if (accessUnit->keyframe && accessUnit->config && c.codecConfig &&
        !(*accessUnit->config == *c.codecConfig)) {
      if (auto record = codecs::h264::avcDecoderConfigurationRecord(*accessUnit->config)) {
        unit.chunks.push_back(ownedChunk(flv::avcSequenceHeaderTag(*record, timestampMs)));
        c.codecConfig = accessUnit->config;
      }
    }
    unit.chunks.push_back(WireChunk{framing, {framing->prefix.data(), framing->prefix.size()}});
    unit.chunks.push_back(payloadChunk);
    unit.chunks.push_back(WireChunk{framing, {framing->suffix.data(), framing->suffix.size()}});
    c.queue->push(std::move(unit));
  }
}

// ---------------------------------------------------------------------------------------------

std::shared_ptr<ClientQueue> Fmp4Stream::subscribe(QueueLimits limits) {
  return addClient(DropPolicy::UntilKeyframe, limits);
}

void Fmp4Stream::publish(const hal::PacketPtr& accessUnit) {
  constexpr uint32_t kTimescale = 90000;
  if (accessUnit->keyframe && accessUnit->config && (!config_ || !(*accessUnit->config == *config_))) {
    if (auto track = mp4::trackInfo(*accessUnit->config, kTimescale)) {
      init_ = std::make_shared<const std::vector<uint8_t>>(mp4::initSegment(*track));
      config_ = accessUnit->config;
    }
  }
  // A sample lasts as long as the capture interval before it; tfdt carries the exact time.
  uint32_t duration = lastDuration_;
  if (lastPts_ != hal::Timestamp{} && accessUnit->pts > lastPts_) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(accessUnit->pts - lastPts_).count();
    duration = static_cast<uint32_t>(std::min<uint64_t>(mp4::ticksFromNs(ns, kTimescale), kTimescale * 10));
  }
  if (duration == 0) duration = static_cast<uint32_t>(kTimescale / (fps_ > 0 ? fps_ : 30.0));
  lastPts_ = accessUnit->pts;
  lastDuration_ = duration;
  // Nobody to convert for (the init segment and durations above stay current for the next).
  if (clientCount() == 0) return;

  // Converted once and shared by every client: the payload is never copied per client.
  auto payload = std::make_shared<const std::vector<uint8_t>>(
      codecs::h264::annexBToLengthPrefixed(codecs::h264::nalUnits(*accessUnit), /*dropParameterSets=*/true));
  const WireChunk payloadChunk{payload, {payload->data(), payload->size()}};
  const mp4::Sample sample{static_cast<uint32_t>(payload->size()), duration, accessUnit->keyframe};

  std::lock_guard lock(mutex_);
  for (auto& c : clients_) {
    if (c.ended) continue;
    if (!c.started) {
      if (!accessUnit->keyframe || !init_ || !accessUnit->config || !(*accessUnit->config == *config_))
        continue;
      WireUnit preamble;
      preamble.essential = true;
      preamble.chunks.push_back(WireChunk{init_, {init_->data(), init_->size()}});
      c.queue->push(std::move(preamble));
      c.started = true;
      c.firstPts = accessUnit->pts;
      c.codecConfig = config_;
    } else if (accessUnit->keyframe && c.codecConfig != config_) {
      c.queue->close();  // new parameter sets: this stream cannot carry them
      c.ended = true;
      continue;
    }
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(accessUnit->pts - c.firstPts).count();
    WireUnit unit;
    unit.keyframe = accessUnit->keyframe;
    unit.chunks.push_back(
        ownedChunk(mp4::fragmentHeader(++c.fragments, mp4::ticksFromNs(ns, kTimescale), {&sample, 1})));
    unit.chunks.push_back(payloadChunk);
    c.queue->push(std::move(unit));
  }
}

}  // namespace printcast::transport
