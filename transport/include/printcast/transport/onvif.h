// SPDX-License-Identifier: MIT
// ONVIF camera discovery: find the IP cameras of the LAN and their RTSP stream URLs, the way
// camera dashboards' scanners do: a WS-Discovery Probe, then each camera's device and media
// services over SOAP.
//
// Specs: WS-Discovery (2005/04: Probe and ProbeMatches, 239.255.255.250:3702), SOAP-over-UDP
// (the repeated Probe), SOAP 1.2 (Part 1 5.4 Fault; Part 2 7 the HTTP binding, faults answered
// 400/500), WS-Addressing 2004/08, WS-Security UsernameToken Profile 1.0 (3.1 PasswordDigest
// = Base64(SHA-1(nonce + created + password))), ONVIF Core Specification (5.9 authentication,
// 5.12.2 time for the UsernameToken: the device's clock, 7.3 discovery, 8.3.1
// GetSystemDateAndTime, 8.1.2 GetCapabilities, Scopes onvif://www.onvif.org/name/... and
// /hardware/...) and the ONVIF Media service ver10 (GetProfiles, GetStreamUri: RTP-Unicast over
// RTSP). Models read: onvif-zeep's discovery and its UsernameToken, go2rtc's pkg/onvif.
//
// The XML is parsed with pugixml (no DTD is fetched, no entity expanded); elements are matched by
// local name whatever their prefix, as cameras use every prefix and some more than one namespace
// version. SHA-1 and base64 come from nettle.
//
// A build without pugixml has every call here answering Unsupported (onvif_unavailable.cpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "printcast/hal/result.h"

namespace printcast::transport::onvif {

// Namespaces of the messages (ONVIF Core 5.3 and the specs above).
inline constexpr const char* kSoapEnvelopeNs = "http://www.w3.org/2003/05/soap-envelope";
inline constexpr const char* kDiscoveryNs = "http://schemas.xmlsoap.org/ws/2005/04/discovery";
inline constexpr const char* kAddressingNs = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
inline constexpr const char* kNetworkNs = "http://www.onvif.org/ver10/network/wsdl";
inline constexpr uint16_t kDiscoveryPort = 3702;
inline constexpr const char* kDiscoveryGroup = "239.255.255.250";

// Whether this build has ONVIF discovery (pugixml and nettle were found). Without it every call
// below answers Unsupported, naming what the build lacks.
bool discoveryBuilt();

// ----------------------------------------------------------------------------- messages
// Pure functions: no I/O, any thread. Every parser takes the raw bytes a camera sent (any length,
// any content) and never reads outside them.

// One ProbeMatch of a camera's ProbeMatches (WS-Discovery 5.3).
struct ProbeMatch {
  std::string endpoint;             // EndpointReference/Address ("urn:uuid:..."): the camera's id
  std::vector<std::string> types;   // QNames as sent ("dn:NetworkVideoTransmitter", "tds:Device")
  std::vector<std::string> scopes;  // URIs ("onvif://www.onvif.org/name/Garage%20cam")
  std::vector<std::string>
      xaddrs;             // the device service's addresses ("http://192.0.2.7/onvif/device_service")
  std::string relatesTo;  // the Probe's MessageID this answers ("" when not said)
  std::string sender;     // the IPv4 address it came from (probe(); "" from the parser)
};

// The WS-Discovery Probe for dn:NetworkVideoTransmitter (SOAP 1.2), with `messageId`
// ("urn:uuid:..."), as the UTF-8 XML text to send in one UDP datagram.
std::string probeMessage(std::string_view messageId);

// The ProbeMatch elements of a ProbeMatches message. Matches without an endpoint address and
// without XAddrs are left out (nothing to reach).
// Errors: InvalidArgument (not XML, or not a SOAP envelope), Unsupported (a SOAP envelope that
// holds no ProbeMatches: another WS-Discovery message, such as a Probe or a Hello).
hal::Result<std::vector<ProbeMatch>> parseProbeMatches(std::string_view xml);

// What the Scopes say of a camera: "onvif://www.onvif.org/name/<x>" and ".../hardware/<x>",
// percent-decoded ("" when absent; the first one counts).
struct ScopeInfo {
  std::string name;
  std::string hardware;
};
ScopeInfo parseScopes(const std::vector<std::string>& scopes);

// WS-Security UsernameToken credentials for one request.
struct UsernameToken {
  std::string user;
  std::string password;
  std::vector<uint8_t> nonce;  // random bytes (16), sent base64-encoded
  std::string created;         // xsd:dateTime UTC, "2024-05-01T12:00:00Z": the camera's time
};
// Base64(SHA-1(nonce + created + password)) (UsernameToken Profile 1.0, 3.1).
std::string passwordDigest(const std::vector<uint8_t>& nonce, std::string_view created,
                           std::string_view password);
// "YYYY-MM-DDTHH:MM:SSZ" of `time` (UTC).
std::string xsdDateTime(std::chrono::system_clock::time_point time);

// A SOAP 1.2 request: the envelope around `bodyXml` (one element, with its own xmlns), with a
// wsse:Security header when `token` is given (user not empty).
std::string soapRequest(std::string_view bodyXml, const UsernameToken* token);

// The bodies of the requests made to a camera.
std::string getSystemDateAndTimeBody();
std::string getCapabilitiesBody();
std::string getProfilesBody();
std::string getStreamUriBody(std::string_view profileToken);

// Reading a response: each parser first looks for a SOAP Fault (SOAP 1.2 Code/Subcode/Reason, or
// SOAP 1.1 faultcode/faultstring).
// Errors of every parser: InvalidArgument ("not ONVIF": not XML, or not a SOAP envelope),
// PermissionDenied (a fault whose code or subcode is NotAuthorized, or WS-Security's
// FailedAuthentication: the message is "NotAuthorized" or the code found), Unsupported (another
// fault: its subcode and reason; or the answer lacks the element asked for, named).

// The camera's clock in UTC (GetSystemDateAndTimeResponse: UTCDateTime, else LocalDateTime taken
// as UTC). Also InvalidArgument for a date or time out of range (years 1970 to 2200).
hal::Result<std::chrono::system_clock::time_point> parseSystemDateAndTime(std::string_view xml);

// The media service's address (GetCapabilitiesResponse: Capabilities/Media/XAddr).
hal::Result<std::string> parseMediaXAddr(std::string_view xml);

// One media profile (ONVIF Media ver10 tt:Profile) and its stream.
struct Profile {
  std::string token;
  std::string name;
  int width = 0;  // of its video encoder configuration; 0 when it has none
  int height = 0;
  std::string encoding;  // "H264", "JPEG", "MPEG4", "H265" (as the camera says); "" when none
  std::string rtspUri;   // GetStreamUri's answer; "" until asked, or when it failed (see error)
  std::string error;     // why GetStreamUri failed for this profile; "" otherwise
};
// The profiles of GetProfilesResponse (token, name, resolution, encoding), in order.
hal::Result<std::vector<Profile>> parseProfiles(std::string_view xml);

// GetStreamUriResponse: MediaUri/Uri.
hal::Result<std::string> parseStreamUri(std::string_view xml);

// ----------------------------------------------------------------------------- the network

// A camera found, as described by its services.
struct Camera {
  std::string endpoint;             // EndpointReference address (the WS-Discovery id)
  std::string name;                 // Scopes' name, percent-decoded ("" when it has none)
  std::string hardware;             // Scopes' hardware
  std::string xaddr;                // the device service address used
  std::vector<std::string> xaddrs;  // every one it offered
  std::string mediaXAddr;           // the media service's (GetCapabilities)
  // Its clock minus ours (GetSystemDateAndTime); the UsernameToken's Created is our clock plus
  // this. Whole seconds: the answer has no fraction.
  std::chrono::seconds clockOffset{0};
  std::vector<Profile> profiles;
  // "" when every request was answered. Otherwise what went wrong, for a person:
  //   "wrong user or password (NotAuthorized)", "needs a user and password (NotAuthorized)",
  //   "timeout: no answer to GetProfiles from 192.0.2.7:80 within 3 s", "not ONVIF: HTTP 404 ...",
  //   "unreachable: ..." (connection refused, no route), "unsupported: ..." (another fault).
  std::string error;
  hal::Errc errorCode = hal::Errc::Io;  // PermissionDenied, Timeout, InvalidArgument (not ONVIF),
                                        // Io (unreachable), Unsupported; only when error is set
};

struct DiscoveryOptions {
  // How long ProbeMatches are collected after the Probe (a multicast Probe waits all of it; a
  // unicast one ends when every address has answered).
  std::chrono::milliseconds window{5000};
  // Unicast probes: "host" or "host:port" (port 3702 by default; IPv4 address or name) each.
  // Empty: one multicast Probe to 239.255.255.250:3702, sent from every multicast-capable IPv4
  // interface that is up (the default route's when none is).
  std::vector<std::string> addresses;
  // Credentials for every camera's services (empty user: the requests go without a
  // UsernameToken, and a camera that wants one says NotAuthorized).
  std::string user;
  std::string password;
  // Each SOAP request's bound (connect, send, answer), and each camera's in all.
  std::chrono::milliseconds requestTimeout{3000};
  std::chrono::milliseconds cameraTimeout{10000};
  // Cameras asked at the same time (each on its own thread).
  unsigned parallel = 8;
  // When >= 0 and readable: stop early (another thread is shutting down); what was found so far
  // is returned, unfinished cameras with a Timeout "cancelled".
  int wakeFd = -1;
};

// Send the Probe and collect ProbeMatches for `options.window`, de-duplicated by endpoint
// address (a camera answering twice, or on two interfaces, is one camera; without an endpoint
// address, by its first XAddr). Ordered as they first answered.
// Errors: InvalidArgument (an address that does not parse), NoDevice (a name that does not
// resolve), Io (no socket, or the Probe could not be sent anywhere). A window with no answer is
// an empty list, not an error.
// Threading: blocks the caller for the window; never call it on a server thread.
hal::Result<std::vector<ProbeMatch>> probe(const DiscoveryOptions& options);

// Ask one camera's services: GetSystemDateAndTime (no credentials) for the clock offset, then
// GetCapabilities (media XAddr), GetProfiles and GetStreamUri for each profile, with a
// UsernameToken (PasswordDigest, Created = our clock + the offset) when a user is given; a camera
// answering HTTP 401 with a Digest challenge gets HTTP Digest too (ONVIF Core 5.9.1).
// Never fails as a call: the outcome is in Camera::error. Bounded by options.cameraTimeout.
// Threading: blocks the caller.
Camera describe(const ProbeMatch& match, const DiscoveryOptions& options);

// probe(), then describe() for every camera found, options.parallel at a time.
// Errors: those of probe().
// Threading: blocks the caller for the window plus the slowest cameras; starts and joins its own
// threads.
hal::Result<std::vector<Camera>> discover(const DiscoveryOptions& options);

// The XAddr to use of those offered: an http:// one whose host is `sender` (the address the
// ProbeMatches came from) first, then the first http:// IPv4 one, then the first http:// one;
// "" when none is http://.
std::string chooseXAddr(const std::vector<std::string>& xaddrs, std::string_view sender);

}  // namespace printcast::transport::onvif
