#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# A mock ESP32-CAM: pushes animated JPEGs (ffmpeg's testsrc2, 640x480, 30 fps by default) to a
# WebSocket, one JPEG per binary message, the way ESP32-CAM firmwares feed a relay. For users
# (try `printcast-streamer --source ws-push` without a camera) and for the tests, which also make
# it misbehave as real cameras do.
#
#   tools/mock-camera.py ws://127.0.0.1:8080/ingest [--fps 30] [--size 640x480] [--seconds N]
#       [--fragment BYTES]     split each message into continuation frames (ESP-IDF: 1024)
#       [--prefix ID]          put an ASCII id before every JPEG ("CAM2")
#       [--bad-every N]        every Nth message is broken: a truncated JPEG, then garbage, in turn
#       [--reconnect-ms MS]    drop the connection and reconnect this often (Arduino sketches: 500)
#       [--big-message-mb MB]  first send one message this large and report the close code
#       [--from FILE]          push the JPEGs of FILE (concatenated, e.g. ffmpeg -f image2pipe), in
#                              a loop, instead of making them (benchmarks: no ffmpeg beside)
#   --fps 0 pushes as fast as the connection takes them.
#
# Needs Debian's python3-websockets (10.x) and ffmpeg. Prints one JSON line when done:
# {"messages": N, "bad": N, "connections": N, "big_close_code": CODE or null}.
import argparse
import asyncio
import json
import subprocess
import sys
import time

import websockets


def jpeg_frames(size, fps):
    """JPEGs from ffmpeg's mjpeg encoder: baseline, so EOI (FFD9) only ends a picture."""
    ff = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
         "-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "6", "-"],
        stdout=subprocess.PIPE)
    buf = b""
    try:
        while True:
            chunk = ff.stdout.read(65536)
            if not chunk:
                return
            buf += chunk
            while True:
                end = buf.find(b"\xff\xd9")
                if end < 0:
                    break
                yield buf[:end + 2]
                buf = buf[end + 2:]
    finally:
        ff.kill()
        ff.wait()


def file_frames(path):
    """The JPEGs of a concatenated file (baseline JPEGs: split at each EOI), forever."""
    with open(path, "rb") as f:
        data = f.read()
    frames = []
    start = 0
    while True:
        end = data.find(b"\xff\xd9", start)
        if end < 0:
            break
        frames.append(data[start:end + 2])
        start = end + 2
    while frames:
        yield from frames


def fragments(data, size):
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def send(ws, data, fragment):
    if fragment > 0 and len(data) > fragment:
        await ws.send(fragments(data, fragment))  # an iterable: continuation frames
    else:
        await ws.send(data)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--fps", type=float, default=30)
    p.add_argument("--size", default="640x480")
    p.add_argument("--seconds", type=float, default=0, help="0 = until interrupted")
    p.add_argument("--fragment", type=int, default=0)
    p.add_argument("--prefix", default="")
    p.add_argument("--bad-every", type=int, default=0)
    p.add_argument("--reconnect-ms", type=int, default=0)
    p.add_argument("--big-message-mb", type=float, default=0)
    p.add_argument("--from", dest="source", default="")
    a = p.parse_args()

    stats = {"messages": 0, "bad": 0, "connections": 0, "big_close_code": None}
    if a.big_message_mb > 0:
        async with websockets.connect(a.url, max_size=None) as ws:
            stats["connections"] += 1
            try:
                await send(ws, b"\xff\xd8\xff" + b"\0" * int(a.big_message_mb * 1e6), a.fragment or 65536)
                await asyncio.wait_for(ws.recv(), timeout=10)
            except (websockets.WebSocketException, asyncio.TimeoutError):
                pass  # the server's Close came mid-message (InvalidState) or ended it (ConnectionClosed)
            try:
                await asyncio.wait_for(ws.wait_closed(), timeout=5)
            except asyncio.TimeoutError:
                pass
            stats["big_close_code"] = ws.close_code

    frames = file_frames(a.source) if a.source else jpeg_frames(a.size, int(a.fps) if a.fps >= 1 else 30)
    end = time.monotonic() + a.seconds if a.seconds > 0 else None
    period = 1.0 / a.fps if a.fps > 0 else 0.0
    n = 0
    while end is None or time.monotonic() < end:
        stats["connections"] += 1
        reconnect_at = time.monotonic() + a.reconnect_ms / 1000 if a.reconnect_ms > 0 else None
        try:
            async with websockets.connect(a.url, max_size=None, ping_interval=None) as ws:
                next_at = time.monotonic()
                while end is None or time.monotonic() < end:
                    if reconnect_at is not None and time.monotonic() >= reconnect_at:
                        break
                    jpeg = next(frames)
                    n += 1
                    data = a.prefix.encode() + jpeg
                    if a.bad_every > 0 and n % a.bad_every == 0:
                        stats["bad"] += 1
                        data = jpeg[: len(jpeg) // 2] if (n // a.bad_every) % 2 else b"garbage, not a picture"
                    await send(ws, data, a.fragment)
                    stats["messages"] += 1
                    if period > 0:
                        next_at += period
                        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        except (OSError, websockets.WebSocketException) as e:
            print(f"mock-camera: {e}; reconnecting", file=sys.stderr)
            await asyncio.sleep(0.5)
    print(json.dumps(stats))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
