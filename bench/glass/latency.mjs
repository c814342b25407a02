// SPDX-License-Identifier: MIT
// Glass-to-browser latency of each output, measured in headless Chromium.
//
//   node bench/glass/latency.mjs STREAMER_BIN [seconds per output, default 10]
//   STREAMER_ARGS="--hls-part-seconds 0.1" OUTPUTS=hls,ll-hls node bench/glass/latency.mjs ...
//     (extra streamer flags; only the listed outputs)
//
// The virtual board's test pattern draws the wall-clock time of each frame's synthesis into a
// timecode strip along its bottom edge (hal/test_pattern.h: 32 cells, MSB first, white = 1).
// For every output a page plays the stream with the player users run (an <img> for MJPEG, a
// plain <video> for fMP4, hls.js in regular and low-latency mode, mpegts.js for FLV, jmuxer for
// the WebSocket), draws each presented picture to a canvas, reads the strip back and records
// Date.now() - timecode (same machine, same clock). requestVideoFrameCallback gives one sample
// per presented video frame; the <img> is sampled on every animation frame and counted when the
// timecode changes. Prints p50/p95/max in ms per output, plus how many pictures were read.
// Needs tests/browser's node_modules (scripts/install-deps.sh test runs npm ci there).
import fs from 'node:fs';
import os from 'node:os';
import { OUTPUTS, startStreamer, servePlayerPage, launchChromium, openPlayer, playerState, quantile }
  from '../../tests/browser/lib/player-page.mjs';

const streamerBin = process.argv[2];
const seconds = Number(process.argv[3] || 10);
if (!streamerBin || !fs.existsSync(streamerBin)) {
  console.error('usage: node bench/glass/latency.mjs STREAMER_BIN [seconds]');
  process.exit(2);
}

const { child, port } = await startStreamer(streamerBin, (process.env.STREAMER_ARGS || '').split(' ').filter(Boolean));
const server = await servePlayerPage(port);
const browser = await launchChromium();
console.log(`glass-to-browser latency, 640x480 30 fps test pattern, ${seconds} s per output (${os.cpus().length} cores)`);
console.log('output     pictures   p50_ms   p95_ms   max_ms');
try {
  for (const output of OUTPUTS.filter((o) => !process.env.OUTPUTS || process.env.OUTPUTS.split(',').includes(o))) {
    const { tab, errors } = await openPlayer(browser.context, server, output);
    // Let the player settle (first keyframe, buffering), then measure a window.
    await tab.waitForTimeout(3000);
    await tab.evaluate(() => { window.samples = []; window.ahead = []; window.arrivals = []; });
    await tab.waitForTimeout(seconds * 1000);
    const state = await playerState(tab);
    const samples = state.samples.sort((a, b) => a - b);
    const med = (a) => a.length ? Math.round(quantile(a.sort((x, y) => x - y), 0.5)) : '-';
    console.log(`  ahead p50 ${med(state.ahead)} ms, arrival p50 ${med(state.arrivals)} ms`);
    const row = samples.length === 0 ? 'no pictures read (output not served or not playing)'
      : [quantile(samples, 0.5), quantile(samples, 0.95), samples[samples.length - 1]]
        .map((v) => String(Math.round(v)).padStart(8)).join(' ');
    console.log(`${output.padEnd(10)} ${String(samples.length).padStart(8)} ${row}`);
    if (samples.length === 0 && errors.length > 0) console.log(`           page errors: ${errors.slice(0, 3).join(' | ')}`);
    await tab.close();
  }
} finally {
  await browser.close();
  await server.close();
  child.kill('SIGTERM');
}
