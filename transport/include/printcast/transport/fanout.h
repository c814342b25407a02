// SPDX-License-Identifier: MIT
// Fan-out of encoded frames to many HTTP clients through per-client bounded queues.
//
// One producer thread publishes packets into a stream (MjpegStream, FlvStream); every
// subscribed client gets its own ClientQueue. Payload bytes are shared (a WireChunk holds a
// reference to the packet, never a copy); only the few framing bytes that differ per client
// (FLV tag headers with per-client timestamps) are allocated per client. A queue never blocks
// the producer: when a client does not keep up, whole frames are dropped (MJPEG: the oldest;
// H.264: everything up to the next keyframe, so a decoder never sees a gap) and counted.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "printcast/hal/packet.h"
#include "printcast/transport/mjpeg.h"

namespace printcast::transport {

// A span of bytes plus whatever keeps them alive (a Packet, a shared string...).
struct WireChunk {
  std::shared_ptr<const void> owner;
  std::span<const uint8_t> bytes;
};

// Everything one client is sent for one frame, in order.
struct WireUnit {
  std::vector<WireChunk> chunks;
  bool keyframe = false;
  bool essential = false;  // never dropped (a stream's preamble: FLV header, MJPEG first boundary)
  size_t size() const;
};

// Make a chunk owning a copy of `bytes` (for small per-client or per-frame framing).
WireChunk ownedChunk(std::string bytes);
WireChunk ownedChunk(std::vector<uint8_t> bytes);
// A chunk referencing a packet's payload without copying it.
WireChunk packetChunk(const hal::PacketPtr& packet);

struct QueueLimits {
  size_t maxUnits = 8;         // frames waiting per client
  size_t maxBytes = 8u << 20;  // bytes waiting per client
};

enum class DropPolicy {
  Oldest,         // drop the oldest waiting frame (MJPEG: every frame stands alone)
  UntilKeyframe,  // drop every waiting frame not yet started and all frames until the next
                  // keyframe (H.264: inter frames are useless without their reference)
};

struct QueueStats {
  uint64_t unitsQueued = 0;
  uint64_t unitsDropped = 0;
  uint64_t bytesSent = 0;
};

// A bounded per-client byte queue between the producer thread and the HTTP server thread.
// Thread-safety: push()/close() from the producer, read() from the server; both lock one mutex.
class ClientQueue {
 public:
  ClientQueue(DropPolicy policy, QueueLimits limits);

  // Producer side. Never blocks; drops according to the policy when full. A unit that starts
  // a stream (the first for this client) is never dropped.
  void push(WireUnit unit);
  // No more data will come (stream shut down): read() reports end once drained.
  void close();

  // Server side. Copies up to `max` pending bytes into `dst` and returns how many.
  // When nothing is pending it calls `park` (under the queue lock, so no wake-up is lost)
  // and returns 0; the next push()/close() then calls the wake-up set with setWakeup() once.
  // Returns kEnd when the queue is closed and drained.
  static constexpr size_t kEnd = static_cast<size_t>(-1);
  size_t read(uint8_t* dst, size_t max, const std::function<void()>& park);

  // The callback that resumes a parked reader (MHD_resume_connection). Set before the first
  // read; called from the producer thread with the queue lock held: it must not block.
  void setWakeup(std::function<void()> wakeup);

  // The reader's socket (connected, non-blocking), for the producer to write to while the reader
  // is parked: an HTTP server's suspended connection, whose socket the server leaves alone until
  // it is resumed. A push() to a parked reader then sends the unit straight to `fd` (one sendmsg
  // of its chunks, no copy, no wake-up of the server's thread); whatever the socket does not take
  // at once stays queued and the reader is woken to send it the usual way (and park again once
  // the queue is empty). Only after the reader has sent bytes of its own once: its server has
  // then sent the response headers. -1 (the default): never. The bytes written count in bytesSent.
  // Set before the first read; the fd must stay open while the queue can be pushed to and parked.
  void setDirectSocket(int fd);

  QueueStats stats() const;
  size_t pendingBytes() const;

 private:
  bool dropLocked();  // drop per policy; false when nothing was droppable
  // setDirectSocket(): send the front unit's unsent bytes to the socket; true when all went.
  bool sendFrontLocked();
  mutable std::mutex mutex_;
  DropPolicy policy_;
  QueueLimits limits_;
  std::deque<WireUnit> units_;
  size_t chunkIndex_ = 0;   // in units_.front()
  size_t chunkOffset_ = 0;  // in that chunk
  size_t pendingBytes_ = 0;
  bool waitKeyframe_ = false;
  bool parked_ = false;
  bool closed_ = false;
  std::function<void()> wakeup_;
  int directFd_ = -1;
  bool readerSent_ = false;  // read() has returned bytes once
  QueueStats stats_;
};

// The subscriber list shared by every stream type. Subscribe/unsubscribe from any thread;
// publishing (done by the concrete stream) from one producer thread.
class Fanout {
 public:
  virtual ~Fanout() = default;
  size_t clientCount() const;
  // Called (outside the lock) when a client subscribes: e.g. request a keyframe.
  void setOnSubscribe(std::function<void()> callback);
  void unsubscribe(const std::shared_ptr<ClientQueue>& queue);
  // Close every client's queue (shutdown).
  void closeAll();
  // Totals over current clients.
  QueueStats totals() const;

 protected:
  struct Client {
    std::shared_ptr<ClientQueue> queue;
    bool started = false;                                 // has been sent its stream preamble
    hal::Timestamp firstPts{};                            // pts of the first frame this client got
    std::shared_ptr<const hal::CodecConfig> codecConfig;  // H.264: parameter sets the client has
    uint32_t fragments = 0;                               // fMP4: moof boxes sent (mfhd sequence)
    int64_t lastTimestampMs = -1;                         // FLV: the last tag's timestamp (ms)
    bool ended = false;                                   // its queue was closed: send nothing more
    bool advanceHeaders = false;                          // MJPEG: mjpeg::Framing::AdvanceHeaders
  };
  // `setup` (optional) runs under the lock before publish() can see the client: per-client
  // options and a preamble that must come first.
  std::shared_ptr<ClientQueue> addClient(DropPolicy policy, QueueLimits limits,
                                         const std::function<void(Client&)>& setup = nullptr);
  mutable std::mutex mutex_;
  std::vector<Client> clients_;
  std::function<void()> onSubscribe_;
};

// MJPEG multipart: every client with the same framing (mjpeg::Framing) gets the same bytes per
// frame (headers, JPEG, boundary), built once per framing in use.
class MjpegStream : public Fanout {
 public:
  std::shared_ptr<ClientQueue> subscribe(mjpeg::Framing framing = mjpeg::Framing::ContentLength,
                                         QueueLimits limits = {4, 8u << 20});
  // Publish one JPEG packet (fourcc::kMJPEG).
  void publish(const hal::PacketPtr& jpeg);
};

// FLV (video only, H.264): per client the FLV header, onMetaData and the AVC sequence header,
// starting at a keyframe; tag timestamps are milliseconds since that client's first frame
// (capture times, so skipped frames never make the clock drift). When the SPS/PPS change
// mid-stream (camera replaced, "no signal" encoder), a new sequence header goes out in front of
// the next keyframe. Keyframes are never dropped by the UntilKeyframe policy, so it arrives.
class FlvStream : public Fanout {
 public:
  explicit FlvStream(double nominalFps) : fps_(nominalFps) {}
  std::shared_ptr<ClientQueue> subscribe(QueueLimits limits = {60, 16u << 20});
  // Publish one H.264 access unit (fourcc::kH264, Annex-B, keyframes carry SPS/PPS).
  void publish(const hal::PacketPtr& accessUnit);

 private:
  double fps_;
};

// Fragmented MP4 (ISO/IEC 14496-12, see mp4.h) for a plain `<video src=/stream.mp4>`: per
// client the init segment (ftyp + moov with avcC from the SPS/PPS in force), starting at an IDR,
// then one moof + mdat per access unit. tfdt is the capture time since that client's first frame
// in 90 kHz ticks, so skipped frames never make the clock drift; a sample lasts as long as the
// interval before it (the nominal frame interval for the first). The init segment and each access
// unit's sample bytes are built once and shared by every client; only the ~100-byte moof is per
// client. When the SPS/PPS change (camera replaced, "no signal" encoder) every client's stream
// ends at that keyframe: a progressive <video> cannot take a second moov, and a player reconnects.
class Fmp4Stream : public Fanout {
 public:
  explicit Fmp4Stream(double nominalFps) : fps_(nominalFps) {}
  std::shared_ptr<ClientQueue> subscribe(QueueLimits limits = {60, 16u << 20});
  // Publish one H.264 access unit (fourcc::kH264, Annex-B, keyframes carry SPS/PPS). One
  // producer thread.
  void publish(const hal::PacketPtr& accessUnit);

 private:
  double fps_;
  // Producer thread only.
  std::shared_ptr<const hal::CodecConfig> config_;    // parameter sets of `init_`
  std::shared_ptr<const std::vector<uint8_t>> init_;  // init segment for config_
  hal::Timestamp lastPts_{};
  uint32_t lastDuration_ = 0;
};

}  // namespace printcast::transport
