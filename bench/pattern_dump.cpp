// SPDX-License-Identifier: MIT
// printcast-pattern-dump: writes N raw I420 test-pattern frames to stdout (for ffmpeg -f rawvideo).
//
//   printcast-pattern-dump --size 640x480 --frames 300 |
//     ffmpeg -f rawvideo -pix_fmt yuv420p -s 640x480 -r 30 -i - ...
//
// The frames come from hal::createTestPatternCapture() unpaced (fps 0), exactly the source the
// streamer's `--board virtual --unpaced` encodes, and are written tightly packed (Y, then U,
// then V, no row padding) whatever the pool's strides are.
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "printcast/hal/test_pattern.h"

using namespace printcast;

namespace {

bool writeAll(int fd, const uint8_t* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"printcast-pattern-dump: raw I420 test-pattern frames to stdout"};
  int width = 640;
  int height = 480;
  long long frames = 300;
  app.add_option("-W,--width", width, "Frame width (even)")->check(CLI::Range(16, 3840));
  app.add_option("-H,--height", height, "Frame height (even)")->check(CLI::Range(16, 2160));
  app.add_option("-n,--frames", frames, "Frames to write")->check(CLI::Range(1LL, 1'000'000'000LL));
  CLI11_PARSE(app, argc, argv);
  if (::isatty(STDOUT_FILENO) != 0) {
    fmt::print(stderr, "printcast-pattern-dump: stdout is a terminal; pipe it into ffmpeg or a file\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);  // a reader that quits early is reported, not a crash

  auto camera = hal::createTestPatternCapture();
  hal::CaptureConfig config;
  config.format = hal::fourcc::kI420;
  config.size = hal::Size{width, height};
  config.fps = 0;  // unpaced: as fast as we take them
  if (camera->validate(config) != hal::Negotiation::Valid) {
    fmt::print(stderr, "printcast-pattern-dump: the test pattern cannot deliver {} (sizes must be even)\n",
               hal::Size{width, height}.str());
    return 2;
  }
  if (auto st = camera->start(config); !st) {
    fmt::print(stderr, "printcast-pattern-dump: {}\n", st.error().describe());
    return 1;
  }

  const int cw = width / 2;
  const int ch = height / 2;
  const std::array<hal::Size, 3> planeSizes{hal::Size{width, height}, hal::Size{cw, ch}, hal::Size{cw, ch}};
  std::vector<uint8_t> packed(static_cast<size_t>(width) * static_cast<size_t>(height) * 3 / 2);
  for (long long i = 0; i < frames; ++i) {
    // Unpaced, dequeue() only says Again when every buffer is leased; each frame is released
    // at the end of its iteration, so anything but a frame is an error.
    auto frame = camera->dequeue();
    if (!frame) {
      fmt::print(stderr, "printcast-pattern-dump: frame {}: {}\n", i, frame.error().describe());
      return 1;
    }
    uint8_t* out = packed.data();
    for (int p = 0; p < 3; ++p) {
      const hal::Plane& plane = frame->plane(p);
      const auto rowBytes = static_cast<size_t>(planeSizes[static_cast<size_t>(p)].width);
      for (int row = 0; row < planeSizes[static_cast<size_t>(p)].height; ++row) {
        std::memcpy(out, plane.data + static_cast<ptrdiff_t>(row) * plane.stride, rowBytes);
        out += rowBytes;
      }
    }
    if (!writeAll(STDOUT_FILENO, packed.data(), packed.size())) {
      fmt::print(stderr, "printcast-pattern-dump: write frame {}: {}\n", i, std::strerror(errno));
      return 1;
    }
  }
  camera->stop();
  return 0;
}
