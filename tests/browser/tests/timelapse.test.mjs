// SPDX-License-Identifier: MIT
// The timelapse manager page (/timelapse on the control port) against its API (documented in
// apps/streamer/web/timelapse.js). The harness starts the streamer with --timelapse-folder
// seeded with real recordings made by ffmpeg (harness.mjs SEEDED_TIMELAPSES); the test lists
// them, plays one in a <video> until it advances, and deletes it through the confirmation dialog.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

export const tests = [
  {
    name: 'the timelapse page lists, plays and deletes a recording',
    async run(ctx) {
      if (ctx.streamer.timelapseSeedError) throw new ctx.SkipError(ctx.streamer.timelapseSeedError);
      const list = await fetch(`${ctx.streamer.controlBase}/api/timelapse/list`);
      if (list.status === 404) throw new ctx.SkipError('this streamer has no timelapse manager (/api/timelapse/list is 404)');
      const { videos } = await list.json();
      if (!videos || videos.length === 0) throw new ctx.SkipError('no recording to test with');
      ctx.assert(videos.length >= 2, 'both seeded recordings are listed: ' + JSON.stringify(videos));
      const page = await ctx.newPage();
      await page.goto(`${ctx.streamer.controlBase}/timelapse`);
      await ctx.waitFor(async () => (await page.locator('.card').count()) === videos.length, { what: 'every recording listed' });
      // Thumbnails loaded, metadata shown (3 s of video, 90 frames for benchy_1).
      await ctx.waitFor(() => page.evaluate(() => [...document.querySelectorAll('.card img')]
        .every((img) => img.complete && img.naturalWidth > 0)), { what: 'the thumbnails to load' });
      const victim = 'benchy_1';
      const card = page.locator(`.card[data-name="${victim}"]`);
      const meta = await card.locator('.meta').textContent();
      ctx.assert(/0:03/.test(meta) && /90 frames/.test(meta), `benchy_1's duration and frames shown: ${meta}`);
      const href = await card.locator('a[download]').getAttribute('href');
      ctx.assert(/\.mp4(\?|$)/.test(href), `the download URL ends in .mp4 (Safari): ${href}`);
      await ctx.waitFor(async () => /free/.test(await page.locator('#storage-info').textContent()),
        { what: 'the storage line' });
      await ctx.screenshot(page, 'timelapse-list');

      await card.locator('[data-action=play]').click();
      await ctx.waitFor(() => page.evaluate(() => {
        const v = document.getElementById('timelapse-video');
        return v && v.currentTime > 0.3;
      }), { timeoutMs: 15000, what: 'the recording to play' });
      const playing = await page.evaluate(() => {
        const v = document.getElementById('timelapse-video');
        return { duration: v.duration, width: v.videoWidth, error: v.error && v.error.message };
      });
      ctx.assert(Math.abs(playing.duration - 3) < 0.1 && playing.width === 320 && !playing.error,
        'the <video> decoded the recording: ' + JSON.stringify(playing));
      await ctx.screenshot(page, 'timelapse-playing');

      let dialog = '';
      page.once('dialog', (d) => { dialog = d.message(); d.accept(); });
      await card.locator('[data-action=delete]').click();
      await ctx.waitFor(async () => (await page.locator(`.card[data-name="${victim}"]`).count()) === 0,
        { what: 'the deleted recording to leave the list' });
      ctx.assert(dialog.includes(victim), 'a confirmation named the recording: ' + dialog);
      await ctx.screenshot(page, 'timelapse-deleted');
      const after = await (await fetch(`${ctx.streamer.controlBase}/api/timelapse/list`)).json();
      ctx.assert(!after.videos.some((v) => v.name === victim), 'the recording is gone from the API too');
      ctx.assert(after.videos.length === videos.length - 1, 'the other recordings stay');
      const left = readdirSync(ctx.streamer.timelapseDir);
      ctx.assert(!left.some((f) => f.startsWith(victim + '.') || f.startsWith(victim + '_')),
        'its video and thumbnail are gone from disk: ' + left.join(' '));
      ctx.assert(existsSync(path.join(ctx.streamer.timelapseDir, 'cube_2.mp4')), 'the other video is still on disk');
      ctx.assert(ctx.consoleErrors.length === 0, 'console errors: ' + ctx.consoleErrors.join('\n'));
    },
  },
];
