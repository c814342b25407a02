// SPDX-License-Identifier: MIT
// ONVIF discovery on the network (onvif.h): the WS-Discovery Probe over UDP, then each camera's
// device and media services over SOAP/HTTP (http_post.h).
#include <arpa/inet.h>
#include <fmt/format.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <set>
#include <system_error>
#include <thread>

#include "http_post.h"
#include "printcast/transport/http_digest.h"
#include "printcast/transport/onvif.h"
#include "printcast/transport/url.h"

namespace printcast::transport::onvif {

using hal::Errc;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

std::vector<uint8_t> randomBytes(size_t n) {
  std::random_device rd;
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rd());
  return out;
}

// "urn:uuid:" + a random (version 4) UUID (RFC 4122 4.4).
std::string randomUrn() {
  auto b = randomBytes(16);
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);
  return fmt::format(
      "urn:uuid:{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:"
      "02x}{:02x}",
      b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

std::chrono::milliseconds left(Clock::time_point deadline) {
  return std::max(0ms, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
}

struct Socket {
  int fd = -1;
  ~Socket() {
    if (fd >= 0) ::close(fd);
  }
};

std::string addressText(const sockaddr_in& a) {
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a.sin_addr, text, sizeof text);
  return text;
}

// "host" or "host:port" -> an IPv4 socket address (port 3702 by default).
hal::Result<sockaddr_in> resolveTarget(const std::string& target) {
  std::string host = target;
  uint16_t port = kDiscoveryPort;
  if (const size_t colon = target.rfind(':'); colon != std::string::npos) {
    host = target.substr(0, colon);
    const std::string p = target.substr(colon + 1);
    char* end = nullptr;
    const long v = std::strtol(p.c_str(), &end, 10);
    if (p.empty() || end != p.c_str() + p.size() || v < 1 || v > 65535) {
      return {Errc::InvalidArgument, fmt::format("'{}': the port is not a number in 1..65535", target)};
    }
    port = static_cast<uint16_t>(v);
  }
  if (host.empty() || host.find_first_of(" /[]@") != std::string::npos) {
    return {Errc::InvalidArgument,
            fmt::format("'{}' is not an IPv4 address or host name (with :port)", target)};
  }
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* list = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list); rc != 0 || list == nullptr) {
    return {Errc::NoDevice, fmt::format("'{}' does not resolve: {}", host, ::gai_strerror(rc))};
  }
  sockaddr_in out{};
  std::memcpy(&out, list->ai_addr, sizeof out);
  ::freeaddrinfo(list);
  out.sin_port = htons(port);
  return out;
}

// The IPv4 addresses of the interfaces a multicast Probe goes out of: up, multicast-capable.
std::vector<in_addr> multicastInterfaces() {
  std::vector<in_addr> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    if ((a->ifa_flags & IFF_UP) == 0 || (a->ifa_flags & IFF_MULTICAST) == 0) continue;
    sockaddr_in in{};  // copied: a sockaddr* need not be aligned for sockaddr_in
    std::memcpy(&in, a->ifa_addr, sizeof in);
    out.push_back(in.sin_addr);
  }
  ::freeifaddrs(list);
  return out;
}

}  // namespace

// ----------------------------------------------------------------------------- WS-Discovery

hal::Result<std::vector<ProbeMatch>> probe(const DiscoveryOptions& options) {
  std::vector<sockaddr_in> targets;  // each once, however often it was named
  for (const auto& a : options.addresses) {
    auto t = resolveTarget(a);
    if (!t) return t.error();
    if (std::none_of(targets.begin(), targets.end(), [&](const sockaddr_in& other) {
          return other.sin_addr.s_addr == t->sin_addr.s_addr && other.sin_port == t->sin_port;
        })) {
      targets.push_back(*t);
    }
  }
  Socket sock;
  sock.fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (sock.fd < 0) return hal::errnoError("WS-Discovery: UDP socket");
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(sock.fd, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0) {
    return hal::errnoError("WS-Discovery: bind a UDP port");
  }
  const std::string messageId = randomUrn();
  const std::string message = probeMessage(messageId);

  // Sends the Probe once: to each unicast target, or to the group from each interface.
  auto sendProbe = [&]() -> hal::Status {
    int sent = 0;
    int lastErrno = 0;
    auto sendTo = [&](const sockaddr_in& to) {
      if (::sendto(sock.fd, message.data(), message.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                   sizeof to) == static_cast<ssize_t>(message.size())) {
        ++sent;
      } else {
        lastErrno = errno;
      }
    };
    if (!targets.empty()) {
      for (const auto& t : targets) sendTo(t);
    } else {
      sockaddr_in group{};
      group.sin_family = AF_INET;
      group.sin_port = htons(kDiscoveryPort);
      ::inet_pton(AF_INET, kDiscoveryGroup, &group.sin_addr);
      const auto interfaces = multicastInterfaces();
      for (const in_addr& itf : interfaces) {
        if (::setsockopt(sock.fd, IPPROTO_IP, IP_MULTICAST_IF, &itf, sizeof itf) == 0) sendTo(group);
      }
      if (interfaces.empty()) sendTo(group);  // the default route's interface
    }
    if (sent == 0) {
      return hal::errnoError(targets.empty() ? "WS-Discovery: the Probe to 239.255.255.250:3702 went nowhere"
                                             : "WS-Discovery: sending the Probe",
                             lastErrno);
    }
    return {};
  };
  if (targets.empty()) {
    // The LAN only (routers do not forward TTL 1); our own host's cameras too.
    const unsigned char ttl = 1;
    const unsigned char loop = 1;
    (void)::setsockopt(sock.fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl);
    (void)::setsockopt(sock.fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop);
  }
  if (auto st = sendProbe(); !st) return st.error();

  // SOAP-over-UDP (appendix I): a UDP message is sent again after a short random delay; the
  // copy has the same MessageID, so an answer to either counts once.
  std::mt19937 rng{std::random_device{}()};
  auto repeatAt = Clock::now() + std::chrono::milliseconds(std::uniform_int_distribution<int>(50, 250)(rng));
  bool repeated = false;
  const auto deadline = Clock::now() + options.window;
  std::vector<ProbeMatch> found;
  std::set<std::string> seen;
  std::set<std::pair<uint32_t, uint16_t>> answered;  // unicast targets that answered
  std::vector<char> buf(65536);
  while (true) {
    if (!targets.empty() && answered.size() >= targets.size()) break;
    auto wait = left(deadline);
    if (wait.count() == 0) break;
    if (!repeated) wait = std::min(wait, left(repeatAt));
    pollfd p[2] = {{sock.fd, POLLIN, 0}, {options.wakeFd, POLLIN, 0}};
    const int ready = ::poll(p, options.wakeFd >= 0 ? 2 : 1, static_cast<int>(wait.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return hal::errnoError("WS-Discovery: poll");
    if (options.wakeFd >= 0 && (p[1].revents & POLLIN) != 0) break;
    if (!repeated && Clock::now() >= repeatAt) {
      repeated = true;
      (void)sendProbe();  // the first one went out: a failed repeat changes nothing
    }
    if (ready == 0 || (p[0].revents & POLLIN) == 0) continue;
    sockaddr_in from{};
    socklen_t fromLen = sizeof from;
    const ssize_t n =
        ::recvfrom(sock.fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &fromLen);
    if (n < 0) continue;  // EAGAIN, or an ICMP error of a unicast target (ECONNREFUSED)
    auto matches = parseProbeMatches({buf.data(), static_cast<size_t>(n)});
    if (!matches) continue;  // not for us: a stranger's datagram
    bool ours = false;
    for (auto& m : *matches) {
      if (!m.relatesTo.empty() && m.relatesTo != messageId) continue;  // an answer to another Probe
      ours = true;
      m.sender = addressText(from);
      const std::string key = !m.endpoint.empty() ? m.endpoint : m.xaddrs.front();
      if (!seen.insert(key).second) continue;
      found.push_back(std::move(m));
    }
    if (ours) answered.insert({from.sin_addr.s_addr, from.sin_port});
  }
  return found;
}

// ----------------------------------------------------------------------------- SOAP

namespace {

constexpr std::string_view kDeviceWsdl = "http://www.onvif.org/ver10/device/wsdl/";
constexpr std::string_view kMediaWsdl = "http://www.onvif.org/ver10/media/wsdl/";

// One camera's SOAP exchanges: the deadline, the clock offset, HTTP Digest when asked for.
class CameraClient {
 public:
  CameraClient(const DiscoveryOptions& options, Clock::time_point deadline)
      : options_(options), deadline_(deadline), auth_(options.user, options.password) {}

  std::chrono::seconds clockOffset{0};

  // The answer to the request `action` (its local name, for messages) with `bodyXml` at `url`,
  // read by `parse`; with a UsernameToken when `authenticate` and a user is given.
  // Errors: parse's, Timeout, Io/NoDevice/Disconnected (unreachable), InvalidArgument ("not
  // ONVIF: HTTP 404 ..."), PermissionDenied (HTTP 401/403 without a SOAP fault).
  template <typename Parse>
  auto ask(const Url& url, std::string_view action, std::string_view service, const std::string& bodyXml,
           bool authenticate, Parse parse) -> decltype(parse(std::string_view{})) {
    auto reply = call(url, action, service, bodyXml, authenticate);
    if (!reply) return reply.error();
    auto parsed = parse(reply->body);
    if (!parsed && parsed.code() == Errc::InvalidArgument && reply->status != 200) {
      if (reply->status == 401 || reply->status == 403) {
        return hal::Error{Errc::PermissionDenied, 0, fmt::format("HTTP {}", reply->status)};
      }
      return hal::Error{
          Errc::InvalidArgument, 0,
          fmt::format("not ONVIF: HTTP {} to {} from {}:{}", reply->status, action, url.host, url.port)};
    }
    return parsed;
  }

 private:
  // One request, answered by a status whose body may be SOAP (200; a fault's 400 or 500; 401 or
  // 403 with or without one), retried once with HTTP Digest after a challenge.
  hal::Result<HttpPostReply> call(const Url& url, std::string_view action, std::string_view service,
                                  const std::string& bodyXml, bool authenticate) {
    const std::string where = url.host + ":" + std::to_string(url.port);
    for (int attempt = 0;; ++attempt) {
      const auto budget = std::min(options_.requestTimeout, left(deadline_));
      if (budget.count() == 0) {
        return hal::Error{Errc::Timeout, 0,
                          fmt::format("no answer to {} from {}: the camera's {:.3g} s ran out", action, where,
                                      static_cast<double>(options_.cameraTimeout.count()) / 1000.0)};
      }
      UsernameToken token;
      const bool withToken = authenticate && !options_.user.empty();
      if (withToken) {
        token.user = options_.user;
        token.password = options_.password;
        token.nonce = randomBytes(16);
        token.created = xsdDateTime(std::chrono::system_clock::now() + clockOffset);
      }
      std::vector<std::pair<std::string, std::string>> headers;
      if (auto a = auth_.authorization("POST", url.target); !a.empty())
        headers.emplace_back("Authorization", a);
      const std::string contentType =
          fmt::format("application/soap+xml; charset=utf-8; action=\"{}{}\"", service, action);
      auto reply = httpPost(url, contentType, soapRequest(bodyXml, withToken ? &token : nullptr), headers,
                            budget, options_.wakeFd);
      if (!reply) {
        hal::Error e = std::move(reply).error();
        if (e.code == Errc::Timeout && e.message != "cancelled") {
          e.message = fmt::format("no answer to {} from {} within {:.3g} s", action, where,
                                  static_cast<double>(budget.count()) / 1000.0);
        } else if (e.code != Errc::Timeout) {
          e.message = fmt::format("{} to {}: {}", action, where, e.describe());
          if (e.code == Errc::InvalidArgument) e.message = "not ONVIF: " + e.message;
        }
        return e;
      }
      const int status = reply->status;
      if (status == 401 && attempt == 0 && !options_.user.empty() && !reply->wwwAuthenticate.empty() &&
          auth_.onChallenge(reply->wwwAuthenticate)) {
        continue;  // HTTP authentication on top of (or instead of) WS-Security: ONVIF Core 5.9.1
      }
      if (status == 200 || status == 400 || status == 500 || status == 401 || status == 403) return reply;
      return hal::Error{Errc::InvalidArgument, 0,
                        fmt::format("not ONVIF: HTTP {} to {} from {}", status, action, where)};
    }
  }

  const DiscoveryOptions& options_;
  const Clock::time_point deadline_;
  ClientAuth auth_;
};

// Camera::error and errorCode from the error of a step.
void setError(Camera& camera, const hal::Error& e, const DiscoveryOptions& options, std::string_view step) {
  camera.errorCode = e.code;
  switch (e.code) {
    case Errc::PermissionDenied:
      camera.error = fmt::format(
          "{} ({})", options.user.empty() ? "needs a user and password" : "wrong user or password",
          e.message);
      break;
    case Errc::Timeout: camera.error = "timeout: " + e.message; break;
    case Errc::InvalidArgument:
      camera.error = e.message.rfind("not ONVIF", 0) == 0 ? e.message
                                                          : fmt::format("not ONVIF: {}: {}", step, e.message);
      break;
    case Errc::Io:
    case Errc::NoDevice:
    case Errc::Disconnected:
      camera.errorCode = Errc::Io;
      camera.error = "unreachable: " + e.message;
      break;
    default: camera.error = fmt::format("unsupported: {}: {}", step, e.message); break;
  }
}

}  // namespace

Camera describe(const ProbeMatch& match, const DiscoveryOptions& options) {
  Camera camera;
  camera.endpoint = match.endpoint;
  camera.xaddrs = match.xaddrs;
  const ScopeInfo scopes = parseScopes(match.scopes);
  camera.name = scopes.name;
  camera.hardware = scopes.hardware;
  camera.xaddr = chooseXAddr(match.xaddrs, match.sender);
  if (camera.xaddr.empty()) {
    std::string offered;
    for (const auto& x : match.xaddrs) offered += (offered.empty() ? "" : " ") + x;
    setError(camera, {Errc::Unsupported, 0, "no http:// XAddr (offered: " + offered + ")"}, options,
             "XAddrs");
    return camera;
  }
  auto device = parseUrl(camera.xaddr, "http", 80);
  if (!device) {
    setError(camera, {Errc::InvalidArgument, 0, "XAddr " + device.error().message}, options, "XAddrs");
    return camera;
  }
  CameraClient client(options, Clock::now() + options.cameraTimeout);

  // 1. The camera's clock, asked without credentials (ONVIF Core 5.9.1: it answers anyone).
  const auto asked = std::chrono::system_clock::now();
  auto cameraTime = client.ask(*device, "GetSystemDateAndTime", kDeviceWsdl, getSystemDateAndTimeBody(),
                               false, parseSystemDateAndTime);
  const auto answered = std::chrono::system_clock::now();
  if (cameraTime) {
    const auto ours = asked + (answered - asked) / 2;
    client.clockOffset = std::chrono::round<std::chrono::seconds>(*cameraTime - ours);
    camera.clockOffset = client.clockOffset;
  } else if (cameraTime.code() != Errc::Unsupported && cameraTime.code() != Errc::PermissionDenied) {
    setError(camera, cameraTime.error(), options, "GetSystemDateAndTime");
    return camera;
  }  // else: a camera that will not tell its time: ours is used (offset 0)

  // 2. Where the media service is.
  auto mediaXAddr =
      client.ask(*device, "GetCapabilities", kDeviceWsdl, getCapabilitiesBody(), true, parseMediaXAddr);
  if (!mediaXAddr) {
    setError(camera, mediaXAddr.error(), options, "GetCapabilities");
    return camera;
  }
  camera.mediaXAddr = *mediaXAddr;
  auto media = parseUrl(camera.mediaXAddr, "http", 80);
  if (!media) {
    setError(camera, {Errc::Unsupported, 0, "media XAddr " + media.error().message}, options,
             "GetCapabilities");
    return camera;
  }

  // 3. Its profiles, and 4. each one's RTSP URI.
  auto profiles = client.ask(*media, "GetProfiles", kMediaWsdl, getProfilesBody(), true, parseProfiles);
  if (!profiles) {
    setError(camera, profiles.error(), options, "GetProfiles");
    return camera;
  }
  camera.profiles = std::move(*profiles);
  for (Profile& p : camera.profiles) {
    auto uri =
        client.ask(*media, "GetStreamUri", kMediaWsdl, getStreamUriBody(p.token), true, parseStreamUri);
    if (uri) {
      p.rtspUri = std::move(*uri);
    } else if (uri.code() == Errc::Unsupported) {
      p.error = uri.error().message;  // this profile has no stream (an audio-only one, say)
    } else {
      setError(camera, uri.error(), options, "GetStreamUri");
      return camera;
    }
  }
  return camera;
}

hal::Result<std::vector<Camera>> discover(const DiscoveryOptions& options) {
  auto matches = probe(options);
  if (!matches) return matches.error();
  std::vector<Camera> cameras(matches->size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < matches->size(); i = next++) cameras[i] = describe((*matches)[i], options);
  };
  const size_t threads = std::min<size_t>(std::max(1u, options.parallel), matches->size());
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) {
    try {
      pool.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // no more threads to be had: those started (and this one) ask the rest
    }
  }
  if (threads > 0) work();
  for (auto& t : pool) t.join();
  return cameras;
}

}  // namespace printcast::transport::onvif
