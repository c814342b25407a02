#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A real RTSP camera for the RTSP pull tests: GStreamer's gst-rtsp-server (through python3-gi)
serving one live H.264 test pattern (videotestsrc, x264enc constrained baseline, RTP
payload type 96) at rtsp://127.0.0.1:PORT/PATH. Independent of printcast's code.

Run it with Debian's /usr/bin/python3 (python3-gi is not in other Pythons):
  /usr/bin/python3 tests/integration/rtsp_server.py --port 8554 [options]

Options:
  --port P               TCP port of the RTSP server on 127.0.0.1 (required; 0 = any free port,
                         the READY line tells which)
  --path /stream         mount path (default /stream)
  --size WxH             picture size (default 640x480)
  --fps N                frame rate (default 15)
  --gop N                x264enc key-int-max, frames between IDRs (default = fps: one IDR a second)
  --bitrate KBPS         x264enc bitrate in kbit/s (default 1000)
  --pattern NAME         videotestsrc pattern (default ball: ~100 kbit/s whatever --bitrate, IDR
                         slices around 1 kB; snow fills --bitrate, so most NALs go as FU-A)
  --slices N             slices per picture: x264enc threads=N, whose zerolatency sliced threads
                         cut each picture in N slice NAL units (default 2, whatever the cores)
  --config-interval N    rtph264pay config-interval: -1 (default) = SPS/PPS in band before every
                         IDR; 0 = parameter sets only in the SDP's sprop-parameter-sets; N>0 =
                         in band every N seconds
  --user U --password P  require credentials (both or neither)
  --auth digest|basic    the one scheme offered in WWW-Authenticate (default digest)
  --protocols tcp|udp|any  lower transports the media accepts: TCP interleaved only, UDP unicast
                         only, or both (default any)
  --session-timeout S    RTSP session timeout (default 60, gst-rtsp-server's own). Announced as
                         "Session: ID;timeout=S" (gst-rtsp-server leaves ";timeout=60" out); a
                         UDP session with neither an RTSP request nor an RTCP receiver report for
                         S+5 s is removed and its media stops (the RTSP connection stays open);
                         a TCP-interleaved session does not expire while its connection is open

Prints "READY rtsp://127.0.0.1:PORT/PATH" on stdout once the server listens, then serves until
SIGTERM or SIGINT, and exits 0. If the port cannot be bound it says so on stderr and exits 1;
bad options or a pipeline that does not build (a bad --pattern, a missing plugin) exit 2.
The factory is shared: every client gets the same encoder's stream.

The encoder's caps are stream-format=avc and x264's repeat-headers is off, so x264 puts SPS and
PPS only in codec_data (whence rtph264pay's sprop-parameter-sets): the in-band parameter sets are
then exactly what --config-interval asks rtph264pay for (with -1 it sends SPS+PPS before each
IDR slice, so twice per key picture with 2 slices).
"""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

ROLE = "printcast-test-user"


def parse_args():
    p = argparse.ArgumentParser(description="gst-rtsp-server test camera (H.264)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/stream")
    p.add_argument("--size", default="640x480")
    p.add_argument("--fps", type=int, default=15)
    p.add_argument("--gop", type=int, default=None)
    p.add_argument("--bitrate", type=int, default=1000)
    p.add_argument("--slices", type=int, default=2)
    p.add_argument("--pattern", default="ball")
    p.add_argument("--config-interval", type=int, default=-1)
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--auth", choices=["digest", "basic"], default="digest")
    p.add_argument("--protocols", choices=["tcp", "udp", "any"], default="any")
    p.add_argument("--session-timeout", type=int, default=60)
    a = p.parse_args()
    try:
        a.width, a.height = (int(v) for v in a.size.lower().split("x"))
    except ValueError:
        p.error("--size wants WxH, e.g. 640x480")
    if a.gop is None:
        a.gop = a.fps
    if not a.path.startswith("/"):
        a.path = "/" + a.path
    if (a.user is None) != (a.password is None):
        p.error("--user and --password go together")
    if not 0 <= a.port <= 65535 or a.fps <= 0 or a.gop <= 0 or a.bitrate <= 0 \
            or a.session_timeout <= 0 or not 1 <= a.slices <= 16 or a.config_interval < -1:
        p.error("a number is out of range")
    return a


def main():
    a = parse_args()
    Gst.init(None)

    launch = (
        f"( videotestsrc is-live=true pattern={a.pattern}"
        f" ! video/x-raw,width={a.width},height={a.height},framerate={a.fps}/1"
        f" ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={a.gop} bitrate={a.bitrate}"
        f" threads={a.slices} option-string=repeat-headers=0"
        f" ! video/x-h264,profile=constrained-baseline,stream-format=avc"
        f" ! rtph264pay name=pay0 pt=96 config-interval={a.config_interval} )"
    )
    try:  # fail now, not at the first DESCRIBE, on a bad --pattern or a missing plugin
        Gst.parse_launch(launch)
    except GLib.Error as e:
        print(f"rtsp_server.py: bad pipeline {launch}: {e.message}", file=sys.stderr)
        return 2

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    LT = GstRtsp.RTSPLowerTrans
    factory.set_protocols({"tcp": LT.TCP, "udp": LT.UDP, "any": LT.UDP | LT.TCP}[a.protocols])

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    server.get_mount_points().add_factory(a.path, factory)

    if a.user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", ROLE)
        if a.auth == "digest":
            auth.add_digest(a.user, a.password, token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        else:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password), token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        server.set_auth(auth)
        # No default token: a request without valid credentials gets 401 Unauthorized.
        factory.add_role_from_structure(Gst.Structure.from_string(
            f"{ROLE}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true")[0])

    def on_client(_server, client):
        client.connect("new-session", lambda _client, session: session.set_timeout(a.session_timeout))
    server.connect("client-connected", on_client)
    pool = server.get_session_pool()

    try:
        source = server.create_source(None)  # binds and listens; raises GLib.Error on failure
    except GLib.Error as e:
        print(f"rtsp_server.py: cannot listen on 127.0.0.1:{a.port}: {e.message}", file=sys.stderr)
        return 1
    source.attach(None)

    # Remove the sessions whose clients stopped sending keep-alives (like the
    # gst-rtsp-server examples: the pool only times sessions out when asked to).
    GLib.timeout_add_seconds(1, lambda: (pool.cleanup(), True)[1])

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, lambda: (loop.quit(), False)[1])

    print(f"READY rtsp://127.0.0.1:{server.get_bound_port()}{a.path}", flush=True)
    loop.run()
    source.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
