// SPDX-License-Identifier: MIT
// npm players in Chromium against the streamer, from a page on another origin (CORS): each test
// is a few lines with ctx.playerTest.
const mpegtsSetup = `
  const player = mpegts.createPlayer({ type: 'flv', isLive: true, url }, { enableWorker: false });
  player.on(mpegts.Events.ERROR, (type, detail) => window.errors.push('mpegts ' + type + ' ' + detail));
  player.attachMediaElement(video);
  player.load();
  player.play();`;

const hlsSetup = (lowLatencyMode) => `
  const hls = new Hls({ lowLatencyMode: ${lowLatencyMode} });
  hls.on(Hls.Events.ERROR, (event, data) => { if (data.fatal) window.errors.push('hls ' + data.type + ' ' + data.details); });
  hls.loadSource(url);
  hls.attachMedia(video);
  video.play();`;

// jmuxer as Mainsail's "jmuxer-stream" service feeds it: every WebSocket message whole, with the
// stream's frame rate (the harness runs the camera at 15 fps).
const jmuxerSetup = `
  const jmuxer = new JMuxer({ node: video, mode: 'video', flushingTime: 0, fps: 15, debug: false,
    onError: (e) => window.errors.push('jmuxer ' + String(e)) });
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  ws.onmessage = (e) => jmuxer.feed({ video: new Uint8Array(e.data) });
  ws.onerror = () => window.errors.push('websocket error');
  video.play();`;

// Play `opts` (ctx.playerTest) and check it plays smoothly: no errors, currentTime keeps up, and
// at most 2% of the frames (or 2) dropped. Dropped frames are counted by the renderer: on this
// 2-core VM a hiccup of the machine alone (headless Chromium decodes and composites in software)
// can drop a few hundred milliseconds' worth. So a run that only fails that count is played once
// more, and the second run decides; a stream that makes the player drop frames (bad timestamps,
// late delivery) fails both. Errors and a stalled currentTime fail at once.
async function playSmoothly(ctx, opts, what) {
  const seconds = opts.seconds;
  for (let attempt = 1; ; attempt++) {
    const r = await ctx.playerTest(opts);
    ctx.assert(r.errors.length === 0, `${what}: errors ${r.errors.join('; ')}`);
    ctx.assert(r.advanced > seconds * 0.7, `${what}: currentTime advanced ${r.advanced.toFixed(2)} s in ${seconds} s`);
    const dropsOk = r.dropped <= Math.max(2, r.total * 0.02);
    if (dropsOk) return r;
    if (attempt === 2) ctx.assert(false, `${what}: ${r.dropped} of ${r.total} frames dropped, twice in a row`);
    console.log(`  ${what}: ${r.dropped} of ${r.total} frames dropped; playing it once more`);
  }
}

export const tests = [
  {
    name: 'a plain <video> plays /stream.mp4 (fragmented MP4, no script) for 5 s',
    async run(ctx) {
      await playSmoothly(ctx, { name: 'video-fmp4', setup: 'video.src = url; video.play();',
        url: `${ctx.streamer.streamBase}/stream.mp4`, seconds: 5 }, '<video> /stream.mp4');
    },
  },
  {
    name: 'hls.js plays /hls/stream.m3u8 for 5 s',
    async run(ctx) {
      await playSmoothly(ctx, { name: 'hlsjs', script: 'hls.js/dist/hls.min.js', setup: hlsSetup(false),
        url: `${ctx.streamer.streamBase}/hls/stream.m3u8`, seconds: 5 }, 'hls.js');
    },
  },
  {
    name: 'hls.js in low-latency mode (parts, blocking reload) plays /hls/stream.m3u8 for 5 s',
    async run(ctx) {
      await playSmoothly(ctx, { name: 'hlsjs-ll', script: 'hls.js/dist/hls.min.js', setup: hlsSetup(true),
        url: `${ctx.streamer.streamBase}/hls/stream.m3u8`, seconds: 5 }, 'hls.js low-latency');
    },
  },
  {
    name: 'hls.js plays MPEG-TS segments (--hls-format ts) in low-latency mode for 5 s',
    async run(ctx) {
      const saved = ctx.streamer.extraArgs;
      ctx.streamer.extraArgs = [...saved, '--hls-format', 'ts'];
      try {
        await ctx.streamer.restart();
        await playSmoothly(ctx, { name: 'hlsjs-ts', script: 'hls.js/dist/hls.min.js', setup: hlsSetup(true),
          url: `${ctx.streamer.streamBase}/hls/stream.m3u8`, seconds: 5 }, 'hls.js MPEG-TS');
      } finally {
        ctx.streamer.extraArgs = saved;
        await ctx.streamer.restart();
      }
    },
  },
  {
    name: 'jmuxer plays /ws (one access unit per message) for 5 s',
    async run(ctx) {
      await playSmoothly(ctx, { name: 'jmuxer-ws', script: 'jmuxer/dist/jmuxer.min.js', setup: jmuxerSetup,
        url: `${ctx.streamer.streamBase.replace(/^http/, 'ws')}/ws`, seconds: 5 }, 'jmuxer /ws');
    },
  },
  {
    name: 'mpegts.js plays /flv from a cross-origin page for 5 s',
    async run(ctx) {
      await playSmoothly(ctx, { name: 'mpegts-flv', script: 'mpegts.js/dist/mpegts.js', setup: mpegtsSetup,
        url: `${ctx.streamer.streamBase}/flv`, seconds: 5 }, 'mpegts.js /flv');
    },
  },
  {
    name: "mpegts.js plays the slicer port's /flv (stock text/plain headers)",
    async run(ctx) {
      if (!ctx.streamer.flvPort) throw new ctx.SkipError('the slicer FLV port is off');
      await playSmoothly(ctx, { name: 'mpegts-slicer-flv', script: 'mpegts.js/dist/mpegts.js', setup: mpegtsSetup,
        url: `http://127.0.0.1:${ctx.streamer.flvPort}/flv`, seconds: 3 }, 'mpegts.js slicer /flv');
    },
  },
];
