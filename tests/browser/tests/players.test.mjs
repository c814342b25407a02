// SPDX-License-Identifier: MIT
// npm players in Chromium against the streamer, from a page on another origin (CORS): each test
// is a few lines with ctx.playerTest.
const mpegtsSetup = `
  const player = mpegts.createPlayer({ type: 'flv', isLive: true, url }, { enableWorker: false });
  player.on(mpegts.Events.ERROR, (type, detail) => window.errors.push('mpegts ' + type + ' ' + detail));
  player.attachMediaElement(video);
  player.load();
  player.play();`;

function assertSmooth(ctx, r, seconds, what) {
  ctx.assert(r.errors.length === 0, `${what}: errors ${r.errors.join('; ')}`);
  ctx.assert(r.advanced > seconds * 0.7, `${what}: currentTime advanced ${r.advanced.toFixed(2)} s in ${seconds} s`);
  ctx.assert(r.dropped <= Math.max(2, r.total * 0.02), `${what}: ${r.dropped} of ${r.total} frames dropped`);
}

export const tests = [
  {
    name: 'mpegts.js plays /flv from a cross-origin page for 5 s',
    async run(ctx) {
      const r = await ctx.playerTest({ name: 'mpegts-flv', script: 'mpegts.js/dist/mpegts.js', setup: mpegtsSetup,
        url: `${ctx.streamer.streamBase}/flv`, seconds: 5 });
      assertSmooth(ctx, r, 5, 'mpegts.js /flv');
    },
  },
  {
    name: "mpegts.js plays the slicer port's /flv (stock text/plain headers)",
    async run(ctx) {
      if (!ctx.streamer.flvPort) throw new ctx.SkipError('the slicer FLV port is off');
      const r = await ctx.playerTest({ name: 'mpegts-slicer-flv', script: 'mpegts.js/dist/mpegts.js', setup: mpegtsSetup,
        url: `http://127.0.0.1:${ctx.streamer.flvPort}/flv`, seconds: 3 });
      assertSmooth(ctx, r, 3, 'mpegts.js slicer /flv');
    },
  },
];
