// SPDX-License-Identifier: MIT
// H.264 encoder backends and the choice among them. A board lists its backends in order of
// preference (bsp::EncoderSpec::h264); the user may put one first (encoder_type / --encoder).
// createH264Encoder() opens the first backend that opens on this machine and accepts the
// configuration, and moves on to the next when one fails while encoding.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "printcast/codecs/v4l2m2m_encoder.h"
#include "printcast/codecs/vaapi_encoder.h"
#include "printcast/codecs/x264_encoder.h"
#include "printcast/hal/encoder.h"

namespace printcast::codecs {

// "x264", "vaapi", "v4l2m2m", "vendor": the names encoder_type, --encoder, /status and
// printcast-probe use.
std::string_view h264BackendName(hal::EncoderBackend backend) noexcept;
// The backend of that name; nullopt for anything else (including "auto").
std::optional<hal::EncoderBackend> parseH264Backend(std::string_view name) noexcept;

struct H264BackendOptions {
  X264Options x264;
  V4l2M2mOptions v4l2m2m;  // its codedFormat is forced to H.264 here
  VaapiOptions vaapi;
};

// Open one backend, not yet configured. Errors: Unsupported (not built into this binary: vendor
// encoders have no backend here, VA-API only with libva, see docs/porting-guide.md "Encoders"; no
// device or driver of the kind), and what the backend's own factory returns (NoDevice,
// PermissionDenied, Busy, Io).
hal::Result<std::unique_ptr<hal::Encoder>> openH264Backend(hal::EncoderBackend backend,
                                                           const H264BackendOptions& options = {});

// The backends to try for `choice` ("auto", or a backend name) on a board that prefers
// `boardPreference`: auto is the board's list; a named backend goes first, then the board's
// others, and x264 always stays last as the one every build has. Errors: InvalidArgument
// (unknown name).
hal::Result<std::vector<hal::EncoderBackend>> h264BackendOrder(
    std::span<const hal::EncoderBackend> boardPreference, std::string_view choice);

// Why a backend is not the one encoding: it did not open, refused the configuration, or failed
// while encoding (then `runtime` is true and it is not tried again).
struct EncoderRefusal {
  std::string backend;
  std::string reason;
  bool runtime = false;
};

// A hal::Encoder that is whichever of its candidates works.
//  - configure(): opens and configures each candidate in order until one accepts; the others'
//    reasons are kept (refusals()). Refused at one size, a backend is asked again at the next
//    configure(); one that failed while encoding is not. Errors: those of the last candidate
//    tried, its message preceded by every refusal, when none accepts (the previous backend is
//    then gone: encode() returns InvalidArgument until a configure() succeeds).
//  - encode(): the active backend's. When it fails with anything but Again or InvalidArgument
//    (a device lost, an encoder hang, an encode error), the next candidates are configured the
//    same way and the same frame is encoded by the first that accepts, as an IDR. Its packets
//    carry its own CodecConfig: the outputs see new SPS/PPS on that IDR (FLV clients get a new
//    sequence header, fMP4 clients are closed and reconnect to a new init segment, HLS starts a
//    discontinuity with a new init segment, /ws and RTSP carry the parameter sets in band).
//  - info(): the active backend's (name "none" while none is configured; codec H.264), so
//    info().inputFormats is what the active backend takes as it is: a V4L2 M2M encoder adds its
//    native OUTPUT format (NV12, YUYV) to I420, and imports a camera frame of that format by
//    DMA-BUF (v4l2m2m_encoder.h). It changes with the active backend: after a fallback a frame in
//    a format the new backend does not take is refused with InvalidArgument, so a caller that
//    hands over native frames checks info().inputFormats for each frame and converts to I420
//    otherwise.
//  - inputPath(): the active backend's (how frames reach it: "dmabuf", "mmap", "copy", and why
//    not dmabuf; path "" and reason "no encoder configured" while none is). For /status.
// Threading: as hal::Encoder; requestKeyframe(), inputPath(), activeName(), refusals() and
// fallbacks() may be called from any thread.
class SelectingEncoder final : public hal::Encoder {
 public:
  struct Candidate {
    std::string name;
    std::function<hal::Result<std::unique_ptr<hal::Encoder>>()> open;
  };
  explicit SelectingEncoder(std::vector<Candidate> candidates);

  hal::EncoderInfo info() const override;
  hal::Status configure(const hal::EncoderConfig& config) override;
  hal::Result<hal::PacketPtr> encode(const hal::Frame& frame) override;
  void requestKeyframe() override;
  std::shared_ptr<const hal::CodecConfig> codecConfig() const override;
  void release() override;
  hal::EncoderInputPath inputPath() const override;

  std::string activeName() const;
  std::vector<EncoderRefusal> refusals() const;
  uint64_t fallbacks() const;  // backends given up while encoding

 private:
  // Configure candidates from `first` on; sets active_ or returns the combined error.
  hal::Status activateFrom(size_t first);
  void refuse(size_t index, std::string reason, bool runtime);

  std::vector<Candidate> candidates_;
  std::vector<bool> failed_;  // failed while encoding: never tried again
  std::optional<hal::EncoderConfig> config_;
  std::unique_ptr<hal::Encoder> active_;  // written under mutex_ (inputPath() reads it from any thread)
  size_t activeIndex_ = 0;
  std::atomic<bool> keyframeWanted_{false};
  mutable std::mutex mutex_;  // guards the fields below (read by status pages)
  std::string activeName_ = "none";
  std::vector<EncoderRefusal> refusals_;
  uint64_t fallbacks_ = 0;
  std::shared_ptr<const hal::CodecConfig> codecConfig_;
};

// A SelectingEncoder over `order` (see h264BackendOrder), each opened by openH264Backend().
std::unique_ptr<SelectingEncoder> createH264Encoder(std::span<const hal::EncoderBackend> order,
                                                    const H264BackendOptions& options = {});

}  // namespace printcast::codecs
