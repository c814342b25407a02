// SPDX-License-Identifier: MIT
// HTTP-FLV pull (see flv_pull.h): the response reader and the pull capture.
#include "printcast/transport/flv_pull.h"

#include <fmt/format.h>

#include "http_pull.h"
#include "printcast/codecs/h264.h"
#include "printcast/transport/mjpeg_pull.h"
#include "text.h"

namespace printcast::transport {

using hal::Errc;
using Clock = std::chrono::steady_clock;

bool isHttpFlvUrl(std::string_view url) {
  auto parsed = parseHttpUrl(url);
  if (!parsed) return false;
  std::string_view path = parsed->target;
  path = path.substr(0, path.find_first_of("?#"));
  return path.size() >= 3 && text::lower(path.substr(path.size() - 3)) == "flv";
}

FlvResponseReader::FlvResponseReader(Limits limits)
    : HttpResponseReader(limits.maxHeadBytes, limits.maxTagBytes),
      demuxer_(flv::FlvDemuxer::Limits{limits.maxTagBytes}) {}

hal::Status FlvResponseReader::onHead() {
  const std::string type(text::trim(text::lower(contentType().substr(0, contentType().find(';')))));
  if (type == "video/x-flv" || type == "video/flv") return {};
  if (type.empty() || type == "application/octet-stream") {
    sniff_ = true;  // ffmpeg's -listen server says octet-stream: the body's first bytes decide
    return {};
  }
  return fail(Errc::Unsupported, fmt::format("Content-Type '{}' is not an FLV stream (video/x-flv)",
                                             contentType().substr(0, 80)));
}

hal::Status FlvResponseReader::onBody(const uint8_t* data, size_t size) {
  for (size_t i = 0; sniff_ && sniffed_ < 3 && i < size; ++i, ++sniffed_) {
    if (data[i] != "FLV"[sniffed_]) {
      return fail(
          Errc::Unsupported,
          fmt::format("Content-Type '{}' with a body that does not start with \"FLV\"", contentType()));
    }
  }
  return demuxer_.feed({data, size});
}

namespace {

class FlvPullCapture final : public HttpPullCapture {
 public:
  FlvPullCapture(Url url, FlvPullOptions options)
      : HttpPullCapture(std::move(url), "http-flv", hal::fourcc::kH264,
                        {options.connectTimeout, options.noDataTimeout, options.userAgent, "video/x-flv"}),
        options_(std::move(options)) {}

  ~FlvPullCapture() override { stopThread(); }

  hal::Status open() { return NetworkCapture::open(options_.openTimeout, "no picture size (SPS)"); }

  hal::Status start(const hal::CaptureConfig& config) override {
    if (config.format != hal::fourcc::kH264)
      return {Errc::InvalidArgument, "an HTTP-FLV camera delivers H264 only"};
    return {};
  }

 private:
  HttpResponseReader& newResponse() override {
    reader_ = std::make_unique<FlvResponseReader>(options_.limits);
    return *reader_;
  }

  hal::Status deliver() override {
    flv::AccessUnit au;
    while (reader_->pop(au)) {
      const Clock::time_point arrival = Clock::now();
      // The picture size follows the newest SPS.
      if (au.config != nullptr && au.config->sps != sizeSps_) {
        sizeSps_ = au.config->sps;
        if (auto sps = codecs::h264::parseSps(sizeSps_)) {
          size_ = sps->size;
          noteSpsFps(*sps);
        }
      }
      if (size_.empty()) continue;  // no SPS yet: nothing can decode it
      const auto pts = mediaClock_.map(au.ptsMs, 1000, arrival);
      if (!frames_.deliverH264(std::move(au.annexB), au.idr, size_, pts)) return frames_.error();
    }
    return {};
  }

  const FlvPullOptions options_;
  // I/O thread only
  std::unique_ptr<FlvResponseReader> reader_;
  std::vector<uint8_t> sizeSps_;
  hal::Size size_;
  MediaClock mediaClock_;
};

}  // namespace

hal::Result<std::unique_ptr<hal::Capture>> createFlvPullCapture(const std::string& url,
                                                                FlvPullOptions options) {
  auto parsed = parseHttpUrl(url);
  if (!parsed) return parsed.error();
  auto capture = std::make_unique<FlvPullCapture>(std::move(*parsed), std::move(options));
  if (auto st = capture->open(); !st) return st.error();
  return std::unique_ptr<hal::Capture>(std::move(capture));
}

}  // namespace printcast::transport
