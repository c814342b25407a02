// SPDX-License-Identifier: MIT
// Who may change state through an HTTP port: the same-origin rule of the control port (8081),
// which can press buttons on the printer's screen, delete recordings and change settings.
//
// The attacks this stops (OWASP "CSRF", and DNS rebinding):
//   - a page on another site POSTs a form or a text/plain fetch (a CORS "simple request", sent
//     without a preflight) to http://PRINTER:8081/api/touch; browsers put the page's Origin on
//     every POST/PUT/PATCH/DELETE (Fetch standard, "append a request Origin header"), so a
//     request whose Origin is not the port's own is refused;
//   - a page on evil.example whose DNS name is re-pointed at the printer's address: its requests
//     are same-origin to the browser (Origin http://evil.example:8081 = Host), so the Host must
//     also name this machine: an IP literal, "localhost", the machine's host name (or NAME.local)
//     or a name the user listed.
// A request without Origin (curl, scripts, slicers) passes the Origin rule; it still needs an
// allowed Host. Reads (GET, HEAD) are not checked here; CORS keeps other origins from reading
// the answers unless they are trusted.
//
// Threading: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace printcast::transport {

struct OriginPolicy {
  // On: state-changing requests (every method but GET, HEAD and OPTIONS) must pass
  // checkStateChange(); Access-Control-Allow-Origin goes only to trusted origins. Off: anyone.
  bool sameOriginWrites = false;
  // Origins trusted besides the port's own, exactly as browsers send them
  // ("http://mainsail.local", "https://farm.example:8443"), or "*" for every origin.
  std::vector<std::string> trustedOrigins;
  // Host names (without port, lower-case) accepted besides IP literals, "localhost" and this
  // machine's host name (and NAME.local); "*" accepts every Host (turns the DNS rebinding guard off).
  std::vector<std::string> allowedHosts;
};

// True for the methods that change state: everything but GET, HEAD and OPTIONS.
bool isStateChangingMethod(std::string_view method);

// The host part of a Host header value, lower-case, without port or IPv6 brackets
// ("[::1]:8081" -> "::1", "Printer.Local:80" -> "printer.local"); "" when malformed (empty, a
// bracket without its pair or around anything but an IPv6 literal, a port that is not digits,
// several colons outside brackets, a name with other characters than letters, digits, '-', '.'
// and '_').
std::string hostOfHostHeader(std::string_view host);

// Whether `origin` (an Origin header value) is trusted for a request with `host` (its Host header
// value): the port's own origin ("http://" or "https://" + host, case-insensitive) or one of
// `policy.trustedOrigins`. "null" (sandboxed frames, file:// pages) is never trusted unless
// listed as "*".
bool isTrustedOrigin(const OriginPolicy& policy, std::string_view origin, std::string_view host);

// "" when a state-changing request with these Host and Origin header values (Origin "" = absent)
// may go through; otherwise why not, for a 403 (naming the setting that would allow it).
// `machineName` is this machine's host name (gethostname), lower-case.
std::string checkStateChange(const OriginPolicy& policy, std::string_view host, std::string_view origin,
                             std::string_view machineName);

// Split a comma-separated list ("a, b,,c") into trimmed, non-empty items (config values).
std::vector<std::string> splitList(std::string_view list);

}  // namespace printcast::transport
