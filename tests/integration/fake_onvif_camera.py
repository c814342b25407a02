#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# A fake ONVIF camera for the discovery tests (onvif_test.cpp): answers WS-Discovery Probes
# (unicast on 127.0.0.1 at a port of its own, or multicast on 239.255.255.250:3702 joined on lo)
# and serves the device and media services over SOAP 1.2, checking a WS-Security UsernameToken
# for real: PasswordDigest = Base64(SHA-1(nonce + created + password)), Created within
# --max-skew seconds of *its* clock (ours shifted by --clock-offset), each nonce used once.
# A failed check is answered as ONVIF Core 5.11.2.2 says: HTTP 400, env:Sender / ter:NotAuthorized.
# With --http-digest, every request must also carry HTTP Digest credentials (401 with a challenge).
#
# Prints one JSON line once both sockets listen: {"discovery_port", "http_port", "endpoint"}.
import argparse
import base64
import datetime
import hashlib
import http.server
import json
import socket
import struct
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
DISCOVERY = "http://schemas.xmlsoap.org/ws/2005/04/discovery"

parser = argparse.ArgumentParser()
parser.add_argument("--name", default="Fake camera")
parser.add_argument("--hardware", default="FC-1")
parser.add_argument("--user", default="")
parser.add_argument("--password", default="")
parser.add_argument("--clock-offset", type=float, default=0.0, help="its clock minus the real one, seconds")
parser.add_argument("--max-skew", type=float, default=5.0)
parser.add_argument("--multicast", action="store_true", help="listen on 239.255.255.250:3702 (joined on lo)")
parser.add_argument("--silent-soap", action="store_true", help="accept SOAP connections, never answer")
parser.add_argument("--http-digest", action="store_true",
                    help="HTTP Digest (RFC 2617, qop=auth) in front of every service, as some firmwares do")
parser.add_argument("--rtsp-port", type=int, default=8554)
args = parser.parse_args()

endpoint = "urn:uuid:" + str(uuid.uuid4())
PROFILES = [("Profile_1", "mainStream", "H264", 1920, 1080), ("Profile_2", "subStream", "H264", 640, 360)]
used_nonces = set()
digest_nonces = set()
lock = threading.Lock()


def camera_now():
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=args.clock_offset)


def local(tag):
    return tag.rsplit("}", 1)[-1]


def find(node, name):
    for child in node.iter():
        if local(child.tag) == name:
            return child
    return None


def envelope(body, header=""):
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            f'<env:Envelope xmlns:env="{SOAP}" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" '
            'xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema" '
            f'xmlns:ter="http://www.onvif.org/ver10/error" xmlns:wsa="{ADDRESSING}" xmlns:d="{DISCOVERY}" '
            'xmlns:dn="http://www.onvif.org/ver10/network/wsdl">'
            f'<env:Header>{header}</env:Header><env:Body>{body}</env:Body></env:Envelope>')


def fault(code, subcode, reason):
    return envelope(f"<env:Fault><env:Code><env:Value>env:{code}</env:Value><env:Subcode><env:Value>{subcode}"
                    f"</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang=\"en\">{escape(reason)}"
                    "</env:Text></env:Reason></env:Fault>")


def check_token(root):
    """None when the UsernameToken is right; else why not."""
    token = find(root, "UsernameToken")
    if token is None:
        return "no UsernameToken"
    fields = {local(c.tag): c for c in token}
    if (fields.get("Username") is None or fields["Username"].text != args.user):
        return "unknown user"
    password, nonce, created = fields.get("Password"), fields.get("Nonce"), fields.get("Created")
    if password is None or nonce is None or created is None or password.get("Type") != DIGEST:
        return "not a PasswordDigest token"
    raw_nonce = base64.b64decode(nonce.text)
    expected = base64.b64encode(hashlib.sha1(raw_nonce + created.text.encode() + args.password.encode()).digest())
    if password.text.encode() != expected:
        return "wrong digest"
    try:
        when = datetime.datetime.strptime(created.text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return "Created is not xsd:dateTime UTC"
    skew = abs((when - camera_now()).total_seconds())
    if skew > args.max_skew:
        return f"Created is {skew:.0f} s away from the camera's clock"
    with lock:
        if nonce.text in used_nonces:
            return "nonce used before"
        used_nonces.add(nonce.text)
    return None


def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


def check_http_digest(header, uri):
    """True when `header` (Authorization) answers one of our challenges with the right password."""
    if not header.startswith("Digest "):
        return False
    params = {}
    for part in urllib.request.parse_http_list(header[len("Digest "):]):
        key, _, value = part.partition("=")
        params[key.strip()] = value.strip().strip('"')
    with lock:
        if params.get("nonce") not in digest_nonces:
            return False
    if params.get("username") != args.user or params.get("uri") != uri or params.get("qop") != "auth":
        return False
    ha1 = md5(f"{args.user}:fake-camera:{args.password}")
    ha2 = md5(f"POST:{uri}")
    expected = md5(f"{ha1}:{params['nonce']}:{params.get('nc', '')}:{params.get('cnonce', '')}:auth:{ha2}")
    return params.get("response") == expected


class Soap(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, xml):
        data = xml.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if args.silent_soap:
            time.sleep(3600)
            return
        if args.http_digest and not check_http_digest(self.headers.get("Authorization", ""), self.path):
            nonce = uuid.uuid4().hex
            with lock:
                digest_nonces.add(nonce)
            data = b"<html><body>401 Unauthorized</body></html>"
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Digest realm="fake-camera", qop="auth", nonce="{nonce}"')
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            return
        if not self.headers.get("Content-Type", "").startswith("application/soap+xml"):
            self.send_error(415)
            return
        try:
            root = ET.fromstring(body)
            request = next(iter(find(root, "Body")))
        except (ET.ParseError, StopIteration, TypeError):
            self.answer(400, fault("Sender", "ter:WellFormed", "not a SOAP request"))
            return
        action = local(request.tag)
        port = self.server.server_address[1]
        if action == "GetSystemDateAndTime":  # answers anyone (ONVIF Core 5.9.1)
            t = camera_now()
            self.answer(200, envelope(
                "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>Manual</tt:DateTimeType>"
                "<tt:DaylightSavings>false</tt:DaylightSavings><tt:UTCDateTime>"
                f"<tt:Time><tt:Hour>{t.hour}</tt:Hour><tt:Minute>{t.minute}</tt:Minute><tt:Second>{t.second}</tt:Second></tt:Time>"
                f"<tt:Date><tt:Year>{t.year}</tt:Year><tt:Month>{t.month}</tt:Month><tt:Day>{t.day}</tt:Day></tt:Date>"
                "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"))
            return
        if args.user:
            why = check_token(root)
            if why is not None:
                self.answer(400, fault("Sender", "ter:NotAuthorized", "Sender not Authorized: " + why))
                return
        if action == "GetCapabilities":
            self.answer(200, envelope(
                "<tds:GetCapabilitiesResponse><tds:Capabilities>"
                f"<tt:Device><tt:XAddr>http://127.0.0.1:{port}/onvif/device_service</tt:XAddr></tt:Device>"
                f"<tt:Media><tt:XAddr>http://127.0.0.1:{port}/onvif/media_service</tt:XAddr></tt:Media>"
                "</tds:Capabilities></tds:GetCapabilitiesResponse>"))
        elif action == "GetProfiles":
            profiles = "".join(
                f'<trt:Profiles token="{token}" fixed="true"><tt:Name>{name}</tt:Name>'
                f'<tt:VideoEncoderConfiguration token="enc_{token}"><tt:Name>enc</tt:Name><tt:Encoding>{enc}</tt:Encoding>'
                f"<tt:Resolution><tt:Width>{w}</tt:Width><tt:Height>{h}</tt:Height></tt:Resolution>"
                "</tt:VideoEncoderConfiguration></trt:Profiles>" for token, name, enc, w, h in PROFILES)
            self.answer(200, envelope(f"<trt:GetProfilesResponse>{profiles}</trt:GetProfilesResponse>"))
        elif action == "GetStreamUri":
            token = find(request, "ProfileToken")
            stream = find(request, "Stream")
            protocol = find(request, "Protocol")
            if (stream is None or stream.text != "RTP-Unicast" or protocol is None or protocol.text != "RTSP"):
                self.answer(400, fault("Sender", "ter:InvalidArgVal", "RTP-Unicast over RTSP only"))
            elif token is None or token.text not in [p[0] for p in PROFILES]:
                self.answer(400, fault("Sender", "ter:InvalidArgVal", "no such profile"))
            else:
                self.answer(200, envelope(
                    "<trt:GetStreamUriResponse><trt:MediaUri>"
                    f"<tt:Uri>rtsp://127.0.0.1:{args.rtsp_port}/{escape(token.text)}?a=1&amp;b=2</tt:Uri>"
                    "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false"
                    "</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>"))
        else:
            self.answer(400, fault("Receiver", "ter:ActionNotSupported", action))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


http_server = Server(("127.0.0.1", 0), Soap)
threading.Thread(target=http_server.serve_forever, daemon=True).start()

udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if args.multicast:
    udp.bind(("0.0.0.0", 3702))
    membership = struct.pack("4s4s", socket.inet_aton("239.255.255.250"), socket.inet_aton("127.0.0.1"))
    udp.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
else:
    udp.bind(("127.0.0.1", 0))

print(json.dumps({"discovery_port": udp.getsockname()[1], "http_port": http_server.server_address[1],
                  "endpoint": endpoint}), flush=True)

while True:
    data, sender = udp.recvfrom(65536)
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        continue
    probe = find(root, "Probe")
    message_id = find(root, "MessageID")
    types = find(root, "Types")
    if probe is None or message_id is None:
        continue
    if types is not None and "NetworkVideoTransmitter" not in [t.rsplit(":", 1)[-1] for t in types.text.split()]:
        continue
    port = http_server.server_address[1]
    scopes = (f"onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/name/{urllib.parse.quote(args.name)} "
              f"onvif://www.onvif.org/hardware/{urllib.parse.quote(args.hardware)}")
    header = (f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID><wsa:RelatesTo>{escape(message_id.text)}"
              "</wsa:RelatesTo><wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>"
              "<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action>")
    body = ("<d:ProbeMatches><d:ProbeMatch>"
            f"<wsa:EndpointReference><wsa:Address>{endpoint}</wsa:Address></wsa:EndpointReference>"
            f"<d:Types>dn:NetworkVideoTransmitter</d:Types><d:Scopes>{escape(scopes)}</d:Scopes>"
            f"<d:XAddrs>http://127.0.0.1:{port}/onvif/device_service</d:XAddrs>"
            "<d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches>")
    udp.sendto(envelope(body, header).encode(), sender)
