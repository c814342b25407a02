// SPDX-License-Identifier: MIT
// A web page on another origin attacks the control port (8081) the ways a browser allows: a form
// POST to tap the printer's screen, a text/plain "simple request" to change settings, a JSON
// fetch and a DELETE (which need a CORS preflight), and a cross-origin read of the settings.
// Each must fail: nothing tapped, changed or deleted. The server counts what it refused, so the
// test also proves that the attacks reached it.
import { spawnSync } from 'node:child_process';

async function metric(ctx, nameAndLabels) {
  const text = await (await fetch(`${ctx.streamer.streamBase}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(nameAndLabels + ' '));
  return line ? Number(line.slice(nameAndLabels.length + 1)) : NaN;
}

async function controlJson(ctx, path) {
  return (await fetch(`${ctx.streamer.controlBase}${path}`)).json();
}

export const tests = [
  {
    name: 'a page from another origin cannot tap the screen, change settings or delete recordings',
    async run(ctx) {
      const control = ctx.streamer.controlBase;
      const refusedMetric = 'printcast_http_cross_origin_refused_total{port="control"}';
      const touchesBefore = await metric(ctx, 'printcast_touches_total');
      const refusedBefore = await metric(ctx, refusedMetric);
      const settingsBefore = (await controlJson(ctx, '/api/settings')).settings;
      const listBefore = JSON.stringify(await controlJson(ctx, '/api/timelapse/list'));
      ctx.assert(listBefore.includes('benchy_1'), `the seeded recording is listed: ${listBefore}`);

      const html = `<!doctype html><meta charset=utf-8><title>attacker</title>
<iframe name=sink></iframe>
<form id=f method=POST action="${control}/api/touch" target=sink>
  <input name=x value=100><input name=y value=100><input name=duration value=10>
</form>
<script>
window.results = {};
const control = ${JSON.stringify(control)};
async function attempt(name, url, init) {
  try {
    const r = await fetch(url, init);
    window.results[name] = 'status ' + r.status + ' type ' + r.type;
  } catch (e) {
    window.results[name] = 'blocked: ' + e.message;
  }
}
window.attack = async () => {
  const formDone = new Promise((r) => document.querySelector('iframe').addEventListener('load', r, { once: true }));
  document.getElementById('f').submit();
  await formDone;
  window.results.form = 'submitted';
  await attempt('textPlainSettings', control + '/api/settings', { method: 'POST', mode: 'no-cors',
    headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify({ mjpeg_fps: 2 }) });
  await attempt('jsonSettings', control + '/api/settings', { method: 'POST',
    headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ mjpeg_fps: 3 }) });
  await attempt('delete', control + '/api/timelapse/delete/benchy_1', { method: 'DELETE' });
  await attempt('readSettings', control + '/api/settings', {});
  return window.results;
};
</script>`;
      const server = await ctx.servePage(html);
      const page = await ctx.newPage();
      try {
        await page.goto(server.url);
        const results = await page.evaluate(() => window.attack());
        console.log(`  attacker page saw: ${JSON.stringify(results)}`);
        // The JSON fetch and the DELETE die at the preflight; the cross-origin read gets no CORS
        // header; the no-cors POST is opaque (the page learns nothing).
        for (const name of ['jsonSettings', 'delete', 'readSettings']) {
          ctx.assert(results[name].startsWith('blocked'), `${name} was not blocked: ${results[name]}`);
        }
        ctx.assert(results.textPlainSettings === 'status 0 type opaque', `no-cors POST: ${results.textPlainSettings}`);
      } finally {
        await page.close();
        await server.close();
      }
      // Nothing happened on the printer, and the server did refuse the attacks that reached it
      // (form, text/plain POST, two preflights).
      ctx.assert(await metric(ctx, 'printcast_touches_total') === touchesBefore, 'the form POST tapped the screen');
      const settingsAfter = (await controlJson(ctx, '/api/settings')).settings;
      ctx.assert(settingsAfter.mjpeg_fps === settingsBefore.mjpeg_fps,
        `mjpeg_fps changed from ${settingsBefore.mjpeg_fps} to ${settingsAfter.mjpeg_fps}`);
      ctx.assert(JSON.stringify(await controlJson(ctx, '/api/timelapse/list')) === listBefore, 'a recording was deleted');
      const refused = (await metric(ctx, refusedMetric)) - refusedBefore;
      ctx.assert(refused >= 4, `the server refused ${refused} requests, expected the 4 that reach it`);
    },
  },
];

// With auth_token_sha256 set: the browser asks once (HTTP Basic, the token as password) and the
// control page then works as before; without credentials the page is refused.
tests.push({
  name: 'with a token set, the control page works with the token and not without it',
  async run(ctx) {
    const token = 'c0ffee-printcast-test-token';
    const hashed = spawnSync(ctx.streamer.binary, ['--hash-token', token], { encoding: 'utf8' });
    ctx.assert(hashed.status === 0, `--hash-token: ${hashed.stderr}`);
    const hash = hashed.stdout.match(/"([0-9a-f]{64})"/)[1];
    const saved = ctx.streamer.extraArgs;
    ctx.streamer.extraArgs = [...saved, '--auth-token-sha256', hash];
    const contexts = [];
    try {
      await ctx.streamer.restart();
      const control = `${ctx.streamer.controlBase}/control`;
      // Without credentials: 401 and the challenge that makes a browser show its login dialog
      // (headless Chromium driven by CDP cancels the dialog, so this one is asked from node).
      const refused = await fetch(control);
      ctx.assert(refused.status === 401, `without credentials: ${refused.status}`);
      ctx.assert(/^Basic /.test(refused.headers.get('www-authenticate') || ''), 'no Basic challenge');

      const user = await ctx.browser.newContext({ httpCredentials: { username: 'printer', password: token } });
      contexts.push(user);
      const page = await user.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(e.message));
      const loaded = await page.goto(control);
      ctx.assert(loaded.status() === 200, `with the token: ${loaded.status()}`);
      await ctx.waitFor(() => page.evaluate(() => document.getElementById('conn').className === 'online'),
        { what: 'the control page to show "online" (its API calls carry the credentials)' });
      const tap = await page.evaluate(async () => (await fetch('/api/touch', { method: 'POST',
        headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ x: 10, y: 10, duration: 10 }) })).status);
      ctx.assert(tap === 200, `a tap from the page: ${tap}`);
      ctx.assert(errors.length === 0, `page errors: ${errors.join('; ')}`);
    } finally {
      for (const c of contexts) await c.close();
      ctx.streamer.extraArgs = saved;
      await ctx.streamer.restart();
    }
  },
});
