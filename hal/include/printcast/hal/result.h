// SPDX-License-Identifier: MIT
// Result<T>: the error-or-value return type of every printcast call (no exceptions cross modules).
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace printcast::hal {

// Error codes a user (or the calling code) can act on. Each call documents which it returns.
enum class Errc {
  Again,             // nothing available yet (non-blocking dequeue); try again after poll()
  NoDevice,          // the device node does not exist or is not the expected kind
  NoSignal,          // the device is there but delivers no picture (no camera input, panel off)
  Disconnected,      // the device went away while in use (ENODEV); this object stays dead
  Busy,              // another process or client holds the device (EBUSY)
  Unsupported,       // the device or build cannot do what was asked (format, feature, codec)
  InvalidArgument,   // a caller-supplied value is out of range or malformed
  Timeout,           // a bounded wait ran out
  Io,                // any other system error; see errnum
  PermissionDenied,  // EACCES/EPERM opening or using a device
};

// Stable lower-case name of an error code ("no-device", "disconnected", ...).
std::string_view errcName(Errc code) noexcept;

// Map an errno value to the closest Errc (ENODEV -> Disconnected, EBUSY -> Busy, ...).
Errc errcFromErrno(int errnum) noexcept;

// An error: its code, the errno it came from (0 if none) and a human message that names the
// device, key or value involved.
struct Error {
  Errc code = Errc::Io;
  int errnum = 0;
  std::string message;

  // "disconnected: /dev/video0: No such device (errno 19)"
  std::string describe() const;
};

// Build an Error from errno (call right after the failing syscall).
Error errnoError(std::string message, int errnum = errno);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  Result(Errc code, std::string message) : v_(Error{code, 0, std::move(message)}) {}

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }
  Errc code() const { return error().code; }

 private:
  std::variant<T, Error> v_;
};

// Result of a call that returns nothing on success.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)
  Result(Errc code, std::string message) : error_{code, 0, std::move(message)}, ok_(false) {}

  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const Error& error() const& { return error_; }
  Error&& error() && { return std::move(error_); }
  Errc code() const { return error_.code; }

 private:
  Error error_{};
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace printcast::hal
