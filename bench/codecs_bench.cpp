// SPDX-License-Identifier: MIT
// Codec throughput: JPEG and x264 encode of a moving I420 picture, XRGB8888 -> I420 with rot90,
// a camera picture turned by --rotate 90 before x264 against the same encode unturned, and what
// choosing the H.264 backend costs at start, and splitting an access unit into NAL units.
#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "printcast/codecs/convert.h"
#include "printcast/codecs/h264.h"
#include "printcast/codecs/h264_encoders.h"
#include "printcast/codecs/jpeg.h"
#include "printcast/codecs/x264_encoder.h"

namespace {

using printcast::hal::Encoder;
using printcast::hal::EncoderConfig;
using printcast::hal::Frame;
using printcast::hal::FramePool;
using printcast::hal::Size;
using printcast::hal::Timestamp;
using printcast::hal::Transform;
namespace fourcc = printcast::hal::fourcc;

// Start of row `y` of `plane`.
uint8_t* rowOf(const FramePool::Writable& w, int plane, int y) {
  return w.data(plane) + static_cast<ptrdiff_t>(y) * w.stride(plane);
}

// Distinct pictures cycled through, so an encoder sees motion rather than one repeated frame.
constexpr int kPictures = 16;

// A gradient background with a textured box sliding across it and a moving chroma wave:
// roughly what a camera on a printer bed or a busy printer UI gives an encoder.
std::vector<Frame> movingI420(Size size) {
  auto pool = FramePool::create(fourcc::kI420, size, kPictures);
  if (!pool) std::abort();
  std::vector<Frame> frames;
  for (int n = 0; n < kPictures; ++n) {
    auto w = (*pool)->acquire();
    if (!w) std::abort();
    const int boxX = n * (size.width - size.width / 4) / kPictures;
    const int boxY = size.height / 3;
    const int boxSize = size.width / 4;
    for (int y = 0; y < size.height; ++y) {
      uint8_t* row = rowOf(*w, 0, y);
      for (int x = 0; x < size.width; ++x) {
        const bool inBox = x >= boxX && x < boxX + boxSize && y >= boxY && y < boxY + boxSize;
        row[x] = inBox ? static_cast<uint8_t>(((x - boxX) ^ (y - boxY)) * 5)
                       : static_cast<uint8_t>(16 + (x + y + n * 4) % 200);
      }
    }
    for (int p = 1; p < 3; ++p) {
      for (int y = 0; y < (size.height + 1) / 2; ++y) {
        uint8_t* row = rowOf(*w, p, y);
        for (int x = 0; x < (size.width + 1) / 2; ++x) {
          row[x] = static_cast<uint8_t>(128 + ((x * (p == 1 ? 1 : 2) + y + n * 3) % 96) - 48);
        }
      }
    }
    frames.push_back(
        std::move(*w).publish(Timestamp(std::chrono::milliseconds(n * 33)), static_cast<uint64_t>(n)));
  }
  return frames;
}

void encodeLoop(benchmark::State& state, Encoder& encoder, const EncoderConfig& config) {
  if (!encoder.configure(config)) {
    state.SkipWithError("configure failed");
    return;
  }
  const std::vector<Frame> frames = movingI420(config.size);
  size_t i = 0;
  size_t bytes = 0;
  for (auto _ : state) {
    auto packet = encoder.encode(frames[i++ % frames.size()]);
    if (!packet) {
      state.SkipWithError(packet.error().message.c_str());
      return;
    }
    bytes += (*packet)->data.size();
    benchmark::DoNotOptimize(*packet);
  }
  state.counters["fps"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["bytes/frame"] =
      benchmark::Counter(static_cast<double>(bytes) / static_cast<double>(state.iterations()));
}

void jpegEncodeI420(benchmark::State& state) {
  const Size size{static_cast<int>(state.range(0)), static_cast<int>(state.range(1))};
  auto encoder = printcast::codecs::createJpegEncoder();
  EncoderConfig config;
  config.size = size;
  config.jpegQuality = 80;
  encodeLoop(state, *encoder, config);
}

void x264EncodeI420(benchmark::State& state) {
  const Size size{static_cast<int>(state.range(0)), static_cast<int>(state.range(1))};
  printcast::codecs::X264Options options;  // ultrafast / zerolatency / baseline
  auto encoder = printcast::codecs::createX264Encoder(options);
  EncoderConfig config;
  config.size = size;
  config.fps = 30;
  config.bitrateKbps = size.width >= 1280 ? 2500 : 1000;
  config.gopFrames = 60;
  encodeLoop(state, *encoder, config);
}

void convertXrgb8888Rot90(benchmark::State& state) {
  const Size panel{800, 480};
  auto srcPool = FramePool::create(fourcc::kXRGB8888, panel, 1);
  auto dstPool = FramePool::create(fourcc::kI420, Transform::rot90().apply(panel), 2);
  if (!srcPool || !dstPool) {
    state.SkipWithError("pool creation failed");
    return;
  }
  auto w = (*srcPool)->acquire();
  if (!w) std::abort();
  for (int y = 0; y < panel.height; ++y) {
    auto* row = reinterpret_cast<uint32_t*>(rowOf(*w, 0, y));
    for (int x = 0; x < panel.width; ++x)
      row[x] = 0xff000000u | static_cast<uint32_t>(x * 0x10203 + y * 0x30201);
  }
  const Frame src = std::move(*w).publish(Timestamp{}, 0);
  for (auto _ : state) {
    auto out = printcast::codecs::convertToI420(src, Transform::rot90(), **dstPool);
    if (!out) {
      state.SkipWithError(out.error().message.c_str());
      return;
    }
    benchmark::DoNotOptimize(*out);
  }
  state.counters["fps"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// --rotate 90 on a 1080p camera (issue 12 target: turning + encode within 15% of encode alone).
// range(0) 0: the I420 picture encoded as it is; 1: turned to 1080x1920 by convertToI420
// (libyuv) first, then encoded. The same x264 settings, the same pixel count.
void x264Encode1080pTurned(benchmark::State& state) {
  const bool turned = state.range(0) != 0;
  const Size camera{1920, 1080};
  const Transform t = turned ? Transform::rot90() : Transform::identity();
  auto encoder = printcast::codecs::createX264Encoder();
  EncoderConfig config;
  config.size = t.apply(camera);
  config.fps = 30;
  config.bitrateKbps = 4000;
  config.gopFrames = 60;
  if (!encoder->configure(config)) {
    state.SkipWithError("configure failed");
    return;
  }
  auto pool = FramePool::create(fourcc::kI420, config.size, 2);
  if (!pool) std::abort();
  const std::vector<Frame> frames = movingI420(camera);
  size_t i = 0;
  for (auto _ : state) {
    const Frame& src = frames[i++ % frames.size()];
    auto packet = [&]() -> printcast::hal::Result<printcast::hal::PacketPtr> {
      if (!turned) return encoder->encode(src);
      auto up = printcast::codecs::convertToI420(src, t, **pool);
      if (!up) return up.error();
      return encoder->encode(*up);
    }();
    if (!packet) {
      state.SkipWithError(packet.error().message.c_str());
      return;
    }
    benchmark::DoNotOptimize(*packet);
  }
  state.counters["fps"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// Choosing the H.264 backend at start: generic-linux's order (VA-API, V4L2 M2M, x264; the first
// two refuse on a machine without them) against x264 alone, each opened and configured for 720p.
void selectH264Backend(benchmark::State& state) {
  using printcast::hal::EncoderBackend;
  const std::vector<EncoderBackend> generic{EncoderBackend::VaApi, EncoderBackend::V4L2M2M,
                                            EncoderBackend::X264};
  const std::vector<EncoderBackend> x264Only{EncoderBackend::X264};
  const auto& order = state.range(0) != 0 ? generic : x264Only;
  EncoderConfig config;
  config.size = {1280, 720};
  config.fps = 30;
  for (auto _ : state) {
    auto encoder = printcast::codecs::createH264Encoder(order);
    if (!encoder->configure(config)) {
      state.SkipWithError("no backend accepted 720p");
      return;
    }
    benchmark::DoNotOptimize(encoder);
  }
}

// A 1080p camera's access unit at 4 Mbit/s and 30 fps (about 17 KB): AUD, SPS, PPS and one slice
// of incompressible bytes (the "snow" pattern), emulation-prevented as a real slice is (no
// 00 00 0x with x <= 3 inside).
std::vector<uint8_t> snowAccessUnit() {
  std::vector<uint8_t> au{0,    0, 0, 1, 0x09, 0xf0, 0,    0,    0,    1, 0x67, 0x64, 0, 0x28,
                          0xac, 0, 0, 0, 1,    0x68, 0xee, 0x3c, 0x80, 0, 0,    0,    1, 0x65};
  std::mt19937 random(7);
  int zeros = 0;
  while (au.size() < 17000) {
    auto b = static_cast<uint8_t>(random());
    if (zeros >= 2 && b <= 3) b = 0x03;  // emulation_prevention_three_byte (7.4.1)
    zeros = b == 0 ? zeros + 1 : 0;
    au.push_back(b);
  }
  return au;
}

// The start-code scan before memchr (bytewise, skipping 3 when the third byte is above 1): the
// peer splitAnnexB is measured against in the same run.
size_t bytewiseStartCode(std::span<const uint8_t> s, size_t from) {
  for (size_t i = from; i + 2 < s.size(); ++i) {
    if (s[i + 2] > 1) {
      i += 2;
    } else if (s[i] == 0 && s[i + 1] == 0 && s[i + 2] == 1) {
      return i;
    }
  }
  return s.size();
}

// Splitting a camera's access unit into NAL units, done 3-4 times per access unit on its way to
// the outputs (RTP depacketizing, MPEG-TS, AVCC for FLV and fMP4, WebSocket): Arg 0 = the
// library's splitAnnexB, Arg 1 = the bytewise scan. Bytes per second.
void splitAccessUnit(benchmark::State& state) {
  const auto au = snowAccessUnit();
  const std::span<const uint8_t> s(au);
  for (auto _ : state) {
    if (state.range(0) == 0) {
      benchmark::DoNotOptimize(printcast::codecs::h264::splitAnnexB(s));
    } else {
      size_t n = 0;
      for (size_t at = bytewiseStartCode(s, 0); at < s.size(); at = bytewiseStartCode(s, at + 3)) ++n;
      benchmark::DoNotOptimize(n);
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(au.size()));
}

// Wall-clock rates: x264 encodes on worker threads, so CPU time of the calling thread would flatter it.
BENCHMARK(jpegEncodeI420)->Args({640, 480})->Args({1280, 720})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(x264EncodeI420)->Args({640, 480})->Args({1280, 720})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(convertXrgb8888Rot90)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(x264Encode1080pTurned)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(selectH264Backend)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(splitAccessUnit)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::err);  // the refusals selectH264Backend provokes are not news
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
