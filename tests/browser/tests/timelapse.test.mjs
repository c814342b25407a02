// SPDX-License-Identifier: MIT
// The timelapse manager page (/timelapse on the control port) against the recorder's API
// (documented in apps/streamer/web/timelapse.js). Skips while the streamer has no recorder
// (/api/timelapse/list answers 404) or no recording to show.
export const tests = [
  {
    name: 'the timelapse page lists, plays and deletes a recording',
    async run(ctx) {
      const list = await fetch(`${ctx.streamer.controlBase}/api/timelapse/list`);
      if (list.status === 404) throw new ctx.SkipError('this streamer has no timelapse recorder (/api/timelapse/list is 404)');
      const { videos } = await list.json();
      if (!videos || videos.length === 0) throw new ctx.SkipError('no recording to test with');
      const page = await ctx.newPage();
      await page.goto(`${ctx.streamer.controlBase}/timelapse`);
      await ctx.waitFor(async () => (await page.locator('.card').count()) === videos.length, { what: 'every recording listed' });
      const victim = videos[0].name;
      const card = page.locator(`.card[data-name="${victim}"]`);
      await card.locator('[data-action=play]').click();
      await ctx.waitFor(() => page.evaluate(() => {
        const v = document.getElementById('timelapse-video');
        return v && v.currentTime > 0.3;
      }), { timeoutMs: 15000, what: 'the recording to play' });
      await ctx.screenshot(page, 'timelapse-playing');
      page.once('dialog', (d) => d.accept());
      await card.locator('[data-action=delete]').click();
      await ctx.waitFor(async () => (await page.locator(`.card[data-name="${victim}"]`).count()) === 0,
        { what: 'the deleted recording to leave the list' });
      const after = await (await fetch(`${ctx.streamer.controlBase}/api/timelapse/list`)).json();
      ctx.assert(!after.videos.some((v) => v.name === victim), 'the recording is gone from the API too');
      ctx.assert(ctx.consoleErrors.length === 0, 'console errors: ' + ctx.consoleErrors.join('\n'));
    },
  },
];
