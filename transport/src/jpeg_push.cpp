// SPDX-License-Identifier: MIT
// JPEG push ingest (see jpeg_push.h).
#include "printcast/transport/jpeg_push.h"

#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>

#include "frame_queue.h"
#include "printcast/transport/mjpeg_pull.h"
#include "printcast/transport/websocket.h"
#include "printcast/transport/websocket_hub.h"

namespace printcast::transport {

namespace {
using Clock = hal::Clock;
}  // namespace

struct JpegPushIngest::Impl {
  JpegPushConfig config;
  std::unique_ptr<WebSocketHub> hub;

  mutable std::mutex mutex;
  uint64_t nextId = 1;
  uint64_t activeId = 0;                                   // the camera's connection
  std::map<uint64_t, std::shared_ptr<ClientQueue>> links;  // every open camera connection
  std::shared_ptr<FrameQueue> sink;                        // the open capture's queue
  std::vector<uint8_t> last;                               // the newest JPEG while no capture is open
  Clock::time_point lastArrival{};
  std::condition_variable arrived;

  std::atomic<uint64_t> messages{0};
  std::atomic<uint64_t> frames{0};
  std::atomic<uint64_t> dropped{0};
  std::atomic<uint64_t> takeovers{0};

  void onMessage(uint64_t id, ws::Opcode opcode, std::vector<uint8_t>&& payload) {
    ++messages;
    const auto arrival = Clock::now();
    const auto jpeg = opcode == ws::Opcode::Binary ? findJpeg(payload) : std::span<const uint8_t>{};
    if (jpeg.empty()) {
      ++dropped;
      return;
    }
    std::shared_ptr<FrameQueue> to;
    {
      std::lock_guard lock(mutex);
      if (id != activeId) return;  // an older connection, already being closed
      lastArrival = arrival;
      if (!sink) {
        last.assign(jpeg.begin(), jpeg.end());
        arrived.notify_all();
        return;
      }
      to = sink;
    }
    const uint64_t droppedBefore = to->dropped();
    if (to->deliverJpeg(std::vector<uint8_t>(jpeg.begin(), jpeg.end()), arrival)) ++frames;
    dropped += to->dropped() - droppedBefore;
  }
};

namespace {

class PushCapture final : public hal::Capture {
 public:
  PushCapture(std::shared_ptr<JpegPushIngest> ingest, std::shared_ptr<FrameQueue> frames, std::string name,
              std::function<void()> detach)
      : ingest_(std::move(ingest)),
        frames_(std::move(frames)),
        name_(std::move(name)),
        detach_(std::move(detach)) {}
  ~PushCapture() override { detach_(); }

  hal::CaptureInfo info() const override {
    hal::CaptureInfo i;
    i.name = name_;
    i.driver = "ws-push";
    i.formats.push_back(hal::CaptureFormat{hal::fourcc::kMJPEG, {frames_->size()}, {}});
    return i;
  }
  hal::Negotiation validate(hal::CaptureConfig& config) const override {
    if (config.format != hal::fourcc::kMJPEG) return hal::Negotiation::Invalid;
    const hal::Size size = frames_->size();
    if (config.size == size) return hal::Negotiation::Valid;
    config.size = size;
    return hal::Negotiation::Adjusted;
  }
  hal::Status start(const hal::CaptureConfig& config) override {
    if (config.format != hal::fourcc::kMJPEG)
      return {hal::Errc::InvalidArgument, "a pushing camera delivers MJPEG only"};
    return {};
  }
  void stop() override {}
  int pollFd() const override { return frames_->pollFd(); }
  hal::Result<hal::Frame> dequeue() override { return frames_->dequeue(); }

 private:
  std::shared_ptr<JpegPushIngest> ingest_;  // outlives this capture
  std::shared_ptr<FrameQueue> frames_;
  std::string name_;
  std::function<void()> detach_;
};

}  // namespace

JpegPushIngest::JpegPushIngest(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

JpegPushIngest::~JpegPushIngest() { stop(); }

hal::Result<std::shared_ptr<JpegPushIngest>> JpegPushIngest::start(JpegPushConfig config) {
  auto impl = std::make_unique<Impl>();
  WebSocketHubConfig hubConfig;
  hubConfig.name = config.name;
  hubConfig.maxClientMessageBytes = config.maxMessageBytes;
  auto hub = WebSocketHub::start(hubConfig);
  if (!hub) return hub.error();
  impl->hub = std::move(*hub);
  impl->config = std::move(config);
  return std::shared_ptr<JpegPushIngest>(new JpegPushIngest(std::move(impl)));
}

HttpResponse JpegPushIngest::accept(const HttpRequest& request) {
  auto acceptValue = ws::checkHandshake(request.method, request.headers);
  if (!acceptValue)
    return handshakeRefusal(acceptValue.error(), "a camera pushes JPEGs here over a WebSocket: ");
  // Nothing is sent to a camera but control frames: a small queue that is closed to end it.
  auto queue = std::make_shared<ClientQueue>(DropPolicy::Oldest, QueueLimits{2, 4096});
  uint64_t id = 0;
  {
    std::lock_guard lock(impl_->mutex);
    id = impl_->nextId++;
    if (impl_->activeId != 0) ++impl_->takeovers;
    // The newest connection is the camera; the older ones get Close 1001 (a ClientQueue closed
    // and drained ends its connection).
    for (auto& [oldId, link] : impl_->links) link->close();
    impl_->activeId = id;
    impl_->links[id] = queue;
  }
  std::weak_ptr<JpegPushIngest> self = weak_from_this();
  return impl_->hub->upgradeResponse(
      *acceptValue, queue,
      [self, id] {
        if (auto ingest = self.lock()) {
          std::lock_guard lock(ingest->impl_->mutex);
          ingest->impl_->links.erase(id);
        }
      },
      [self, id](ws::Opcode opcode, std::vector<uint8_t>&& payload) {
        if (auto ingest = self.lock()) ingest->impl_->onMessage(id, opcode, std::move(payload));
      });
}

hal::Result<std::unique_ptr<hal::Capture>> JpegPushIngest::openCapture() {
  auto frames = std::make_shared<FrameQueue>(impl_->config.name, impl_->config.noPictureTimeout);
  if (auto st = frames->ready(); !st) return st.error();
  std::vector<uint8_t> first;
  Clock::time_point firstArrival;
  {
    std::unique_lock lock(impl_->mutex);
    const auto recent = [&] {
      return !impl_->last.empty() && Clock::now() - impl_->lastArrival < impl_->config.noPictureTimeout;
    };
    if (!recent()) impl_->arrived.wait_for(lock, impl_->config.openWait, recent);
    if (!recent()) {
      return hal::Error{hal::Errc::NoSignal, 0,
                        fmt::format("{}: no camera is pushing JPEGs ({} connected)", impl_->config.name,
                                    impl_->links.size())};
    }
    first.swap(impl_->last);
    firstArrival = impl_->lastArrival;
    impl_->sink = frames;
  }
  if (!frames->deliverJpeg(std::move(first), firstArrival)) {
    std::lock_guard lock(impl_->mutex);
    impl_->sink.reset();
    return frames->error().error();
  }
  if (frames->size().empty()) {  // its header did not parse
    std::lock_guard lock(impl_->mutex);
    impl_->sink.reset();
    return hal::Error{hal::Errc::NoSignal, 0,
                      impl_->config.name + ": the newest picture is not a readable JPEG"};
  }
  ++impl_->frames;
  std::weak_ptr<JpegPushIngest> self = weak_from_this();
  std::weak_ptr<FrameQueue> weakFrames = frames;
  return std::unique_ptr<hal::Capture>(
      std::make_unique<PushCapture>(shared_from_this(), frames, impl_->config.name, [self, weakFrames] {
        auto ingest = self.lock();
        auto mine = weakFrames.lock();
        if (!ingest) return;
        std::lock_guard lock(ingest->impl_->mutex);
        if (ingest->impl_->sink == mine) ingest->impl_->sink.reset();
      }));
}

JpegPushStats JpegPushIngest::stats() const {
  JpegPushStats s;
  {
    std::lock_guard lock(impl_->mutex);
    s.cameraClients = impl_->links.size();
  }
  s.messages = impl_->messages.load();
  s.frames = impl_->frames.load();
  s.dropped = impl_->dropped.load();
  s.takeovers = impl_->takeovers.load();
  s.refused = impl_->hub ? impl_->hub->stats().protocolErrors : 0;
  return s;
}

void JpegPushIngest::stop() {
  if (impl_ && impl_->hub) impl_->hub->stop();
}

}  // namespace printcast::transport
