// SPDX-License-Identifier: MIT
// WsStream: one WebSocket binary message per H.264 access unit, optional timestamp trailer.
#include "printcast/transport/ws_stream.h"

#include <algorithm>
#include <chrono>

#include "printcast/codecs/h264.h"
#include "printcast/transport/websocket.h"

namespace printcast::transport {
namespace {

constexpr uint8_t kStartCode[] = {0, 0, 0, 1};

// SPS and PPS from `config` as Annex-B, when `accessUnit` is an IDR without them in front.
std::vector<uint8_t> missingParameterSets(const hal::Packet& accessUnit) {
  if (!accessUnit.keyframe || !accessUnit.config) return {};
  bool haveSps = false;
  bool havePps = false;
  for (const auto& nal : codecs::h264::nalUnits(accessUnit)) {
    haveSps = haveSps || nal.type() == codecs::h264::kSps;
    havePps = havePps || nal.type() == codecs::h264::kPps;
    if (nal.type() == codecs::h264::kIdrSlice || nal.type() == codecs::h264::kNonIdrSlice) break;
  }
  if (haveSps && havePps) return {};
  std::vector<uint8_t> out;
  for (const auto* nal : {&accessUnit.config->sps, &accessUnit.config->pps}) {
    if (nal->empty()) continue;
    out.insert(out.end(), std::begin(kStartCode), std::end(kStartCode));
    out.insert(out.end(), nal->begin(), nal->end());
  }
  return out;
}

}  // namespace

uint64_t WsStream::wallClockMs(hal::Timestamp pts) {
  using namespace std::chrono;
  const auto age = duration_cast<milliseconds>(hal::Clock::now() - pts);
  const auto wall = duration_cast<milliseconds>(system_clock::now().time_since_epoch()) - age;
  return static_cast<uint64_t>(std::max<int64_t>(0, wall.count()));
}

WireUnit WsStream::message(const hal::PacketPtr& accessUnit, std::optional<uint64_t> trailerMs) {
  std::vector<uint8_t> parameterSets = missingParameterSets(*accessUnit);
  const uint64_t size = parameterSets.size() + accessUnit->data.size() + (trailerMs ? 8 : 0);
  WireUnit unit;
  unit.keyframe = accessUnit->keyframe;
  unit.chunks.push_back(ownedChunk(ws::frameHeader(ws::Opcode::Binary, size)));
  if (!parameterSets.empty()) unit.chunks.push_back(ownedChunk(std::move(parameterSets)));
  unit.chunks.push_back(packetChunk(accessUnit));
  if (trailerMs) {
    std::vector<uint8_t> trailer(8);
    for (size_t i = 0; i < 8; ++i) trailer[i] = static_cast<uint8_t>(*trailerMs >> (8 * i));
    unit.chunks.push_back(ownedChunk(std::move(trailer)));
  }
  return unit;
}

std::shared_ptr<ClientQueue> WsStream::subscribe(bool timestampTrailer, QueueLimits limits) {
  // Registered before the client is visible to publish(), so its first message has the right form.
  auto queue = std::make_shared<ClientQueue>(DropPolicy::UntilKeyframe, limits);
  std::function<void()> notify;
  {
    std::lock_guard lock(mutex_);
    if (timestampTrailer) {
      trailer_.insert(queue.get());
    } else {
      trailer_.erase(queue.get());  // a stale entry from a freed queue at the same address
    }
    clients_.push_back(Client{queue, false, {}, nullptr});
    notify = onSubscribe_;
  }
  if (notify) notify();
  return queue;
}

void WsStream::publish(const hal::PacketPtr& accessUnit) {
  std::optional<WireUnit> plain;
  std::optional<WireUnit> withTrailer;
  std::lock_guard lock(mutex_);
  if (trailer_.size() > clients_.size()) {  // forget clients that unsubscribed
    std::erase_if(trailer_, [&](const ClientQueue* q) {
      return std::none_of(clients_.begin(), clients_.end(),
                          [q](const Client& c) { return c.queue.get() == q; });
    });
  }
  for (auto& c : clients_) {
    if (!c.started) {
      if (!accessUnit->keyframe) continue;  // every client starts on an IDR
      c.started = true;
      c.firstPts = accessUnit->pts;
    }
    const bool trailer = trailer_.count(c.queue.get()) != 0;
    auto& unit = trailer ? withTrailer : plain;
    if (!unit)
      unit = message(accessUnit, trailer ? std::optional(wallClockMs(accessUnit->pts)) : std::nullopt);
    c.queue->push(*unit);
  }
}

}  // namespace printcast::transport
