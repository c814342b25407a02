// SPDX-License-Identifier: MIT
// Browser test harness: the streamer on the virtual board as a child process, Debian's Chromium
// launched with exactly the flags of docs real-clients.md and driven over CDP by playwright-core,
// a static server for player pages on another port (another origin), and small helpers.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const CHROMIUM = process.env.PRINTCAST_CHROMIUM || '/usr/bin/chromium';
// real-clients.md: what headless Chromium needs here, nothing more. --user-data-dir is added
// fresh per launch; --remote-debugging-port=0 is how playwright-core reaches it (CDP).
export const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

export class SkipError extends Error {}

// Wait until `probe()` returns a truthy value (returned), polling every `everyMs`; throws with
// `what` and the last value after `timeoutMs`.
export async function waitFor(probe, { timeoutMs = 10000, everyMs = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function assert(cond, message) {
  if (!cond) throw new Error('assertion failed: ' + message);
}

// The streamer (virtual board, free ports, a temp config file). restart() keeps the config file.
export class Streamer {
  constructor(binary, extraArgs = []) {
    this.binary = binary;
    this.extraArgs = extraArgs;
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'printcast-browser-'));
    this.configFile = path.join(this.dir, 'app.json');
    writeFileSync(this.configFile, '{\n  // written by the browser tests\n  "mjpeg_fps": 10\n}\n');
    this.proc = null;
    this.log = '';
    // The timelapse manager's folder (--timelapse-folder), seeded with real recordings.
    this.timelapseDir = path.join(this.dir, 'Time-lapse-Video');
    mkdirSync(this.timelapseDir, { recursive: true });
    this.timelapseSeedError = seedTimelapses(this.timelapseDir);
  }
  async start() {
    const args = ['--board', 'virtual', '--resolution', '640x480', '--desired-fps', '15', '--display-fps', '5',
      '--port', '0', '--control-port', '0', '--flv-port', '0', '--ws-port', '0', '--rtsp-port', '0',
      // Shared-memory ring names are host-wide: one per streamer of this run.
      '--ring-name', `printcast-browser-${process.pid}`, '--config', this.configFile,
      '--timelapse-folder', this.timelapseDir, ...this.extraArgs];
    this.proc = spawn(this.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.log = '';
    this.proc.stdout.on('data', (d) => { this.log += d; });
    this.proc.stderr.on('data', (d) => { this.log += d; });
    const exited = new Promise((r) => this.proc.once('exit', (code) => r(code)));
    this.exited = exited;
    await waitFor(() => /Press Ctrl\+C/.test(this.log) || this.proc.exitCode !== null,
      { timeoutMs: 15000, what: 'the streamer banner' });
    const m = (re) => { const x = this.log.match(re); return x ? Number(x[1]) : 0; };
    this.streamPort = m(/status\s+http:\/\/[0-9.]+:(\d+)\/status/);
    this.controlPort = m(/stats\s+http:\/\/[0-9.]+:(\d+)\/api\/stats/);
    this.flvPort = m(/slicer FLV\s+http:\/\/[0-9.]+:(\d+)\/flv/);
    if (!this.streamPort || !this.controlPort) throw new Error('streamer did not start:\n' + this.log);
    this.streamBase = `http://127.0.0.1:${this.streamPort}`;
    this.controlBase = `http://127.0.0.1:${this.controlPort}`;
  }
  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
    await this.exited;
    clearTimeout(timer);
  }
  async restart() {
    await this.stop();
    await this.start();
  }
  cleanup() {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// Recordings as the timelapse recorder names them (product.md "Timelapse"), made by ffmpeg from
// its test pattern: {name}.mp4 (H.264, fast start) and {name}_{frames}.jpg. Returns "" or why
// nothing could be made (no ffmpeg: the timelapse test then skips).
export const SEEDED_TIMELAPSES = [
  { name: 'benchy_1', seconds: 3, fps: 30 },
  { name: 'cube_2', seconds: 2, fps: 30 },
];
function seedTimelapses(dir) {
  for (const { name, seconds, fps } of SEEDED_TIMELAPSES) {
    const frames = seconds * fps;
    const steps = [
      ['-f', 'lavfi', '-i', `testsrc=size=320x240:rate=${fps}`, '-t', String(seconds), '-c:v', 'libx264',
        '-pix_fmt', 'yuv420p', '-movflags', '+faststart', path.join(dir, `${name}.mp4`)],
      ['-f', 'lavfi', '-i', 'testsrc=size=320x240', '-frames:v', '1', path.join(dir, `${name}_${frames}.jpg`)],
    ];
    for (const args of steps) {
      const r = spawnSync('ffmpeg', ['-v', 'error', '-y', ...args], { encoding: 'utf8', timeout: 60000 });
      if (r.error || r.status !== 0) return `ffmpeg failed: ${r.error ? r.error.message : r.stderr}`;
    }
  }
  return '';
}

export async function launchChromium(chromium) {
  if (!existsSync(CHROMIUM)) throw new SkipError(`${CHROMIUM} is missing (apt-get install chromium)`);
  const userDataDir = mkdtempSync(path.join(os.tmpdir(), 'printcast-chromium-'));
  const proc = spawn(CHROMIUM, [...CHROMIUM_FLAGS, `--user-data-dir=${userDataDir}`, '--remote-debugging-port=0',
    'about:blank'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const ws = await waitFor(() => (err.match(/DevTools listening on (ws:\/\/\S+)/) || [])[1] || proc.exitCode !== null && 'exited',
    { timeoutMs: 30000, what: 'Chromium to listen for DevTools' });
  if (ws === 'exited') throw new Error('chromium exited:\n' + err);
  const browser = await chromium.connectOverCDP(ws);
  return {
    browser,
    async close() {
      await browser.close().catch(() => {});
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.once('exit', r));
      }
      // Chromium's helper processes may still be writing their profile for a moment.
      try {
        rmSync(userDataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
      } catch (e) {
        console.log(`note: could not remove ${userDataDir}: ${e.message}`);
      }
    },
  };
}

// A static page server on its own port (so its pages are another origin than the streamer):
// "/" serves `html`, "/node_modules/..." the installed player scripts.
export async function servePage(html) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(html);
      return;
    }
    const file = path.normalize(path.join(here, url.pathname));
    if (url.pathname.startsWith('/node_modules/') && file.startsWith(path.join(here, 'node_modules')) && existsSync(file)) {
      res.writeHead(200, { 'Content-Type': 'text/javascript' });
      res.end(readFileSync(file));
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((r) => server.close(r)) };
}

// Play `streamUrl` in a page served from another origin with a player script from node_modules:
// `setup` is page JS run with `video` (a muted <video>) and `url` in scope that starts playback.
// Returns {currentTime, dropped, total, errors} after `seconds` of wall time from the first frame.
export async function playerTest(ctx, { script, setup, url, seconds = 5, name }) {
  const html = `<!doctype html><meta charset=utf-8><title>${name}</title>
<video id=v muted autoplay playsinline style="width:640px;height:480px"></video>
${script ? `<script src="/node_modules/${script}"></script>` : ''}
<script>
window.errors = [];
window.addEventListener('error', (e) => window.errors.push(String(e.message)));
const video = document.getElementById('v');
const url = ${JSON.stringify(url)};
video.addEventListener('error', () => window.errors.push('video error ' + (video.error && video.error.message)));
${setup}
</script>`;
  const server = await servePage(html);
  const page = await ctx.newPage();
  try {
    await page.goto(server.url);
    await waitFor(() => page.evaluate(() => document.getElementById('v').currentTime > 0), {
      timeoutMs: 15000, what: `${name}: the first frame`,
    });
    const start = await page.evaluate(() => document.getElementById('v').currentTime);
    await page.waitForTimeout(seconds * 1000);
    const result = await page.evaluate(() => {
      const v = document.getElementById('v');
      const q = v.getVideoPlaybackQuality();
      return { currentTime: v.currentTime, dropped: q.droppedVideoFrames, total: q.totalVideoFrames, errors: window.errors };
    });
    result.advanced = result.currentTime - start;
    console.log(`  ${name}: currentTime +${result.advanced.toFixed(2)} s in ${seconds} s, ` +
      `${result.dropped} of ${result.total} frames dropped, ${result.errors.length} errors`);
    await ctx.screenshot(page, name);
    return result;
  } finally {
    await page.close();
    await server.close();
  }
}

export function artifactsDir(dir) {
  mkdirSync(dir, { recursive: true });
  return dir;
}
