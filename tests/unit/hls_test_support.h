// SPDX-License-Identifier: MIT
// Test support for the MPEG-TS and HLS tests: real H.264 from x264 with chosen capture times and
// IDRs on request, and a shell runner for ffprobe/ffmpeg.
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "printcast/codecs/x264_encoder.h"
#include "printcast/hal/frame.h"

namespace printcast::testing {

inline std::pair<int, std::string> runShell(const std::string& cmd) {
  std::string text;
  FILE* p = popen(cmd.c_str(), "r");
  char chunk[512];
  while (p != nullptr && fgets(chunk, sizeof chunk, p) != nullptr) text += chunk;
  const int rc = p != nullptr ? pclose(p) : -1;
  return {rc, text};
}

// A moving picture encoded by x264 with no IDR of its own after the first (GOP 1000) unless
// asked, frames `intervalMs` apart starting at 5 s of the steady clock.
class H264Source {
 public:
  explicit H264Source(hal::Size size = {320, 240}, int intervalMs = 66) : intervalMs_(intervalMs) {
    configure(size);
  }
  void configure(hal::Size size) {
    encoder_ = codecs::createX264Encoder();
    hal::EncoderConfig c;
    c.size = size;
    c.fps = 1000 / intervalMs_;
    c.bitrateKbps = 400;
    c.gopFrames = 1000;
    EXPECT_TRUE(encoder_->configure(c).ok());
    auto pool = hal::FramePool::create(hal::fourcc::kI420, size, 2);
    EXPECT_TRUE(pool.ok());
    pool_ = *pool;
    size_ = size;
  }
  void requestKeyframe() { encoder_->requestKeyframe(); }
  hal::PacketPtr next() {
    auto w = pool_->acquire();
    EXPECT_TRUE(w.ok());
    for (int p = 0; p < 3; ++p) {
      const int h = p == 0 ? size_.height : size_.height / 2;
      const int wd = p == 0 ? size_.width : size_.width / 2;
      for (int y = 0; y < h; ++y) {
        uint8_t* row = w->data(p) + static_cast<ptrdiff_t>(y) * w->stride(p);
        for (int x = 0; x < wd; ++x) row[x] = static_cast<uint8_t>(p == 0 ? (x + y + n_ * 4) & 0xff : 128);
      }
    }
    auto frame = std::move(*w).publish(
        hal::Timestamp(std::chrono::milliseconds(5000 + static_cast<int64_t>(n_) * intervalMs_)), n_);
    ++n_;
    auto packet = encoder_->encode(frame);
    EXPECT_TRUE(packet.ok());
    return packet.ok() ? *packet : nullptr;
  }
  uint64_t count() const { return n_; }

 private:
  int intervalMs_;
  hal::Size size_;
  std::unique_ptr<hal::Encoder> encoder_;
  std::shared_ptr<hal::FramePool> pool_;
  uint64_t n_ = 0;
};

}  // namespace printcast::testing
