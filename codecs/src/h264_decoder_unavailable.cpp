// SPDX-License-Identifier: MIT
// Stand-in for the H.264 decoder in builds without libavcodec (PRINTCAST_WITH_AVCODEC=OFF or not found).
#include "printcast/codecs/h264_decoder.h"

namespace printcast::codecs {

hal::Result<std::unique_ptr<H264Decoder>> createH264Decoder() {
  return hal::Result<std::unique_ptr<H264Decoder>>(
      hal::Errc::Unsupported, "H.264 decoder: built without libavcodec (PRINTCAST_WITH_AVCODEC)");
}

std::string h264DecoderName() { return "not-built"; }

}  // namespace printcast::codecs
