// SPDX-License-Identifier: MIT
// Stand-in for the TLS client in builds without GnuTLS (PRINTCAST_WITH_GNUTLS; static builds).
#include "tls_client.h"

namespace printcast::transport {

bool tlsClientAvailable() { return false; }

hal::Result<std::unique_ptr<TlsClient>> startTlsClient(int, const std::string& host,
                                                       std::chrono::milliseconds, int) {
  return hal::Error{hal::Errc::Unsupported, 0,
                    "TLS with " + host + ": built without a TLS library (GnuTLS, PRINTCAST_WITH_GNUTLS)"};
}

}  // namespace printcast::transport
