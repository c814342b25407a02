// SPDX-License-Identifier: MIT
// printcast live players. play(): plays the stream port's fragmented MP4 (/stream.mp4: an init segment,
// then one moof + mdat per access unit, docs/outputs in README) through Media Source Extensions
// and holds the live edge. Plain ES2017, no build step; served by the control port at
// /live-player.js for the control page, and usable from any page:
//
//   const player = printcastLive.play(videoElement, 'http://printer:8080/stream.mp4', {
//     onState: (text) => ..., // 'playing', 'reconnecting: <why>'
//   });
//   player.stop();
//
// Why not <video src=/stream.mp4>: Chromium buffers a progressive stream about 1.2 s before it
// plays it, whatever the server sends. Fed through MSE, a stream whose init segment declares no
// duration (mvhd duration 0, no mehd) is "live" to Chromium, which then decodes without frame
// threading and starts rendering with one frame (low-delay mode): glass-to-browser falls from
// ~1200 ms to about the decode time (docs/benchmarks.md).
// Holding the live edge: the lag is how far the play position is behind the newest frame. Past
// `maxLagSeconds` (0.5; after a stall: a busy network, a tab in the background) the player seeks
// to the newest frame; above `targetLagSeconds` (0: play each frame as it arrives; raise it on a
// jittery network to trade latency for fewer freezes) it plays 10 % fast until it has caught up. The stream ends when the
// camera's SPS/PPS change (the server cannot send a second init segment in one response); the
// player then reconnects after `retrySeconds`, as it does after any error.
'use strict';

(function () {
  function codecOf(init) {
    // avcC (ISO/IEC 14496-15 5.3.3.1): version, AVCProfileIndication, profile_compatibility,
    // AVCLevelIndication -> RFC 6381 "avc1.PPCCLL".
    for (let i = 4; i + 8 <= init.length; i++) {
      if (init[i] === 0x61 && init[i + 1] === 0x76 && init[i + 2] === 0x63 && init[i + 3] === 0x43) {
        const hex = (b) => b.toString(16).padStart(2, '0');
        return 'avc1.' + hex(init[i + 5]) + hex(init[i + 6]) + hex(init[i + 7]);
      }
    }
    return null;
  }

  function play(video, url, options) {
    const opts = Object.assign({ targetLagSeconds: 0, maxLagSeconds: 0.5, retrySeconds: 1, onState: () => {} }, options || {});
    let stopped = false;
    let controller = null;
    let retryTimer = 0;
    const MediaSourceType = window.ManagedMediaSource || window.MediaSource;

    if (!MediaSourceType) {
      // No MSE (old iOS): the browser's own progressive playback, with its buffering.
      video.src = url;
      video.play().catch(() => {});
      return { stop() { video.removeAttribute('src'); video.load(); } };
    }

    function retry(why) {
      if (stopped) return;
      opts.onState('reconnecting: ' + why);
      if (controller) controller.abort();
      clearTimeout(retryTimer);
      retryTimer = setTimeout(start, opts.retrySeconds * 1000);
    }

    function start() {
      if (stopped) return;
      controller = new AbortController();
      const signal = controller.signal;
      const source = new MediaSourceType();
      video.disableRemotePlayback = true;  // ManagedMediaSource (Safari) requires it
      video.src = URL.createObjectURL(source);
      source.addEventListener('sourceopen', async () => {
        URL.revokeObjectURL(video.src);
        let buffer = null;
        const pending = [];
        let head = new Uint8Array(0);  // bytes before the first moof, for the codec string
        let lastTrim = 0;
        const pump = () => {
          if (!buffer || buffer.updating || pending.length === 0) return;
          const total = pending.reduce((n, c) => n + c.length, 0);
          const joined = new Uint8Array(total);
          let at = 0;
          for (const c of pending) { joined.set(c, at); at += c.length; }
          pending.length = 0;
          try {
            buffer.appendBuffer(joined);
          } catch (e) {
            retry(String(e));
          }
        };
        let lastEnd = 0;
        let frameSeconds = 1 / 30;  // the buffered end advances by one sample per fragment
        const holdLiveEdge = () => {
          if (!buffer || buffer.updating || video.buffered.length === 0) return;
          const end = video.buffered.end(video.buffered.length - 1);
          const step = end - lastEnd;
          if (lastEnd > 0 && step > 0 && step < 1) frameSeconds += (step - frameSeconds) / 8;
          lastEnd = end;
          // The newest frame starts one sample duration before the buffered end.
          const lag = end - frameSeconds - video.currentTime;
          if (lag > opts.maxLagSeconds || video.currentTime < video.buffered.start(0)) {
            video.currentTime = Math.max(video.buffered.start(video.buffered.length - 1), end - frameSeconds);
          }
          video.playbackRate = lag > opts.targetLagSeconds + 0.02 ? 1.1 : 1.0;
          if (video.paused) video.play().catch(() => {});
          // Keep about 10 s behind the play position, so memory stays bounded over days.
          if (video.currentTime - lastTrim > 20 && video.currentTime > 10) {
            lastTrim = video.currentTime;
            buffer.remove(0, video.currentTime - 10);
          }
        };
        try {
          const response = await fetch(url, { cache: 'no-store', signal });
          if (!response.ok || !response.body) throw new Error('HTTP ' + response.status);
          const reader = response.body.getReader();
          opts.onState('playing');
          for (;;) {
            const { done, value } = await reader.read();
            if (done) throw new Error('the stream ended (camera format changed?)');
            if (!buffer) {
              const merged = new Uint8Array(head.length + value.length);
              merged.set(head);
              merged.set(value, head.length);
              head = merged;
              const codec = codecOf(head);
              if (!codec) {
                if (head.length > 65536) throw new Error('no avcC in the init segment');
                continue;
              }
              buffer = source.addSourceBuffer('video/mp4; codecs="' + codec + '"');
              buffer.addEventListener('updateend', () => { pump(); holdLiveEdge(); });
              buffer.addEventListener('error', () => retry('the browser rejected the stream'));
              pending.push(head);
            } else {
              pending.push(value);
            }
            pump();
          }
        } catch (e) {
          if (!signal.aborted) retry(e.message || String(e));
        }
      }, { once: true });
    }

    start();
    return {
      stop() {
        stopped = true;
        clearTimeout(retryTimer);
        if (controller) controller.abort();
        video.removeAttribute('src');
        video.load();
      },
    };
  }

  // hls.js (1.x) on printcast's LL-HLS: hls.js starts at the independent part (the IDR) before its
  // live sync position and only speeds up to catch up when it has more than a second of buffer,
  // which a low-latency stream never has; so a viewer stays wherever the start left it, about half
  // a GOP behind PART-HOLD-BACK. This seeks to hls.liveSyncPosition (never closer to the live edge
  // than PART-HOLD-BACK, RFC 8216bis 4.4.3.8) whenever the latency is more than `slackSeconds`
  // (0.15) above hls.targetLatency, checked every `checkSeconds` (0.5). Returns a function that
  // stops it.
  function followHls(hls, video, options) {
    const opts = Object.assign({ slackSeconds: 0.15, checkSeconds: 0.5 }, options || {});
    const timer = setInterval(() => {
      const target = hls.targetLatency;
      const position = hls.liveSyncPosition;
      if (target === null || position === null || video.seeking || video.readyState < 2) return;
      if (hls.latency > target + opts.slackSeconds && position > video.currentTime) video.currentTime = position;
    }, opts.checkSeconds * 1000);
    return () => clearInterval(timer);
  }

  window.printcastLive = { play, followHls, codecOf };
})();
