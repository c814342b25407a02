// SPDX-License-Identifier: MIT
// printcast control page: tabs over the streams on the stream port (read from /status) of the
// camera chosen in the selector (/api/cameras), taps on the printer screen, live stats, settings,
// and the cameras panel (POST /api/cameras, PATCH and DELETE /api/cameras/<id>). Plain ES2017, no
// build step.
'use strict';

const state = {
  status: null, streamBase: '', tab: '', failures: 0, lastOk: 0, snapshotTimer: 0, player: null,
  cameras: [], camera: '',  // every camera of /api/cameras?all=1; the chosen one's id ('' = camera 0)
};
const $ = (sel) => document.querySelector(sel);

async function getJson(url, options) {
  const r = await fetch(url, Object.assign({ cache: 'no-store' }, options || {}));
  const body = await r.json().catch(() => ({}));
  return { ok: r.ok, status: r.status, body };
}

// Where a click on an object-fit: contain element lands in the picture's own pixels (the upright
// image the printer screen shows), or null in the letterbox bars.
function viewToImage(rect, naturalWidth, naturalHeight, clientX, clientY) {
  if (!naturalWidth || !naturalHeight || !rect.width || !rect.height) return null;
  const scale = Math.min(rect.width / naturalWidth, rect.height / naturalHeight);
  const offsetX = (rect.width - naturalWidth * scale) / 2;
  const offsetY = (rect.height - naturalHeight * scale) / 2;
  const x = (clientX - rect.left - offsetX) / scale;
  const y = (clientY - rect.top - offsetY) / scale;
  if (x < 0 || y < 0 || x > naturalWidth || y > naturalHeight) return null;
  return { x: Math.round(x), y: Math.round(y) };
}
window.printcast = { viewToImage };

function output(type) {
  return ((state.status && state.status.outputs) || []).find((o) => o.type === type);
}

// The chosen camera's /api/cameras entry (null for camera 0 before the list is read).
function chosenCamera() {
  return state.cameras.find((c) => c.id === state.camera && c.enabled !== false) || null;
}

// Where the chosen camera's `kind` ('snapshot', 'mjpeg', 'fmp4') is on the stream port: camera 0's
// paths without /cam/ (what Mainsail and OctoPrint were given), the others' /cam/<id>/...; null
// when it has none (H.264 off).
function cameraPath(kind) {
  const cam = chosenCamera();
  if (!cam || cam.primary) {
    if (kind === 'snapshot') return '/snapshot';
    if (kind === 'mjpeg') return '/stream';
    return output(kind) ? output(kind).path : null;
  }
  if (kind !== 'snapshot' && kind !== 'mjpeg' && cam.h264 === false) return null;
  return (cam.outputs || {})[kind] || null;
}

function setConnection(text, cls) {
  const el = $('#conn');
  el.textContent = text;
  el.className = cls;
}

// ---- tabs ----
function showTab(tab) {
  state.tab = tab;
  clearInterval(state.snapshotTimer);
  for (const b of document.querySelectorAll('.tabs button')) {
    b.setAttribute('aria-selected', String(b.dataset.tab === tab));
  }
  const view = $('#view');
  if (state.player) state.player.stop();  // the H.264 tab's fetch
  state.player = null;
  view.textContent = '';  // drops the previous <img>/<video>, which closes its connection
  $('#view-msg').textContent = '';
  const base = state.streamBase;
  if (tab === 'snapshot') {
    const img = document.createElement('img');
    img.id = 'snapshot-img';
    img.alt = 'camera snapshot';
    const refresh = () => { img.src = base + cameraPath('snapshot') + '?t=' + Date.now(); };
    refresh();
    state.snapshotTimer = setInterval(refresh, 1000);
    view.appendChild(img);
  } else if (tab === 'mjpeg') {
    const img = document.createElement('img');
    img.id = 'mjpeg-img';
    img.alt = 'camera MJPEG stream';
    img.src = base + cameraPath('mjpeg');
    view.appendChild(img);
  } else if (tab === 'h264') {
    const mp4 = cameraPath('fmp4') ? { path: cameraPath('fmp4') } : null;
    if (mp4) {
      // Through MSE with the live edge held (live-player.js): a plain <video src> would run
      // about 1.2 s behind.
      const video = document.createElement('video');
      video.id = 'h264-video';
      video.autoplay = true;
      video.muted = true;
      video.playsInline = true;
      video.addEventListener('error', () => { $('#view-msg').textContent = 'the browser could not play ' + mp4.path; });
      view.appendChild(video);
      state.player = printcastLive.play(video, base + mp4.path, {
        onState: (text) => { $('#view-msg').textContent = text === 'playing' ? '' : text; },
      });
    } else {
      const note = document.createElement('div');
      note.className = 'note';
      const flv = output('flv');
      note.innerHTML = 'This streamer offers no stream a plain &lt;video&gt; plays (fragmented MP4). ' +
        (flv ? 'H.264 in FLV: <code>' + base + flv.path + '</code> (VLC, ffplay, mpegts.js, the Anycubic slicer).' : '');
      view.appendChild(note);
    }
  } else if (tab === 'display') {
    const d = state.status && state.status.display;
    if (!d || !d.enabled) {
      const note = document.createElement('div');
      note.className = 'note';
      note.textContent = 'No printer screen: ' + ((d && d.error) || 'display capture is off');
      view.appendChild(note);
      return;
    }
    const img = document.createElement('img');
    img.id = 'display-img';
    img.alt = 'printer screen (click to tap)';
    img.src = base + '/display';
    img.addEventListener('click', onDisplayClick);
    view.appendChild(img);
  }
  history.replaceState(null, '', '#' + tab);
}

async function onDisplayClick(ev) {
  const img = ev.currentTarget;
  const p = viewToImage(img.getBoundingClientRect(), img.naturalWidth, img.naturalHeight, ev.clientX, ev.clientY);
  if (!p) return;  // in the letterbox bars
  const msg = $('#view-msg');
  try {
    const r = await getJson('/api/touch', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ x: p.x, y: p.y }),
    });
    msg.textContent = r.ok ? 'tapped (' + p.x + ', ' + p.y + ')' : 'tap failed: ' + (r.body.error || r.status);
  } catch (e) {
    msg.textContent = 'tap failed: ' + e;
  }
}

// ---- stats and connection state ----
function row(name, value) {
  return '<tr><td>' + name + '</td><td>' + value + '</td></tr>';
}

async function pollStats() {
  try {
    const r = await getJson('/api/stats');
    if (!r.ok) throw new Error('HTTP ' + r.status);
    const s = r.body;
    state.failures = 0;
    state.lastOk = Date.now();
    const cam = s.camera || {};
    if (cam.signal) setConnection('online', 'online');
    else setConnection('camera: ' + (cam.state || 'unknown'), 'reconnecting');
    const f = s.fps || {};
    const c = s.clients || {};
    $('#stats tbody').innerHTML =
      row('Camera fps', (f.camera || 0).toFixed(1)) +
      row('MJPEG fps', (f.mjpeg || 0).toFixed(1)) +
      row('H.264 fps', (f.h264 || 0).toFixed(1) + (s.skip_interval > 1 ? ' (every ' + s.skip_interval + ')' : '')) +
      row('Display fps', (f.display || 0).toFixed(1)) +
      row('CPU (system / streamer)', (s.cpu.system_percent || 0).toFixed(0) + ' % / ' + (s.cpu.process_percent || 0).toFixed(0) + ' %') +
      row('Clients MJPEG / FLV / display', (c.mjpeg || 0) + ' / ' + (c.flv || 0) + ' / ' + (c.display || 0)) +
      row('Camera reconnects', cam.reconnects || 0);
    if (!state.status) await loadStatus();
  } catch (e) {
    state.failures += 1;
    // A few missed polls: the streamer may be restarting; longer: it is gone.
    if (state.failures >= 5) setConnection('offline', 'offline');
    else setConnection('reconnecting', 'reconnecting');
  }
}

// ---- settings ----
function fillSettings(values) {
  const form = $('#settings');
  for (const [key, value] of Object.entries(values)) {
    const input = form.elements[key];
    if (!input) continue;
    if (input.type === 'checkbox') input.checked = !!value;
    else input.value = value;
  }
  $('#h264_framerate_out').textContent = form.elements.h264_framerate.value + ' %';
}

async function loadSettings() {
  const r = await getJson('/api/settings');
  if (r.ok) {
    fillSettings(r.body.settings);
    $('#settings').elements.display_fps.max = r.body.display_max_fps;
  }
}

async function saveSettings(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  for (const e of form.querySelectorAll('.err')) e.textContent = '';
  const changes = {};
  for (const input of form.querySelectorAll('input[name]')) {
    if (input.type === 'checkbox') changes[input.name] = input.checked;
    else if (input.value.trim() !== '' && Number.isFinite(Number(input.value))) changes[input.name] = Number(input.value);
    else changes[input.name] = input.value;  // the server names the key and the allowed range
  }
  const msg = $('#settings-msg');
  try {
    const r = await getJson('/api/settings', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(changes),
    });
    if (!r.ok) {
      const slot = r.body.key && form.querySelector('[data-err="' + r.body.key + '"]');
      if (slot) slot.textContent = r.body.error;
      msg.textContent = r.body.error || 'HTTP ' + r.status;
      msg.className = 'msg err';
      return;
    }
    fillSettings(r.body.settings);
    const restart = r.body.restart_required || [];
    msg.className = 'msg';
    msg.textContent = (r.body.persisted ? 'saved' : 'applied (not saved: the streamer runs without --config)') +
      (restart.length ? '; restart needed for ' + restart.join(', ') : '');
  } catch (e) {
    msg.textContent = 'not saved: ' + e;
    msg.className = 'msg err';
  }
}

// ---- URLs for Mainsail/Fluidd/OctoPrint/Obico ----
function showUrls() {
  const base = state.streamBase;
  const host = location.hostname;
  const code = (u) => '<code>' + u + '</code>';
  const cam = chosenCamera();
  $('#urls-camera').textContent = cam ? cam.name || cam.id : 'camera 0';
  if (cam && !cam.primary) {
    // Another camera of the list: its own paths (h264-streamer's port of it when it has one).
    const out = cam.outputs || {};
    const h264 = cam.h264 !== false;
    $('#urls').innerHTML =
      '<dt>MJPEG stream and snapshot (Mainsail / Fluidd, OctoPrint, Obico)</dt><dd>stream ' + code(base + out.mjpeg) +
      ' snapshot ' + code(base + out.snapshot) + '</dd>' +
      (out.port ? '<dt>h264-streamer\'s port of this camera</dt><dd>' + code('http://' + host + ':' + out.port + '/?action=stream') +
        ' ' + code('http://' + host + ':' + out.port + '/?action=snapshot') + '</dd>' : '') +
      (h264 && out.flv ? '<dt>H.264 (VLC, ffplay)</dt><dd>' + code(base + out.flv) + '</dd>' : '') +
      (h264 && out.fmp4 ? '<dt>Browser &lt;video&gt; (Mainsail “HTML5 video”)</dt><dd>' + code(base + out.fmp4) + '</dd>' : '') +
      (h264 && out.hls ? '<dt>HLS (Mainsail “HLS stream”, Home Assistant)</dt><dd>' + code(base + out.hls) + '</dd>' : '') +
      (h264 && out.ws ? '<dt>H.264 over WebSocket (Mainsail “jmuxer-stream”)</dt><dd>' + code(base.replace(/^http/, 'ws') + out.ws) + '</dd>' : '') +
      (h264 && out.rtsp ? '<dt>RTSP (VLC, NVRs, Home Assistant, Frigate, MediaMTX / go2rtc)</dt><dd>' +
        code('rtsp://' + host + ':' + out.rtsp.port + out.rtsp.path) + '</dd>' : '');
    return;
  }
  $('#urls').innerHTML =
    '<dt>Mainsail / Fluidd (service “MJPEG-Streamer (adaptive)”, through the /webcam/ proxy)</dt><dd>stream ' +
    code('/webcam/?action=stream') + ' snapshot ' + code('/webcam/?action=snapshot') + '</dd>' +
    '<dt>Mainsail / Fluidd without the proxy</dt><dd>stream ' + code(base + '/stream') +
    ' snapshot ' + code(base + '/snapshot') + '</dd>' +
    '<dt>OctoPrint (Classic Webcam)</dt><dd>stream ' + code(base + '/?action=stream') + ' snapshot ' +
    code(base + '/?action=snapshot') + '</dd>' +
    '<dt>Obico (snapshot URL)</dt><dd>' + code(base + '/?action=snapshot') + '</dd>' +
    (output('flv') ? '<dt>H.264 (VLC, ffplay, Anycubic slicer)</dt><dd>' + code(base + output('flv').path) +
      (state.status.flv_port ? ' ' + code('http://' + host + ':' + state.status.flv_port + '/flv') : '') + '</dd>' : '') +
    (output('fmp4') ? '<dt>Browser &lt;video&gt; (Mainsail “HTML5 video”)</dt><dd>' + code(base + output('fmp4').path) + '</dd>' : '') +
    (output('hls') ? '<dt>HLS (Mainsail “HLS stream”, Home Assistant)</dt><dd>' + code(base + output('hls').path) + '</dd>' : '') +
    (output('h264-annexb-websocket') ? '<dt>H.264 over WebSocket (Mainsail “jmuxer-stream”)</dt><dd>' +
      code(base.replace(/^http/, 'ws') + output('h264-annexb-websocket').path) + '</dd>' : '') +
    (output('rtsp') ? '<dt>RTSP (VLC, NVRs, Home Assistant, Frigate, MediaMTX / go2rtc)</dt><dd>' +
      code('rtsp://' + host + ':' + output('rtsp').port + output('rtsp').path) + '</dd>' : '');
}

// ---- cameras: the selector and the panel (add, enable/disable, remove) ----
function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function showCameras() {
  // The selector: running cameras; a chosen camera that left falls back to camera 0.
  const running = state.cameras.filter((c) => c.enabled !== false);
  if (state.camera && !running.some((c) => c.id === state.camera)) {
    state.camera = '';
    showUrls();
    if (state.tab && state.tab !== 'display') showTab(state.tab);
  }
  const select = $('#camera');
  const wanted = running.map((c) => c.id + '\n' + (c.name || c.id)).join('\n');
  if (select.dataset.list !== wanted) {
    select.dataset.list = wanted;
    select.textContent = '';
    for (const c of running) {
      const option = document.createElement('option');
      option.value = c.primary ? '' : c.id;
      option.textContent = c.name && c.name !== c.id ? c.name + ' (' + c.id + ')' : c.id;
      select.appendChild(option);
    }
  }
  select.value = state.camera;
  $('#camera-pick').hidden = running.length < 2;
  // The panel: every camera of the list, disabled ones too.
  const body = $('#cameras-list tbody');
  body.textContent = '';
  for (const c of state.cameras) {
    const tr = document.createElement('tr');
    tr.dataset.id = c.id;
    tr.appendChild(cell((c.name || c.id) + (c.name && c.name !== c.id ? ' (' + c.id + ')' : '')));
    tr.appendChild(cell(String(c.state || '').split(':')[0], 'state'));
    const actions = cell('');
    if (!c.primary) {
      const label = document.createElement('label');
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.className = 'camera-enabled';
      box.checked = c.enabled !== false;
      box.title = 'enabled';
      box.addEventListener('change', () => changeCamera('PATCH', c.id, { enabled: box.checked }));
      label.appendChild(box);
      label.appendChild(document.createTextNode(' on '));
      actions.appendChild(label);
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'danger camera-remove';
      remove.textContent = 'Remove';
      remove.addEventListener('click', () => changeCamera('DELETE', c.id));
      actions.appendChild(remove);
    } else {
      actions.textContent = 'camera 0';
      actions.title = 'camera 0 serves /stream and /snapshot and the timelapse: it stays while the streamer runs';
    }
    tr.appendChild(actions);
    body.appendChild(tr);
  }
}

async function loadCameras() {
  const r = await getJson('/api/cameras?all=1');
  if (!r.ok || !Array.isArray(r.body)) return;
  state.cameras = r.body;
  showCameras();
}

// PATCH (with `changes`) or DELETE /api/cameras/<id>, then the list again.
async function changeCamera(method, id, changes) {
  const msg = $('#cameras-msg');
  try {
    const options = { method };
    if (changes) {
      options.headers = { 'Content-Type': 'application/json' };
      options.body = JSON.stringify(changes);
    }
    const r = await getJson('/api/cameras/' + encodeURIComponent(id), options);
    msg.className = r.ok ? 'msg' : 'msg err';
    msg.textContent = r.ok
      ? (method === 'DELETE' ? 'removed ' + id : 'changed ' + id) + (r.body.persisted === false ? ' (' + r.body.note + ')' : '')
      : r.body.error || 'HTTP ' + r.status;
  } catch (e) {
    msg.className = 'msg err';
    msg.textContent = String(e);
  }
  await loadCameras();
}

async function addCamera(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  for (const e of form.querySelectorAll('.err')) e.textContent = '';
  const entry = {};
  for (const name of ['id', 'name', 'source']) {
    const value = form.elements[name].value.trim();
    if (value !== '' || name !== 'name') entry[name] = value;
  }
  const msg = $('#camera-add-msg');
  try {
    const r = await getJson('/api/cameras', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(entry),
    });
    if (!r.ok) {
      const slot = r.body.key && form.querySelector('[data-err="' + r.body.key + '"]');
      if (slot) slot.textContent = r.body.error;
      msg.className = 'msg err';
      msg.textContent = r.body.error || 'HTTP ' + r.status;
      return;
    }
    form.reset();
    msg.className = 'msg';
    msg.textContent = 'added ' + r.body.id + (r.body.persisted === false ? ' (' + r.body.note + ')' : '');
  } catch (e) {
    msg.className = 'msg err';
    msg.textContent = 'not added: ' + e;
  }
  await loadCameras();
}

// ---- LAN printing (go-klipper firmware only: /status lan_mode.enabled) ----
function showLanMode(lan) {
  const section = $('#lan-mode');
  section.hidden = !lan || !lan.enabled;
  if (section.hidden) return;
  const open = lan.state === 'open';
  $('#lan-mode-state').textContent = 'Now: ' + lan.state + (lan.error ? ' (' + lan.error + ')' : '') +
    (lan.auto ? '; opened at start (autolanmode)' : '');
  const button = $('#lan-mode-toggle');
  button.textContent = open ? 'Close LAN printing' : 'Open LAN printing';
  button.dataset.open = open ? 'false' : 'true';
  button.disabled = lan.state !== 'open' && lan.state !== 'closed';
}

async function toggleLanMode() {
  const button = $('#lan-mode-toggle');
  const msg = $('#lan-mode-msg');
  button.disabled = true;
  try {
    const r = await getJson('/api/lan_mode', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ open: button.dataset.open === 'true' }),
    });
    showLanMode(r.body);
    msg.className = r.ok ? 'msg' : 'msg err';
    msg.textContent = r.ok ? '' : (r.body.error || 'HTTP ' + r.status);
  } catch (e) {
    msg.className = 'msg err';
    msg.textContent = String(e);
    button.disabled = false;
  }
}

async function loadStatus() {
  const r = await getJson('/status');
  if (!r.ok) throw new Error('HTTP ' + r.status);
  state.status = r.body;
  state.streamBase = location.protocol + '//' + location.hostname + ':' + r.body.stream_port;
  $('#board').textContent = r.body.board ? r.body.board.name : '';
  showLanMode(r.body.lan_mode);
  showUrls();
  const wanted = state.tab || location.hash.slice(1);
  showTab(['snapshot', 'mjpeg', 'h264', 'display'].includes(wanted) ? wanted : 'mjpeg');
}

async function init() {
  for (const b of document.querySelectorAll('.tabs button')) b.addEventListener('click', () => showTab(b.dataset.tab));
  const form = $('#settings');
  form.addEventListener('submit', saveSettings);
  $('#lan-mode-toggle').addEventListener('click', toggleLanMode);
  $('#camera-add').addEventListener('submit', addCamera);
  $('#camera').addEventListener('change', () => {
    state.camera = $('#camera').value;
    showUrls();
    if (state.tab && state.tab !== 'display') showTab(state.tab);
  });
  form.elements.h264_framerate.addEventListener('input', () => {
    $('#h264_framerate_out').textContent = form.elements.h264_framerate.value + ' %';
  });
  try {
    await loadCameras();
    await loadStatus();
    await loadSettings();
  } catch (e) {
    setConnection('offline', 'offline');
  }
  await pollStats();
  setInterval(pollStats, 1000);
  setInterval(() => loadCameras().catch(() => {}), 2000);
}

init();
