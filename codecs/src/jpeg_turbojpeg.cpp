// SPDX-License-Identifier: MIT
// JPEG Encoder over libturbojpeg (I420 via tjCompressFromYUVPlanes, XRGB8888 via tjCompress2).
#include <turbojpeg.h>

#include <algorithm>
#include <climits>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "printcast/codecs/jpeg.h"

namespace printcast::codecs {

namespace {

struct TjHandleDeleter {
  void operator()(void* handle) const { tjDestroy(handle); }
};
using TjHandle = std::unique_ptr<void, TjHandleDeleter>;

struct TjBufferDeleter {
  void operator()(unsigned char* buffer) const { tjFree(buffer); }
};
using TjBuffer = std::unique_ptr<unsigned char, TjBufferDeleter>;

// JPEG frame headers hold 16-bit dimensions (ITU-T T.81 B.2.2).
constexpr int kMaxJpegDimension = 65535;

class TurboJpegEncoder final : public hal::Encoder {
 public:
  TurboJpegEncoder() : handle_(tjInitCompress()) {}

  hal::EncoderInfo info() const override {
    return hal::EncoderInfo{"turbojpeg", hal::fourcc::kMJPEG, {hal::fourcc::kI420, hal::fourcc::kXRGB8888}};
  }

  hal::Status configure(const hal::EncoderConfig& config) override {
    if (config.jpegQuality < 1 || config.jpegQuality > 100) {
      return {hal::Errc::InvalidArgument,
              fmt::format("turbojpeg: jpegQuality {} outside 1..100", config.jpegQuality)};
    }
    quality_ = config.jpegQuality;
    return {};
  }

  hal::Result<hal::PacketPtr> encode(const hal::Frame& frame) override {
    if (!handle_) return {hal::Errc::Io, "turbojpeg: tjInitCompress failed"};
    if (!frame.valid()) return {hal::Errc::InvalidArgument, "turbojpeg: empty frame"};
    const hal::Size size = frame.size();
    if (size.empty() || size.width > kMaxJpegDimension || size.height > kMaxJpegDimension) {
      return {hal::Errc::InvalidArgument,
              fmt::format("turbojpeg: frame size {} outside 1x1..65535x65535", size.str())};
    }
    const hal::FourCC format = frame.format();
    if (format != hal::fourcc::kI420 && format != hal::fourcc::kXRGB8888) {
      return {hal::Errc::InvalidArgument,
              fmt::format("turbojpeg: input format {} is not YU12 (I420) or XR24 (XRGB8888)", format.str())};
    }

    // A buffer tjBufSize() bytes long always holds the result, so turbojpeg never reallocates
    // it and one buffer serves every frame of this size.
    const unsigned long capacity = tjBufSize(size.width, size.height, TJSAMP_420);
    if (capacity == static_cast<unsigned long>(-1) || capacity > static_cast<unsigned long>(INT_MAX)) {
      return {hal::Errc::InvalidArgument, fmt::format("turbojpeg: frame size {} too large", size.str())};
    }
    if (!buffer_ || capacity > capacity_) {
      buffer_.reset(tjAlloc(static_cast<int>(capacity)));
      capacity_ = buffer_ ? capacity : 0;
      if (!buffer_) return {hal::Errc::Io, fmt::format("turbojpeg: cannot allocate {} bytes", capacity)};
    }
    unsigned char* out = buffer_.get();
    unsigned long outSize = capacity_;
    // FASTDCT: the integer fast DCT costs a little accuracy at high quality and buys speed on
    // the printers' small ARM cores.
    const int flags = TJFLAG_NOREALLOC | TJFLAG_FASTDCT;

    int rc = 0;
    if (format == hal::fourcc::kI420) {
      const unsigned char* planes[3] = {frame.plane(0).data, frame.plane(1).data, frame.plane(2).data};
      const int strides[3] = {frame.plane(0).stride, frame.plane(1).stride, frame.plane(2).stride};
      rc = tjCompressFromYUVPlanes(handle_.get(), planes, size.width, strides, size.height, TJSAMP_420, &out,
                                   &outSize, quality_, flags);
    } else {
      // DRM XRGB8888 is B, G, R, X in memory: turbojpeg's BGRX.
      rc = tjCompress2(handle_.get(), frame.plane(0).data, size.width, frame.plane(0).stride, size.height,
                       TJPF_BGRX, &out, &outSize, TJSAMP_420, quality_, flags);
    }
    if (rc != 0) {
      return {hal::Errc::Io, fmt::format("turbojpeg: compressing {} {}: {}", format.str(), size.str(),
                                         tjGetErrorStr2(handle_.get()))};
    }

    auto packet = std::make_shared<hal::Packet>();
    packet->codec = hal::fourcc::kMJPEG;
    packet->data.assign(out, out + outSize);
    packet->keyframe = true;
    packet->pts = frame.timestamp();
    packet->sequence = frame.sequence();
    packet->size = size;
    return hal::PacketPtr(std::move(packet));
  }

  void requestKeyframe() override {}  // every JPEG stands alone

  std::shared_ptr<const hal::CodecConfig> codecConfig() const override { return nullptr; }

 private:
  TjHandle handle_;
  TjBuffer buffer_;
  unsigned long capacity_ = 0;
  int quality_ = hal::EncoderConfig{}.jpegQuality;
};

}  // namespace

std::unique_ptr<hal::Encoder> createJpegEncoder() { return std::make_unique<TurboJpegEncoder>(); }

hal::Result<JpegInfo> inspectJpeg(std::span<const uint8_t> jpeg) {
  if (jpeg.size() < 4 || jpeg[0] != 0xff || jpeg[1] != 0xd8) {
    return {hal::Errc::InvalidArgument, fmt::format("JPEG: {} bytes without an SOI marker", jpeg.size())};
  }
  TjHandle handle(tjInitDecompress());
  if (!handle) return {hal::Errc::Io, "JPEG: tjInitDecompress failed"};
  int width = 0;
  int height = 0;
  int subsampling = 0;
  int colorspace = 0;
  if (tjDecompressHeader3(handle.get(), jpeg.data(), static_cast<unsigned long>(jpeg.size()), &width, &height,
                          &subsampling, &colorspace) != 0) {
    return {hal::Errc::InvalidArgument, fmt::format("JPEG: bad header: {}", tjGetErrorStr2(handle.get()))};
  }
  // A header cut short before its frame header (SOF) "succeeds" with a warning and no size.
  if (width <= 0 || height <= 0) {
    return {hal::Errc::InvalidArgument,
            fmt::format("JPEG: no frame size in {} bytes: {}", jpeg.size(), tjGetErrorStr2(handle.get()))};
  }
  return JpegInfo{hal::Size{width, height}, subsampling};
}

// --- MJPEG camera frames to I420 (decodeJpegToI420) ---

hal::Result<hal::Frame> decodeJpegToI420(std::span<const uint8_t> jpeg, hal::FramePool& pool,
                                         hal::Timestamp timestamp, uint64_t sequence) {
  auto info = inspectJpeg(jpeg);
  if (!info) return std::move(info).error();
  const hal::Size size = info->size;
  if (pool.format() != hal::fourcc::kI420 || !(pool.size() == size)) {
    return hal::Result<hal::Frame>(
        hal::Errc::InvalidArgument,
        fmt::format("jpeg decode: a {} JPEG needs an I420 pool of that size, not {} {}", size.str(),
                    pool.format().str(), pool.size().str()));
  }
  auto w = pool.acquire();
  if (!w) return std::move(w).error();
  TjHandle tj(tjInitDecompress());
  if (!tj)
    return hal::Result<hal::Frame>(hal::Errc::Io, fmt::format("jpeg decode: {}", tjGetErrorStr2(nullptr)));
  const int sub = info->subsampling;
  const int cw = sub == TJSAMP_GRAY ? 0 : tjPlaneWidth(1, size.width, sub);
  const int ch = sub == TJSAMP_GRAY ? 0 : tjPlaneHeight(1, size.height, sub);
  const int tw = (size.width + 1) / 2;
  const int th = (size.height + 1) / 2;
  // 4:2:0 goes straight into the frame; other layouts decode chroma to scratch planes first.
  const bool direct = sub == TJSAMP_420;
  std::vector<uint8_t> scratch(direct ? 0 : 2 * static_cast<size_t>(cw) * static_cast<size_t>(ch));
  unsigned char* planes[3] = {
      w->data(0), direct ? w->data(1) : scratch.data(),
      direct ? w->data(2) : scratch.data() + static_cast<size_t>(cw) * static_cast<size_t>(ch)};
  int strides[3] = {w->stride(0), direct ? w->stride(1) : cw, direct ? w->stride(2) : cw};
  if (tjDecompressToYUVPlanes(tj.get(), jpeg.data(), static_cast<unsigned long>(jpeg.size()),
                              planes,  // NOLINT(google-runtime-int)
                              size.width, strides, size.height, 0) != 0 &&
      tjGetErrorCode(tj.get()) == TJERR_FATAL) {
    return hal::Result<hal::Frame>(hal::Errc::Io, fmt::format("jpeg decode: {}", tjGetErrorStr2(tj.get())));
  }
  if (!direct) {
    for (int p = 1; p <= 2; ++p) {
      uint8_t* dst = w->data(p);
      const uint8_t* src = planes[p];
      for (int y = 0; y < th; ++y) {
        for (int x = 0; x < tw; ++x) {
          int value = 128;
          if (cw > 0) {
            // Average the source chroma samples this 4:2:0 sample covers (1, 2 or 4 of them).
            const int x0 = x * cw / tw;
            const int x1 = std::max(x0 + 1, (x + 1) * cw / tw);
            const int y0 = y * ch / th;
            const int y1 = std::max(y0 + 1, (y + 1) * ch / th);
            int sum = 0;
            for (int sy = y0; sy < y1; ++sy) {
              for (int sx = x0; sx < x1; ++sx)
                sum += src[static_cast<size_t>(sy) * static_cast<size_t>(cw) + static_cast<size_t>(sx)];
            }
            value = sum / ((x1 - x0) * (y1 - y0));
          }
          dst[static_cast<ptrdiff_t>(y) * w->stride(p) + x] = static_cast<uint8_t>(value);
        }
      }
    }
  }
  return std::move(*w).publish(timestamp, sequence);
}

}  // namespace printcast::codecs
