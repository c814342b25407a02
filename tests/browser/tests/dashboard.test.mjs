// SPDX-License-Identifier: MIT
// The camera dashboard (/dashboard on the control port) in headless Chromium with four cameras of
// a `cameras` list: an ESP32-style push camera (tools/mock-camera.py pushing JPEGs to /ingest),
// two test patterns of different sizes and an RTSP camera (a second printcast streamer's
// rtsp://.../stream). Every tile plays, the grid is 2x2, the copy and snapshot buttons give the
// camera's URLs, a click goes full screen, a camera removed through the control API
// (DELETE /api/cameras/<id>) leaves the grid while the others play on, one added through it
// (POST /api/cameras) gets a tile that plays, and when the RTSP camera's server goes away its tile
// shows "no-signal" and the error.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Streamer } from '../harness.mjs';

const MOCK_CAMERA = fileURLToPath(new URL('../../../tools/mock-camera.py', import.meta.url));
const FAKE_ONVIF = fileURLToPath(new URL('../../integration/fake_onvif_camera.py', import.meta.url));

// The fake ONVIF camera (tests/integration/fake_onvif_camera.py) and the ports it printed.
async function fakeOnvifCamera(ctx, args) {
  const proc = spawn('/usr/bin/python3', [FAKE_ONVIF, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  await ctx.waitFor(() => out.includes('\n') || proc.exitCode !== null, { what: 'the fake ONVIF camera to listen' });
  return { proc, ...JSON.parse(out) };
}

// Per tile (by camera id): the player element's kind, its play position or picture size, and
// the texts the tile shows.
function tiles(page) {
  return page.evaluate(() => [...document.querySelectorAll('#grid .tile')].map((t) => {
    const video = t.querySelector('.screen video');
    const img = t.querySelector('.screen img');
    const box = t.getBoundingClientRect();
    return {
      id: t.dataset.id,
      kind: video ? 'video' : img ? 'img' : '',
      time: video ? video.currentTime : 0,
      width: video ? video.videoWidth : img ? img.naturalWidth : 0,
      height: video ? video.videoHeight : img ? img.naturalHeight : 0,
      kept: video ? video.dataset.mark === 'kept' : false,
      name: t.querySelector('.name').textContent,
      state: t.querySelector('.state').textContent,
      error: t.querySelector('.tile-err').textContent,
      fps: t.querySelector('.fps').textContent,
      left: Math.round(box.left),
      top: Math.round(box.top),
    };
  }));
}

const byId = (list) => Object.fromEntries(list.map((t) => [t.id, t]));

// Every video tile's play position moves on by more than `seconds` from `before`.
async function waitVideosAdvance(ctx, page, ids, seconds, what) {
  const before = byId(await tiles(page));
  return ctx.waitFor(async () => {
    const now = byId(await tiles(page));
    return ids.every((id) => now[id] && now[id].kind === 'video' && before[id] &&
      now[id].time > before[id].time + seconds) && now;
  }, { timeoutMs: 30000, what });
}

export const tests = [
  {
    name: 'dashboard with one camera (no cameras list): one tile across the page, playing, linked from /control',
    async run(ctx) {
      const page = await ctx.newPage();
      await page.goto(`${ctx.streamer.controlBase}/control`);
      await page.click('header nav a[href="/dashboard"]');
      await ctx.waitFor(async () => {
        const list = await tiles(page);
        return list.length === 1 && list[0].state === 'streaming' && list[0].kind === 'video';
      }, { what: 'one streaming tile' });
      await waitVideosAdvance(ctx, page, [(await tiles(page))[0].id], 1, 'the video to play on by a second');
      const widths = await page.evaluate(() => [document.querySelector('.tile').getBoundingClientRect().width, window.innerWidth]);
      ctx.assert(widths[0] > widths[1] * 0.9, 'the tile spans the page: ' + widths);
      const overflow = await page.evaluate(() => document.documentElement.scrollHeight - window.innerHeight);
      ctx.assert(overflow <= 0, `the page fits the window (${overflow} px over)`);
      await ctx.screenshot(page, 'dashboard-one-camera');
      ctx.assert(ctx.consoleErrors.length === 0, 'console errors: ' + ctx.consoleErrors.join('\n'));
    },
  },
  {
    name: 'dashboard: "Find ONVIF cameras" lists a camera\'s profiles with their RTSP URLs and copies one; a wrong password shows why',
    async run(ctx) {
      const camera = await fakeOnvifCamera(ctx, ['--name', 'Garage cam', '--hardware', 'FC-1', '--user', 'admin',
        '--password', 's3cret']);
      try {
        const page = await ctx.newPage();
        await page.goto(`${ctx.streamer.controlBase}/dashboard`);
        await page.click('#onvif summary');
        await page.fill('#onvif-form [name=user]', 'admin');
        await page.fill('#onvif-form [name=password]', 's3cret');
        await page.fill('#onvif-form [name=address]', `127.0.0.1:${camera.discovery_port}`);
        await page.fill('#onvif-form [name=seconds]', '2');
        await page.click('#onvif-form button[type=submit]');
        const rows = () => page.evaluate(() => [...document.querySelectorAll('#onvif-list tbody tr')]
          .map((tr) => [...tr.cells].map((td) => td.textContent)));
        const found = await ctx.waitFor(async () => {
          const r = await rows();
          return r.length === 2 && r;
        }, { timeoutMs: 20000, what: 'two profile rows' });
        ctx.assert(found[0][0] === 'Garage cam (FC-1)', 'the camera\'s name and hardware: ' + JSON.stringify(found));
        ctx.assert(found[0][1] === 'mainStream' && found[0][2] === 'H264 1920x1080', 'profile 1: ' + JSON.stringify(found[0]));
        ctx.assert(found[0][3] === 'rtsp://127.0.0.1:8554/Profile_1?a=1&b=2', 'profile 1 RTSP: ' + found[0][3]);
        ctx.assert(found[1][2] === 'H264 640x360', 'profile 2: ' + JSON.stringify(found[1]));
        await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: ctx.streamer.controlBase });
        await page.click('#onvif-list tbody tr:first-child button');
        await ctx.waitFor(() => page.textContent('#onvif-msg').then((t) => t === 'RTSP URL copied'), { what: '"RTSP URL copied"' });
        const copied = await page.evaluate(() => navigator.clipboard.readText());
        ctx.assert(copied === found[0][3], 'copied ' + copied);
        await ctx.screenshot(page, 'dashboard-onvif');

        // "Add": the profile becomes a camera of this streamer (POST /api/cameras) with the Find's
        // credentials in its RTSP URL; its tile appears (no RTSP server there: it says why).
        await page.click('#onvif-list tbody tr:first-child button.add');
        await ctx.waitFor(() => page.textContent('#onvif-msg').then((t) => t.startsWith('added as camera Garage-cam-1')),
          { what: '"added as camera Garage-cam-1"' });
        const added = await (await fetch(`${ctx.streamer.controlBase}/api/cameras/Garage-cam-1`)).json();
        ctx.assert(added.name === 'Garage cam mainStream', 'its name: ' + JSON.stringify(added));
        ctx.assert(added.source === 'rtsp://127.0.0.1:8554/Profile_1?a=1&b=2' && added.kind === 'rtsp',
          'its source, credentials not shown: ' + JSON.stringify(added));
        await ctx.waitFor(async () => (await tiles(page)).some((t) => t.id === 'Garage-cam-1'),
          { what: 'the added camera\'s tile' });
        const removed = await fetch(`${ctx.streamer.controlBase}/api/cameras/Garage-cam-1`, { method: 'DELETE' });
        ctx.assert(removed.status === 200, 'DELETE: ' + removed.status);

        await page.fill('#onvif-form [name=password]', 'n0t-the-password');
        await page.click('#onvif-form button[type=submit]');
        const refused = await ctx.waitFor(async () => {
          const r = await rows();
          return r.length === 1 && r[0].join(' ').includes('wrong user or password') && r;
        }, { timeoutMs: 20000, what: 'the camera\'s row to say "wrong user or password"' });
        ctx.assert(!JSON.stringify(refused).includes('n0t-the-password'), 'the password is not shown: ' + JSON.stringify(refused));
        ctx.assert(ctx.consoleErrors.length === 0, 'console errors: ' + ctx.consoleErrors.join('\n'));
      } finally {
        camera.proc.kill();
      }
    },
  },
  {
    name: 'dashboard: push, two test patterns and RTSP play in a 2x2 grid; copy, snapshot, full screen; a failing camera shows why',
    async run(ctx) {
      const source = new Streamer(ctx.streamer.binary, ['--no-display', '--no-ring']);
      const dash = new Streamer(ctx.streamer.binary, ['--no-display', '--no-ring']);
      let camera = null;
      try {
        await source.start();
        const sourceStatus = await (await fetch(`${source.streamBase}/status`)).json();
        const rtsp = sourceStatus.outputs.find((o) => o.type === 'rtsp' && o.path === '/stream');
        ctx.assert(rtsp && rtsp.port, 'the source streamer serves RTSP: ' + JSON.stringify(sourceStatus.outputs));
        writeFileSync(dash.configFile, JSON.stringify({
          camera_port_base: -1,
          cameras: [
            { id: 'esp32', name: 'ESP32 push', source: 'ws-push' },
            { id: 'bed', name: 'Bed', source: 'test-pattern', resolution: '320x240', fps: 15 },
            { id: 'room', name: 'Room', source: 'test-pattern', resolution: '480x272', fps: 15 },
            { id: 'ipcam', name: 'IP camera', source: `rtsp://127.0.0.1:${rtsp.port}/stream` },
          ],
        }));
        await dash.start();
        camera = spawn('/usr/bin/python3', [MOCK_CAMERA, `ws://127.0.0.1:${dash.streamPort}/ingest`, '--fps', '10',
          '--seconds', '300'], { stdio: 'ignore' });

        const page = await ctx.newPage();
        await page.goto(`${dash.controlBase}/dashboard`);
        const ids = ['esp32', 'bed', 'room', 'ipcam'];
        await ctx.waitFor(async () => {
          const list = await tiles(page);
          return list.map((t) => t.id).join() === ids.join() && list.every((t) => t.state === 'streaming');
        }, { timeoutMs: 30000, what: 'four tiles in config order, each "streaming"' });

        // 2x2: two columns and two rows of tiles; 1 column for 1 camera, 3x3 up to 9.
        const placed = await tiles(page);
        ctx.assert(new Set(placed.map((t) => t.left)).size === 2 && new Set(placed.map((t) => t.top)).size === 2,
          'a 2x2 grid: ' + JSON.stringify(placed.map((t) => [t.id, t.left, t.top])));
        const overflow = await page.evaluate(() => document.documentElement.scrollHeight - window.innerHeight);
        ctx.assert(overflow <= 0, `the grid fits the window (${overflow} px over)`);
        const columns = await page.evaluate(() => [1, 2, 4, 5, 9].map(window.printcastDashboard.columnsFor));
        ctx.assert(columns.join() === '1,2,2,3,3', 'columns for 1, 2, 4, 5, 9 cameras: ' + columns);

        // Every tile plays H.264 (fMP4 through live-player.js) at its camera's size.
        const api = byId(await (await fetch(`${dash.controlBase}/api/cameras`)).json());
        ctx.assert(ids.every((id) => api[id] && api[id].h264 === true), '/api/cameras says H.264 is on for each');
        const playing = await waitVideosAdvance(ctx, page, ids, 1, 'every tile\'s video to play on by a second');
        for (const id of ids) {
          ctx.assert(`${playing[id].width}x${playing[id].height}` === api[id].resolution,
            `${id}: the video is ${playing[id].width}x${playing[id].height}, the camera ${api[id].resolution}`);
          ctx.assert(/^\d+\.\d fps$/.test(playing[id].fps), `${id}: fps shown: ${playing[id].fps}`);
        }
        ctx.assert(playing.bed.width === 320 && playing.room.width === 480, 'the test patterns differ in size');
        ctx.assert(playing.ipcam.name === 'IP camera', 'the name is shown');
        await ctx.screenshot(page, 'dashboard-2x2');

        // Snapshot link and copy buttons: the camera's own URLs.
        const snapshot = await page.getAttribute('.tile[data-id=bed] a.snapshot', 'href');
        ctx.assert(snapshot === `${dash.streamBase}/cam/bed/snapshot`, 'snapshot link: ' + snapshot);
        const jpeg = await fetch(snapshot);
        ctx.assert(jpeg.ok && jpeg.headers.get('content-type') === 'image/jpeg', 'the snapshot link answers a JPEG');
        await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: dash.controlBase });
        const expected = {
          rtsp: `rtsp://127.0.0.1:${api.ipcam.outputs.rtsp.port}/cam/ipcam`,
          hls: `${dash.streamBase}/cam/ipcam/hls/stream.m3u8`,
          mjpeg: `${dash.streamBase}/cam/ipcam/stream`,
        };
        for (const [button, url] of Object.entries(expected)) {
          await page.click(`.tile[data-id=ipcam] [data-copy=${button}]`);
          await ctx.waitFor(() => page.evaluate(() => document.querySelector('.tile[data-id=ipcam] .copy-msg').textContent)
            .then((t) => t.endsWith('URL copied')), { what: `"${button} URL copied"` });
          const copied = await page.evaluate(() => navigator.clipboard.readText());
          ctx.assert(copied === url, `${button}: copied ${copied}, expected ${url}`);
        }

        // Full screen on a click in the picture, out again on the next.
        await page.evaluate(() => { for (const v of document.querySelectorAll('.tile video')) v.dataset.mark = 'kept'; });
        await page.click('.tile[data-id=room] .screen');
        await ctx.waitFor(() => page.evaluate(() => document.fullscreenElement &&
          document.fullscreenElement.dataset.id === 'room' &&
          document.querySelector('.tile[data-id=room] .screen').getBoundingClientRect().height > window.innerHeight * 0.7),
        { what: 'the room tile to fill the screen' });
        await ctx.screenshot(page, 'dashboard-fullscreen');
        await page.click('.tile[data-id=room] .screen');
        await ctx.waitFor(() => page.evaluate(() => !document.fullscreenElement), { what: 'full screen to end' });

        // "room" is removed through the control API and leaves the grid; "bed" loses H.264 (rewritten
        // in the browser: H.264 is not switched per camera at run time) and falls back to MJPEG in an
        // <img>; the other tiles keep their players playing.
        await page.route('**/api/cameras', async (route) => {
          try {
            const response = await route.fetch();
            const list = await response.json();
            await route.fulfill({ response, json: list.map((c) => (c.id === 'bed' ? { ...c, h264: false } : c)) });
          } catch (e) {
            // The page closed or the route was removed meanwhile: the next poll tells.
          }
        });
        const removed = await fetch(`${dash.controlBase}/api/cameras/room`, { method: 'DELETE' });
        ctx.assert(removed.status === 200, `DELETE /api/cameras/room: ${removed.status} ${await removed.text()}`);
        await ctx.waitFor(async () => {
          const list = await tiles(page);
          return list.map((t) => t.id).join() === 'esp32,bed,ipcam' && list[1].kind === 'img' && list[1].width === 320;
        }, { timeoutMs: 15000, what: 'room to leave the grid and bed to show MJPEG in an <img>' });
        const gone = await fetch(`${dash.streamBase}/cam/room/stream`);
        ctx.assert(gone.status === 404, 'the removed camera\'s stream is gone: ' + gone.status);
        const kept = await waitVideosAdvance(ctx, page, ['esp32', 'ipcam'], 1, 'the kept tiles to play on');
        ctx.assert(kept.esp32.kept && kept.ipcam.kept, 'the kept tiles\' players were not restarted');
        const img = page.locator('.tile[data-id=bed] .screen img');
        const first = await img.screenshot();
        await ctx.waitFor(async () => Buffer.compare(first, await img.screenshot()) !== 0, { what: 'the MJPEG picture to change' });
        await page.unrouteAll({ behavior: 'wait' });
        // A test pattern added through the control API gets a tile that plays at its size.
        const added = await fetch(`${dash.controlBase}/api/cameras`, {
          method: 'POST', headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ id: 'yard', name: 'Yard', source: 'test-pattern', resolution: '320x176', fps: 15 }),
        });
        ctx.assert(added.status === 201, `POST /api/cameras: ${added.status} ${await added.text()}`);
        const now = ['esp32', 'bed', 'ipcam', 'yard'];
        await ctx.waitFor(async () => {
          const list = await tiles(page);
          return list.map((t) => t.id).join() === now.join() && list[1].kind === 'video' && list[3].kind === 'video';
        }, { timeoutMs: 15000, what: 'yard to join the grid and bed to play H.264 again' });
        const added2 = await waitVideosAdvance(ctx, page, ['bed', 'yard'], 1, 'the new players to play');
        ctx.assert(added2.yard.width === 320 && added2.yard.height === 176 && added2.yard.name === 'Yard',
          'the added camera plays at its size: ' + JSON.stringify(added2.yard));
        const savedList = JSON.parse(readFileSync(dash.configFile, 'utf8')).cameras.map((c) => c.id).join();
        ctx.assert(savedList === 'esp32,bed,ipcam,yard', 'the config file follows: ' + savedList);

        // The RTSP camera's server goes away: its tile says "no-signal" and why; the others stream.
        await source.stop();
        const failed = await ctx.waitFor(async () => {
          const t = byId(await tiles(page));
          return t.ipcam.state === 'no-signal' && t.ipcam.error.length > 0 && t;
        }, { timeoutMs: 30000, what: 'the RTSP tile to show no-signal and an error' });
        const failedApi = byId(await (await fetch(`${dash.controlBase}/api/cameras`)).json());
        ctx.assert(failedApi.ipcam.last_error && failed.ipcam.error.includes(failedApi.ipcam.last_error.slice(0, 20)),
          `the tile shows the camera's last error: "${failed.ipcam.error}" / "${failedApi.ipcam.last_error}"`);
        ctx.assert(['esp32', 'bed', 'yard'].every((id) => failed[id].state === 'streaming' && !failed[id].error),
          'the other cameras stream on: ' + JSON.stringify(failed));
        console.log(`  RTSP camera failed: ${failed.ipcam.error}`);
        await ctx.screenshot(page, 'dashboard-failed-camera');
        ctx.assert(ctx.consoleErrors.length === 0, 'console errors: ' + ctx.consoleErrors.join('\n'));
      } finally {
        if (camera) camera.kill();
        await dash.stop();
        await source.stop();
        if (ctx.consoleErrors.length) console.log('dashboard streamer log:\n' + dash.log.slice(-3000));
        dash.cleanup();
        source.cleanup();
      }
    },
  },
];
