// SPDX-License-Identifier: MIT
// ONVIF's messages (onvif.h): the WS-Discovery Probe and SOAP requests made with pugixml, the
// answers read with it, and the UsernameToken's PasswordDigest (SHA-1, base64: nettle).
#include <fmt/format.h>
#include <nettle/base64.h>
#include <nettle/sha1.h>

#include <pugixml.hpp>

#include <charconv>

#include "printcast/transport/onvif.h"
#include "text.h"

namespace printcast::transport::onvif {

using hal::Errc;

namespace {

constexpr const char* kDeviceNs = "http://www.onvif.org/ver10/device/wsdl";
constexpr const char* kMediaNs = "http://www.onvif.org/ver10/media/wsdl";
constexpr const char* kSchemaNs = "http://www.onvif.org/ver10/schema";
constexpr const char* kWsseNs =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
constexpr const char* kWsuNs =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
constexpr const char* kPasswordDigestType =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
constexpr const char* kBase64Binary =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";

// Bounds on what one answer can make us keep (the answer itself is bounded by its transport).
constexpr size_t kMaxItems = 64;

struct StringWriter : pugi::xml_writer {
  std::string out;
  void write(const void* data, size_t size) override { out.append(static_cast<const char*>(data), size); }
};

std::string serialize(const pugi::xml_node& node, bool declaration) {
  StringWriter w;
  unsigned flags = pugi::format_raw;
  if (!declaration) flags |= pugi::format_no_declaration;
  node.print(w, "", flags, pugi::encoding_utf8);
  if (declaration) return R"(<?xml version="1.0" encoding="UTF-8"?>)" + w.out;
  return w.out;
}

// The local part of an element's name ("s:Envelope" -> "Envelope").
std::string_view localName(const pugi::xml_node& n) {
  std::string_view name = n.name();
  const size_t colon = name.rfind(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

std::string_view localPart(std::string_view qname) {
  const size_t colon = qname.rfind(':');
  return colon == std::string_view::npos ? qname : qname.substr(colon + 1);
}

// The first child element named `local` (any prefix).
pugi::xml_node child(const pugi::xml_node& parent, std::string_view local) {
  for (pugi::xml_node c = parent.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_element && localName(c) == local) return c;
  }
  return {};
}

// The first element named `local` below `root`, depth first; iterative (no recursion on input
// depth).
pugi::xml_node descendant(const pugi::xml_node& root, std::string_view local) {
  pugi::xml_node n = root.first_child();
  while (n) {
    if (n.type() == pugi::node_element && localName(n) == local) return n;
    if (n.first_child()) {
      n = n.first_child();
      continue;
    }
    while (n != root && !n.next_sibling()) n = n.parent();
    if (n == root) break;
    n = n.next_sibling();
  }
  return {};
}

std::string textOf(const pugi::xml_node& n) { return std::string(text::trim(n.text().get())); }

// Whitespace-separated items (xs:list: Types, Scopes, XAddrs), at most kMaxItems.
std::vector<std::string> splitList(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (i < s.size() && out.size() < kMaxItems) {
    while (i < s.size() && space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !space(s[j])) ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

std::optional<int> parseInt(std::string_view s) {
  s = text::trim(s);
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// A SOAP Fault in `body` as the error it means; Ok when there is none.
hal::Status faultOf(const pugi::xml_node& body) {
  const pugi::xml_node fault = child(body, "Fault");
  if (!fault) return {};
  std::vector<std::string> codes;
  std::string reason;
  if (pugi::xml_node code = child(fault, "Code")) {  // SOAP 1.2: Code/Value, Subcode/Value...
    for (pugi::xml_node c = code; c && codes.size() < 8; c = child(c, "Subcode")) {
      const std::string v = textOf(child(c, "Value"));
      if (!v.empty()) codes.push_back(v);
    }
    reason = textOf(child(child(fault, "Reason"), "Text"));
  } else {  // SOAP 1.1: faultcode, faultstring
    const std::string v = textOf(child(fault, "faultcode"));
    if (!v.empty()) codes.push_back(v);
    reason = textOf(child(fault, "faultstring"));
  }
  for (const auto& c : codes) {
    const std::string_view local = localPart(c);
    if (local == "NotAuthorized" || local == "FailedAuthentication")
      return {Errc::PermissionDenied, std::string(local)};
  }
  std::string names;
  for (const auto& c : codes) names += (names.empty() ? "" : "/") + std::string(localPart(c));
  if (reason.size() > 200) reason.resize(200);
  return {Errc::Unsupported, fmt::format("SOAP fault {}{}{}", names.empty() ? "(no code)" : names,
                                         reason.empty() ? "" : ": ", reason)};
}

// Parse `xml` into `doc` and return its SOAP Body, or the error of the fault it holds.
hal::Result<pugi::xml_node> openBody(pugi::xml_document& doc, std::string_view xml) {
  // parse_default: no DOCTYPE node (a DTD is skipped, never fetched); only the five predefined
  // entities and character references are expanded.
  const pugi::xml_parse_result parsed = doc.load_buffer(xml.data(), xml.size(), pugi::parse_default);
  if (!parsed) return {Errc::InvalidArgument, fmt::format("not ONVIF: not XML ({})", parsed.description())};
  const pugi::xml_node envelope = doc.document_element();
  if (localName(envelope) != "Envelope") {
    return {Errc::InvalidArgument, fmt::format("not ONVIF: <{}> is not a SOAP envelope",
                                               std::string(envelope.name()).substr(0, 40))};
  }
  const pugi::xml_node body = child(envelope, "Body");
  if (!body) return {Errc::InvalidArgument, "not ONVIF: a SOAP envelope without a Body"};
  if (auto fault = faultOf(body); !fault) return fault.error();
  return body;
}

std::string base64(const uint8_t* data, size_t size) {
  std::string out(BASE64_ENCODE_RAW_LENGTH(size), '\0');
  base64_encode_raw(out.data(), size, data);
  return out;
}

pugi::xml_node appendText(pugi::xml_node parent, const char* name, std::string_view value) {
  pugi::xml_node n = parent.append_child(name);
  n.text().set(std::string(value).c_str());
  return n;
}

// A request body element with its namespace: <prefix:name xmlns:prefix="ns"/>.
pugi::xml_node requestElement(pugi::xml_document& doc, const char* qname, const char* prefix,
                              const char* ns) {
  pugi::xml_node n = doc.append_child(qname);
  n.append_attribute(fmt::format("xmlns:{}", prefix).c_str()).set_value(ns);
  return n;
}

}  // namespace

bool discoveryBuilt() { return true; }

// ----------------------------------------------------------------------------- WS-Discovery

std::string probeMessage(std::string_view messageId) {
  pugi::xml_document doc;
  pugi::xml_node env = doc.append_child("s:Envelope");
  env.append_attribute("xmlns:s").set_value(kSoapEnvelopeNs);
  env.append_attribute("xmlns:a").set_value(kAddressingNs);
  env.append_attribute("xmlns:d").set_value(kDiscoveryNs);
  env.append_attribute("xmlns:dn").set_value(kNetworkNs);
  pugi::xml_node header = env.append_child("s:Header");
  appendText(header, "a:Action", "http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe")
      .append_attribute("s:mustUnderstand")
      .set_value("1");
  appendText(header, "a:MessageID", messageId);
  appendText(header.append_child("a:ReplyTo"), "a:Address",
             "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous");
  appendText(header, "a:To", "urn:schemas-xmlsoap-org:ws:2005:04:discovery")
      .append_attribute("s:mustUnderstand")
      .set_value("1");
  appendText(env.append_child("s:Body").append_child("d:Probe"), "d:Types", "dn:NetworkVideoTransmitter");
  return serialize(doc, true);
}

hal::Result<std::vector<ProbeMatch>> parseProbeMatches(std::string_view xml) {
  pugi::xml_document doc;
  auto body = openBody(doc, xml);
  if (!body) return body.error();
  const pugi::xml_node matches = child(*body, "ProbeMatches");
  if (!matches) return {Errc::Unsupported, "not a ProbeMatches message"};
  const std::string relatesTo = textOf(child(child(doc.document_element(), "Header"), "RelatesTo"));
  std::vector<ProbeMatch> out;
  for (pugi::xml_node m = matches.first_child(); m && out.size() < kMaxItems; m = m.next_sibling()) {
    if (m.type() != pugi::node_element || localName(m) != "ProbeMatch") continue;
    ProbeMatch match;
    match.endpoint = textOf(child(child(m, "EndpointReference"), "Address"));
    match.types = splitList(child(m, "Types").text().get());
    match.scopes = splitList(child(m, "Scopes").text().get());
    match.xaddrs = splitList(child(m, "XAddrs").text().get());
    match.relatesTo = relatesTo;
    if (match.endpoint.empty() && match.xaddrs.empty()) continue;
    out.push_back(std::move(match));
  }
  return out;
}

ScopeInfo parseScopes(const std::vector<std::string>& scopes) {
  ScopeInfo info;
  auto take = [](std::string_view scope, std::string_view prefix, std::string& out) {
    if (!out.empty() || scope.substr(0, prefix.size()) != prefix) return;
    const std::string_view raw = scope.substr(prefix.size());
    auto decoded = text::percentDecode(raw);
    out = decoded ? *decoded : std::string(raw);
  };
  for (const auto& s : scopes) {
    take(s, "onvif://www.onvif.org/name/", info.name);
    take(s, "onvif://www.onvif.org/hardware/", info.hardware);
  }
  return info;
}

std::string chooseXAddr(const std::vector<std::string>& xaddrs, std::string_view sender) {
  auto hostOf = [](std::string_view url) -> std::string_view {
    url.remove_prefix(std::min(url.size(), std::string_view("http://").size()));
    if (!url.empty() && url.front() == '[') return url.substr(1, url.find(']') - 1);
    return url.substr(0, url.find_first_of(":/"));
  };
  auto isHttp = [](std::string_view url) { return text::lower(url.substr(0, 7)) == "http://"; };
  auto isIpv4 = [&](std::string_view url) {
    const std::string_view host = hostOf(url);
    return !host.empty() && host.find_first_not_of("0123456789.") == std::string_view::npos;
  };
  if (!sender.empty()) {
    for (const auto& x : xaddrs)
      if (isHttp(x) && hostOf(x) == sender) return x;
  }
  for (const auto& x : xaddrs)
    if (isHttp(x) && isIpv4(x)) return x;
  for (const auto& x : xaddrs)
    if (isHttp(x)) return x;
  return "";
}

// ----------------------------------------------------------------------------- WS-Security

std::string passwordDigest(const std::vector<uint8_t>& nonce, std::string_view created,
                           std::string_view password) {
  sha1_ctx ctx;
  sha1_init(&ctx);
  sha1_update(&ctx, nonce.size(), nonce.data());
  sha1_update(&ctx, created.size(), reinterpret_cast<const uint8_t*>(created.data()));
  sha1_update(&ctx, password.size(), reinterpret_cast<const uint8_t*>(password.data()));
  uint8_t digest[SHA1_DIGEST_SIZE];
  sha1_digest(&ctx, sizeof digest, digest);
  return base64(digest, sizeof digest);
}

std::string xsdDateTime(std::chrono::system_clock::time_point time) {
  using namespace std::chrono;
  const auto day = floor<days>(time);
  const year_month_day ymd{day};
  const hh_mm_ss hms{floor<seconds>(time - day)};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count());
}

std::string soapRequest(std::string_view bodyXml, const UsernameToken* token) {
  pugi::xml_document doc;
  pugi::xml_node env = doc.append_child("s:Envelope");
  env.append_attribute("xmlns:s").set_value(kSoapEnvelopeNs);
  if (token != nullptr && !token->user.empty()) {
    pugi::xml_node security = env.append_child("s:Header").append_child("wsse:Security");
    security.append_attribute("xmlns:wsse").set_value(kWsseNs);
    security.append_attribute("xmlns:wsu").set_value(kWsuNs);
    security.append_attribute("s:mustUnderstand").set_value("1");
    pugi::xml_node ut = security.append_child("wsse:UsernameToken");
    appendText(ut, "wsse:Username", token->user);
    appendText(ut, "wsse:Password", passwordDigest(token->nonce, token->created, token->password))
        .append_attribute("Type")
        .set_value(kPasswordDigestType);
    appendText(ut, "wsse:Nonce", base64(token->nonce.data(), token->nonce.size()))
        .append_attribute("EncodingType")
        .set_value(kBase64Binary);
    appendText(ut, "wsu:Created", token->created);
  }
  pugi::xml_node body = env.append_child("s:Body");
  pugi::xml_document content;
  if (content.load_buffer(bodyXml.data(), bodyXml.size())) body.append_copy(content.document_element());
  return serialize(doc, true);
}

std::string getSystemDateAndTimeBody() {
  pugi::xml_document doc;
  requestElement(doc, "tds:GetSystemDateAndTime", "tds", kDeviceNs);
  return serialize(doc, false);
}

std::string getCapabilitiesBody() {
  pugi::xml_document doc;
  appendText(requestElement(doc, "tds:GetCapabilities", "tds", kDeviceNs), "tds:Category", "All");
  return serialize(doc, false);
}

std::string getProfilesBody() {
  pugi::xml_document doc;
  requestElement(doc, "trt:GetProfiles", "trt", kMediaNs);
  return serialize(doc, false);
}

std::string getStreamUriBody(std::string_view profileToken) {
  pugi::xml_document doc;
  pugi::xml_node req = requestElement(doc, "trt:GetStreamUri", "trt", kMediaNs);
  req.append_attribute("xmlns:tt").set_value(kSchemaNs);
  pugi::xml_node setup = req.append_child("trt:StreamSetup");
  appendText(setup, "tt:Stream", "RTP-Unicast");
  appendText(setup.append_child("tt:Transport"), "tt:Protocol", "RTSP");
  appendText(req, "trt:ProfileToken", profileToken);
  return serialize(doc, false);
}

// ----------------------------------------------------------------------------- answers

hal::Result<std::chrono::system_clock::time_point> parseSystemDateAndTime(std::string_view xml) {
  pugi::xml_document doc;
  auto body = openBody(doc, xml);
  if (!body) return body.error();
  const pugi::xml_node sdt = descendant(*body, "SystemDateAndTime");
  if (!sdt) return {Errc::Unsupported, "no SystemDateAndTime in the answer"};
  pugi::xml_node when = child(sdt, "UTCDateTime");
  if (!when) when = child(sdt, "LocalDateTime");
  const pugi::xml_node date = child(when, "Date");
  const pugi::xml_node time = child(when, "Time");
  if (!date || !time)
    return {Errc::Unsupported, "no UTCDateTime (or LocalDateTime) Date and Time in the answer"};
  const auto y = parseInt(child(date, "Year").text().get());
  const auto mo = parseInt(child(date, "Month").text().get());
  const auto d = parseInt(child(date, "Day").text().get());
  const auto h = parseInt(child(time, "Hour").text().get());
  const auto mi = parseInt(child(time, "Minute").text().get());
  const auto s = parseInt(child(time, "Second").text().get());
  if (!y || !mo || !d || !h || !mi || !s)
    return {Errc::InvalidArgument, "a date or time field is not a number"};
  using namespace std::chrono;
  const year_month_day ymd{year{*y}, month{static_cast<unsigned>(*mo)}, day{static_cast<unsigned>(*d)}};
  // To 2200: system_clock counts nanoseconds in 64 bits, which ends in 2262.
  if (*y < 1970 || *y > 2200 || *mo < 1 || *d < 1 || !ymd.ok() || *h < 0 || *h > 23 || *mi < 0 || *mi > 59 ||
      *s < 0 || *s > 60) {
    return {Errc::InvalidArgument,
            fmt::format("date {}-{}-{} {}:{}:{} is out of range", *y, *mo, *d, *h, *mi, *s)};
  }
  return system_clock::time_point{sys_days{ymd} + hours{*h} + minutes{*mi} + seconds{*s}};
}

hal::Result<std::string> parseMediaXAddr(std::string_view xml) {
  pugi::xml_document doc;
  auto body = openBody(doc, xml);
  if (!body) return body.error();
  const pugi::xml_node caps = descendant(*body, "Capabilities");
  if (!caps) return {Errc::Unsupported, "no Capabilities in the answer"};
  const std::string xaddr = textOf(child(child(caps, "Media"), "XAddr"));
  if (xaddr.empty()) return {Errc::Unsupported, "no media service (Capabilities/Media/XAddr)"};
  return xaddr;
}

hal::Result<std::vector<Profile>> parseProfiles(std::string_view xml) {
  pugi::xml_document doc;
  auto body = openBody(doc, xml);
  if (!body) return body.error();
  const pugi::xml_node response = child(*body, "GetProfilesResponse");
  if (!response) return {Errc::Unsupported, "no GetProfilesResponse in the answer"};
  std::vector<Profile> out;
  for (pugi::xml_node p = response.first_child(); p && out.size() < kMaxItems; p = p.next_sibling()) {
    if (p.type() != pugi::node_element || localName(p) != "Profiles") continue;
    Profile profile;
    profile.token = std::string(text::trim(p.attribute("token").value()));
    if (profile.token.empty()) continue;  // nothing to ask GetStreamUri for
    profile.name = textOf(child(p, "Name"));
    if (const pugi::xml_node video = child(p, "VideoEncoderConfiguration")) {
      profile.encoding = textOf(child(video, "Encoding"));
      const pugi::xml_node resolution = child(video, "Resolution");
      const auto w = parseInt(child(resolution, "Width").text().get());
      const auto h = parseInt(child(resolution, "Height").text().get());
      if (w && h && *w > 0 && *h > 0 && *w <= 65535 && *h <= 65535) {
        profile.width = *w;
        profile.height = *h;
      }
    }
    out.push_back(std::move(profile));
  }
  return out;
}

hal::Result<std::string> parseStreamUri(std::string_view xml) {
  pugi::xml_document doc;
  auto body = openBody(doc, xml);
  if (!body) return body.error();
  const std::string uri = textOf(child(descendant(*body, "MediaUri"), "Uri"));
  if (uri.empty()) return {Errc::Unsupported, "no MediaUri/Uri in the answer"};
  return uri;
}

}  // namespace printcast::transport::onvif
