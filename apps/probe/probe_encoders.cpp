// SPDX-License-Identifier: MIT
// Probe: which H.264/JPEG encoders (and H.264 decoder) this build has and whether each works on a frame.
#include <cstring>

#include <fmt/format.h>

#include "printcast/codecs/h264_decoder.h"
#include "printcast/codecs/h264_encoders.h"
#include "printcast/codecs/jpeg.h"
#include "printcast/codecs/x264_encoder.h"
#include "printcast/hal/display_open.h"
#include "probe.h"

namespace printcast::probe {

namespace {

// Configure `encoder` for 640x480 and encode one grey I420 frame (handed back in `packet`).
nlohmann::json tryEncoder(hal::Encoder& encoder, std::string& error, hal::PacketPtr* packet = nullptr) {
  const hal::Size size{640, 480};
  if (auto st = encoder.configure(hal::EncoderConfig{.size = size, .fps = 10}); !st) {
    error = st.error().describe();
    return {{"status", "fail"}, {"error", error}};
  }
  auto pool = hal::FramePool::create(hal::fourcc::kI420, size, 1);
  if (!pool) {
    error = pool.error().describe();
    return {{"status", "fail"}, {"error", error}};
  }
  auto buffer = (*pool)->acquire();
  if (!buffer) {
    error = buffer.error().describe();
    return {{"status", "fail"}, {"error", error}};
  }
  for (int p = 0; p < 3; ++p) {
    const int rows = p == 0 ? size.height : size.height / 2;
    std::memset(buffer->data(p), 128, static_cast<size_t>(buffer->stride(p)) * rows);
  }
  const auto frame = std::move(*buffer).publish(hal::Clock::now(), 0);
  auto encoded = encoder.encode(frame);
  if (!encoded) {
    error = encoded.error().describe();
    return {{"status", "fail"}, {"error", error}};
  }
  if (packet != nullptr) *packet = *encoded;
  return {{"status", "pass"},
          {"name", encoder.info().name},
          {"bytes", (*encoded)->data.size()},
          {"keyframe", (*encoded)->keyframe}};
}

// The H.264 decoder (pictures for snapshots and MJPEG from H.264 cameras): decode `idr`, the
// x264 encoder's picture, when there is one.
nlohmann::json tryH264Decoder(const hal::PacketPtr& idr, std::string& error) {
  auto decoder = codecs::createH264Decoder();
  if (!decoder) {
    if (decoder.code() == hal::Errc::Unsupported)
      return {{"status", "not-built"}, {"reason", decoder.error().message}};
    error = decoder.error().describe();
    return {{"status", "fail"}, {"error", error}};
  }
  nlohmann::json out = {{"status", "pass"}, {"name", (*decoder)->name()}};
  if (!idr) return out;  // no x264 picture to decode: created, not exercised
  auto pool = hal::FramePool::create(hal::fourcc::kI420, idr->size, 1);
  if (!pool) {
    error = pool.error().describe();
    return {{"status", "fail"}, {"error", error}};
  }
  auto picture = (*decoder)->decode(idr->data, **pool, idr->pts, idr->sequence);
  if (!picture) {
    error = "H.264 decoder: " + picture.error().describe();
    return {{"status", "fail"}, {"name", (*decoder)->name()}, {"error", error}};
  }
  out["size"] = picture->size().str();
  return out;
}

}  // namespace

Report probeEncoders(const Options& /*options*/) {
  Report report;
  std::string error;
  auto x264 = codecs::createX264Encoder();
  hal::PacketPtr idr;
  report.details["x264"] = tryEncoder(*x264, error, &idr);
  if (!error.empty()) report.fail("encoder x264: " + error);
  error.clear();
  report.details["h264-decoder"] = tryH264Decoder(idr, error);
  if (!error.empty()) report.fail("decoder: " + error);
  error.clear();
  auto jpeg = codecs::createJpegEncoder();
  report.details["jpeg"] = tryEncoder(*jpeg, error);
  if (!error.empty()) report.fail("encoder turbojpeg: " + error);
  // The hardware H.264 backends: whether each opens here and encodes a frame, or why not (a
  // machine without the hardware is not a failure of the probe; an encoder that opens and then
  // fails is). What the machine offers for them is listed beside.
  const std::pair<hal::EncoderBackend, nlohmann::json> hardware[] = {
      {hal::EncoderBackend::VaApi, {{"renderNodes", hal::listNumberedNodes("/dev/dri", "renderD")}}},
      {hal::EncoderBackend::V4L2M2M, {{"videoNodes", hal::listNumberedNodes("/dev", "video")}}}};
  for (const auto& [backend, nodes] : hardware) {
    const std::string name(codecs::h264BackendName(backend));
    nlohmann::json entry;
    if (auto encoder = codecs::openH264Backend(backend); !encoder) {
      entry = {{"status", encoder.code() == hal::Errc::Unsupported ? "not-available" : "fail"},
               {"reason", encoder.error().describe()}};
      if (encoder.code() != hal::Errc::Unsupported)
        report.fail("encoder " + name + ": " + encoder.error().describe());
    } else {
      error.clear();
      entry = tryEncoder(**encoder, error);
      if (!error.empty()) report.fail("encoder " + name + ": " + error);
    }
    entry.update(nodes);
    report.details[name] = entry;
  }
  return report;
}

}  // namespace printcast::probe
