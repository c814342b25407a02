// SPDX-License-Identifier: MIT
// The ESP32 relay's layout (--profile esp32-relay) in headless Chromium: a camera pushes JPEGs
// (tools/mock-camera.py, a real WebSocket client) to the ingest port, and the relay's two pages
// play: / (H.264, a plain <video> of /stream.mp4) and /mjpeg; both show the /status counters.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Streamer } from '../harness.mjs';

const MOCK_CAMERA = fileURLToPath(new URL('../../../tools/mock-camera.py', import.meta.url));

export const tests = [
  {
    name: 'esp32-relay profile: Chromium plays / (H.264) and /mjpeg from a pushing camera',
    async run(ctx) {
      const relay = new Streamer(ctx.streamer.binary, ['--profile', 'esp32-relay', '--ingest-port', '0', '--no-display']);
      let camera = null;
      try {
        await relay.start();
        const m = relay.log.match(/camera ingest\s+ws:\/\/[0-9.]+:(\d+)\/\n/);
        ctx.assert(m, `the banner names the ingest port:\n${relay.log}`);
        camera = spawn('/usr/bin/python3', [MOCK_CAMERA, `ws://127.0.0.1:${m[1]}/`, '--fps', '15', '--seconds', '120'],
          { stdio: 'ignore' });

        const page = await ctx.newPage();
        await page.goto(`${relay.streamBase}/`);
        await ctx.waitFor(() => page.evaluate(() => {
          const v = document.querySelector('video');
          return v && !v.error && v.currentTime > 1 && v.videoWidth === 640;
        }), { timeoutMs: 30000, what: 'the H.264 page to play a second of 640x480' });
        await ctx.waitFor(() => page.evaluate(() => /streaming · cameras 1 · viewers [1-9]/.test(
          document.getElementById('s').textContent)), { what: 'the page to show the relay counters' });
        await ctx.screenshot(page, 'relay-h264');

        const mjpeg = await ctx.newPage();
        await mjpeg.goto(`${relay.streamBase}/mjpeg`);
        await ctx.waitFor(() => mjpeg.evaluate(() => {
          const img = document.querySelector('img');
          return img && img.naturalWidth === 640 && img.naturalHeight === 480;
        }), { timeoutMs: 15000, what: 'the MJPEG page to show 640x480 pictures' });
        await ctx.screenshot(mjpeg, 'relay-mjpeg');
        ctx.assert(ctx.consoleErrors.length === 0, `no console errors: ${ctx.consoleErrors.join('\n')}`);
      } finally {
        if (camera) camera.kill();
        await relay.stop();
        relay.cleanup();
      }
    },
  },
];
