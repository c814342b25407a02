// SPDX-License-Identifier: MIT
// ONVIF discovery's messages (transport/onvif.h): the Probe and requests we write, the answers
// cameras send (several vendors' prefixes, SOAP 1.2 and 1.1 faults), the UsernameToken digest.
#include <gtest/gtest.h>

#include <pugixml.hpp>

#include "printcast/transport/onvif.h"

namespace onvif = printcast::transport::onvif;
using printcast::hal::Errc;

namespace {

// The ONVIF Application Programmer's Guide's UsernameToken example (5.1.4): its nonce, created
// and password give this digest.
TEST(OnvifSecurity, PasswordDigestMatchesTheOnvifProgrammersGuideExample) {
  const std::vector<uint8_t> nonce = {0x2c, 0xaa, 0x88, 0xe8, 0x6f, 0xc0, 0x8a, 0x42, 0x82,
                                      0x42, 0xb3, 0x74, 0xce, 0xa6, 0x45, 0x96};  // LKqI6G/AikKCQrN0zqZFlg==
  EXPECT_EQ(onvif::passwordDigest(nonce, "2010-09-16T07:50:45Z", "userpassword"),
            "tuOSpGlFlIXsozq4HFNeeGeFLEI=");
}

TEST(OnvifSecurity, XsdDateTimeIsUtcWithoutFraction) {
  using namespace std::chrono;
  const auto t = sys_days{year{2024} / 5 / 1} + hours{13} + minutes{2} + seconds{3} + milliseconds{999};
  EXPECT_EQ(onvif::xsdDateTime(t), "2024-05-01T13:02:03Z");
}

// The request carries the token as WS-Security says, the user name escaped, the digest of the
// nonce sent.
TEST(OnvifSecurity, RequestCarriesAUsernameTokenWithTheDigestOfItsNonce) {
  onvif::UsernameToken token{
      "ad<min>&", "pw", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, "2024-05-01T12:00:00Z"};
  const std::string xml = onvif::soapRequest(onvif::getProfilesBody(), &token);
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(xml.c_str())) << xml;
  const auto ut =
      doc.child("s:Envelope").child("s:Header").child("wsse:Security").child("wsse:UsernameToken");
  ASSERT_TRUE(ut) << xml;
  EXPECT_STREQ(doc.child("s:Envelope").attribute("xmlns:s").value(),
               "http://www.w3.org/2003/05/soap-envelope");
  EXPECT_STREQ(ut.parent().attribute("xmlns:wsse").value(),
               "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd");
  EXPECT_STREQ(ut.child("wsse:Username").text().get(), "ad<min>&");
  EXPECT_STREQ(ut.child("wsse:Password").text().get(),
               onvif::passwordDigest(token.nonce, token.created, "pw").c_str());
  EXPECT_STREQ(
      ut.child("wsse:Password").attribute("Type").value(),
      "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest");
  EXPECT_STREQ(ut.child("wsse:Nonce").text().get(), "AQIDBAUGBwgJCgsMDQ4PEA==");
  EXPECT_STREQ(ut.child("wsu:Created").text().get(), "2024-05-01T12:00:00Z");
  const auto request = doc.child("s:Envelope").child("s:Body").child("trt:GetProfiles");
  ASSERT_TRUE(request) << xml;
  EXPECT_STREQ(request.attribute("xmlns:trt").value(), "http://www.onvif.org/ver10/media/wsdl");
}

TEST(OnvifSecurity, RequestWithoutCredentialsHasNoHeader) {
  const std::string xml = onvif::soapRequest(onvif::getSystemDateAndTimeBody(), nullptr);
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(xml.c_str())) << xml;
  EXPECT_FALSE(doc.child("s:Envelope").child("s:Header"));
  EXPECT_TRUE(doc.child("s:Envelope").child("s:Body").child("tds:GetSystemDateAndTime")) << xml;
}

TEST(OnvifMessages, GetStreamUriAsksForRtpUnicastOverRtspForTheProfile) {
  pugi::xml_document doc;
  const std::string body = onvif::getStreamUriBody("main&1");
  ASSERT_TRUE(doc.load_string(body.c_str())) << body;
  const auto req = doc.child("trt:GetStreamUri");
  EXPECT_STREQ(req.child("trt:StreamSetup").child("tt:Stream").text().get(), "RTP-Unicast");
  EXPECT_STREQ(req.child("trt:StreamSetup").child("tt:Transport").child("tt:Protocol").text().get(), "RTSP");
  EXPECT_STREQ(req.child("trt:ProfileToken").text().get(), "main&1");
}

TEST(OnvifDiscovery, ProbeAsksForNetworkVideoTransmitters) {
  const std::string xml = onvif::probeMessage("urn:uuid:1234");
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(xml.c_str())) << xml;
  const auto env = doc.child("s:Envelope");
  EXPECT_STREQ(env.child("s:Header").child("a:MessageID").text().get(), "urn:uuid:1234");
  EXPECT_STREQ(env.child("s:Header").child("a:Action").text().get(),
               "http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe");
  EXPECT_STREQ(env.child("s:Header").child("a:To").text().get(),
               "urn:schemas-xmlsoap-org:ws:2005:04:discovery");
  EXPECT_STREQ(env.child("s:Body").child("d:Probe").child("d:Types").text().get(),
               "dn:NetworkVideoTransmitter");
  EXPECT_STREQ(env.attribute("xmlns:dn").value(), "http://www.onvif.org/ver10/network/wsdl");
  EXPECT_STREQ(env.attribute("xmlns:d").value(), "http://schemas.xmlsoap.org/ws/2005/04/discovery");
  // A Probe is not an answer.
  EXPECT_EQ(onvif::parseProbeMatches(xml).code(), Errc::Unsupported);
}

// Prefixes as one vendor writes them (SOAP-ENV, wsa, d), two matches in one message.
TEST(OnvifDiscovery, ReadsProbeMatchesWhateverThePrefixes) {
  const char* xml = R"(<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"
  xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"
  xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">
 <SOAP-ENV:Header><wsa:MessageID>urn:uuid:aaaa</wsa:MessageID><wsa:RelatesTo>urn:uuid:probe-1</wsa:RelatesTo></SOAP-ENV:Header>
 <SOAP-ENV:Body><d:ProbeMatches>
  <d:ProbeMatch><wsa:EndpointReference><wsa:Address>urn:uuid:cam-1</wsa:Address></wsa:EndpointReference>
   <d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>
   <d:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/name/Garage%20cam
     onvif://www.onvif.org/hardware/IPC-G5</d:Scopes>
   <d:XAddrs>http://[fe80::1]/onvif/device_service http://192.0.2.7/onvif/device_service</d:XAddrs>
   <d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch>
  <d:ProbeMatch><wsa:EndpointReference><wsa:Address>urn:uuid:cam-2</wsa:Address></wsa:EndpointReference>
   <d:XAddrs>http://192.0.2.8:8080/onvif/device_service</d:XAddrs></d:ProbeMatch>
  <d:ProbeMatch><d:Types>dn:NetworkVideoTransmitter</d:Types></d:ProbeMatch>
 </d:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>)";
  auto matches = onvif::parseProbeMatches(xml);
  ASSERT_TRUE(matches) << matches.error().describe();
  ASSERT_EQ(matches->size(), 2u) << "the match with neither address nor XAddrs is left out";
  const auto& m = (*matches)[0];
  EXPECT_EQ(m.endpoint, "urn:uuid:cam-1");
  EXPECT_EQ(m.relatesTo, "urn:uuid:probe-1");
  EXPECT_EQ(m.types, (std::vector<std::string>{"dn:NetworkVideoTransmitter", "tds:Device"}));
  ASSERT_EQ(m.xaddrs.size(), 2u);
  EXPECT_EQ(onvif::chooseXAddr(m.xaddrs, ""), "http://192.0.2.7/onvif/device_service");
  const auto scopes = onvif::parseScopes(m.scopes);
  EXPECT_EQ(scopes.name, "Garage cam");
  EXPECT_EQ(scopes.hardware, "IPC-G5");
  EXPECT_EQ((*matches)[1].endpoint, "urn:uuid:cam-2");
  EXPECT_TRUE((*matches)[1].scopes.empty());
}

TEST(OnvifDiscovery, ChoosesTheXAddrOfTheAddressThatAnswered) {
  const std::vector<std::string> xaddrs = {"https://192.0.2.7/onvif/device_service",
                                           "http://10.0.0.5/onvif/device_service",
                                           "http://192.0.2.7:8000/onvif/device_service"};
  EXPECT_EQ(onvif::chooseXAddr(xaddrs, "192.0.2.7"), "http://192.0.2.7:8000/onvif/device_service");
  EXPECT_EQ(onvif::chooseXAddr(xaddrs, "198.51.100.1"), "http://10.0.0.5/onvif/device_service");
  EXPECT_EQ(onvif::chooseXAddr({"https://192.0.2.7/x"}, ""), "") << "https is not built in";
  EXPECT_EQ(onvif::chooseXAddr({"http://cam.local/x"}, ""), "http://cam.local/x");
}

TEST(OnvifDiscovery, ScopesKeepBadPercentEncodingAsSent) {
  const auto s = onvif::parseScopes({"onvif://www.onvif.org/name/100%", "onvif://www.onvif.org/name/second"});
  EXPECT_EQ(s.name, "100%") << "the first name counts";
  EXPECT_EQ(s.hardware, "");
}

TEST(OnvifAnswers, NotXmlOrNotSoapIsNotOnvif) {
  for (const char* text : {"", "HTTP/1.1 200 OK", "<html><body>router login</body></html>", "<a><b></a>"}) {
    auto r = onvif::parseProfiles(text);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.code(), Errc::InvalidArgument) << text;
    EXPECT_EQ(r.error().message.rfind("not ONVIF", 0), 0u) << r.error().message;
  }
}

// SOAP 1.2 (ONVIF Core 5.11.2.2: env:Sender / ter:NotAuthorized) and SOAP 1.1 (WS-Security's
// wsse:FailedAuthentication) faults both mean the credentials.
TEST(OnvifAnswers, NotAuthorizedFaultsArePermissionDenied) {
  const char* soap12 = R"(<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"
    xmlns:ter="http://www.onvif.org/ver10/error"><env:Body><env:Fault>
    <env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>ter:NotAuthorized</env:Value></env:Subcode></env:Code>
    <env:Reason><env:Text xml:lang="en">Sender not Authorized</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>)";
  auto r = onvif::parseStreamUri(soap12);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), Errc::PermissionDenied);
  EXPECT_EQ(r.error().message, "NotAuthorized");

  const char* soap11 = R"(<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
    <faultcode xmlns:wsse="x">wsse:FailedAuthentication</faultcode><faultstring>bad token</faultstring>
    </s:Fault></s:Body></s:Envelope>)";
  auto r11 = onvif::parseMediaXAddr(soap11);
  ASSERT_FALSE(r11);
  EXPECT_EQ(r11.code(), Errc::PermissionDenied);
  EXPECT_EQ(r11.error().message, "FailedAuthentication");
}

TEST(OnvifAnswers, OtherFaultsNameTheirCodesAndReason) {
  const char* xml = R"(<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault>
    <s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>ter:ActionNotSupported</s:Value>
    <s:Subcode><s:Value>ter:NoProfile</s:Value></s:Subcode></s:Subcode></s:Code>
    <s:Reason><s:Text>no such profile</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>)";
  auto r = onvif::parseStreamUri(xml);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), Errc::Unsupported);
  EXPECT_EQ(r.error().message, "SOAP fault Receiver/ActionNotSupported/NoProfile: no such profile");
}

TEST(OnvifAnswers, ReadsTheCamerasUtcClock) {
  const char* xml = R"(<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
    xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"><s:Body>
    <tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType>
    <tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>CST-8</tt:TZ></tt:TimeZone>
    <tt:UTCDateTime><tt:Time><tt:Hour>23</tt:Hour><tt:Minute>59</tt:Minute><tt:Second>58</tt:Second></tt:Time>
    <tt:Date><tt:Year>2024</tt:Year><tt:Month>2</tt:Month><tt:Day>29</tt:Day></tt:Date></tt:UTCDateTime>
    <tt:LocalDateTime><tt:Time><tt:Hour>7</tt:Hour><tt:Minute>59</tt:Minute><tt:Second>58</tt:Second></tt:Time>
    <tt:Date><tt:Year>2024</tt:Year><tt:Month>3</tt:Month><tt:Day>1</tt:Day></tt:Date></tt:LocalDateTime>
    </tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse></s:Body></s:Envelope>)";
  auto t = onvif::parseSystemDateAndTime(xml);
  ASSERT_TRUE(t) << t.error().describe();
  EXPECT_EQ(onvif::xsdDateTime(*t), "2024-02-29T23:59:58Z") << "UTC, not the local time";
}

TEST(OnvifAnswers, ClockOutOfRangeIsRefused) {
  auto answer = [](const char* date) {
    return std::string(R"(<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>
      <GetSystemDateAndTimeResponse><SystemDateAndTime><LocalDateTime><Time><Hour>1</Hour><Minute>2</Minute>
      <Second>3</Second></Time><Date>)") +
           date +
           "</Date></LocalDateTime></SystemDateAndTime></GetSystemDateAndTimeResponse></s:Body></s:Envelope>";
  };
  auto ok = onvif::parseSystemDateAndTime(answer("<Year>2023</Year><Month>12</Month><Day>31</Day>"));
  ASSERT_TRUE(ok) << "LocalDateTime when there is no UTCDateTime";
  EXPECT_EQ(onvif::xsdDateTime(*ok), "2023-12-31T01:02:03Z");
  EXPECT_EQ(onvif::parseSystemDateAndTime(answer("<Year>2023</Year><Month>2</Month><Day>30</Day>")).code(),
            Errc::InvalidArgument);
  EXPECT_EQ(onvif::parseSystemDateAndTime(answer("<Year>x</Year><Month>2</Month><Day>3</Day>")).code(),
            Errc::InvalidArgument);
  EXPECT_EQ(
      onvif::parseSystemDateAndTime(answer("<Year>99999999999</Year><Month>2</Month><Day>3</Day>")).code(),
      Errc::InvalidArgument);
  // Found by fuzz_onvif: a year past 2262 overflowed system_clock's nanoseconds.
  EXPECT_EQ(onvif::parseSystemDateAndTime(answer("<Year>7830</Year><Month>12</Month><Day>7</Day>")).code(),
            Errc::InvalidArgument);
  EXPECT_TRUE(onvif::parseSystemDateAndTime(answer("<Year>2200</Year><Month>12</Month><Day>31</Day>")));
}

TEST(OnvifAnswers, ReadsTheMediaServiceAddress) {
  const char* xml = R"(<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>
    <tds:GetCapabilitiesResponse xmlns:tds="d" xmlns:tt="t"><tds:Capabilities>
    <tt:Device><tt:XAddr>http://192.0.2.7/onvif/device_service</tt:XAddr></tt:Device>
    <tt:Media><tt:XAddr> http://192.0.2.7/onvif/Media </tt:XAddr></tt:Media>
    </tds:Capabilities></tds:GetCapabilitiesResponse></s:Body></s:Envelope>)";
  auto x = onvif::parseMediaXAddr(xml);
  ASSERT_TRUE(x) << x.error().describe();
  EXPECT_EQ(*x, "http://192.0.2.7/onvif/Media");
  const char* noMedia = R"(<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>
    <GetCapabilitiesResponse><Capabilities><Device/></Capabilities></GetCapabilitiesResponse></s:Body></s:Envelope>)";
  EXPECT_EQ(onvif::parseMediaXAddr(noMedia).code(), Errc::Unsupported);
}

TEST(OnvifAnswers, ReadsProfilesWithTheirEncoderAndSize) {
  const char* xml = R"(<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>
    <trt:GetProfilesResponse xmlns:trt="m" xmlns:tt="t">
    <trt:Profiles token="Profile_1" fixed="true"><tt:Name>mainStream</tt:Name>
      <tt:VideoSourceConfiguration token="V"><tt:Name>src</tt:Name><tt:Bounds x="0" y="0" width="2560" height="1440"/></tt:VideoSourceConfiguration>
      <tt:VideoEncoderConfiguration token="E1"><tt:Name>enc</tt:Name><tt:Encoding>H264</tt:Encoding>
        <tt:Resolution><tt:Width>1920</tt:Width><tt:Height>1080</tt:Height></tt:Resolution></tt:VideoEncoderConfiguration>
    </trt:Profiles>
    <trt:Profiles token="Profile_2"><tt:Name>subStream</tt:Name>
      <tt:VideoEncoderConfiguration><tt:Encoding>JPEG</tt:Encoding>
        <tt:Resolution><tt:Width>-1</tt:Width><tt:Height>360</tt:Height></tt:Resolution></tt:VideoEncoderConfiguration>
    </trt:Profiles>
    <trt:Profiles><tt:Name>no token</tt:Name></trt:Profiles>
    <trt:Profiles token="audio"><tt:Name>audio only</tt:Name></trt:Profiles>
    </trt:GetProfilesResponse></s:Body></s:Envelope>)";
  auto p = onvif::parseProfiles(xml);
  ASSERT_TRUE(p) << p.error().describe();
  ASSERT_EQ(p->size(), 3u);
  EXPECT_EQ((*p)[0].token, "Profile_1");
  EXPECT_EQ((*p)[0].name, "mainStream");
  EXPECT_EQ((*p)[0].encoding, "H264");
  EXPECT_EQ((*p)[0].width, 1920);
  EXPECT_EQ((*p)[0].height, 1080);
  EXPECT_EQ((*p)[1].encoding, "JPEG");
  EXPECT_EQ((*p)[1].width, 0) << "a negative width is no size";
  EXPECT_EQ((*p)[2].token, "audio");
  EXPECT_EQ((*p)[2].encoding, "");
}

TEST(OnvifAnswers, ReadsTheStreamUri) {
  const char* xml = R"(<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>
    <trt:GetStreamUriResponse xmlns:trt="m" xmlns:tt="t"><trt:MediaUri>
    <tt:Uri>rtsp://192.0.2.7:554/Streaming/Channels/101?transportmode=unicast&amp;profile=Profile_1</tt:Uri>
    <tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:Timeout>PT60S</tt:Timeout>
    </trt:MediaUri></trt:GetStreamUriResponse></s:Body></s:Envelope>)";
  auto uri = onvif::parseStreamUri(xml);
  ASSERT_TRUE(uri) << uri.error().describe();
  EXPECT_EQ(*uri, "rtsp://192.0.2.7:554/Streaming/Channels/101?transportmode=unicast&profile=Profile_1");
}

// An entity the document declares is not expanded (no "billion laughs"), and nothing is fetched.
TEST(OnvifAnswers, DoesNotExpandDeclaredEntities) {
  const char* xml = R"(<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">
    <!ENTITY ext SYSTEM "file:///etc/passwd">]>
    <s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><GetStreamUriResponse><MediaUri>
    <Uri>&b;&ext;</Uri></MediaUri></GetStreamUriResponse></s:Body></s:Envelope>)";
  auto uri = onvif::parseStreamUri(xml);
  ASSERT_TRUE(uri) << uri.error().describe();
  EXPECT_EQ(uri->find("aaaa"), std::string::npos) << *uri;
  EXPECT_EQ(uri->find("root:"), std::string::npos) << *uri;
}

}  // namespace
