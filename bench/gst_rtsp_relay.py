#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""GStreamer's gst-rtsp-server (through python3-gi) relaying an upstream RTSP H.264 camera without
decoding or re-encoding, as one shared media: the reference side of bench/rtsp_server.sh.

Run it with Debian's /usr/bin/python3 (python3-gi is not in other Pythons):
  /usr/bin/python3 bench/gst_rtsp_relay.py --upstream rtsp://HOST:PORT/PATH --port Q [options]

Options:
  --upstream URL   the camera (required); pulled over TCP interleaved with latency=0
  --port Q         TCP port of the RTSP server (required; 0 = any free port, the READY line tells)
  --address A      listening address (default "::", every IPv6 and IPv4 address when the kernel
                   allows dual-stack sockets; "0.0.0.0" for IPv4 only)
  --path /stream   mount path (default /stream)

The media factory's launch line:
  ( rtspsrc location=UPSTREAM protocols=tcp latency=0 ! rtph264depay ! h264parse
    ! rtph264pay name=pay0 pt=96 config-interval=-1 )
shared (set_shared(True)): the first client's DESCRIBE prepares one pipeline (one upstream
session) and every client of the mount gets its packets; the last one leaving unprepares it.
Clients may use TCP interleaved or UDP unicast (the factory's default protocols).

Prints "READY rtsp://127.0.0.1:PORT/PATH" on stdout once the server listens, then serves until
SIGTERM or SIGINT and exits 0. Exits 1 when the port cannot be bound, 2 when the pipeline does
not build (a missing plugin: rtspsrc and rtph264depay/pay are in gstreamer1.0-plugins-good,
h264parse in gstreamer1.0-plugins-bad).
"""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description="gst-rtsp-server relay of an RTSP H.264 camera")
    p.add_argument("--upstream", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--address", default="::")
    p.add_argument("--path", default="/stream")
    a = p.parse_args()
    if not a.upstream.startswith("rtsp://") or any(c in a.upstream for c in " !()\"'"):
        p.error("--upstream wants an rtsp:// URL (no spaces, quotes, '!' or parentheses)")
    if not 0 <= a.port <= 65535:
        p.error("--port is out of range")
    if not a.path.startswith("/"):
        a.path = "/" + a.path
    return a


def main():
    a = parse_args()
    Gst.init(None)

    launch = (
        f"( rtspsrc location={a.upstream} protocols=tcp latency=0 ! rtph264depay ! h264parse"
        f" ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
    try:  # fail now, not at the first DESCRIBE, on a missing plugin
        Gst.parse_launch(launch)
    except GLib.Error as e:
        print(f"gst_rtsp_relay.py: bad pipeline {launch}: {e.message}", file=sys.stderr)
        return 2

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)

    server = GstRtspServer.RTSPServer()
    server.set_address(a.address)
    server.set_service(str(a.port))
    server.get_mount_points().add_factory(a.path, factory)
    pool = server.get_session_pool()

    try:
        source = server.create_source(None)  # binds and listens; raises GLib.Error on failure
    except GLib.Error as e:
        print(f"gst_rtsp_relay.py: cannot listen on {a.address} port {a.port}: {e.message}",
              file=sys.stderr)
        return 1
    source.attach(None)

    # Remove the sessions whose clients stopped sending keep-alives (the pool only times
    # sessions out when asked to).
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
