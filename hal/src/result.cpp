// SPDX-License-Identifier: MIT
// Error names and errno mapping for Result<T>.
#include "printcast/hal/result.h"

#include <fmt/format.h>

#include <cstring>

namespace printcast::hal {

std::string_view errcName(Errc code) noexcept {
  switch (code) {
    case Errc::Again: return "again";
    case Errc::NoDevice: return "no-device";
    case Errc::NoSignal: return "no-signal";
    case Errc::Disconnected: return "disconnected";
    case Errc::Busy: return "busy";
    case Errc::Unsupported: return "unsupported";
    case Errc::InvalidArgument: return "invalid-argument";
    case Errc::Timeout: return "timeout";
    case Errc::Io: return "io";
    case Errc::PermissionDenied: return "permission-denied";
  }
  return "unknown";
}

Errc errcFromErrno(int errnum) noexcept {
  switch (errnum) {
    case EAGAIN: return Errc::Again;
    case ENOENT:
    case ENXIO: return Errc::NoDevice;
    case ENODEV: return Errc::Disconnected;
    case EBUSY: return Errc::Busy;
    case EINVAL:
    case ERANGE: return Errc::InvalidArgument;
    case ENOTTY:
    case EOPNOTSUPP: return Errc::Unsupported;
    case ETIMEDOUT: return Errc::Timeout;
    case EACCES:
    case EPERM: return Errc::PermissionDenied;
    default: return Errc::Io;
  }
}

std::string Error::describe() const {
  if (errnum != 0) {
    return fmt::format("{}: {}: {} (errno {})", errcName(code), message, std::strerror(errnum), errnum);
  }
  return fmt::format("{}: {}", errcName(code), message);
}

Error errnoError(std::string message, int errnum) {
  return Error{errcFromErrno(errnum), errnum, std::move(message)};
}

}  // namespace printcast::hal
