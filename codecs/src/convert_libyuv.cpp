// SPDX-License-Identifier: MIT
// convertToI420 over libyuv: colour conversion plus one of the eight Transforms in one pass.
#include <libyuv.h>

#include <fmt/format.h>

#include "printcast/codecs/convert.h"

namespace printcast::codecs {

namespace {

// libyuv flips the *source* when given a negative height and then rotates, whereas a Transform
// rotates first and flips afterwards. Rotating by k quarter turns and then flipping vertically
// equals flipping first and then rotating by -k (a flip conjugates a rotation into its
// inverse), hence the mirrored turn count below.
struct LibyuvSteps {
  libyuv::RotationMode rotation = libyuv::kRotate0;
  bool flipSource = false;
};

LibyuvSteps libyuvSteps(hal::Transform transform) {
  int turns = transform.quarterTurns();
  const bool flip = transform.vflipAfterRotation();
  if (flip) turns = (4 - turns) % 4;
  static constexpr libyuv::RotationMode kModes[] = {libyuv::kRotate0, libyuv::kRotate90, libyuv::kRotate180,
                                                    libyuv::kRotate270};
  return LibyuvSteps{kModes[turns], flip};
}

// libyuv FourCC of a packed source format, 0 for the planar ones.
uint32_t packedLibyuvFourcc(hal::FourCC format) {
  if (format == hal::fourcc::kXRGB8888) return libyuv::FOURCC_ARGB;  // B,G,R,A bytes: libyuv "ARGB"
  if (format == hal::fourcc::kRGB565) return libyuv::FOURCC_RGBP;    // RGB565 little-endian
  if (format == hal::fourcc::kYUYV) return libyuv::FOURCC_YUY2;
  return 0;
}

}  // namespace

hal::Result<hal::Frame> convertToI420(const hal::Frame& src, hal::Transform transform, hal::FramePool& pool) {
  if (!src.valid()) return {hal::Errc::InvalidArgument, "convertToI420: empty source frame"};
  const hal::Size srcSize = src.size();
  const hal::Size dstSize = transform.apply(srcSize);
  if (pool.format() != hal::fourcc::kI420 || pool.size() != dstSize) {
    return {hal::Errc::InvalidArgument,
            fmt::format("convertToI420: pool is {} {}, needs YU12 (I420) {} for {} {} with {}",
                        pool.format().str(), pool.size().str(), dstSize.str(), src.format().str(),
                        srcSize.str(), transform.name())};
  }
  const hal::FourCC format = src.format();
  const uint32_t packedFourcc = packedLibyuvFourcc(format);
  if (packedFourcc == 0 && format != hal::fourcc::kI420 && format != hal::fourcc::kNV12) {
    return {hal::Errc::InvalidArgument,
            fmt::format("convertToI420: source format {} is not one of YU12, NV12, YUYV, XR24, RG16",
                        format.str())};
  }

  auto writable = pool.acquire();
  if (!writable) return std::move(writable).error();
  hal::FramePool::Writable& dst = *writable;

  const LibyuvSteps steps = libyuvSteps(transform);
  const int signedHeight = steps.flipSource ? -srcSize.height : srcSize.height;
  int rc = 0;
  if (format == hal::fourcc::kI420) {
    // Planar sources go through the plane-wise call: ConvertToI420 would assume contiguous,
    // tightly packed planes, which V4L2 and pooled buffers do not promise.
    rc = libyuv::I420Rotate(src.plane(0).data, src.plane(0).stride, src.plane(1).data, src.plane(1).stride,
                            src.plane(2).data, src.plane(2).stride, dst.data(0), dst.stride(0), dst.data(1),
                            dst.stride(1), dst.data(2), dst.stride(2), srcSize.width, signedHeight,
                            steps.rotation);
  } else if (format == hal::fourcc::kNV12) {
    rc = libyuv::NV12ToI420Rotate(src.plane(0).data, src.plane(0).stride, src.plane(1).data,
                                  src.plane(1).stride, dst.data(0), dst.stride(0), dst.data(1), dst.stride(1),
                                  dst.data(2), dst.stride(2), srcSize.width, signedHeight, steps.rotation);
  } else {
    // ConvertToI420 derives the source stride from src_width, so describe the buffer as
    // stride/bpp pixels wide and crop the real width out of it. YUY2 rounds src_width up to
    // even, so its stride must be a whole number of pixel pairs.
    const hal::Plane& plane = src.plane(0);
    const int bpp = hal::bytesPerPixel(format);
    const int strideUnit = format == hal::fourcc::kYUYV ? 2 * bpp : bpp;
    if (plane.stride < srcSize.width * bpp || plane.stride % strideUnit != 0) {
      return {hal::Errc::InvalidArgument,
              fmt::format("convertToI420: {} stride {} is not a multiple of {} bytes of at least {}",
                          format.str(), plane.stride, strideUnit, srcSize.width * bpp)};
    }
    rc = libyuv::ConvertToI420(plane.data, plane.size, dst.data(0), dst.stride(0), dst.data(1), dst.stride(1),
                               dst.data(2), dst.stride(2), 0, 0, plane.stride / bpp, signedHeight,
                               srcSize.width, srcSize.height, steps.rotation, packedFourcc);
  }
  if (rc != 0) {
    return {hal::Errc::InvalidArgument, fmt::format("convertToI420: libyuv failed ({}) on {} {} with {}", rc,
                                                    format.str(), srcSize.str(), transform.name())};
  }
  return std::move(dst).publish(src.timestamp(), src.sequence());
}

hal::Result<hal::Frame> scaleI420(const hal::Frame& src, hal::FramePool& pool) {
  if (!src.valid() || src.format() != hal::fourcc::kI420 || pool.format() != hal::fourcc::kI420) {
    return {hal::Errc::InvalidArgument, fmt::format("scaleI420: needs YU12 (I420) in and out, got {} to {}",
                                                    src.format().str(), pool.format().str())};
  }
  auto writable = pool.acquire();
  if (!writable) return std::move(writable).error();
  hal::FramePool::Writable& dst = *writable;
  const hal::Size from = src.size();
  const hal::Size to = pool.size();
  const int rc = libyuv::I420Scale(src.plane(0).data, src.plane(0).stride, src.plane(1).data,
                                   src.plane(1).stride, src.plane(2).data, src.plane(2).stride, from.width,
                                   from.height, dst.data(0), dst.stride(0), dst.data(1), dst.stride(1),
                                   dst.data(2), dst.stride(2), to.width, to.height, libyuv::kFilterBox);
  if (rc != 0) {
    return {hal::Errc::InvalidArgument,
            fmt::format("scaleI420: libyuv failed ({}) on {} to {}", rc, from.str(), to.str())};
  }
  return std::move(dst).publish(src.timestamp(), src.sequence());
}

}  // namespace printcast::codecs
