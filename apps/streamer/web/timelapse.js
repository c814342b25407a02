// SPDX-License-Identifier: MIT
// printcast timelapse manager. The API it uses (port 8081; apps/streamer/timelapse_store.h and
// docs/timelapse-manager.md):
//   GET    /api/timelapse/list    -> {"videos": [{"name": "benchy_3",  (no extension)
//            "size": bytes, "frames": n (0 = unknown), "duration": seconds, "date": unix seconds,
//            "thumb": URL path of the thumbnail (only when there is one),
//            "storage": "internal" | "usb"}]}
//   GET    /api/timelapse/storage -> {"current": "internal", "options": [{"id", "label", "path",
//            "available": bool, "free_bytes": n | null}]}
//   GET    /api/timelapse/thumb/<name>      JPEG
//   GET    /api/timelapse/video/<name>.mp4  the MP4 (with or without .mp4; HTTP Range: 206 with
//            Content-Range, 416 with "bytes */size"), played and downloaded here
//   DELETE /api/timelapse/delete/<name>     -> 200 {"status": "ok", "deleted": [file names]}
//   GET|POST /api/timelapse/settings        {"settings": {timelapse_* and moonraker_* keys}, ...}
// Names and files may take ?storage=internal|usb (default: the current storage, then the
// others). A bad name is 400, a missing one 404; errors are {"status": "error", "error": why}.
'use strict';

const $ = (sel) => document.querySelector(sel);
let videos = [];

function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}
function fileName(v) {
  return /\.mp4$/i.test(v.name) ? v.name : v.name + '.mp4';
}
function baseName(v) {
  return v.name.replace(/\.mp4$/i, '');
}
function storageQuery(v) {
  return v.storage ? '?storage=' + encodeURIComponent(v.storage) : '';
}
function videoUrl(v) {
  return '/api/timelapse/video/' + encodeURIComponent(fileName(v)) + storageQuery(v);
}
function thumbUrl(v) {
  return typeof v.thumb === 'string' && v.thumb.startsWith('/') ? v.thumb : '/api/timelapse/thumb/' + encodeURIComponent(baseName(v));
}
function dateOf(v) {
  const d = typeof v.date === 'number' ? new Date(v.date * 1000) : new Date(v.date);
  return isNaN(d) ? null : d;
}
function size(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let n = Number(bytes) || 0;
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return n.toFixed(i ? 1 : 0) + ' ' + units[i];
}
function duration(seconds) {
  const s = Math.round(Number(seconds) || 0);
  return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
}

function render() {
  const sort = $('#sort').value;
  const storage = $('#storage').value;
  const shown = videos.filter((v) => !storage || v.storage === storage);
  shown.sort((a, b) => {
    if (sort === 'name') return a.name.localeCompare(b.name);
    if (sort === 'size') return (b.size || 0) - (a.size || 0);
    return (dateOf(b) || 0) - (dateOf(a) || 0);
  });
  $('#count').textContent = shown.length + ' recording' + (shown.length === 1 ? '' : 's');
  $('#list').innerHTML = shown.map((v) => {
    const d = dateOf(v);
    return '<div class="card" data-name="' + esc(v.name) + '">' +
      '<img loading="lazy" alt="" src="' + esc(thumbUrl(v)) + '">' +
      '<div class="meta"><div class="name">' + esc(v.name) + '</div>' +
      (d ? d.toLocaleString() : '') + ' · ' + duration(v.duration) + ' · ' + esc(v.frames) + ' frames · ' +
      size(v.size) + (v.storage ? ' · ' + esc(v.storage) : '') + '</div>' +
      '<div class="actions"><a href="#" data-action="play">Play</a>' +
      '<a href="' + esc(videoUrl(v)) + '" download="' + esc(fileName(v)) + '">Download</a>' +
      '<button class="danger" data-action="delete">Delete</button></div></div>';
  }).join('');
}

function play(v) {
  const player = $('#player');
  player.innerHTML = '<h2>' + esc(v.name) + '</h2>';
  const video = document.createElement('video');
  video.id = 'timelapse-video';
  video.controls = true;
  video.autoplay = true;
  video.muted = true;
  video.playsInline = true;
  video.src = videoUrl(v);
  player.appendChild(video);
}

async function remove(v) {
  if (!confirm('Delete ' + v.name + '? This cannot be undone.')) return;
  const r = await fetch('/api/timelapse/delete/' + encodeURIComponent(baseName(v)) + storageQuery(v), { method: 'DELETE' });
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    alert('Not deleted: ' + (body.error || 'HTTP ' + r.status));
    return;
  }
  if ($('#timelapse-video') && $('#player h2').textContent === v.name) $('#player').textContent = '';
  await load();
}

async function load() {
  const conn = $('#conn');
  try {
    const r = await fetch('/api/timelapse/list', { cache: 'no-store' });
    if (r.status === 404) {
      conn.textContent = 'no timelapse recorder in this streamer';
      conn.className = 'offline';
      videos = [];
      render();
      return;
    }
    if (!r.ok) throw new Error('HTTP ' + r.status);
    videos = (await r.json()).videos || [];
    conn.textContent = 'online';
    conn.className = 'online';
    render();
  } catch (e) {
    conn.textContent = 'offline';
    conn.className = 'offline';
  }
  try {
    const r = await fetch('/api/timelapse/storage', { cache: 'no-store' });
    if (r.ok) {
      const s = await r.json();
      const cur = (s.options || []).find((o) => o.id === s.current);
      $('#storage-info').textContent = cur ? 'recording to ' + (cur.label || cur.id) + (cur.free_bytes != null ? ' (' + size(cur.free_bytes) + ' free)' : '') : '';
    }
  } catch (e) { /* optional */ }
}

$('#sort').addEventListener('change', render);
$('#storage').addEventListener('change', render);
$('#list').addEventListener('click', (ev) => {
  const action = ev.target.dataset.action;
  if (!action) return;
  ev.preventDefault();
  const name = ev.target.closest('.card').dataset.name;
  const v = videos.find((x) => x.name === name);
  if (!v) return;
  if (action === 'play') play(v);
  else if (action === 'delete') remove(v);
});
load();
