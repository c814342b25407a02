// SPDX-License-Identifier: MIT
// The control page (port 8081) in headless Chromium: loads cleanly, every tab shows live
// pictures, a click on the printer screen taps the right place, settings persist and bad values
// are refused by name, in go-klipper mode the LAN printing toggle switches the firmware's state, and
// the cameras panel adds, enables and removes cameras while the selector shows the chosen one.
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { Streamer } from '../harness.mjs';

async function openControl(ctx, tab) {
  const page = await ctx.newPage();
  await page.goto(`${ctx.streamer.controlBase}/control${tab ? '#' + tab : ''}`);
  await ctx.waitFor(() => page.evaluate(() => document.getElementById('conn').className === 'online'),
    { what: 'the page to show "online"' });
  return page;
}

// A loaded <img>'s natural size.
async function naturalSize(page, selector) {
  return page.evaluate((sel) => {
    const img = document.querySelector(sel);
    return img && img.complete !== undefined ? [img.naturalWidth, img.naturalHeight] : [0, 0];
  }, selector);
}

// Two element screenshots `gapMs` apart differ: the picture moves.
async function assertMoving(ctx, page, selector, gapMs, what) {
  const el = page.locator(selector);
  const a = await el.screenshot();
  await page.waitForTimeout(gapMs);
  const b = await ctx.waitFor(async () => {
    const shot = await el.screenshot();
    return Buffer.compare(a, shot) !== 0 ? shot : null;
  }, { timeoutMs: 5000, what: `${what} to change` });
  ctx.assert(b.length > 0, what);
}

// Mean absolute RGB difference of two JPEGs from the stream port over squares of radius r,
// decoded by the browser (CORS lets the canvas read them).
async function regionDiffs(page, beforeUrl, afterJpegBase64, points, r) {
  return page.evaluate(async ({ beforeUrl, after, points, r }) => {
    async function load(src) {
      const img = new Image();
      img.crossOrigin = 'anonymous';
      img.src = src;
      await img.decode();
      const c = document.createElement('canvas');
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const g = c.getContext('2d');
      g.drawImage(img, 0, 0);
      return g;
    }
    const a = await load(beforeUrl);
    const b = await load('data:image/jpeg;base64,' + after);
    return points.map(([x, y]) => {
      const da = a.getImageData(x - r, y - r, 2 * r, 2 * r).data;
      const db = b.getImageData(x - r, y - r, 2 * r, 2 * r).data;
      let sum = 0;
      let n = 0;
      for (let i = 0; i < da.length; i += 4) {
        for (let c = 0; c < 3; c++) sum += Math.abs(da[i + c] - db[i + c]);
        n += 3;
      }
      return sum / n;
    });
  }, { beforeUrl, after: afterJpegBase64, points, r });
}

// The Anycubic firmware's LAN mode service (protocols.md): 0x03-terminated JSON, one request
// per connection, keeping the open state as the firmware does.
function fakeLanService() {
  const service = { open: false, methods: [] };
  service.server = net.createServer((socket) => {
    let input = '';
    socket.on('data', (d) => {
      input += d.toString('latin1');
      const end = input.indexOf('\x03');
      if (end < 0) return;
      const request = JSON.parse(input.slice(0, end));
      service.methods.push(request.method);
      if (request.method === 'Printer/OpenLanPrint') service.open = true;
      if (request.method === 'Printer/CloseLanPrint') service.open = false;
      const result = request.method === 'Printer/QueryLanPrintStatus' ? { open: service.open ? 1 : 0 } : 'ok';
      socket.end(JSON.stringify({ id: request.id, result }) + '\x03');
    });
  });
  return new Promise((resolve) => service.server.listen(0, '127.0.0.1', () => {
    service.port = service.server.address().port;
    resolve(service);
  }));
}

export const tests = [
  {
    name: 'control page loads with no console errors and shows live stats',
    async run(ctx) {
      const page = await openControl(ctx);
      await ctx.waitFor(() => page.evaluate(() => {
        const rows = [...document.querySelectorAll('#stats td')].map((td) => td.textContent);
        const i = rows.indexOf('Camera fps');
        return i >= 0 && Number(rows[i + 1]) > 1;
      }), { what: 'a camera fps above 1 in the stats table' });
      const urls = await page.textContent('#urls');
      ctx.assert(urls.includes('/webcam/?action=stream') && urls.includes('?action=snapshot'), 'Mainsail/OctoPrint URLs shown');
      ctx.assert(/rtsp:\/\/[^ ]+:\d+\/stream/.test(urls), 'the RTSP URL is offered: ' + urls);
      await page.waitForTimeout(2000);  // a few stats polls
      await ctx.screenshot(page, 'control-page');
      ctx.assert(ctx.consoleErrors.length === 0, 'console errors: ' + ctx.consoleErrors.join('\n'));
    },
  },
  {
    name: 'every tab shows a live picture',
    async run(ctx) {
      const page = await openControl(ctx);
      await page.click('button[data-tab=snapshot]');
      await ctx.waitFor(async () => (await naturalSize(page, '#snapshot-img'))[0] === 640, { what: 'the snapshot' });
      await assertMoving(ctx, page, '#snapshot-img', 1200, 'the refreshed snapshot');
      await ctx.screenshot(page, 'tab-snapshot');

      await page.click('button[data-tab=mjpeg]');
      await ctx.waitFor(async () => (await naturalSize(page, '#mjpeg-img'))[0] === 640, { what: 'the MJPEG stream' });
      await assertMoving(ctx, page, '#mjpeg-img', 300, 'the MJPEG stream');
      await ctx.screenshot(page, 'tab-mjpeg');

      await page.click('button[data-tab=h264]');
      const status = await (await fetch(`${ctx.streamer.streamBase}/status`)).json();
      if (status.outputs.some((o) => o.type === 'fmp4')) {
        await ctx.waitFor(() => page.evaluate(() => document.getElementById('h264-video').currentTime > 1),
          { timeoutMs: 15000, what: 'the fMP4 <video> to play 1 s' });
        // Through MSE (live-player.js), holding the live edge: the buffer ahead of the play
        // position stays under the player's 0.5 s limit, and after the page stalls for 1.5 s
        // (everything that arrived meanwhile is appended at once) it is back under it.
        const lag = () => page.evaluate(() => {
          const v = document.getElementById('h264-video');
          return v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : Infinity;
        });
        ctx.assert((await page.evaluate(() => document.getElementById('h264-video').src)).startsWith('blob:'),
          'the H.264 tab plays through Media Source Extensions');
        await ctx.waitFor(async () => (await lag()) < 0.5, { timeoutMs: 5000, what: 'the H.264 tab at the live edge' });
        await page.evaluate(() => { const t = Date.now(); while (Date.now() - t < 1500); });
        await ctx.waitFor(async () => (await lag()) < 0.5, { timeoutMs: 5000, what: 'the live edge again after a 1.5 s stall' });
        const before = await page.evaluate(() => document.getElementById('h264-video').currentTime);
        await ctx.waitFor(async () => (await page.evaluate(() => document.getElementById('h264-video').currentTime)) > before + 0.5,
          { timeoutMs: 5000, what: 'the H.264 tab playing on after the stall' });
      } else {
        const note = await page.textContent('#view .note');
        ctx.assert(note.includes('/flv'), 'without fMP4 the H.264 tab names the FLV URL: ' + note);
      }
      await ctx.screenshot(page, 'tab-h264');

      await page.click('button[data-tab=display]');
      await ctx.waitFor(async () => (await naturalSize(page, '#display-img'))[0] === 800, { what: 'the printer screen' });
      await ctx.screenshot(page, 'tab-display');
      ctx.assert(ctx.consoleErrors.length === 0, 'console errors: ' + ctx.consoleErrors.join('\n'));
    },
  },
  {
    name: 'a click on the Display tab taps the printer screen at the clicked place',
    async run(ctx) {
      const page = await openControl(ctx, 'display');
      // A tall, narrow view: the 800x480 screen is letterboxed above and below and scaled down.
      await page.setViewportSize({ width: 700, height: 900 });
      await ctx.waitFor(async () => (await naturalSize(page, '#display-img'))[0] === 800, { what: 'the printer screen' });
      const box = await page.locator('#display-img').boundingBox();
      const scale = Math.min(box.width / 800, box.height / 480);
      const offsetY = (box.height - 480 * scale) / 2;
      ctx.assert(offsetY > 10 && scale < 1, `the view letterboxes and scales (offset ${offsetY}, scale ${scale})`);
      const target = [150, 330];  // in the upright screen image
      const before = `${ctx.streamer.streamBase}/display/snapshot?t=before${Date.now()}`;
      const beforeShot = await page.locator('#display-img').screenshot();
      // Fetch "before" now, so the tap cannot be in it.
      const beforeJpeg = Buffer.from(await (await fetch(before)).arrayBuffer()).toString('base64');
      const touched = page.waitForResponse((r) => r.url().endsWith('/api/touch'));
      await page.mouse.click(box.x + (box.width - 800 * scale) / 2 + target[0] * scale, box.y + offsetY + target[1] * scale);
      const reply = await touched;
      ctx.assert(reply.status() === 200, 'touch answered ' + reply.status());
      const body = await reply.json();
      ctx.assert(Math.abs(body.x - target[0]) <= 2 && Math.abs(body.y - target[1]) <= 2,
        `the page mapped the click to (${body.x}, ${body.y}), expected ${target}`);
      const after = Buffer.from(await (await fetch(`${ctx.streamer.streamBase}/display/snapshot?t=${Date.now()}`))
        .arrayBuffer()).toString('base64');
      const [atTarget, mirrored] = await regionDiffs(page, 'data:image/jpeg;base64,' + beforeJpeg, after,
        [target, [800 - target[0], 480 - target[1]]], 6);
      ctx.assert(atTarget > 30, `a mark where the click landed (diff ${atTarget})`);
      ctx.assert(mirrored < 10, `nothing at the unmapped (mirrored) place (diff ${mirrored})`);
      // The streamed picture on the page shows it too.
      await ctx.waitFor(async () => Buffer.compare(beforeShot, await page.locator('#display-img').screenshot()) !== 0,
        { what: 'the Display tab to show the tap' });
      await ctx.screenshot(page, 'display-tapped');
      // The letterbox bar is not the screen: a click there sends nothing.
      let sent = false;
      page.on('request', (r) => { if (r.url().endsWith('/api/touch')) sent = true; });
      await page.mouse.click(box.x + box.width / 2, box.y + offsetY / 2);
      await page.waitForTimeout(300);
      ctx.assert(!sent, 'a click in the letterbox bar sent a touch');
      ctx.assert(ctx.consoleErrors.length === 0, 'console errors: ' + ctx.consoleErrors.join('\n'));
    },
  },
  {
    name: 'a settings change persists across a restart and a bad value is refused by name',
    async run(ctx) {
      let page = await openControl(ctx);
      await ctx.waitFor(() => page.inputValue('input[name=bitrate]'), { what: 'the settings form' });
      await page.fill('input[name=bitrate]', '1234');
      await page.fill('input[name=h264_framerate]', '40');
      await page.click('#settings button[type=submit]');
      await ctx.waitFor(async () => (await page.textContent('#settings-msg')).startsWith('saved'),
        { what: '"saved"' });
      const savedText = readFileSync(ctx.streamer.configFile, 'utf8');
      const saved = JSON.parse(savedText);
      ctx.assert(saved.bitrate === 1234 && saved.h264_framerate === 40, 'config file: ' + JSON.stringify(saved));
      ctx.assert(saved.mjpeg_fps === 10, 'the file keeps its other keys');

      // A bad value: the error names the key, beside the field; nothing is written.
      await page.fill('input[name=jpeg_quality]', '0');
      await page.click('#settings button[type=submit]');
      const err = await ctx.waitFor(() => page.textContent('[data-err=jpeg_quality]'), { what: 'the jpeg_quality error' });
      ctx.assert(err.includes('jpeg_quality') && err.includes('1..100'), 'error text: ' + err);
      ctx.assert(readFileSync(ctx.streamer.configFile, 'utf8') === savedText, 'the config file is unchanged after a bad value');
      await ctx.screenshot(page, 'settings-error');
      await page.close();

      await ctx.streamer.restart();
      page = await openControl(ctx);
      await ctx.waitFor(async () => (await page.inputValue('input[name=bitrate]')) === '1234',
        { what: 'bitrate 1234 after the restart' });
      ctx.assert((await page.inputValue('input[name=h264_framerate]')) === '40', 'h264_framerate 40 after the restart');
      await ctx.screenshot(page, 'settings-after-restart');
      // The bad value showed a console error for the 400 response; only the reloaded page counts.
      ctx.consoleErrors.splice(0);
    },
  },
  {
    name: 'cameras panel: a camera added from the page can be chosen and shows its own streams; enable and remove',
    async run(ctx) {
      const streamer = new Streamer(ctx.streamer.binary, ['--no-display', '--no-ring']);
      try {
        writeFileSync(streamer.configFile, JSON.stringify({
          camera_port_base: -1,
          cameras: [{ id: 'printer', source: 'test-pattern' },
            { id: 'spare', source: 'test-pattern', resolution: '320x240', enabled: false }],
        }));
        await streamer.start();
        const page = await ctx.newPage();
        await page.goto(`${streamer.controlBase}/control#mjpeg`);
        const rows = () => page.evaluate(() => [...document.querySelectorAll('#cameras-list tr')].map((tr) => ({
          id: tr.dataset.id,
          state: tr.querySelector('.state').textContent,
          enabled: tr.querySelector('.camera-enabled') ? tr.querySelector('.camera-enabled').checked : null,
        })));
        await ctx.waitFor(async () => (await rows()).map((r) => r.id + ':' + r.state).join() === 'printer:streaming,spare:disabled',
          { what: 'the panel to list camera 0 and the disabled entry' });
        ctx.assert(await page.evaluate(() => document.getElementById('camera-pick').hidden), 'no selector for one camera');

        await page.fill('#camera-add input[name=id]', 'yard');
        await page.fill('#camera-add input[name=name]', 'Yard');
        await page.fill('#camera-add input[name=source]', 'test-pattern');
        await page.click('#camera-add button[type=submit]');
        await ctx.waitFor(async () => (await page.textContent('#camera-add-msg')) === 'added yard', { what: '"added yard"' });
        await ctx.waitFor(() => page.evaluate(() => !document.getElementById('camera-pick').hidden &&
          document.querySelectorAll('#camera option').length === 2), { what: 'the selector with two cameras' });
        await page.selectOption('#camera', 'yard');
        await ctx.waitFor(async () => (await page.getAttribute('#mjpeg-img', 'src')) === `${streamer.streamBase}/cam/yard/stream` &&
          (await naturalSize(page, '#mjpeg-img'))[0] === 640, { what: 'the MJPEG tab to play /cam/yard/stream' });
        await assertMoving(ctx, page, '#mjpeg-img', 300, 'the chosen camera\'s MJPEG stream');
        ctx.assert((await page.textContent('#urls')).includes('/cam/yard/stream'), 'the URLs are the chosen camera\'s');
        await page.click('button[data-tab=snapshot]');
        await ctx.waitFor(async () => ((await page.getAttribute('#snapshot-img', 'src')) || '').includes('/cam/yard/snapshot'),
          { what: 'the snapshot tab to show yard' });
        await ctx.screenshot(page, 'control-cameras');
        let saved = JSON.parse(readFileSync(streamer.configFile, 'utf8'));
        ctx.assert(saved.cameras.map((c) => c.id).join() === 'printer,spare,yard', 'saved: ' + JSON.stringify(saved.cameras));

        // A bad entry: the error names the key beside its field.
        await page.fill('#camera-add input[name=id]', 'nosource');
        await page.click('#camera-add button[type=submit]');
        const err = await ctx.waitFor(() => page.textContent('[data-err=source]'), { what: 'the source error' });
        ctx.assert(err.includes('.source') && err.includes('is needed'), 'error text: ' + err);
        ctx.consoleErrors.splice(0);  // the 400 response

        // Enable the disabled entry; remove the added one (the view falls back to camera 0).
        await page.click('#cameras-list tr[data-id=spare] .camera-enabled');
        await ctx.waitFor(async () => (await rows()).some((r) => r.id === 'spare' && r.state === 'streaming' && r.enabled),
          { what: 'spare to stream' });
        await page.click('button[data-tab=mjpeg]');
        await page.click('#cameras-list tr[data-id=yard] .camera-remove');
        await ctx.waitFor(async () => !(await rows()).some((r) => r.id === 'yard') &&
          (await page.getAttribute('#mjpeg-img', 'src')) === `${streamer.streamBase}/stream`,
        { what: 'yard to leave the panel and the view to show camera 0' });
        saved = JSON.parse(readFileSync(streamer.configFile, 'utf8'));
        ctx.assert(saved.cameras.map((c) => `${c.id}:${c.enabled !== false}`).join() === 'printer:true,spare:true',
          'saved: ' + JSON.stringify(saved.cameras));
        ctx.assert(ctx.consoleErrors.length === 0, 'console errors: ' + ctx.consoleErrors.join('\n'));
      } finally {
        await streamer.stop();
        streamer.cleanup();
      }
    },
  },
  {
    name: 'go-klipper: the control page shows LAN printing and its button switches it',
    async run(ctx) {
      const firmware = await fakeLanService();
      const streamer = new Streamer(ctx.streamer.binary, ['--no-display']);
      try {
        writeFileSync(streamer.configFile, JSON.stringify({ mode: 'go-klipper', lan_mode_port: firmware.port }));
        await streamer.start();
        const page = await ctx.newPage();
        await page.goto(`${streamer.controlBase}/control`);
        await ctx.waitFor(() => page.evaluate(() => !document.getElementById('lan-mode').hidden &&
          document.getElementById('lan-mode-toggle').textContent === 'Open LAN printing'),
          { what: 'the LAN printing section, closed' });
        await page.click('#lan-mode-toggle');
        await ctx.waitFor(() => page.evaluate(() =>
          document.getElementById('lan-mode-toggle').textContent === 'Close LAN printing'),
          { what: 'the button to offer closing once it is open' });
        ctx.assert(firmware.open, 'the firmware was told to open LAN printing: ' + firmware.methods.join(', '));
        ctx.assert(firmware.methods.includes('Printer/OpenLanPrint'), 'methods: ' + firmware.methods.join(', '));
        await ctx.screenshot(page, 'lan-mode-open');
        await page.click('#lan-mode-toggle');
        await ctx.waitFor(() => page.evaluate(() =>
          document.getElementById('lan-mode-toggle').textContent === 'Open LAN printing'),
          { what: 'the button to offer opening again' });
        ctx.assert(!firmware.open, 'closed again');
        ctx.assert(ctx.consoleErrors.length === 0, 'console errors: ' + ctx.consoleErrors.join('\n'));
        // The shared streamer (vanilla-klipper) hides the section.
        const vanilla = await openControl(ctx);
        ctx.assert(await vanilla.evaluate(() => document.getElementById('lan-mode').hidden),
          'vanilla-klipper shows no LAN printing');
      } finally {
        await streamer.stop();
        firmware.server.close();
      }
    },
  },
];
