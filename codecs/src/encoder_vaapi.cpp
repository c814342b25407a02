// SPDX-License-Identifier: MIT
// VA-API H.264 encoder backend (Intel iHD/i965, AMD radeonsi): I420 frames in, one Annex-B access
// unit per packet out.
//
// The call sequence is libva-utils' encode/h264encode.c (the VA-API reference encoder), cut down to
// what a live stream needs (one slice, one reference, no B-frames, synchronous), with the header
// choices of ffmpeg's libavcodec/vaapi_encode_h264.c:
//  - open: vaGetDisplayDRM on the render node, vaInitialize, vaQueryConfigProfiles and
//    vaQueryConfigEntrypoints (VAEntrypointEncSlice or EncSliceLP), vaGetConfigAttributes
//    (VAConfigAttribRTFormat, RateControl, EncPackedHeaders, MaxPictureWidth/Height).
//  - configure: vaCreateConfig, vaCreateSurfaces (NV12: the input and two reconstructed pictures,
//    the current one and its reference, alternating), a VAEncCodedBufferType buffer,
//    vaCreateContext.
//  - each picture: the frame goes into the input surface (vaDeriveImage, else vaCreateImage +
//    vaPutImage) as NV12; vaBeginPicture; on an IDR VAEncSequenceParameterBufferH264, the
//    VAEncMiscParameterBuffer RateControl, FrameRate and HRD, and the packed SPS+PPS
//    (VAEncPackedHeaderSequence, as ffmpeg sends both; has_emulation_bytes = 1, escaped by
//    h264_parameter_sets.h); VAEncPictureParameterBufferH264 (CurrPic = this reconstructed
//    surface, ReferenceFrames[0] = the previous one) and VAEncSliceParameterBufferH264 (all
//    macroblocks; RefPicList0[0] = the previous picture for P); vaRenderPicture, vaEndPicture,
//    vaSyncSurface, then the coded buffer's VACodedBufferSegment chain is the access unit.
// POC type 0 counting 2 per frame, frame_num counting every (reference) frame, both reset by an
// IDR. Parameter buffers are destroyed after vaEndPicture (libva >= 2 leaves that to the caller).
// Not verified on hardware: no machine we test on has a VA-API encoder.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <va/va.h>
#include <va/va_drm.h>
#include <va/va_enc_h264.h>
#include <va/va_str.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "encoder_limits.h"
#include "h264_parameter_sets.h"
#include "printcast/codecs/h264.h"
#include "printcast/codecs/vaapi_encoder.h"
#include "printcast/hal/display_open.h"

namespace printcast::codecs {

namespace {

using hal::Errc;
using hal::Error;
using hal::Status;

constexpr int kLog2MaxFrameNum = 16;
constexpr int kLog2MaxPocLsb = 12;  // 2 x 1000 frames of a GOP fit without wrapping
constexpr int kInitialQp = 26;
constexpr size_t kMaxLibvaMessages = 16;

Error vaFailed(const char* call, VAStatus status) {
  return {Errc::Io, 0, fmt::format("vaapi: {} failed: {} ({:#x})", call, vaErrorStr(status), status)};
}

// The render node, libva's display on it and what libva said while initialising.
struct Device {
  std::string path;
  int fd = -1;
  VADisplay display = nullptr;
  bool collecting = true;             // vaInitialize running: keep libva's lines for the error
  std::vector<std::string> messages;  // bounded by kMaxLibvaMessages
  std::string vendor;

  ~Device() {
    if (display != nullptr) vaTerminate(display);  // also frees a display whose init failed
    if (fd >= 0) ::close(fd);
  }
};

void libvaMessage(void* context, const char* message) {
  auto* device = static_cast<Device*>(context);
  std::string line(message != nullptr ? message : "");
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
  if (device->collecting) {
    if (device->messages.size() < kMaxLibvaMessages) device->messages.push_back(std::move(line));
  } else {
    spdlog::debug("vaapi: libva: {}", line);
  }
}

// What libva said about the driver it looked for ("Trying to open .../iHD_drv_video.so"), else
// its last line.
std::string libvaHint(const Device& device) {
  for (const std::string& line : device.messages) {
    if (const size_t at = line.find("Trying to open "); at != std::string::npos) {
      return fmt::format(" (libva tried {})", line.substr(at + 15));
    }
  }
  if (!device.messages.empty()) return fmt::format(" (libva: {})", device.messages.back());
  return {};
}

hal::Result<std::string> findRenderNode(const VaapiOptions& options) {
  if (!options.renderNode.empty()) return options.renderNode;
  const std::vector<std::string> nodes = hal::listNumberedNodes(options.devDir, "renderD");
  if (nodes.empty()) {
    return Error{Errc::Unsupported, 0,
                 fmt::format("vaapi: no render node under {} (no GPU for VA-API)", options.devDir)};
  }
  return nodes.front();
}

hal::Result<std::unique_ptr<Device>> openDevice(const std::string& path) {
  auto device = std::make_unique<Device>();
  device->path = path;
  device->fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (device->fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENXIO || err == ENOTDIR) {
      return Error{Errc::NoDevice, err, fmt::format("vaapi: {} does not exist", path)};
    }
    if (err == EACCES || err == EPERM) {
      return Error{
          Errc::PermissionDenied, err,
          fmt::format("vaapi: cannot open {} (the user needs the node's group, usually \"render\")", path)};
    }
    return Error{Errc::Io, err, fmt::format("vaapi: cannot open {}", path)};
  }
  struct stat st {};
  if (::fstat(device->fd, &st) != 0 || !S_ISCHR(st.st_mode)) {
    return Error{Errc::NoDevice, 0, fmt::format("vaapi: {} is not a device node", path)};
  }
  device->display = vaGetDisplayDRM(device->fd);
  if (device->display == nullptr) {
    // libva checks the node's DRM type first: a character device of another kind ends here.
    return Error{Errc::NoDevice, 0,
                 fmt::format("vaapi: {} is no DRM device (vaGetDisplayDRM refuses it)", path)};
  }
  vaSetErrorCallback(device->display, libvaMessage, device.get());
  vaSetInfoCallback(device->display, libvaMessage, device.get());
  int major = 0;
  int minor = 0;
  const VAStatus status = vaInitialize(device->display, &major, &minor);
  if (status != VA_STATUS_SUCCESS) {
    return Error{
        Errc::Unsupported, 0,
        fmt::format("vaapi: no VA-API driver for {}: {}{}", path, vaErrorStr(status), libvaHint(*device))};
  }
  device->collecting = false;
  const char* vendor = vaQueryVendorString(device->display);
  device->vendor = vendor != nullptr ? vendor : "unknown driver";
  return device;
}

// The H.264 encoder a driver offers: profile, entrypoint and the attributes we use.
struct Choice {
  VAProfile profile = VAProfileNone;
  VAEntrypoint entrypoint = VAEntrypointEncSlice;
  uint32_t rateControl = VA_RC_CBR;
  bool packedHeaders = false;  // VA_ENC_PACKED_HEADER_SEQUENCE
  uint32_t maxWidth = 0;       // 0: the driver does not say
  uint32_t maxHeight = 0;
};

hal::Result<Choice> chooseEncoder(const Device& device) {
  VADisplay dpy = device.display;
  std::vector<VAProfile> profiles(static_cast<size_t>(std::max(vaMaxNumProfiles(dpy), 1)));
  int profileCount = 0;
  if (VAStatus s = vaQueryConfigProfiles(dpy, profiles.data(), &profileCount); s != VA_STATUS_SUCCESS) {
    return vaFailed("vaQueryConfigProfiles", s);
  }
  profiles.resize(static_cast<size_t>(std::clamp(profileCount, 0, static_cast<int>(profiles.size()))));

  std::string offered;  // "VAProfileH264Main: VAEntrypointVLD, ...; ..." for the refusal
  std::string reasons;
  static constexpr std::array<VAProfile, 3> kProfiles{VAProfileH264ConstrainedBaseline, VAProfileH264Main,
                                                      VAProfileH264High};
  for (VAProfile profile : kProfiles) {
    if (std::find(profiles.begin(), profiles.end(), profile) == profiles.end()) continue;
    std::vector<VAEntrypoint> entrypoints(static_cast<size_t>(std::max(vaMaxNumEntrypoints(dpy), 1)));
    int entrypointCount = 0;
    if (vaQueryConfigEntrypoints(dpy, profile, entrypoints.data(), &entrypointCount) != VA_STATUS_SUCCESS)
      continue;
    entrypoints.resize(
        static_cast<size_t>(std::clamp(entrypointCount, 0, static_cast<int>(entrypoints.size()))));
    std::vector<std::string> names;
    for (VAEntrypoint e : entrypoints) names.emplace_back(vaEntrypointStr(e));
    offered +=
        fmt::format("{}{}: {}", offered.empty() ? "" : "; ", vaProfileStr(profile), fmt::join(names, ", "));

    for (VAEntrypoint entrypoint : {VAEntrypointEncSlice, VAEntrypointEncSliceLP}) {
      if (std::find(entrypoints.begin(), entrypoints.end(), entrypoint) == entrypoints.end()) continue;
      std::array<VAConfigAttrib, 5> attribs{{{VAConfigAttribRTFormat, 0},
                                             {VAConfigAttribRateControl, 0},
                                             {VAConfigAttribEncPackedHeaders, 0},
                                             {VAConfigAttribMaxPictureWidth, 0},
                                             {VAConfigAttribMaxPictureHeight, 0}}};
      if (VAStatus s = vaGetConfigAttributes(dpy, profile, entrypoint, attribs.data(), attribs.size());
          s != VA_STATUS_SUCCESS) {
        reasons += fmt::format("; {}/{}: vaGetConfigAttributes: {}", vaProfileStr(profile),
                               vaEntrypointStr(entrypoint), vaErrorStr(s));
        continue;
      }
      auto supported = [](const VAConfigAttrib& a) { return a.value != VA_ATTRIB_NOT_SUPPORTED; };
      if (!supported(attribs[0]) || (attribs[0].value & VA_RT_FORMAT_YUV420) == 0) {
        reasons +=
            fmt::format("; {}/{}: no YUV 4:2:0 target", vaProfileStr(profile), vaEntrypointStr(entrypoint));
        continue;
      }
      Choice c;
      c.profile = profile;
      c.entrypoint = entrypoint;
      const uint32_t rc = supported(attribs[1]) ? attribs[1].value : 0;
      if ((rc & VA_RC_CBR) != 0) {
        c.rateControl = VA_RC_CBR;
      } else if ((rc & VA_RC_VBR) != 0) {
        c.rateControl = VA_RC_VBR;
      } else {
        reasons += fmt::format("; {}/{}: neither CBR nor VBR rate control (modes {:#x})",
                               vaProfileStr(profile), vaEntrypointStr(entrypoint), rc);
        continue;
      }
      c.packedHeaders = supported(attribs[2]) && (attribs[2].value & VA_ENC_PACKED_HEADER_SEQUENCE) != 0;
      c.maxWidth = supported(attribs[3]) ? attribs[3].value : 0;
      c.maxHeight = supported(attribs[4]) ? attribs[4].value : 0;
      return c;
    }
  }
  if (offered.empty()) {
    std::vector<std::string> names;
    for (VAProfile p : profiles) names.emplace_back(vaProfileStr(p));
    offered = names.empty() ? "no profile at all"
                            : fmt::format("no H.264 profile (it has {})", fmt::join(names, ", "));
  }
  return Error{Errc::Unsupported, 0,
               fmt::format("vaapi: {} on {} has no H.264 encoder we can use (VAEntrypointEncSlice or "
                           "VAEntrypointEncSliceLP for Constrained Baseline, Main or High): {}{}",
                           device.vendor, device.path, offered, reasons)};
}

VAPictureH264 invalidPicture() {
  VAPictureH264 p{};
  p.picture_id = VA_INVALID_SURFACE;
  p.flags = VA_PICTURE_H264_INVALID;
  return p;
}

VAImage noImage() {
  VAImage image{};
  image.image_id = VA_INVALID_ID;
  image.buf = VA_INVALID_ID;
  return image;
}

class VaapiEncoder final : public hal::Encoder {
 public:
  VaapiEncoder(std::unique_ptr<Device> device, Choice choice) : device_(std::move(device)), choice_(choice) {}
  ~VaapiEncoder() override { destroySession(); }
  VaapiEncoder(const VaapiEncoder&) = delete;
  VaapiEncoder& operator=(const VaapiEncoder&) = delete;

  hal::EncoderInfo info() const override { return {"vaapi", hal::fourcc::kH264, {hal::fourcc::kI420}}; }

  Status configure(const hal::EncoderConfig& config) override {
    if (auto st = checkEncoderConfig(config, "vaapi"); !st) return st;
    const hal::Size size = config.size;
    if ((choice_.maxWidth != 0 && static_cast<uint32_t>(size.width) > choice_.maxWidth) ||
        (choice_.maxHeight != 0 && static_cast<uint32_t>(size.height) > choice_.maxHeight)) {
      return Error{Errc::Unsupported, 0,
                   fmt::format("vaapi: {} is larger than the driver's {}x{}", size.str(), choice_.maxWidth,
                               choice_.maxHeight)};
    }
    const bool high = choice_.profile == VAProfileH264High;
    const uint8_t level = h264::levelFor(size, config.fps, config.bitrateKbps, high);
    if (level == 0) {
      return Error{Errc::Unsupported, 0,
                   fmt::format("vaapi: {} at {} fps is beyond H.264 level 6.2", size.str(), config.fps)};
    }

    destroySession();
    configured_ = false;
    config_ = config;
    sps_ = {};
    sps_.profileIdc =
        high ? h264::kProfileHigh
             : (choice_.profile == VAProfileH264Main ? h264::kProfileMain : h264::kProfileBaseline);
    sps_.constraintFlags = high ? 0x00 : (choice_.profile == VAProfileH264Main ? 0x40 : 0xc0);
    sps_.levelIdc = level;
    sps_.size = size;
    sps_.log2MaxFrameNum = kLog2MaxFrameNum;
    sps_.log2MaxPocLsb = kLog2MaxPocLsb;
    sps_.maxNumRefFrames = 1;
    sps_.fps = config.fps;
    sps_.fullRange = config.fullRange;
    // CAVLC for Constrained Baseline (the only coding it has), CABAC for Main and High.
    pps_ = {};
    pps_.cabac = choice_.profile != VAProfileH264ConstrainedBaseline;
    pps_.picInitQp = kInitialQp;
    pps_.highProfile = high;

    std::shared_ptr<const hal::CodecConfig> ours;
    packedHeader_.clear();
    if (choice_.packedHeaders) {
      auto cc = std::make_shared<hal::CodecConfig>();
      cc->sps = h264::writeSps(sps_);
      cc->pps = h264::writePps(pps_);
      static constexpr std::array<uint8_t, 4> kStartCode{0, 0, 0, 1};
      for (const auto* nal : {&cc->sps, &cc->pps}) {
        packedHeader_.insert(packedHeader_.end(), kStartCode.begin(), kStartCode.end());
        packedHeader_.insert(packedHeader_.end(), nal->begin(), nal->end());
      }
      ours = std::move(cc);
    }
    setCodecConfig(ours);
    if (auto st = createSession(); !st) return st;
    configured_ = true;
    return {};
  }

  hal::Result<hal::PacketPtr> encode(const hal::Frame& frame) override {
    if (!configured_) return invalid("encode() before a successful configure()");
    if (auto st = checkEncoderInput(frame, config_.size, "vaapi"); !st) return st.error();
    if (context_ == VA_INVALID_ID) {
      if (auto st = createSession(); !st) return st.error();
    }
    const bool forced = keyframeRequested_.exchange(false, std::memory_order_acq_rel);
    const bool idr = !haveReference_ || frameInGop_ >= config_.gopFrames || forced;
    if (idr) {
      // Consecutive IDRs differ in idr_pic_id (7.4.3).
      if (idrCount_ > 0) idrPicId_ = static_cast<uint16_t>(idrPicId_ + 1);
      ++idrCount_;
      frameInGop_ = 0;
      frameNum_ = 0;
    }

    auto coded = encodePicture(frame, idr);
    destroyPending();
    if (!coded) {
      // A session that failed mid-picture is not trusted again: the next encode() starts afresh.
      destroySession();
      return std::move(coded).error();
    }

    std::vector<uint8_t> data = std::move(*coded);
    std::shared_ptr<const hal::CodecConfig> config = codecConfig();
    if (idr) {
      if (auto inStream = h264::extractCodecConfig(data)) {
        if (!config || *config != *inStream)
          config = std::make_shared<const hal::CodecConfig>(std::move(*inStream));
      } else if (!packedHeader_.empty()) {
        data.insert(data.begin(), packedHeader_.begin(), packedHeader_.end());  // the driver left ours out
      } else {
        destroySession();
        return Error{Errc::Io, 0,
                     fmt::format("vaapi: driver emits no SPS/PPS before an IDR ({}, no packed headers)",
                                 device_->vendor)};
      }
      setCodecConfig(config);
    }

    reference_ = current_;
    current_ = current_ == 1 ? 2 : 1;
    refFrameNum_ = frameNum_;
    refPoc_ = 2 * frameInGop_;
    haveReference_ = true;
    ++frameInGop_;
    frameNum_ = (frameNum_ + 1) % (1 << kLog2MaxFrameNum);

    auto packet = std::make_shared<hal::Packet>();
    packet->codec = hal::fourcc::kH264;
    packet->data = std::move(data);
    packet->keyframe = idr;
    packet->pts = frame.timestamp();
    packet->sequence = frame.sequence();
    packet->size = config_.size;
    packet->config = std::move(config);
    return hal::PacketPtr(std::move(packet));
  }

  void requestKeyframe() override { keyframeRequested_.store(true, std::memory_order_release); }

  std::shared_ptr<const hal::CodecConfig> codecConfig() const override {
    std::lock_guard lock(configMutex_);
    return codecConfig_;
  }

  void release() override { destroySession(); }

 private:
  static Error invalid(std::string message) {
    return {Errc::InvalidArgument, 0, "vaapi: " + std::move(message)};
  }

  void setCodecConfig(std::shared_ptr<const hal::CodecConfig> config) {
    std::lock_guard lock(configMutex_);
    codecConfig_ = std::move(config);
  }

  int alignedWidth() const { return h264::macroblocks(config_.size.width) * 16; }
  int alignedHeight() const { return h264::macroblocks(config_.size.height) * 16; }

  Status createSession() {
    VADisplay dpy = device_->display;
    std::array<VAConfigAttrib, 3> attribs{{{VAConfigAttribRTFormat, VA_RT_FORMAT_YUV420},
                                           {VAConfigAttribRateControl, choice_.rateControl},
                                           {VAConfigAttribEncPackedHeaders, VA_ENC_PACKED_HEADER_SEQUENCE}}};
    const int attribCount = choice_.packedHeaders ? 3 : 2;
    if (VAStatus s =
            vaCreateConfig(dpy, choice_.profile, choice_.entrypoint, attribs.data(), attribCount, &vaConfig_);
        s != VA_STATUS_SUCCESS) {
      vaConfig_ = VA_INVALID_ID;
      return vaFailed("vaCreateConfig", s);
    }
    VASurfaceAttrib format{};
    format.type = VASurfaceAttribPixelFormat;
    format.flags = VA_SURFACE_ATTRIB_SETTABLE;
    format.value.type = VAGenericValueTypeInteger;
    format.value.value.i = VA_FOURCC_NV12;
    const auto width = static_cast<unsigned>(alignedWidth());
    const auto height = static_cast<unsigned>(alignedHeight());
    if (VAStatus s = vaCreateSurfaces(dpy, VA_RT_FORMAT_YUV420, width, height, surfaces_.data(),
                                      static_cast<unsigned>(surfaces_.size()), &format, 1);
        s != VA_STATUS_SUCCESS) {
      surfaces_.fill(VA_INVALID_SURFACE);
      destroySession();
      return vaFailed("vaCreateSurfaces", s);
    }
    if (VAStatus s =
            vaCreateContext(dpy, vaConfig_, static_cast<int>(width), static_cast<int>(height), VA_PROGRESSIVE,
                            surfaces_.data(), static_cast<int>(surfaces_.size()), &context_);
        s != VA_STATUS_SUCCESS) {
      context_ = VA_INVALID_ID;
      destroySession();
      return vaFailed("vaCreateContext", s);
    }
    // The raw picture's size bounds any sane coded picture; a floor for tiny sizes plus headers.
    const size_t codedBytes = std::max<size_t>(size_t{width} * height * 3 / 2, 64 * 1024);
    if (VAStatus s = vaCreateBuffer(dpy, context_, VAEncCodedBufferType, static_cast<unsigned>(codedBytes), 1,
                                    nullptr, &codedBuffer_);
        s != VA_STATUS_SUCCESS) {
      codedBuffer_ = VA_INVALID_ID;
      destroySession();
      return vaFailed("vaCreateBuffer(VAEncCodedBufferType)", s);
    }
    current_ = 1;
    reference_ = 2;
    haveReference_ = false;  // the first picture of a session is an IDR
    return {};
  }

  void destroySession() {
    if (device_ == nullptr || device_->display == nullptr) return;
    VADisplay dpy = device_->display;
    destroyPending();
    if (image_.image_id != VA_INVALID_ID) vaDestroyImage(dpy, image_.image_id);
    image_ = noImage();
    if (codedBuffer_ != VA_INVALID_ID) vaDestroyBuffer(dpy, codedBuffer_);
    codedBuffer_ = VA_INVALID_ID;
    if (context_ != VA_INVALID_ID) vaDestroyContext(dpy, context_);
    context_ = VA_INVALID_ID;
    if (surfaces_[0] != VA_INVALID_SURFACE)
      vaDestroySurfaces(dpy, surfaces_.data(), static_cast<int>(surfaces_.size()));
    surfaces_.fill(VA_INVALID_SURFACE);
    if (vaConfig_ != VA_INVALID_ID) vaDestroyConfig(dpy, vaConfig_);
    vaConfig_ = VA_INVALID_ID;
    haveReference_ = false;
  }

  void destroyPending() {
    for (VABufferID id : pending_) vaDestroyBuffer(device_->display, id);
    pending_.clear();
  }

  // A parameter buffer for this picture (destroyed after vaEndPicture).
  Status addBuffer(VABufferType type, const void* data, size_t bytes, const char* what) {
    VABufferID id = VA_INVALID_ID;
    if (VAStatus s = vaCreateBuffer(device_->display, context_, type, static_cast<unsigned>(bytes), 1,
                                    const_cast<void*>(data), &id);
        s != VA_STATUS_SUCCESS) {
      return vaFailed(what, s);
    }
    pending_.push_back(id);
    return {};
  }

  // VAEncMiscParameterBuffer: the type word, then the parameter structure.
  template <typename T>
  Status addMisc(VAEncMiscParameterType type, const T& parameter, const char* what) {
    std::vector<uint8_t> bytes(offsetof(VAEncMiscParameterBuffer, data) + sizeof(T));
    const auto typeWord = static_cast<uint32_t>(type);
    std::memcpy(bytes.data(), &typeWord, sizeof typeWord);
    std::memcpy(bytes.data() + offsetof(VAEncMiscParameterBuffer, data), &parameter, sizeof(T));
    return addBuffer(VAEncMiscParameterBufferType, bytes.data(), bytes.size(), what);
  }

  // I420 frame -> the NV12 input surface.
  Status upload(const hal::Frame& frame) {
    VADisplay dpy = device_->display;
    const VASurfaceID input = surfaces_[0];
    VAImage image{};
    bool derived = false;
    if (!deriveFailed_) {
      if (vaDeriveImage(dpy, input, &image) == VA_STATUS_SUCCESS) {
        if (image.format.fourcc == VA_FOURCC_NV12) {
          derived = true;
        } else {
          vaDestroyImage(dpy, image.image_id);
        }
      }
      if (!derived) {
        deriveFailed_ = true;  // tiled or other layouts: copy through vaPutImage from now on
        spdlog::debug("vaapi: vaDeriveImage gives no NV12 image; uploading with vaPutImage");
      }
    }
    if (!derived) {
      if (image_.image_id == VA_INVALID_ID) {
        VAImageFormat nv12{};
        nv12.fourcc = VA_FOURCC_NV12;
        nv12.byte_order = VA_LSB_FIRST;
        nv12.bits_per_pixel = 12;
        if (VAStatus s = vaCreateImage(dpy, &nv12, config_.size.width, config_.size.height, &image_);
            s != VA_STATUS_SUCCESS) {
          image_.image_id = VA_INVALID_ID;
          return vaFailed("vaCreateImage(NV12)", s);
        }
      }
      image = image_;
    }
    void* mapped = nullptr;
    if (VAStatus s = vaMapBuffer(dpy, image.buf, &mapped); s != VA_STATUS_SUCCESS) {
      if (derived) vaDestroyImage(dpy, image.image_id);
      return vaFailed("vaMapBuffer(image)", s);
    }
    auto* base = static_cast<uint8_t*>(mapped);
    const int width = config_.size.width;
    const int height = config_.size.height;
    const hal::Plane& y = frame.plane(0);
    const hal::Plane& u = frame.plane(1);
    const hal::Plane& v = frame.plane(2);
    for (int row = 0; row < height; ++row) {
      std::memcpy(base + image.offsets[0] + size_t{image.pitches[0]} * row,
                  y.data + ptrdiff_t{y.stride} * row, static_cast<size_t>(width));
    }
    for (int row = 0; row < height / 2; ++row) {
      uint8_t* uv = base + image.offsets[1] + size_t{image.pitches[1]} * row;
      const uint8_t* us = u.data + ptrdiff_t{u.stride} * row;
      const uint8_t* vs = v.data + ptrdiff_t{v.stride} * row;
      for (int x = 0; x < width / 2; ++x) {
        uv[2 * x] = us[x];
        uv[2 * x + 1] = vs[x];
      }
    }
    const VAStatus unmapped = vaUnmapBuffer(dpy, image.buf);
    if (derived) {
      vaDestroyImage(dpy, image.image_id);
      if (unmapped != VA_STATUS_SUCCESS) return vaFailed("vaUnmapBuffer(image)", unmapped);
      return {};
    }
    if (unmapped != VA_STATUS_SUCCESS) return vaFailed("vaUnmapBuffer(image)", unmapped);
    if (VAStatus s = vaPutImage(dpy, input, image.image_id, 0, 0, static_cast<unsigned>(width),
                                static_cast<unsigned>(height), 0, 0, static_cast<unsigned>(width),
                                static_cast<unsigned>(height));
        s != VA_STATUS_SUCCESS) {
      return vaFailed("vaPutImage", s);
    }
    return {};
  }

  // The sequence-level buffers sent with every IDR.
  Status addSequence() {
    VAEncSequenceParameterBufferH264 seq{};
    seq.seq_parameter_set_id = 0;
    seq.level_idc = sps_.levelIdc;
    seq.intra_period = static_cast<uint32_t>(config_.gopFrames);
    seq.intra_idr_period = static_cast<uint32_t>(config_.gopFrames);
    seq.ip_period = 1;  // no B-frames
    seq.bits_per_second = static_cast<uint32_t>(config_.bitrateKbps) * 1000;
    seq.max_num_ref_frames = 1;
    seq.picture_width_in_mbs = static_cast<uint16_t>(alignedWidth() / 16);
    seq.picture_height_in_mbs = static_cast<uint16_t>(alignedHeight() / 16);
    seq.seq_fields.bits.chroma_format_idc = 1;
    seq.seq_fields.bits.frame_mbs_only_flag = 1;
    seq.seq_fields.bits.direct_8x8_inference_flag = 1;
    seq.seq_fields.bits.log2_max_frame_num_minus4 = kLog2MaxFrameNum - 4;
    seq.seq_fields.bits.pic_order_cnt_type = 0;
    seq.seq_fields.bits.log2_max_pic_order_cnt_lsb_minus4 = kLog2MaxPocLsb - 4;
    const int cropRight = (alignedWidth() - config_.size.width) / 2;
    const int cropBottom = (alignedHeight() - config_.size.height) / 2;
    seq.frame_cropping_flag = cropRight != 0 || cropBottom != 0 ? 1 : 0;
    seq.frame_crop_right_offset = static_cast<uint32_t>(cropRight);
    seq.frame_crop_bottom_offset = static_cast<uint32_t>(cropBottom);
    // The same VUI as h264::writeSps, for drivers that write the SPS themselves.
    seq.vui_parameters_present_flag = 1;
    seq.vui_fields.bits.timing_info_present_flag = 1;
    seq.vui_fields.bits.bitstream_restriction_flag = 1;
    seq.vui_fields.bits.motion_vectors_over_pic_boundaries_flag = 1;
    seq.vui_fields.bits.log2_max_mv_length_horizontal = 16;
    seq.vui_fields.bits.log2_max_mv_length_vertical = 16;
    seq.num_units_in_tick = 1;
    seq.time_scale = static_cast<uint32_t>(2 * config_.fps);
    if (auto st = addBuffer(VAEncSequenceParameterBufferType, &seq, sizeof seq, "vaCreateBuffer(sequence)");
        !st)
      return st;

    const uint32_t bitsPerSecond = static_cast<uint32_t>(config_.bitrateKbps) * 1000;
    VAEncMiscParameterRateControl rc{};
    rc.bits_per_second = bitsPerSecond;
    rc.target_percentage = choice_.rateControl == VA_RC_CBR ? 100 : 90;
    rc.window_size = 1000;  // ms: a one-second window, as x264's one-second VBV
    rc.initial_qp = kInitialQp;
    rc.min_qp = 0;
    rc.rc_flags.bits.disable_frame_skip = 1;  // one picture out for every frame in
    if (auto st = addMisc(VAEncMiscParameterTypeRateControl, rc, "vaCreateBuffer(rate control)"); !st)
      return st;

    VAEncMiscParameterFrameRate rate{};
    rate.framerate = (1u << 16) | static_cast<uint32_t>(config_.fps);  // denominator 1 << 16 | numerator
    if (auto st = addMisc(VAEncMiscParameterTypeFrameRate, rate, "vaCreateBuffer(frame rate)"); !st)
      return st;

    VAEncMiscParameterHRD hrd{};
    hrd.buffer_size = bitsPerSecond;  // one second
    hrd.initial_buffer_fullness = bitsPerSecond / 4 * 3;
    if (auto st = addMisc(VAEncMiscParameterTypeHRD, hrd, "vaCreateBuffer(HRD)"); !st) return st;

    if (!packedHeader_.empty()) {
      VAEncPackedHeaderParameterBuffer header{};
      header.type = VAEncPackedHeaderSequence;
      header.bit_length = static_cast<uint32_t>(packedHeader_.size() * 8);
      header.has_emulation_bytes = 1;  // h264::nalUnit() escaped them
      if (auto st = addBuffer(VAEncPackedHeaderParameterBufferType, &header, sizeof header,
                              "vaCreateBuffer(packed header parameter)");
          !st)
        return st;
      if (auto st = addBuffer(VAEncPackedHeaderDataBufferType, packedHeader_.data(), packedHeader_.size(),
                              "vaCreateBuffer(packed SPS/PPS)");
          !st)
        return st;
    }
    return {};
  }

  hal::Result<std::vector<uint8_t>> encodePicture(const hal::Frame& frame, bool idr) {
    VADisplay dpy = device_->display;
    if (auto st = upload(frame); !st) return st.error();
    if (idr) {
      if (auto st = addSequence(); !st) return st.error();
    }
    const int poc = 2 * frameInGop_;
    VAPictureH264 reference = invalidPicture();
    if (!idr) {
      reference.picture_id = surfaces_[static_cast<size_t>(reference_)];
      reference.frame_idx = static_cast<uint32_t>(refFrameNum_);
      reference.flags = VA_PICTURE_H264_SHORT_TERM_REFERENCE;
      reference.TopFieldOrderCnt = refPoc_;
      reference.BottomFieldOrderCnt = refPoc_;
    }

    VAEncPictureParameterBufferH264 pic{};
    pic.CurrPic.picture_id = surfaces_[static_cast<size_t>(current_)];
    pic.CurrPic.frame_idx = static_cast<uint32_t>(frameNum_);
    pic.CurrPic.flags = 0;
    pic.CurrPic.TopFieldOrderCnt = poc;
    pic.CurrPic.BottomFieldOrderCnt = poc;
    for (VAPictureH264& r : pic.ReferenceFrames) r = invalidPicture();
    if (!idr) pic.ReferenceFrames[0] = reference;
    pic.coded_buf = codedBuffer_;
    pic.pic_parameter_set_id = 0;
    pic.seq_parameter_set_id = 0;
    pic.frame_num = static_cast<uint16_t>(frameNum_);
    pic.pic_init_qp = static_cast<uint8_t>(kInitialQp);
    pic.num_ref_idx_l0_active_minus1 = 0;
    pic.pic_fields.bits.idr_pic_flag = idr ? 1 : 0;
    pic.pic_fields.bits.reference_pic_flag = 1;
    pic.pic_fields.bits.entropy_coding_mode_flag = pps_.cabac ? 1 : 0;
    pic.pic_fields.bits.transform_8x8_mode_flag = pps_.transform8x8 ? 1 : 0;
    pic.pic_fields.bits.deblocking_filter_control_present_flag = 1;
    if (auto st = addBuffer(VAEncPictureParameterBufferType, &pic, sizeof pic, "vaCreateBuffer(picture)");
        !st)
      return st.error();

    VAEncSliceParameterBufferH264 slice{};
    slice.macroblock_address = 0;
    slice.num_macroblocks = static_cast<uint32_t>(alignedWidth() / 16 * (alignedHeight() / 16));
    slice.macroblock_info = VA_INVALID_ID;
    slice.slice_type = idr ? 2 : 0;  // I : P (Table 7-6)
    slice.pic_parameter_set_id = 0;
    slice.idr_pic_id = idrPicId_;
    slice.pic_order_cnt_lsb = static_cast<uint16_t>(poc % (1 << kLog2MaxPocLsb));
    slice.num_ref_idx_active_override_flag = 0;
    for (VAPictureH264& r : slice.RefPicList0) r = invalidPicture();
    for (VAPictureH264& r : slice.RefPicList1) r = invalidPicture();
    if (!idr) slice.RefPicList0[0] = reference;
    slice.disable_deblocking_filter_idc = 0;
    if (auto st = addBuffer(VAEncSliceParameterBufferType, &slice, sizeof slice, "vaCreateBuffer(slice)");
        !st)
      return st.error();

    const VASurfaceID input = surfaces_[0];
    if (VAStatus s = vaBeginPicture(dpy, context_, input); s != VA_STATUS_SUCCESS)
      return vaFailed("vaBeginPicture", s);
    if (VAStatus s = vaRenderPicture(dpy, context_, pending_.data(), static_cast<int>(pending_.size()));
        s != VA_STATUS_SUCCESS) {
      return vaFailed("vaRenderPicture", s);  // no vaEndPicture: the session is dropped unsubmitted
    }
    if (VAStatus s = vaEndPicture(dpy, context_); s != VA_STATUS_SUCCESS) return vaFailed("vaEndPicture", s);
    if (VAStatus s = vaSyncSurface(dpy, input); s != VA_STATUS_SUCCESS) return vaFailed("vaSyncSurface", s);

    void* mapped = nullptr;
    if (VAStatus s = vaMapBuffer(dpy, codedBuffer_, &mapped); s != VA_STATUS_SUCCESS) {
      return vaFailed("vaMapBuffer(coded)", s);
    }
    std::vector<uint8_t> data;
    bool overflow = false;
    for (auto* segment = static_cast<VACodedBufferSegment*>(mapped); segment != nullptr;
         segment = static_cast<VACodedBufferSegment*>(segment->next)) {
      if ((segment->status & VA_CODED_BUF_STATUS_SLICE_OVERFLOW_MASK) != 0) overflow = true;
      const auto* bytes = static_cast<const uint8_t*>(segment->buf);
      if (bytes != nullptr) data.insert(data.end(), bytes, bytes + segment->size);
    }
    vaUnmapBuffer(dpy, codedBuffer_);
    if (overflow) return Error{Errc::Io, 0, "vaapi: the coded picture overflowed its buffer"};
    if (h264::splitAnnexB(data).empty()) {
      return Error{
          Errc::Io, 0,
          fmt::format("vaapi: the driver returned {} bytes that are no Annex-B access unit", data.size())};
    }
    return data;
  }

  std::unique_ptr<Device> device_;
  const Choice choice_;
  hal::EncoderConfig config_;
  bool configured_ = false;
  h264::SpsFields sps_;
  h264::PpsFields pps_;
  std::vector<uint8_t> packedHeader_;  // Annex-B SPS + PPS; empty without packed headers

  // The session (configure() .. release()).
  VAConfigID vaConfig_ = VA_INVALID_ID;
  VAContextID context_ = VA_INVALID_ID;
  std::array<VASurfaceID, 3> surfaces_{VA_INVALID_SURFACE, VA_INVALID_SURFACE,
                                       VA_INVALID_SURFACE};  // input, 2 pictures
  VABufferID codedBuffer_ = VA_INVALID_ID;
  VAImage image_ = noImage();  // vaPutImage staging when vaDeriveImage does not serve
  bool deriveFailed_ = false;
  std::vector<VABufferID> pending_;  // this picture's parameter buffers

  // Reference state.
  int current_ = 1;    // surfaces_ index of the picture being coded
  int reference_ = 2;  // surfaces_ index of the previous picture
  bool haveReference_ = false;
  int frameInGop_ = 0;
  int frameNum_ = 0;
  int refFrameNum_ = 0;
  int refPoc_ = 0;
  uint16_t idrPicId_ = 0;
  uint64_t idrCount_ = 0;

  std::atomic<bool> keyframeRequested_{false};
  mutable std::mutex configMutex_;
  std::shared_ptr<const hal::CodecConfig> codecConfig_;  // guarded by configMutex_
};

}  // namespace

hal::Result<std::unique_ptr<hal::Encoder>> createVaapiEncoder(const VaapiOptions& options) {
  auto node = findRenderNode(options);
  if (!node) return std::move(node).error();
  auto device = openDevice(*node);
  if (!device) return std::move(device).error();
  auto choice = chooseEncoder(**device);
  if (!choice) return std::move(choice).error();
  spdlog::info("vaapi: {} on {}: {} / {}, {} rate control, {}", (*device)->vendor, *node,
               vaProfileStr(choice->profile), vaEntrypointStr(choice->entrypoint),
               choice->rateControl == VA_RC_CBR ? "CBR" : "VBR",
               choice->packedHeaders ? "our SPS/PPS (packed headers)" : "the driver's SPS/PPS");
  return std::unique_ptr<hal::Encoder>(std::make_unique<VaapiEncoder>(std::move(*device), *choice));
}

}  // namespace printcast::codecs
