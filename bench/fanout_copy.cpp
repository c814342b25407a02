// SPDX-License-Identifier: MIT
// printcast-bench-fanout-copy: what publishing one H.264 access unit costs per client in the
// fan-out streams (/flv, /stream.mp4, /ws), in-process, without sockets.
//
// For 1, 10 and 100 subscribed clients it publishes 720p-sized access units (a 60 KB IDR every
// 30 frames, 12 KB inter frames) and reports, per delivered frame (one client, one access unit):
//   heap_bytes_per_client_frame  bytes allocated by publish() / (clients x frames): per-client
//                                framing only when the payload is shared, >= the payload size
//                                if it were copied per client (the target: it is not)
//   payload_bytes                the mean access unit size, for comparison
// and the time per publish() call. The payload is converted to length-prefixed form once per
// access unit (FLV, MP4) or sent as is (WebSocket); those bytes count once, not per client.
// Allocation is counted by replacing the global operator new in this program.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "printcast/codecs/x264_encoder.h"
#include "printcast/hal/frame.h"
#include "printcast/transport/fanout.h"
#include "printcast/transport/ws_stream.h"

namespace {
std::atomic<uint64_t> gAllocatedBytes{0};
}

void* operator new(std::size_t size) {
  gAllocatedBytes.fetch_add(size, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

using namespace printcast;

namespace {

hal::PacketPtr accessUnit(uint64_t n) {
  static const auto config = [] {  // real parameter sets: x264 at 1280x720
    auto encoder = codecs::createX264Encoder();
    hal::EncoderConfig c;
    c.size = {1280, 720};
    if (!encoder->configure(c).ok()) std::abort();
    auto pool = hal::FramePool::create(hal::fourcc::kI420, c.size, 1);
    if (!pool.ok()) std::abort();
    auto w = (*pool)->acquire();
    if (!w.ok()) std::abort();
    auto packet = encoder->encode(std::move(*w).publish(hal::Timestamp{}, 0));
    if (!packet.ok()) std::abort();
    return (*packet)->config;
  }();
  auto p = std::make_shared<hal::Packet>();
  p->codec = hal::fourcc::kH264;
  p->keyframe = n % 30 == 0;
  p->pts = hal::Timestamp(std::chrono::milliseconds(33 * n));
  p->sequence = n;
  p->size = {1280, 720};
  p->config = config;
  const size_t slice = p->keyframe ? 60000 : 12000;
  std::vector<uint8_t> data;
  if (p->keyframe) {
    for (const auto* ps : {&config->sps, &config->pps}) {
      data.insert(data.end(), {0, 0, 0, 1});
      data.insert(data.end(), ps->begin(), ps->end());
    }
  }
  data.insert(data.end(), {0, 0, 0, 1, static_cast<uint8_t>(p->keyframe ? 0x65 : 0x41)});
  data.resize(data.size() + slice, 0x5A);
  p->data = std::move(data);
  return p;
}

template <typename Stream, typename Subscribe>
void run(benchmark::State& state, Stream& stream, Subscribe subscribe) {
  const auto clients = static_cast<size_t>(state.range(0));
  std::vector<std::shared_ptr<transport::ClientQueue>> queues;
  for (size_t i = 0; i < clients; ++i) queues.push_back(subscribe());
  std::vector<hal::PacketPtr> packets;
  uint64_t payload = 0;
  for (uint64_t n = 0; n < 60; ++n) {
    packets.push_back(accessUnit(n));
    payload += packets.back()->data.size();
  }
  std::vector<uint8_t> sink(1 << 20);
  uint64_t frames = 0;
  uint64_t allocated = 0;
  for (auto _ : state) {
    const auto before = gAllocatedBytes.load(std::memory_order_relaxed);
    stream.publish(packets[frames % packets.size()]);
    allocated += gAllocatedBytes.load(std::memory_order_relaxed) - before;
    ++frames;
    if (frames % 8 == 0) {  // the clients read (not timed), so queues never overflow
      state.PauseTiming();
      for (auto& q : queues)
        while (true) {
          const size_t n = q->read(sink.data(), sink.size(), {});
          if (n == 0 || n == transport::ClientQueue::kEnd) break;
        }
      state.ResumeTiming();
    }
  }
  state.counters["heap_bytes_per_client_frame"] =
      static_cast<double>(allocated) / static_cast<double>(frames * clients);
  state.counters["payload_bytes"] = static_cast<double>(payload) / static_cast<double>(packets.size());
  state.counters["time_per_client_frame"] = benchmark::Counter(
      static_cast<double>(frames * clients), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_FlvPublish(benchmark::State& state) {
  transport::FlvStream stream(30);
  run(state, stream, [&] { return stream.subscribe({1000, 256u << 20}); });
}
void BM_Fmp4Publish(benchmark::State& state) {
  transport::Fmp4Stream stream(30);
  run(state, stream, [&] { return stream.subscribe({1000, 256u << 20}); });
}
void BM_WsPublish(benchmark::State& state) {
  transport::WsStream stream;
  run(state, stream, [&] { return stream.subscribe(false, {1000, 256u << 20}); });
}

}  // namespace

BENCHMARK(BM_FlvPublish)->Arg(1)->Arg(10)->Arg(100);
BENCHMARK(BM_Fmp4Publish)->Arg(1)->Arg(10)->Arg(100);
BENCHMARK(BM_WsPublish)->Arg(1)->Arg(10)->Arg(100);
BENCHMARK_MAIN();
