// SPDX-License-Identifier: MIT
// Player tests: each H.264/MJPEG output played for 5 s in headless Chromium by the player users
// run, from a page on another origin (so CORS is exercised too).
//
//   node tests/browser/players.mjs STREAMER_BIN OUTPUT...   (OUTPUT: mjpeg fmp4 hls ll-hls flv ws)
//
// Per output: the first picture must be presented within 20 s; then over 5 s of play the
// <video>'s currentTime advances by at least 3.5 s, getVideoPlaybackQuality() reports at most
// max(3, 5 %) dropped frames, pictures keep arriving (the timecode strip of the test pattern is
// read back from each presented picture: ≥ 20 per 5 s for video, ≥ 10 for the 10 fps MJPEG) and
// the page logs no errors. Exit status 0 when every output passed.
import fs from 'node:fs';
import { startStreamer, servePlayerPage, launchChromium, openPlayer, playerState, quantile }
  from './lib/player-page.mjs';

const [streamerBin, ...outputs] = process.argv.slice(2);
if (!streamerBin || !fs.existsSync(streamerBin) || outputs.length === 0) {
  console.error('usage: node tests/browser/players.mjs STREAMER_BIN OUTPUT...');
  process.exit(2);
}

const { child, port } = await startStreamer(streamerBin);
const server = await servePlayerPage(port);
const browser = await launchChromium();
let failures = 0;
try {
  for (const output of outputs) {
    const problems = [];
    const { tab, errors } = await openPlayer(browser.context, server, output);
    try {
      await tab.waitForFunction(() => window.samples.length > 0, null, { timeout: 20000 });
      const before = await playerState(tab);
      await tab.waitForTimeout(5000);
      const after = await playerState(tab);
      const pictures = after.samples.length - before.samples.length;
      const latencies = after.samples.slice(before.samples.length).sort((a, b) => a - b);
      if (output === 'mjpeg') {
        if (pictures < 10) problems.push(`only ${pictures} pictures in 5 s`);
      } else {
        const advanced = after.currentTime - before.currentTime;
        const frames = after.totalVideoFrames - before.totalVideoFrames;
        const dropped = after.droppedVideoFrames - before.droppedVideoFrames;
        if (advanced < 3.5) problems.push(`currentTime advanced ${advanced.toFixed(2)} s in 5 s`);
        if (dropped > Math.max(3, 0.05 * frames)) problems.push(`${dropped} of ${frames} frames dropped`);
        if (pictures < 20) problems.push(`only ${pictures} pictures presented in 5 s`);
        console.log(`# ${output}: currentTime +${advanced.toFixed(2)} s, ${frames} frames, ${dropped} dropped`);
      }
      console.log(`# ${output}: ${pictures} pictures, latency p50 ${Math.round(quantile(latencies, 0.5))} ms`);
    } catch (e) {
      problems.push(`no picture presented: ${e.message.split('\n')[0]}`);
    }
    if (errors.length > 0) problems.push(`page errors: ${errors.slice(0, 3).join(' | ')}`);
    await tab.screenshot({ path: `${process.env.PRINTCAST_BROWSER_ARTIFACTS || '.'}/player-${output}.png` })
      .catch(() => {});
    await tab.close();
    if (problems.length === 0) {
      console.log(`ok - ${output}`);
    } else {
      failures += 1;
      console.log(`not ok - ${output}: ${problems.join('; ')}`);
    }
  }
} finally {
  await browser.close();
  server.close();
  child.kill('SIGTERM');
}
process.exit(failures === 0 ? 0 : 1);
