// SPDX-License-Identifier: MIT
// Glass-to-browser latency of each output, measured in headless Chromium.
//
//   node bench/glass/latency.mjs STREAMER_BIN [seconds per output, default 10]
//
// The virtual board's test pattern draws the wall-clock time of each frame's synthesis into a
// timecode strip along its bottom edge (hal/test_pattern.h: 32 cells, MSB first, white = 1).
// For every output a page plays the stream with the player users run (an <img> for MJPEG, a
// plain <video> for fMP4, hls.js in regular and low-latency mode, mpegts.js for FLV, jmuxer for
// the WebSocket), draws each presented picture to a canvas, reads the strip back and records
// Date.now() − timecode (same machine, same clock). requestVideoFrameCallback gives one sample
// per presented video frame; the <img> is sampled on every animation frame and counted when the
// timecode changes. Prints p50/p95/max in ms per output, plus how many pictures were read.
// Browser flags are the ones in real-clients.md. Needs tests/browser's node_modules (npm ci).
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const modules = path.join(repo, 'tests/browser/node_modules');
const require = createRequire(path.join(repo, 'tests/browser/package.json'));
const { chromium } = require('playwright-core');

const streamerBin = process.argv[2];
const seconds = Number(process.argv[3] || 10);
if (!streamerBin || !fs.existsSync(streamerBin)) {
  console.error('usage: node bench/glass/latency.mjs STREAMER_BIN [seconds]');
  process.exit(2);
}

function startStreamer() {
  const args = ['--board', 'virtual', '--resolution', '640x480', '--desired-fps', '30', '--no-display',
    '--flv-port', '-1', '--port', '0', '--control-port', '0', '--log-level', 'warn'];
  // Optional listeners this build may have: keep them off so runs never clash on fixed ports.
  const help = spawnSync(streamerBin, ['--help'], { encoding: 'utf8' }).stdout || '';
  if (help.includes('--ws-port')) args.push('--ws-port', '-1');
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
const page = (streamPort) => `<!doctype html><meta charset=utf-8>
<script src="/m/hls.js/dist/hls.min.js"></script>
<script src="/m/mpegts.js/dist/mpegts.js"></script>
<script src="/m/jmuxer/dist/jmuxer.min.js"></script>
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
function onVideoFrames(video) {
  const step = () => {
    if (video.videoWidth > 0) record(readTimecode(video, video.videoWidth, video.videoHeight));
    video.requestVideoFrameCallback(step);
  };
  video.requestVideoFrameCallback(step);
}
window.start = (output) => {
  const video = document.getElementById('v');
  if (output === 'mjpeg') {
    const img = document.getElementById('i');
    img.src = base + '/stream';
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
  } else if (output === 'hls' || output === 'll-hls') {
    const hls = new Hls({ lowLatencyMode: output === 'll-hls' });
    hls.loadSource(base + '/hls/stream.m3u8');
    hls.attachMedia(video);
  } else if (output === 'flv') {
    const p = mpegts.createPlayer({ type: 'flv', isLive: true, url: base + '/flv' },
      { enableStashBuffer: false, liveBufferLatencyChasing: true });
    p.attachMediaElement(video);
    p.load();
  } else if (output === 'ws') {
    const jm = new JMuxer({ node: video, mode: 'video', flushingTime: 0, fps: 30, debug: false });
    const ws = new WebSocket('ws://' + location.hostname + ':${streamPort}/ws');
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (e) => jm.feed({ video: new Uint8Array(e.data) });
  }
  video.play().catch(() => {});
};
</script>`;

function serve(streamPort) {
  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/m/')) {
      const file = path.join(modules, path.normalize(req.url.slice(3)));
      if (!file.startsWith(modules) || !fs.existsSync(file)) { res.writeHead(404); res.end(); return; }
      res.writeHead(200, { 'Content-Type': 'text/javascript' });
      fs.createReadStream(file).pipe(res);
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(page(streamPort));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const { child, port } = await startStreamer();
const server = await serve(port);
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'printcast-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
});
console.log(`glass-to-browser latency, 640x480 30 fps test pattern, ${seconds} s per output (${os.cpus().length} cores)`);
console.log('output     pictures   p50_ms   p95_ms   max_ms');
try {
  for (const output of ['mjpeg', 'fmp4', 'hls', 'll-hls', 'flv', 'ws']) {
    const tab = await browser.newPage();
    const errors = [];
    tab.on('pageerror', (e) => errors.push(String(e)));
    tab.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await tab.goto(`http://127.0.0.1:${server.address().port}/`);
    await tab.evaluate((o) => window.start(o), output);
    // Let the player settle (first keyframe, buffering), then measure a window.
    await tab.waitForTimeout(3000);
    await tab.evaluate(() => { window.samples = []; });
    await tab.waitForTimeout(seconds * 1000);
    const samples = (await tab.evaluate(() => window.samples)).sort((a, b) => a - b);
    const row = samples.length === 0 ? 'no pictures read (output not served or not playing)'
      : [quantile(samples, 0.5), quantile(samples, 0.95), samples[samples.length - 1]]
        .map((v) => String(Math.round(v)).padStart(8)).join(' ');
    console.log(`${output.padEnd(10)} ${String(samples.length).padStart(8)} ${row}`);
    if (samples.length === 0 && errors.length > 0) console.log(`           page errors: ${errors.slice(0, 3).join(' | ')}`);
    await tab.close();
  }
} finally {
  await browser.close();
  server.close();
  child.kill('SIGTERM');
  fs.rmSync(profile, { recursive: true, force: true });
}
