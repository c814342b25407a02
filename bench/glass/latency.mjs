// SPDX-License-Identifier: MIT
// Glass-to-browser latency of each output, and the touch round trip, measured in headless Chromium.
//
//   node bench/glass/latency.mjs STREAMER_BIN [seconds per output, default 10]
//   STREAMER_ARGS="--hls-part-seconds 0.2" OUTPUTS=hls,ll-hls GLASS_LOAD=0 node bench/glass/latency.mjs ...
//     (extra streamer flags; only the listed outputs; no second pass with other viewers)
//
// The virtual board's test pattern draws the wall-clock time of each frame's synthesis into a
// timecode strip along its bottom edge (hal/test_pattern.h: 32 cells, MSB first, white = 1).
// For every output a page plays the stream with the player users run, set up as our pages and
// docs/latency.md do (an <img> for MJPEG, live-player.js for fMP4 as the control page plays it, a
// plain <video> for comparison, hls.js in regular and low-latency mode, mpegts.js for FLV, jmuxer
// for the WebSocket), draws each presented picture to a canvas, reads the strip back and records
// Date.now() - timecode (same machine, same clock). requestVideoFrameCallback gives one sample
// per presented video frame; the <img> is sampled on every animation frame and counted when the
// timecode changes. Then the same with GLASS_LOAD (default 10) other viewers of that output
// connected (programs reading and discarding, as viewers elsewhere would).
// Touch round trip: POST /api/touch at a point of the virtual printer screen, then the time until
// the mark is seen in /display (MJPEG in an <img>), from a script and from a click in the control
// page's Display tab.
// Prints p50/p95/max in ms with each target of issue 17 beside it; "ahead" is how far the
// player's buffer reaches past the picture shown (ms), a player-side share of the latency.
// Needs tests/browser's node_modules (scripts/install-deps.sh test runs npm ci there).
import fs from 'node:fs';
import os from 'node:os';
import {
  OUTPUTS, TOUCH_POINTS, startStreamer, servePlayerPage, launchChromium, openPlayer, openViewers,
  playerState, quantile, installTouchProbe, touchRoundTrips,
} from '../../tests/browser/lib/player-page.mjs';

const streamerBin = process.argv[2];
const seconds = Number(process.argv[3] || 10);
const load = Number(process.env.GLASS_LOAD ?? 10);
if (!streamerBin || !fs.existsSync(streamerBin)) {
  console.error('usage: node bench/glass/latency.mjs STREAMER_BIN [seconds]');
  process.exit(2);
}

// What each output is, and its p50 target (ms) where issue 17 sets one.
const ROWS = {
  ws: ['/ws + jmuxer, whole access units', 50],
  'ws-mainsail': ['/ws + jmuxer, Mainsail\'s feed', null],
  mjpeg: ['/stream <img>', 60],
  'mjpeg-cl': ['/stream?advance_headers=0 <img>', null],
  flv: ['/flv + mpegts.js (liveSync)', 100],
  'fmp4-mse': ['/stream.mp4 + live-player.js', 150],
  fmp4: ['/stream.mp4 plain <video>', null],
  'll-hls': ['LL-HLS hls.js + followHls', 700],
  hls: ['HLS hls.js', null],
};
const fmt = (v) => (Number.isFinite(v) ? String(Math.round(v)) : '-').padStart(6);
const stats = (values) => {
  const v = values.filter((x) => x !== null).sort((a, b) => a - b);
  return { n: v.length, p50: quantile(v, 0.5), p95: quantile(v, 0.95), max: v.length ? v[v.length - 1] : NaN };
};

async function measure(browser, server, port, output, viewers) {
  const closeViewers = openViewers(port, output, viewers);
  try {
    const { tab, errors } = await openPlayer(browser.context, server, output);
    // Let the player settle (first keyframe, buffering), then measure a window.
    await tab.waitForTimeout(3000);
    await tab.evaluate(() => { window.samples = []; window.ahead = []; window.arrivals = []; });
    await tab.waitForTimeout(seconds * 1000);
    const state = await playerState(tab);
    await tab.close();
    return { ...stats(state.samples), ahead: stats(state.ahead).p50, errors };
  } finally {
    closeViewers();
  }
}

const outputs = Object.keys(ROWS).filter((o) => OUTPUTS.includes(o) &&
  (!process.env.OUTPUTS || process.env.OUTPUTS.split(',').includes(o)));
const extraArgs = (process.env.STREAMER_ARGS || '').split(' ').filter(Boolean);
const { child, port, controlPort } = await startStreamer(streamerBin, extraArgs, { display: true });
const server = await servePlayerPage(port);
const browser = await launchChromium();
console.log(`glass-to-browser latency, 640x480 30 fps test pattern, ${seconds} s per output, ` +
  `${os.cpus().length} cores; then with ${load} other viewers of the same output`);
console.log(`${'output'.padEnd(36)} target |  p50    p95    max  ahead  pics |  p50    p95  (+${load} viewers)`);
try {
  for (const output of outputs) {
    const [label, target] = ROWS[output];
    const idle = await measure(browser, server, port, output, 0);
    const loaded = load > 0 ? await measure(browser, server, port, output, load) : null;
    const ok = target === null || idle.n === 0 ? '' : idle.p50 <= target ? ' ok' : ' OVER';
    console.log(`${label.padEnd(36)} ${fmt(target ?? NaN)} | ${fmt(idle.p50)} ${fmt(idle.p95)} ${fmt(idle.max)} ` +
      `${fmt(idle.ahead)} ${String(idle.n).padStart(5)} | ${loaded ? `${fmt(loaded.p50)} ${fmt(loaded.p95)}` : ''}${ok}`);
    if (idle.n === 0) console.log(`  no pictures read: ${idle.errors.slice(0, 3).join(' | ') || 'output not served?'}`);
  }

  if (!process.env.OUTPUTS || process.env.OUTPUTS.split(',').includes('touch')) {
    // A script taps (POST /api/touch, as a slicer or Home Assistant would) while a page shows /display.
    const half = TOUCH_POINTS.length / 2;
    const { tab } = await openPlayer(browser.context, server, 'none');
    await installTouchProbe(tab, `http://127.0.0.1:${port}/display`);
    const posted = await touchRoundTrips(tab, TOUCH_POINTS.slice(0, half), async (p) => {
      const sent = Date.now();
      const r = await fetch(`http://127.0.0.1:${controlPort}/api/touch`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(p),
      });
      if (!r.ok) throw new Error(`POST /api/touch: ${r.status} ${await r.text()}`);
      return sent;
    });
    await tab.close();
    // A person clicks the picture in the control page's Display tab (its own POST, same origin).
    const page = await browser.context.newPage();
    await page.goto(`http://127.0.0.1:${controlPort}/control#display`);
    await page.waitForFunction(() => {
      const img = document.getElementById('display-img');
      return img && img.naturalWidth > 0;
    }, null, { timeout: 15000 });
    await installTouchProbe(page, `http://127.0.0.1:${port}/display`);
    const clicked = await touchRoundTrips(page, TOUCH_POINTS.slice(half), async (p) => {
      const at = await page.evaluate(({ x, y }) => {
        const img = document.getElementById('display-img');
        const r = img.getBoundingClientRect();
        const scale = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
        return { cx: r.left + (r.width - img.naturalWidth * scale) / 2 + (x + 0.5) * scale,
          cy: r.top + (r.height - img.naturalHeight * scale) / 2 + (y + 0.5) * scale };
      }, p);
      const sent = Date.now();
      await page.mouse.click(at.cx, at.cy);
      return sent;
    });
    await page.close();
    for (const [label, trips] of [['touch: POST /api/touch -> /display', posted],
      ['touch: control page click -> /display', clicked]]) {
      const t = stats(trips);
      const ok = t.n === 0 ? '' : t.p50 <= 120 ? ' ok' : ' OVER';
      console.log(`${label.padEnd(36)} ${fmt(120)} | ${fmt(t.p50)} ${fmt(t.p95)} ${fmt(t.max)}      - ` +
        `${String(t.n).padStart(5)} |${ok}${t.n < trips.length ? ` (${trips.length - t.n} taps never seen)` : ''}`);
    }
  }
} finally {
  await browser.close();
  await server.close();
  child.kill('SIGTERM');
}
