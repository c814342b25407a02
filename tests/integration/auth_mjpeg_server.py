#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# An MJPEG camera that wants credentials, for the HTTP pull source's tests: a multipart stream of
# one JPEG at 15 fps on 127.0.0.1:PORT, after HTTP Digest (RFC 7616, MD5, qop=auth; it also
# offers Basic, as cameras do, and refuses a Basic answer) or, with "basic", after HTTP Basic.
#   auth_mjpeg_server.py PORT USER PASSWORD JPEG_FILE digest|basic
# Independent of printcast's code: Python's hashlib and base64 check what the client sends.
import base64
import hashlib
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, USER, PASSWORD, JPEG_FILE, MODE = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
REALM = "printcast-test-camera"
with open(JPEG_FILE, "rb") as f:
    JPEG = f.read()
nonces = set()


def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


def digest_params(value):
    params = {}
    for part in value.split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            params[k.strip().lower()] = v.strip().strip('"')
    return params


class Camera(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def authorized(self):
        auth = self.headers.get("Authorization", "")
        if MODE == "basic":
            return auth == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if not auth.startswith("Digest "):
            return False
        p = digest_params(auth[7:])
        if p.get("nonce") not in nonces or p.get("username") != USER or p.get("uri") != self.path:
            return False
        ha1 = md5(f"{USER}:{REALM}:{PASSWORD}")
        ha2 = md5(f"GET:{p['uri']}")
        expected = md5(f"{ha1}:{p['nonce']}:{p.get('nc')}:{p.get('cnonce')}:{p.get('qop')}:{ha2}")
        return p.get("response") == expected

    def do_GET(self):
        if not self.authorized():
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Basic realm="{REALM}"')
            if MODE == "digest":
                nonce = os.urandom(12).hex()
                nonces.add(nonce)
                self.send_header("WWW-Authenticate",
                                 f'Digest realm="{REALM}", qop="auth", nonce="{nonce}", opaque="0123", algorithm=MD5')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace;boundary=frame")
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(JPEG))
                self.wfile.write(JPEG + b"\r\n")
                self.wfile.flush()
                time.sleep(1 / 15)
        except (BrokenPipeError, ConnectionResetError):
            pass


ThreadingHTTPServer(("127.0.0.1", PORT), Camera).serve_forever()
