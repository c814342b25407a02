// SPDX-License-Identifier: MIT
// The configuration limits every live H.264 encoder backend accepts (documented in
// x264_encoder.h), checked in one place so that x264, V4L2 M2M and VA-API refuse the same
// configurations with the same words and the selection (h264_encoders.h) can move between them.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

#include "printcast/hal/encoder.h"
#include "printcast/hal/frame.h"
#include "printcast/hal/result.h"

namespace printcast::codecs {

inline constexpr int kMinBitrateKbps = 64;
inline constexpr int kMaxBitrateKbps = 50000;
inline constexpr int kMaxGopFrames = 1000;
inline constexpr int kMaxFps = 120;
inline constexpr int kMaxDimension = 16384;  // beyond every H.264 level's frame size

// InvalidArgument "<backend>: <the first value out of range>" (size, bitrateKbps, gopFrames,
// fps, in that order), else ok.
inline hal::Status checkEncoderConfig(const hal::EncoderConfig& config, std::string_view backend) {
  const auto invalid = [&](const std::string& what) {
    return hal::Status(hal::Errc::InvalidArgument, fmt::format("{}: {}", backend, what));
  };
  const hal::Size size = config.size;
  if (size.empty() || size.width % 2 != 0 || size.height % 2 != 0 || size.width > kMaxDimension ||
      size.height > kMaxDimension) {
    return invalid(
        fmt::format("size {} must be even and within 2x2..{}x{}", size.str(), kMaxDimension, kMaxDimension));
  }
  if (config.bitrateKbps < kMinBitrateKbps || config.bitrateKbps > kMaxBitrateKbps) {
    return invalid(
        fmt::format("bitrateKbps {} outside {}..{}", config.bitrateKbps, kMinBitrateKbps, kMaxBitrateKbps));
  }
  if (config.gopFrames < 1 || config.gopFrames > kMaxGopFrames) {
    return invalid(fmt::format("gopFrames {} outside 1..{}", config.gopFrames, kMaxGopFrames));
  }
  if (config.fps < 1 || config.fps > kMaxFps)
    return invalid(fmt::format("fps {} outside 1..{}", config.fps, kMaxFps));
  return {};
}

// InvalidArgument "<backend>: ..." unless `frame` is a valid I420 frame of `configured`'s size:
// the input every live H.264 backend takes.
inline hal::Status checkEncoderInput(const hal::Frame& frame, hal::Size configured,
                                     std::string_view backend) {
  const auto invalid = [&](const std::string& what) {
    return hal::Status(hal::Errc::InvalidArgument, fmt::format("{}: {}", backend, what));
  };
  if (!frame.valid()) return invalid("empty frame");
  if (frame.format() != hal::fourcc::kI420) {
    return invalid(fmt::format("input format {} is not YU12 (I420)", frame.format().str()));
  }
  if (frame.size() != configured) {
    return invalid(
        fmt::format("frame size {} differs from the configured {}", frame.size().str(), configured.str()));
  }
  return {};
}

}  // namespace printcast::codecs
