// SPDX-License-Identifier: MIT
// H264Decoder over libavcodec's H.264 decoder (send/receive API, low delay, one thread).
// Every libav call goes through the table `av` (Libav): in shared builds
// (PRINTCAST_AVCODEC_DLOPEN) it is filled by dlopen/dlsym on the first createH264Decoder(), so
// the process does not carry libavcodec's ~95-library closure until a decoder is wanted; in
// static builds it holds the functions themselves.
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavcodec/version.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libavutil/pixdesc.h>
#include <libavutil/version.h>
}

#ifdef PRINTCAST_AVCODEC_DLOPEN
#include <dlfcn.h>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdarg>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "printcast/codecs/h264_decoder.h"

namespace printcast::codecs {

namespace {

// The libav functions this file calls: X(library, function), the library being libavcodec or
// libavutil (the one that exports it).
#define PRINTCAST_LIBAV_FUNCTIONS(X) \
  X(avcodec, avcodec_find_decoder)   \
  X(avcodec, avcodec_alloc_context3) \
  X(avcodec, avcodec_open2)          \
  X(avcodec, avcodec_send_packet)    \
  X(avcodec, avcodec_receive_frame)  \
  X(avcodec, avcodec_flush_buffers)  \
  X(avcodec, avcodec_free_context)   \
  X(avcodec, avcodec_version)        \
  X(avcodec, av_packet_alloc)        \
  X(avcodec, av_packet_free)         \
  X(avcodec, av_packet_unref)        \
  X(avcodec, av_new_packet)          \
  X(avutil, av_frame_alloc)          \
  X(avutil, av_frame_free)           \
  X(avutil, av_frame_unref)          \
  X(avutil, av_strerror)             \
  X(avutil, av_get_pix_fmt_name)     \
  X(avutil, av_log_set_callback)     \
  X(avutil, av_log_default_callback) \
  X(avutil, av_log_format_line2)

// Pointers typed from the headers compiled against: the ABI of the major version loaded.
struct Libav {
#define PRINTCAST_LIBAV_POINTER(lib, fn) decltype(&::fn) fn = nullptr;
  PRINTCAST_LIBAV_FUNCTIONS(PRINTCAST_LIBAV_POINTER)
#undef PRINTCAST_LIBAV_POINTER
};

#ifdef PRINTCAST_AVCODEC_DLOPEN
// Written once, by load() under gLoadOnce, before gState says Loaded; only read after that.
Libav av;
constexpr bool kLinked = false;
#else
#define PRINTCAST_LIBAV_DIRECT(lib, fn) &::fn,
Libav av{PRINTCAST_LIBAV_FUNCTIONS(PRINTCAST_LIBAV_DIRECT)};
#undef PRINTCAST_LIBAV_DIRECT
constexpr bool kLinked = true;          // static build: libav is linked, `av` holds its functions
#endif
enum class LoadState { NotLoaded, Loaded, Failed };
std::atomic<LoadState> gState{LoadState::NotLoaded};
std::string gLoadError;  // Failed: why (written before gState)
std::once_flag gLoadOnce;

#ifdef PRINTCAST_AVCODEC_DLOPEN
// dlopen("lib<name>.so.<major>"); nullptr with `error` set when it is not there.
void* openLibrary(const char* name, int major, std::string& error) {
  const std::string file = fmt::format("lib{}.so.{}", name, major);
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    error = fmt::format("{} could not be loaded: {}: install lib{}{}", file, why != nullptr ? why : "?", name,
                        major);
  }
  return handle;
}

template <typename Function>
void resolve(void* handle, const char* library, const char* name, Function& out, std::string& error) {
  out = reinterpret_cast<Function>(dlsym(handle, name));
  if (out == nullptr) {
    const char* why = dlerror();
    error = fmt::format("{} has no {}(): {}", library, name, why != nullptr ? why : "?");
  }
}

// Fills `av` from libavcodec/libavutil of the majors compiled against; "" or why not.
std::string loadLibav() {
  std::string error;
  void* avutil = openLibrary("avutil", LIBAVUTIL_VERSION_MAJOR, error);
  if (avutil == nullptr) return error;
  void* avcodec = openLibrary("avcodec", LIBAVCODEC_VERSION_MAJOR, error);
  if (avcodec == nullptr) {
    dlclose(avutil);
    return error;
  }
  Libav table;
#define PRINTCAST_LIBAV_RESOLVE(lib, fn) \
  if (error.empty()) resolve(lib, "lib" #lib, #fn, table.fn, error);
  PRINTCAST_LIBAV_FUNCTIONS(PRINTCAST_LIBAV_RESOLVE)
#undef PRINTCAST_LIBAV_RESOLVE
  if (!error.empty()) {
    dlclose(avcodec);
    dlclose(avutil);
    return error;
  }
  av = table;  // the handles stay open until exit
  return {};
}
#else
std::string loadLibav() { return {}; }  // static build: linked
#endif

struct CodecContextDeleter {
  void operator()(AVCodecContext* context) const { av.avcodec_free_context(&context); }
};
struct FrameDeleter {
  void operator()(AVFrame* frame) const { av.av_frame_free(&frame); }
};
struct PacketDeleter {
  void operator()(AVPacket* packet) const { av.av_packet_free(&packet); }
};

std::string avError(int rc) {
  std::array<char, AV_ERROR_MAX_STRING_SIZE> text{};
  av.av_strerror(rc, text.data(), text.size());
  return text.data();
}

// Largest picture accepted: 4096x4096 (a 12 MP 4000x3000 camera fits; 4K UHD is 8.3 M).
constexpr int64_t kMaxPixels = int64_t{4096} * 4096;

class AvcodecH264Decoder;

// The decoder whose libavcodec call runs on this thread. With one decoding thread
// (thread_count 1) every log line of that call is emitted on the calling thread.
thread_local AvcodecH264Decoder* tDecoding = nullptr;

class AvcodecH264Decoder final : public H264Decoder {
 public:
  AvcodecH264Decoder(std::unique_ptr<AVCodecContext, CodecContextDeleter> context,
                     std::unique_ptr<AVFrame, FrameDeleter> frame,
                     std::unique_ptr<AVPacket, PacketDeleter> packet)
      : context_(std::move(context)), frame_(std::move(frame)), packet_(std::move(packet)) {}

  hal::Result<hal::Frame> decode(std::span<const uint8_t> accessUnit, hal::FramePool& pool,
                                 hal::Timestamp pts, uint64_t sequence) override {
    // An empty packet would be libavcodec's end-of-stream (drain) signal: never send one.
    if (accessUnit.empty()) return {hal::Errc::InvalidArgument, "H.264 decoder: empty access unit"};
    if (accessUnit.size() > static_cast<size_t>(INT_MAX - AV_INPUT_BUFFER_PADDING_SIZE)) {
      return {hal::Errc::InvalidArgument,
              fmt::format("H.264 decoder: a {}-byte access unit is too large", accessUnit.size())};
    }
    LogScope scope(this);
    // libavcodec reads up to AV_INPUT_BUFFER_PADDING_SIZE bytes past the end (its bitstream
    // readers): the access unit goes into a padded packet buffer.
    av.av_packet_unref(packet_.get());
    if (av.av_new_packet(packet_.get(), static_cast<int>(accessUnit.size())) < 0) {
      return {hal::Errc::Io, fmt::format("H.264 decoder: no memory for a {}-byte packet", accessUnit.size())};
    }
    std::memcpy(packet_->data, accessUnit.data(), accessUnit.size());
    const int64_t ptsNs =
        std::chrono::duration_cast<std::chrono::nanoseconds>(pts.time_since_epoch()).count();
    packet_->pts = ptsNs;
    recent_[recentNext_++ % recent_.size()] = {ptsNs, sequence};

    int rc = av.avcodec_send_packet(context_.get(), packet_.get());
    av.av_packet_unref(packet_.get());
    if (rc < 0) return libavError(rc, "decoding");

    // Normally one picture per access unit; should libavcodec give several, the newest wins.
    hal::Result<hal::Frame> out(
        hal::Errc::Again,
        "H.264 decoder: no picture yet (decoding starts at an IDR access unit with its SPS/PPS)");
    for (;;) {
      rc = av.avcodec_receive_frame(context_.get(), frame_.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) break;
      if (rc < 0) return libavError(rc, "decoding");
      out = copyOut(*frame_, pool, pts, sequence);
      av.av_frame_unref(frame_.get());
    }
    return out;
  }

  void reset() override {
    LogScope scope(this);
    av.avcodec_flush_buffers(context_.get());
  }

  hal::Size pictureSize() const override { return pictureSize_; }

  std::string name() const override { return h264DecoderName(); }

  // A log line of one of this decoder's calls (from the log callback): the first warning or
  // error (the cause; later lines are its consequences) is kept for the error message;
  // nothing is printed.
  void keepLogLine(int level, const char* format, va_list args) {
    if (level > AV_LOG_WARNING || !firstLogLine_.empty()) return;
    std::array<char, 256> line{};
    int printPrefix = 0;
    av.av_log_format_line2(nullptr, level, format, args, line.data(), static_cast<int>(line.size()),
                           &printPrefix);
    std::string text(line.data());
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    firstLogLine_ = std::move(text);
  }

 private:
  // Marks this decoder as the one whose log lines the callback keeps, for one call.
  class LogScope {
   public:
    explicit LogScope(AvcodecH264Decoder* decoder) : previous_(tDecoding) {
      tDecoding = decoder;
      decoder->firstLogLine_.clear();
    }
    ~LogScope() { tDecoding = previous_; }
    LogScope(const LogScope&) = delete;
    LogScope& operator=(const LogScope&) = delete;

   private:
    AvcodecH264Decoder* previous_;
  };

  hal::Error libavError(int rc, const char* what) const {
    const hal::Errc code = rc == AVERROR(ENOMEM) ? hal::Errc::Io : hal::Errc::InvalidArgument;
    std::string message = fmt::format("H.264 decoder: {}: {}", what, avError(rc));
    if (!firstLogLine_.empty()) message += " (libavcodec: " + firstLogLine_ + ")";
    return hal::Error{code, 0, std::move(message)};
  }

  // Copy a decoded picture into an I420 frame of `pool`, with the pts and sequence of the
  // access unit it came from.
  hal::Result<hal::Frame> copyOut(const AVFrame& picture, hal::FramePool& pool, hal::Timestamp pts,
                                  uint64_t sequence) {
    const hal::Size size{picture.width, picture.height};
    pictureSize_ = size;
    const auto format = static_cast<AVPixelFormat>(picture.format);
    // Chroma plane size of the picture's layout; 0 for monochrome.
    int chromaWidth = 0;
    int chromaHeight = 0;
    switch (format) {
      case AV_PIX_FMT_YUV420P:
      case AV_PIX_FMT_YUVJ420P:
        chromaWidth = (size.width + 1) / 2;
        chromaHeight = (size.height + 1) / 2;
        break;
      case AV_PIX_FMT_YUV422P:
      case AV_PIX_FMT_YUVJ422P:
        chromaWidth = (size.width + 1) / 2;
        chromaHeight = size.height;
        break;
      case AV_PIX_FMT_YUV444P:
      case AV_PIX_FMT_YUVJ444P:
        chromaWidth = size.width;
        chromaHeight = size.height;
        break;
      case AV_PIX_FMT_GRAY8: break;
      default: {
        const char* name = av.av_get_pix_fmt_name(format);
        return hal::Result<hal::Frame>(
            hal::Errc::Unsupported,
            fmt::format("H.264 decoder: {} pictures in {} cannot be carried as 8-bit I420", size.str(),
                        name != nullptr ? name : "an unknown pixel format"));
      }
    }
    if (pool.format() != hal::fourcc::kI420 || !(pool.size() == size)) {
      return hal::Result<hal::Frame>(
          hal::Errc::InvalidArgument,
          fmt::format("H.264 decoder: a {} picture needs an I420 pool of that size, not {} {}", size.str(),
                      pool.format().str(), pool.size().str()));
    }
    auto w = pool.acquire();
    if (!w) return std::move(w).error();

    auto copyRows = [](uint8_t* dst, int dstStride, const uint8_t* src, int srcStride, int width, int rows) {
      for (int y = 0; y < rows; ++y) {
        std::memcpy(dst + static_cast<ptrdiff_t>(y) * dstStride, src + static_cast<ptrdiff_t>(y) * srcStride,
                    static_cast<size_t>(width));
      }
    };
    copyRows(w->data(0), w->stride(0), picture.data[0], picture.linesize[0], size.width, size.height);
    const int width420 = (size.width + 1) / 2;
    const int height420 = (size.height + 1) / 2;
    for (int p = 1; p <= 2; ++p) {
      uint8_t* dst = w->data(p);
      const int dstStride = w->stride(p);
      if (chromaWidth == 0) {
        for (int y = 0; y < height420; ++y)
          std::memset(dst + static_cast<ptrdiff_t>(y) * dstStride, 128, static_cast<size_t>(width420));
      } else if (chromaWidth == width420 && chromaHeight == height420) {
        copyRows(dst, dstStride, picture.data[p], picture.linesize[p], width420, height420);
      } else {
        downsampleChroma(picture.data[p], picture.linesize[p], chromaWidth, chromaHeight, dst, dstStride,
                         width420, height420);
      }
    }
    // The access unit this picture came from (the same one unless libavcodec held pictures back).
    for (const auto& [ns, seq] : recent_) {
      if (ns == picture.pts) {
        pts = hal::Timestamp(std::chrono::duration_cast<hal::Clock::duration>(std::chrono::nanoseconds(ns)));
        sequence = seq;
        break;
      }
    }
    return std::move(*w).publish(pts, sequence);
  }

  // 4:2:2 / 4:4:4 chroma to 4:2:0: each output sample is the mean of the source samples it covers.
  static void downsampleChroma(const uint8_t* src, int srcStride, int srcWidth, int srcHeight, uint8_t* dst,
                               int dstStride, int width, int height) {
    for (int y = 0; y < height; ++y) {
      const int y0 = y * srcHeight / height;
      const int y1 = std::max(y0 + 1, (y + 1) * srcHeight / height);
      for (int x = 0; x < width; ++x) {
        const int x0 = x * srcWidth / width;
        const int x1 = std::max(x0 + 1, (x + 1) * srcWidth / width);
        int sum = 0;
        for (int sy = y0; sy < y1; ++sy) {
          const uint8_t* row = src + static_cast<ptrdiff_t>(sy) * srcStride;
          for (int sx = x0; sx < x1; ++sx) sum += row[sx];
        }
        dst[static_cast<ptrdiff_t>(y) * dstStride + x] = static_cast<uint8_t>(sum / ((x1 - x0) * (y1 - y0)));
      }
    }
  }

  std::unique_ptr<AVCodecContext, CodecContextDeleter> context_;
  std::unique_ptr<AVFrame, FrameDeleter> frame_;
  std::unique_ptr<AVPacket, PacketDeleter> packet_;
  hal::Size pictureSize_;
  std::string firstLogLine_;
  // pts (ns) -> sequence of the last access units sent, to stamp a picture libavcodec held back.
  std::array<std::pair<int64_t, uint64_t>, 16> recent_{};
  size_t recentNext_ = 0;
};

// libavcodec's log callback (process-wide): lines of a printcast decoder's call are kept by that
// decoder; every other line goes to libavcodec's default callback, as without us.
void logCallback(void* avcl, int level, const char* format, va_list args) {
  if (tDecoding != nullptr) {
    tDecoding->keepLogLine(level, format, args);
    return;
  }
  av.av_log_default_callback(avcl, level, format, args);
}

// Loads libav once (the first caller; concurrent ones wait), then installs the log callback.
void load() {
  std::call_once(gLoadOnce, [] {
    std::string error = loadLibav();
    if (!error.empty()) {
      gLoadError = std::move(error);
      gState.store(LoadState::Failed, std::memory_order_release);
      return;
    }
    av.av_log_set_callback(logCallback);
    gState.store(LoadState::Loaded, std::memory_order_release);
  });
}

}  // namespace

hal::Result<std::unique_ptr<H264Decoder>> createH264Decoder() {
  using Out = hal::Result<std::unique_ptr<H264Decoder>>;
  load();
  if (gState.load(std::memory_order_acquire) != LoadState::Loaded)
    return Out(hal::Errc::Unsupported, "H.264 decoder: " + gLoadError);

  const AVCodec* codec = av.avcodec_find_decoder(AV_CODEC_ID_H264);
  if (codec == nullptr)
    return Out(hal::Errc::Unsupported, "H.264 decoder: this libavcodec has no H.264 decoder");
  std::unique_ptr<AVCodecContext, CodecContextDeleter> context(av.avcodec_alloc_context3(codec));
  std::unique_ptr<AVFrame, FrameDeleter> frame(av.av_frame_alloc());
  std::unique_ptr<AVPacket, PacketDeleter> packet(av.av_packet_alloc());
  if (!context || !frame || !packet) return Out(hal::Errc::Io, "H.264 decoder: out of memory");
  // Low delay: a picture leaves the decoder with its own access unit (no reorder wait). One
  // thread: frame threads would delay every picture by a frame per thread, and the camera
  // thread is the one that decodes. Pictures are given only once decoding has recovered (from
  // an IDR or a recovery point): a P-frame without its references is no picture, not a grey one.
  context->flags |= AV_CODEC_FLAG_LOW_DELAY;
  context->flags &= ~AV_CODEC_FLAG_OUTPUT_CORRUPT;
  context->thread_count = 1;
  // A stream's SPS can ask for any size up to 16 k x 16 k, and libavcodec would allocate its
  // reference pictures before a slice proves anything: cap it (InvalidArgument when exceeded).
  context->max_pixels = kMaxPixels;
  const int rc = av.avcodec_open2(context.get(), codec, nullptr);
  if (rc < 0) return Out(hal::Errc::Io, "H.264 decoder: opening libavcodec's decoder: " + avError(rc));
  return Out(std::make_unique<AvcodecH264Decoder>(std::move(context), std::move(frame), std::move(packet)));
}

std::string h264DecoderName() {
  const LoadState state = gState.load(std::memory_order_acquire);
  if (state == LoadState::Failed) return "unavailable: " + gLoadError;
  if (state == LoadState::NotLoaded && !kLinked) return "libavcodec (loaded at first use)";
  const unsigned v = av.avcodec_version();
  return fmt::format("libavcodec {}.{}.{}", AV_VERSION_MAJOR(v), AV_VERSION_MINOR(v), AV_VERSION_MICRO(v));
}

}  // namespace printcast::codecs
