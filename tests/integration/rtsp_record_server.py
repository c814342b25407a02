#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A real RTSP RECORD receiver for the publish tests: GStreamer's gst-rtsp-server (through
python3-gi) with one media in RECORD mode at rtsp://127.0.0.1:PORT/PATH, which depayloads and
decodes what a client ANNOUNCEs and RECORDs (decodebin: rtph264depay ! avdec_h264) into a
fakesink. Independent of printcast's code; the way MediaMTX and go2rtc take a pushed stream.

Run it with Debian's /usr/bin/python3 (python3-gi is not in other Pythons):
  /usr/bin/python3 tests/integration/rtsp_record_server.py --port 0 [--path /push] [--frames N]
      [--exit-after N]

Prints "READY rtsp://127.0.0.1:PORT/PATH" once it listens, then "DECODED N" each time N more
pictures were decoded (every --frames, default 15); serves until SIGTERM or SIGINT, or until
--exit-after pictures were decoded, and exits 0. Bind failure: exit 1; bad options: exit 2.
"""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    p = argparse.ArgumentParser(description="gst-rtsp-server RECORD receiver (H.264)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/push")
    p.add_argument("--frames", type=int, default=15)
    p.add_argument("--exit-after", type=int, default=0)
    a = p.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
    factory.set_launch("( decodebin name=depay0 ! fakesink name=sink signal-handoffs=true sync=false )")
    decoded = [0]
    loop = GLib.MainLoop()

    def on_handoff(_sink, _buffer, _pad):  # a streaming thread: the main loop is told to quit
        decoded[0] += 1
        if decoded[0] % a.frames == 0:
            print(f"DECODED {decoded[0]}", flush=True)
        if a.exit_after and decoded[0] == a.exit_after:
            GLib.idle_add(loop.quit)

    def on_configure(_factory, media):
        sink = media.get_element().get_by_name("sink")
        sink.connect("handoff", on_handoff)

    factory.connect("media-configure", on_configure)
    server.get_mount_points().add_factory(a.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{a.port}", file=sys.stderr)
        return 1
    for s in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, s, loop.quit)
    port = server.get_bound_port()
    print(f"READY rtsp://127.0.0.1:{port}{a.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
