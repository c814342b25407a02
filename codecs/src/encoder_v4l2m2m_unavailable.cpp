// SPDX-License-Identifier: MIT
// Stand-in for builds without V4L2 (PRINTCAST_HAVE_V4L2 off): the M2M encoder says so.
#include "printcast/codecs/v4l2m2m_encoder.h"

namespace printcast::codecs {

hal::Result<std::unique_ptr<hal::Encoder>> createV4l2M2mEncoder(const V4l2M2mOptions& /*options*/) {
  return hal::Result<std::unique_ptr<hal::Encoder>>(hal::Errc::Unsupported,
                                                    "v4l2m2m: built without V4L2 (PRINTCAST_WITH_V4L2 off)");
}

}  // namespace printcast::codecs
