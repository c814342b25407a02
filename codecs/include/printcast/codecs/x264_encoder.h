// SPDX-License-Identifier: MIT
// H.264 software encoding with libx264.
#pragma once

#include <memory>
#include <string>

#include "printcast/hal/encoder.h"

namespace printcast::codecs {

struct X264Options {
  std::string preset = "ultrafast";
  std::string tune = "zerolatency";
  std::string profile = "baseline";  // browsers, jmuxer and the slicer all take baseline
  int threads = 0;                   // 0 = x264's choice
  // Constant-quality mode (recordings such as timelapses): CRF 0..51, lower is better, x264's
  // default 23. Negative = off: the live-stream rate control below (bitrate with a 1 s VBV).
  // With CRF on, EncoderConfig::bitrateKbps is not used (it must still be in range).
  float crf = -1;
};

// An H.264 Encoder (info().codec == fourcc::kH264) over libx264: I420 input, CBR-ish rate
// control (bitrate with a one-second VBV) or constant quality (X264Options::crf), keyint = gopFrames, no
// B-frames, SPS/PPS repeated before every IDR, Annex-B output, one complete access unit (all slices) per
// packet, pts = the source frame's capture time. requestKeyframe() forces the next frame to an IDR.
// configure() errors: InvalidArgument (odd or empty size, bitrate outside 64..50000 kbps, gop
// outside 1..1000, fps outside 1..120, unknown preset/tune/profile, crf above 51), Io (x264_encoder_open
// failed). A failed configure() leaves the previous configuration in force.
// encode() errors: InvalidArgument (not configured, not I420, size differs from config.size),
// Again (only with presets/tunes that delay frames; ultrafast/zerolatency never does), Io.
// Every packet's `config` points at the same CodecConfig until the next configure().
std::unique_ptr<hal::Encoder> createX264Encoder(const X264Options& options = {});

}  // namespace printcast::codecs
