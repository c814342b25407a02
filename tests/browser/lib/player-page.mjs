// SPDX-License-Identifier: MIT
// For the latency benchmark (bench/glass/latency.mjs), on top of harness.mjs: start the streamer
// on the virtual board, serve a page on another origin that plays one output with the player
// users run, and read the test pattern's timecode strip back from every presented picture.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import * as h from '../harness.mjs';

const require = createRequire(path.join(h.here, 'package.json'));

// Outputs and how the page plays them: an <img> for MJPEG, a plain <video> for fMP4, hls.js in
// regular and low-latency mode, mpegts.js for FLV, jmuxer fed one access unit per WebSocket message.
export const OUTPUTS = ['mjpeg', 'mjpeg-cl', 'fmp4-mse', 'fmp4', 'hls', 'll-hls', 'flv', 'ws', 'ws-mainsail'];

export function startStreamer(streamerBin, extraArgs = []) {
  const args = ['--board', 'virtual', '--resolution', '640x480', '--desired-fps', '30', '--no-display',
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
      if (m) resolve({ child, port: Number(m[1]) });
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
