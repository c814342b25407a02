// SPDX-License-Identifier: MIT
// For the latency benchmark (bench/glass/latency.mjs), on top of harness.mjs: start the streamer
// on the virtual board, serve a page on another origin that plays one output with the player
// users run, and read the test pattern's timecode strip back from every presented picture.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { createRequire } from 'node:module';
import * as h from '../harness.mjs';

const require = createRequire(path.join(h.here, 'package.json'));

// Outputs and how the page plays them: an <img> for MJPEG, a plain <video> for fMP4, hls.js in
// regular and low-latency mode, mpegts.js for FLV, jmuxer fed one access unit per WebSocket message.
export const OUTPUTS = ['mjpeg', 'mjpeg-cl', 'fmp4-mse', 'fmp4', 'hls', 'll-hls', 'flv', 'ws', 'ws-mainsail'];

// Resolves {child, port, controlPort}. `display`: keep the virtual printer screen (touch bench).
export function startStreamer(streamerBin, extraArgs = [], { display = false } = {}) {
  const args = ['--board', 'virtual', '--resolution', '640x480', '--desired-fps', '30',
    ...(display ? [] : ['--no-display']),
    '--flv-port', '-1', '--port', '0', '--control-port', '0', '--log-level', 'warn', ...extraArgs];
  // Optional listeners this build may have: keep them off so runs never clash on fixed ports.
  const help = spawnSync(streamerBin, ['--help'], { encoding: 'utf8' }).stdout || '';
  if (help.includes('--ws-port')) args.push('--ws-port', '-1');
  if (help.includes('--rtsp-port')) args.push('--rtsp-port', '-1');
  if (help.includes('--no-ring')) args.push('--no-ring');
  return new Promise((resolve, reject) => {
    const child = spawn(streamerBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/status +http:\/\/[0-9.]+:(\d+)\/status/);
      const c = out.match(/control page +http:\/\/[0-9.]+:(\d+)\/control/);
      if (m && c) resolve({ child, port: Number(m[1]), controlPort: Number(c[1]) });
    });
    child.stderr.on('data', (d) => { out += d; });
    child.on('exit', (code) => reject(new Error(`streamer exited ${code}: ${out}`)));
    setTimeout(() => reject(new Error(`streamer did not start: ${out}`)), 10000);
  });
}

// The page: a <video>/<img>, a canvas, the timecode reader and one setup per output.
// The control page's own MSE player (apps/streamer/web/live-player.js), inlined.
const livePlayer = readFileSync(path.join(h.here, '..', '..', 'apps', 'streamer', 'web', 'live-player.js'), 'utf8');
const page = (streamPort) => `<!doctype html><meta charset=utf-8>
<script>${livePlayer}</script>
<script src="/node_modules/hls.js/dist/hls.min.js"></script>
<script src="/node_modules/mpegts.js/dist/mpegts.js"></script>
<script src="/node_modules/jmuxer/dist/jmuxer.min.js"></script>
<video id=v muted autoplay playsinline crossorigin=anonymous width=640 height=480></video><img id=i crossorigin=anonymous>
<canvas id=c width=640 height=480></canvas>
<script>
const base = 'http://' + location.hostname + ':${streamPort}';
const ctx = document.getElementById('c').getContext('2d', { willReadFrequently: true });
window.samples = [];
function readTimecode(src, w, h) {
  ctx.drawImage(src, 0, 0, w, h);
  const cell = Math.max(2, Math.floor(w / 32) & ~1);
  const y = h - Math.floor(cell / 2) - 1;
  const row = ctx.getImageData(0, y, w, 1).data;
  let v = 0;
  for (let b = 0; b < 32; b++) {
    const k = (b * cell + Math.floor(cell / 2)) * 4;
    const l = 0.299 * row[k] + 0.587 * row[k + 1] + 0.114 * row[k + 2];
    if (l > 80 && l < 175) return null;
    v = v * 2 + (l >= 128 ? 1 : 0);
  }
  return v;
}
function record(code) {
  if (code === null) return;
  const now = Date.now() % 4294967296;
  window.samples.push(((now - code) % 4294967296 + 4294967296) % 4294967296);
}
window.ahead = [];
window.arrivals = [];
function onVideoFrames(video) {
  const step = () => {
    if (video.videoWidth > 0) record(readTimecode(video, video.videoWidth, video.videoHeight));
    if (video.buffered.length > 0) window.ahead.push(1000 * (video.buffered.end(video.buffered.length - 1) - video.currentTime));
    video.requestVideoFrameCallback(step);
  };
  video.requestVideoFrameCallback(step);
}
window.start = (output) => {
  const video = document.getElementById('v');
  if (output === 'mjpeg' || output === 'mjpeg-cl') {
    const img = document.getElementById('i');
    img.src = base + (output === 'mjpeg' ? '/stream' : '/stream?advance_headers=0');
    let last = null;
    const poll = () => {
      if (img.naturalWidth > 0) {
        const code = readTimecode(img, img.naturalWidth, img.naturalHeight);
        if (code !== null && code !== last) { record(code); last = code; }
      }
      requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
    return;
  }
  onVideoFrames(video);
  if (output === 'fmp4') {
    video.src = base + '/stream.mp4';
  } else if (output === 'fmp4-mse') {
    printcastLive.play(video, base + '/stream.mp4');
  } else if (output === 'hls' || output === 'll-hls') {
    const hls = new Hls({ lowLatencyMode: output === 'll-hls' });
    if (output === 'll-hls') printcastLive.followHls(hls, video);  // what our pages do
    hls.loadSource(base + '/hls/stream.m3u8');
    hls.attachMedia(video);
  } else if (output === 'flv') {
    // The settings docs/latency.md recommends: no stash buffer, play each frame as it arrives
    // (liveSync: 1.2x whenever more than 50 ms is buffered), jump to the edge after a stall.
    const p = mpegts.createPlayer({ type: 'flv', isLive: true, url: base + '/flv' }, {
      enableStashBuffer: false, liveSync: true, liveSyncMaxLatency: 0.05, liveSyncTargetLatency: 0,
      liveSyncPlaybackRate: 1.2, liveBufferLatencyChasing: true, liveBufferLatencyMaxLatency: 0.5,
      liveBufferLatencyMinRemain: 0.1,
    });
    p.attachMediaElement(video);
    p.load();
  } else if (output === 'ws' || output === 'ws-mainsail') {
    const jm = new JMuxer({ node: video, mode: 'video', flushingTime: 0, fps: 30, debug: false });
    const ws = new WebSocket('ws://' + location.hostname + ':${streamPort}/ws?ts=1');
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (e) => {
      const n = e.data.byteLength - 8;
      const ts = Number(new DataView(e.data, n).getBigUint64(0, true));
      window.arrivals.push(Date.now() - ts);
      // Each message is one whole access unit: say so, and jmuxer remuxes it at once instead of
      // holding it until the next one arrives (docs/outputs: the jmuxer settings we recommend).
      if (output === 'ws') jm.feed({ video: new Uint8Array(e.data, 0, n), duration: 1000 / 30, isLastVideoFrameComplete: true });
      else jm.feed({ video: new Uint8Array(e.data, 0, n) });  // Mainsail's jmuxer-stream
    };
  }
  video.play().catch(() => {});
};
</script>`;

// Serve the player page (and the players from node_modules) on 127.0.0.1:<free port>: a different
// origin from the streamer, so the page also proves the CORS headers are right.
export function servePlayerPage(streamPort) {
  return h.servePage(page(streamPort));
}

export async function launchChromium() {
  const { chromium } = require('playwright-core');
  const chrome = await h.launchChromium(chromium);
  const context = await chrome.browser.newContext();
  return {
    context,
    close: async () => {
      await context.close();
      await chrome.close();
    },
  };
}

// Open a tab playing `output`; returns the tab and the page errors seen so far (live array).
export async function openPlayer(context, pageServer, output) {
  const tab = await context.newPage();
  const errors = [];
  tab.on('pageerror', (e) => errors.push(String(e)));
  tab.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await tab.goto(pageServer.url);
  await tab.evaluate((o) => window.start(o), output);
  return { tab, errors };
}

// What the page's player has done so far: timecode latencies (ms) of the pictures read, and for
// video outputs currentTime and getVideoPlaybackQuality().
export function playerState(tab) {
  return tab.evaluate(() => {
    const v = document.getElementById('v');
    const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : { totalVideoFrames: 0, droppedVideoFrames: 0 };
    return {
      ahead: window.ahead.slice(),
      arrivals: window.arrivals.slice(),
      samples: window.samples.slice(),
      currentTime: v.currentTime,
      totalVideoFrames: q.totalVideoFrames,
      droppedVideoFrames: q.droppedVideoFrames,
    };
  });
}

export function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

// ---- load: other viewers of an output, as programs elsewhere on the network would be ----

// Open `n` viewers of `output` on 127.0.0.1:port that read and discard what they get (MJPEG, FLV
// and fMP4 over HTTP, the WebSocket after its handshake, HLS by fetching the playlist and its
// newest part or segment as a player polls). Returns close().
export function openViewers(port, output, n) {
  const closers = [];
  for (let i = 0; i < n; i++) {
    if (output.startsWith('ws')) {
      const sock = net.connect(port, '127.0.0.1', () => sock.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
        'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
        'Sec-WebSocket-Version: 13\r\n\r\n'));
      sock.on('data', () => {});
      sock.on('error', () => {});
      closers.push(() => sock.destroy());
    } else if (output.endsWith('hls')) {
      let stopped = false;
      const get = (p) => new Promise((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: p }, (res) => {
          let body = '';
          res.on('data', (d) => { body += d; });
          res.on('end', () => resolve(body));
        });
        req.on('error', () => resolve(''));
      });
      (async () => {
        while (!stopped) {
          const playlist = await get('/hls/stream.m3u8');
          const uris = [...playlist.matchAll(/URI="([^"]+)"|^([^#\s][^\s]*)$/gm)].map((m) => m[1] || m[2]);
          if (uris.length) await get('/hls/' + uris[uris.length - 1]);
          await new Promise((r) => setTimeout(r, output === 'll-hls' ? 100 : 500));
        }
      })();
      closers.push(() => { stopped = true; });
    } else {
      const path = { mjpeg: '/stream', 'mjpeg-cl': '/stream', flv: '/flv' }[output] || '/stream.mp4';
      const req = http.get({ host: '127.0.0.1', port, path }, (res) => res.on('data', () => {}));
      req.on('error', () => {});
      closers.push(() => req.destroy());
    }
  }
  return () => closers.forEach((c) => c());
}

// ---- touch round trip: a tap, then the mark on the printer screen's MJPEG stream ----

// Points on the virtual screen's four buttons, clear of their labels and of each other (a mark
// is a 28 px disc and stays; MemoryScreen keeps the last 32).
export const TOUCH_POINTS = Array.from({ length: 24 }, (_, i) =>
  ({ x: 30 + (i % 12) * 64, y: i < 12 ? 250 : 385 }));

// Page-side helpers, installed into any page (the bench page or the control page): a probe
// <img crossorigin> on `displayUrl` and the mean colour of a 5x5 patch just below a point.
export async function installTouchProbe(tab, displayUrl) {
  await tab.evaluate((url) => {
    const img = document.createElement('img');
    img.crossOrigin = 'anonymous';
    img.style.cssText = 'position:fixed;left:0;top:0;width:1px;height:1px;opacity:0';
    img.src = url;
    document.body.appendChild(img);
    const canvas = document.createElement('canvas');
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    const patch = (x, y) => {
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      ctx.drawImage(img, 0, 0);
      const d = ctx.getImageData(x - 2, y + 4, 5, 5).data;
      const sum = [0, 0, 0];
      for (let k = 0; k < d.length; k += 4) for (let c = 0; c < 3; c++) sum[c] += d[k + c];
      return sum.map((v) => v / 25);
    };
    window.touchProbe = {
      ready: () => img.naturalWidth > 0,
      baseline: (x, y) => patch(x, y),
      // Resolves Date.now() at the first animation frame whose picture differs from `base` at
      // (x, y) by more than 45 (sum over R, G, B: every mark colour is further than that from the
      // button under it), or null after 3 s.
      waitForMark: (x, y, base) => new Promise((resolve) => {
        const until = Date.now() + 3000;
        const poll = () => {
          const p = patch(x, y);
          if (Math.abs(p[0] - base[0]) + Math.abs(p[1] - base[1]) + Math.abs(p[2] - base[2]) > 45) resolve(Date.now());
          else if (Date.now() > until) resolve(null);
          else requestAnimationFrame(poll);
        };
        poll();
      }),
    };
  }, displayUrl);
  for (let i = 0; i < 100 && !(await tab.evaluate(() => window.touchProbe.ready())); i++) await tab.waitForTimeout(100);
}

// Tap each of `points` with `tap(point)` (which sends the touch and resolves the Date.now() it was
// sent), waiting for the mark each time; returns the round trips in ms (null where no mark came).
export async function touchRoundTrips(tab, points, tap) {
  const trips = [];
  for (const p of points) {
    const base = await tab.evaluate(({ x, y }) => window.touchProbe.baseline(x, y), p);
    const seen = tab.evaluate(({ x, y, base }) => window.touchProbe.waitForMark(x, y, base), { ...p, base });
    const sent = await tap(p);
    const at = await seen;
    trips.push(at === null ? null : at - sent);
    await tab.waitForTimeout(150);
  }
  return trips;
}
