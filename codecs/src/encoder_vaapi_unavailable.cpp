// SPDX-License-Identifier: MIT
// Stand-in for builds without libva (PRINTCAST_HAVE_VA off): the VA-API encoder says so.
#include "printcast/codecs/vaapi_encoder.h"

namespace printcast::codecs {

hal::Result<std::unique_ptr<hal::Encoder>> createVaapiEncoder(const VaapiOptions& /*options*/) {
  return hal::Result<std::unique_ptr<hal::Encoder>>(hal::Errc::Unsupported,
                                                    "vaapi: built without VA-API (PRINTCAST_WITH_VA off)");
}

}  // namespace printcast::codecs
