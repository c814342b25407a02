// SPDX-License-Identifier: MIT
// printcast camera dashboard: every camera of /api/cameras in a grid (1, 2x2, 3x3), each playing
// live (fMP4 through /live-player.js when the camera has H.264, else MJPEG in an <img>), with its
// name, state, fps, a snapshot link, copy-URL buttons and full screen on click. The list is read
// again every few seconds, and at once when a tile's stream ends (a camera removed or reopened
// through the control API ends its viewers' streams): tiles come and go with their cameras, and a
// tile whose player is still right keeps playing. Plain ES2017, no build step.
'use strict';

const REFRESH_MS = 2000;
const state = { streamBase: '', tiles: new Map(), failures: 0 };
const $ = (sel) => document.querySelector(sel);

async function getJson(url) {
  const r = await fetch(url, { cache: 'no-store' });
  if (!r.ok) throw new Error(url + ': HTTP ' + r.status);
  return r.json();
}

function setConnection(text, cls) {
  const el = $('#conn');
  el.textContent = text;
  el.className = cls;
}

// Columns of the grid for `count` cameras: 1, then 2x2 up to 4, 3x3 up to 9, and so on.
function columnsFor(count) {
  return Math.max(1, Math.ceil(Math.sqrt(count)));
}

// The player a camera gets, and its URL: fMP4 with the live edge held when its H.264 outputs are
// on, else MJPEG (an <img> gets each picture at once, docs/latency.md).
function playerFor(cam) {
  const out = cam.outputs || {};
  if (cam.h264 !== false && out.fmp4) return { kind: 'fmp4', url: state.streamBase + out.fmp4 };
  return { kind: 'mjpeg', url: state.streamBase + out.mjpeg };
}

// The URLs the copy buttons give, by button: RTSP, HLS, MJPEG; null when the camera has none.
function copyUrls(cam) {
  const out = cam.outputs || {};
  const h264 = cam.h264 !== false;
  return {
    rtsp: h264 && out.rtsp ? 'rtsp://' + location.hostname + ':' + out.rtsp.port + out.rtsp.path : null,
    hls: h264 && out.hls ? state.streamBase + out.hls : null,
    mjpeg: out.mjpeg ? state.streamBase + out.mjpeg : null,
  };
}

// navigator.clipboard needs a secure context (https or localhost): a printer reached at
// http://192.168.x.y is not one, so fall back to a selected <textarea> and execCommand('copy').
async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (e) {
      // permission refused: try the old way
    }
  }
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.style.position = 'fixed';
  area.style.opacity = '0';
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch (e) {
    ok = false;
  }
  area.remove();
  return ok;
}

function startPlayer(tile, player) {
  const holder = tile.el.querySelector('.player');
  stopPlayer(tile);
  tile.kind = player.kind;
  tile.url = player.url;
  if (player.kind === 'fmp4') {
    const video = document.createElement('video');
    video.autoplay = true;
    video.muted = true;
    video.playsInline = true;
    holder.appendChild(video);
    tile.player = printcastLive.play(video, player.url, {
      onState: (text) => {
        tile.playerState = text === 'playing' ? '' : text;
        showPlayerState(tile);
        // The stream ended: ask the list before the player's retry (a removed camera's tile goes
        // instead of asking for a path that is gone).
        if (text !== 'playing') refreshNow();
      },
    });
  } else {
    const img = document.createElement('img');
    img.alt = 'camera MJPEG stream';
    // A stream that ends (the streamer restarted) or fails is asked for again.
    img.addEventListener('error', () => {
      tile.playerState = 'reconnecting';
      showPlayerState(tile);
      refreshNow();
      clearTimeout(tile.retryTimer);
      tile.retryTimer = setTimeout(() => { img.src = player.url + '?t=' + Date.now(); }, 2000);
    });
    img.addEventListener('load', () => { tile.playerState = ''; showPlayerState(tile); });
    img.src = player.url;
    holder.appendChild(img);
    tile.player = {
      stop() {
        clearTimeout(tile.retryTimer);
        img.removeAttribute('src');  // closes the stream's connection
      },
    };
  }
}

function stopPlayer(tile) {
  if (tile.player) tile.player.stop();
  tile.player = null;
  tile.playerState = '';
  tile.el.querySelector('.player').textContent = '';
}

function showPlayerState(tile) {
  tile.el.querySelector('.player-state').textContent = tile.playerState || '';
}

function makeTile(cam) {
  const el = $('#tile').content.firstElementChild.cloneNode(true);
  el.dataset.id = cam.id;
  const tile = { el, cam, kind: '', url: '', player: null, playerState: '', retryTimer: 0 };
  // Full screen on a click in the picture; a second click (or Esc) leaves it.
  el.querySelector('.screen').addEventListener('click', () => {
    if (document.fullscreenElement) {
      document.exitFullscreen().catch(() => {});
    } else if (el.requestFullscreen) {
      el.requestFullscreen().catch((e) => { el.querySelector('.copy-msg').textContent = 'no full screen: ' + e.message; });
    }
  });
  for (const button of el.querySelectorAll('[data-copy]')) {
    button.addEventListener('click', async () => {
      const url = copyUrls(tile.cam)[button.dataset.copy];
      const msg = el.querySelector('.copy-msg');
      if (!url) return;
      if (await copyText(url)) {
        msg.textContent = button.textContent + ' URL copied';
      } else {
        // No clipboard at all: show the URL to copy by hand.
        msg.textContent = url;
      }
    });
  }
  return tile;
}

function updateTile(tile, cam) {
  tile.cam = cam;
  const el = tile.el;
  el.querySelector('.name').textContent = cam.name || cam.id;
  el.querySelector('.name').title = cam.id + ' · ' + (cam.source || '') + ' · ' + (cam.resolution || '');
  // "starting", "streaming" or "no-signal: <reason>" (shown as "no-signal", the reason below it).
  const text = String(cam.state || 'unknown');
  const failed = !!cam.last_error || text.startsWith('no-signal');
  const stateEl = el.querySelector('.state');
  stateEl.textContent = failed ? text.split(':')[0] : text;
  stateEl.className = 'state' + (failed ? ' bad' : cam.signal ? ' ok' : '');
  el.classList.toggle('failed', failed);
  el.querySelector('.tile-err').textContent = failed ? (cam.last_error || cam.state || '') : '';
  el.querySelector('.fps').textContent = (Number(cam.fps) || 0).toFixed(1) + ' fps';
  const outputs = cam.outputs || {};
  const snapshot = el.querySelector('.snapshot');
  snapshot.href = state.streamBase + (outputs.snapshot || '/cam/' + encodeURIComponent(cam.id) + '/snapshot');
  snapshot.setAttribute('download', cam.id + '.jpg');
  const urls = copyUrls(cam);
  for (const button of el.querySelectorAll('[data-copy]')) {
    button.hidden = !urls[button.dataset.copy];
    button.title = urls[button.dataset.copy] || '';
  }
  const player = playerFor(cam);
  if (player.kind !== tile.kind || player.url !== tile.url) startPlayer(tile, player);
}

// Make the grid show exactly `cameras`, in their order; tiles of cameras still there are kept.
function showCameras(cameras) {
  const grid = $('#grid');
  const seen = new Set();
  let previous = null;
  for (const cam of cameras) {
    seen.add(cam.id);
    let tile = state.tiles.get(cam.id);
    if (!tile) {
      tile = makeTile(cam);
      state.tiles.set(cam.id, tile);
    }
    updateTile(tile, cam);
    // Moved only when out of place (a moved <video> would not restart, but no need to try).
    const wantedNext = previous ? previous.nextElementSibling : grid.firstElementChild;
    if (wantedNext !== tile.el) grid.insertBefore(tile.el, wantedNext);
    previous = tile.el;
  }
  for (const [id, tile] of state.tiles) {
    if (seen.has(id)) continue;
    stopPlayer(tile);
    tile.el.remove();
    state.tiles.delete(id);
  }
  grid.style.setProperty('--cols', String(columnsFor(cameras.length)));
  $('#dash-msg').textContent = cameras.length ? '' : 'No cameras.';
}

async function refresh() {
  try {
    if (!state.streamBase) {
      const status = await getJson('/status');
      state.streamBase = location.protocol + '//' + location.hostname + ':' + status.stream_port;
      $('#board').textContent = status.board ? status.board.name : '';
    }
    const cameras = await getJson('/api/cameras');
    state.failures = 0;
    const away = cameras.filter((c) => c.last_error).length;
    if (away) setConnection(away + ' of ' + cameras.length + ' cameras without signal', 'reconnecting');
    else setConnection('online', 'online');
    showCameras(cameras);
  } catch (e) {
    state.failures += 1;
    // A few missed polls: the streamer may be restarting; longer: it is gone. The players keep
    // retrying on their own.
    setConnection(state.failures >= 3 ? 'offline' : 'reconnecting', state.failures >= 3 ? 'offline' : 'reconnecting');
  }
}

// "Find ONVIF cameras": POST /api/cameras/discover (docs/onvif.md) and list what answered, one
// row per profile with its RTSP URL, a copy button and an Add button; a camera that failed shows why (wrong
// password, timeout, not ONVIF). The password goes in the request only; the answer never has it.
function cell(row, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

// The credentials of the last Find: an added camera's RTSP URL carries them (the answer never does).
let discoveryCredentials = { user: '', password: '' };

// An id for a found camera's profile: its name's letters, digits, '-' and '_' (the id rule),
// made unique against the cameras there are.
function candidateId(cam, profileIndex, taken) {
  const base = ((cam.name || 'onvif').replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '') || 'onvif')
    .slice(0, 26) + '-' + (profileIndex + 1);
  let id = base;
  for (let n = 2; taken.has(id); n++) id = base + '-' + n;
  return id;
}

// The profile's RTSP URL with the Find's user and password in it (rtsp://user:password@host/...).
function withCredentials(url) {
  const { user, password } = discoveryCredentials;
  if (!user || !url.startsWith('rtsp://')) return url;
  return 'rtsp://' + encodeURIComponent(user) + (password ? ':' + encodeURIComponent(password) : '') + '@' +
    url.slice('rtsp://'.length);
}

// "Add": POST /api/cameras (docs/control-panel.md, "Cameras API") with the profile as a camera;
// its tile appears at the next refresh, which is asked for at once.
async function addCandidate(cam, p, i) {
  const msg = $('#onvif-msg');
  try {
    const list = await getJson('/api/cameras?all=1');
    const id = candidateId(cam, i, new Set(list.map((c) => c.id)));
    const r = await fetch('/api/cameras', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ id, name: (cam.name || id) + (p.name ? ' ' + p.name : ''), source: withCredentials(p.rtsp) }),
    });
    const answer = await r.json();
    if (!r.ok) throw new Error(answer.error || 'HTTP ' + r.status);
    msg.textContent = 'added as camera ' + id + (answer.persisted === false ? ' (not saved: ' + (answer.note || 'no config file') + ')' : '');
    refreshNow();
  } catch (e) {
    msg.textContent = 'could not add it: ' + e.message;
  }
}

function showCandidates(cameras) {
  const table = $('#onvif-list');
  const body = table.querySelector('tbody');
  body.textContent = '';
  for (const cam of cameras) {
    const title = (cam.name || cam.endpoint || '?') + (cam.hardware ? ' (' + cam.hardware + ')' : '');
    const profiles = cam.profiles && cam.profiles.length ? cam.profiles : [null];
    profiles.forEach((p, i) => {
      const row = document.createElement('tr');
      cell(row, i === 0 ? title : '').title = cam.xaddr || '';
      if (!p) {
        cell(row, '');
        cell(row, '');
        cell(row, cam.error || 'no profiles', 'bad').colSpan = 2;
      } else {
        cell(row, p.name || p.token);
        cell(row, (p.encoding || '') + (p.width ? ' ' + p.width + 'x' + p.height : ''));
        cell(row, p.rtsp || p.error || cam.error || '', p.rtsp ? 'url' : 'bad');
        const actions = cell(row, '');
        if (p.rtsp) {
          const button = document.createElement('button');
          button.type = 'button';
          button.textContent = 'Copy';
          button.addEventListener('click', async () => {
            $('#onvif-msg').textContent = (await copyText(p.rtsp)) ? 'RTSP URL copied' : p.rtsp;
          });
          actions.appendChild(button);
          const add = document.createElement('button');
          add.type = 'button';
          add.className = 'add';
          add.textContent = 'Add';
          add.title = 'add this profile as a camera of this streamer (POST /api/cameras)';
          add.addEventListener('click', () => addCandidate(cam, p, i));
          actions.appendChild(add);
        }
      }
      body.appendChild(row);
    });
  }
  table.hidden = cameras.length === 0;
}

async function discover(event) {
  event.preventDefault();
  const form = event.target;
  const msg = $('#onvif-msg');
  const request = { seconds: Number(form.seconds.value) || 5 };
  discoveryCredentials = { user: form.user.value, password: form.password.value };
  for (const key of ['user', 'password', 'address']) {
    if (form[key].value) request[key] = form[key].value;
  }
  form.querySelector('button').disabled = true;
  msg.textContent = 'looking for cameras for ' + request.seconds + ' s...';
  try {
    const r = await fetch('/api/cameras/discover', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(request),
    });
    const answer = await r.json();
    if (!r.ok) throw new Error(answer.error || 'HTTP ' + r.status);
    const failed = answer.filter((c) => c.error).length;
    msg.textContent = answer.length ? answer.length + ' found' + (failed ? ', ' + failed + ' with an error' : '')
      : 'no ONVIF camera answered';
    showCandidates(answer);
  } catch (e) {
    msg.textContent = 'discovery failed: ' + e.message;
  } finally {
    form.querySelector('button').disabled = false;
  }
}

$('#onvif-form').addEventListener('submit', discover);

window.printcastDashboard = { columnsFor, playerFor, showCandidates };

// One refresh at a time: a refresh asked while one runs shares it.
let refreshing = null;
function refreshNow() {
  if (!refreshing) refreshing = refresh().finally(() => { refreshing = null; });
  return refreshing;
}

// The next regular refresh starts REFRESH_MS after the last answered (or failed).
async function loop() {
  await refreshNow();
  setTimeout(loop, REFRESH_MS);
}

loop();

