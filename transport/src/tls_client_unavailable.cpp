// SPDX-License-Identifier: MIT
// Stand-in for the TLS client in builds with neither GnuTLS nor mbedTLS.
#include "tls_client.h"

namespace printcast::transport {

bool tlsClientAvailable() { return false; }
const char* tlsClientLibrary() { return ""; }

hal::Result<std::unique_ptr<TlsClient>> startTlsClient(int, const std::string& host,
                                                       std::chrono::milliseconds, int, const TlsOptions&) {
  return hal::Error{hal::Errc::Unsupported, 0,
                    "TLS with " + host +
                        ": built without a TLS library (GnuTLS, PRINTCAST_WITH_GNUTLS, or mbedTLS, "
                        "PRINTCAST_WITH_MBEDTLS)"};
}

}  // namespace printcast::transport
