// The review page: submit videos, follow jobs, and review a result (video, anomaly curve, events).
// Plain JavaScript, no build step and no CDN: it talks to the same API as every other client.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { jobs: new Map(), open: null, doc: null, segments: [], timer: null };
window.review = state; // for the browser test and for curious operators

// --- API access (X-API-Key from the key field, remembered in this browser) ---------------------------------
const keyField = $("api-key");
keyField.value = localStorage.getItem("lanp-api-key") || "";
keyField.addEventListener("change", () => { localStorage.setItem("lanp-api-key", keyField.value); refreshJobs(); });

function headers() {
  return keyField.value ? { "X-API-Key": keyField.value } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (!response.ok) {
    let detail = response.statusText;
    try { const body = await response.json(); detail = body.detail || body.title || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response;
}

// Media elements cannot send headers: with a key set, fetch the bytes and hand the element an object URL.
async function mediaUrl(path) {
  if (!keyField.value) return path;
  return URL.createObjectURL(await (await api(path)).blob());
}

// --- submitting ---------------------------------------------------------------------------------------------
$("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) { say("choose a video first"); return; }
  const form = new FormData();
  form.append("file", file);
  await submit(() => api("jobs", { method: "POST", body: form }), file.name);
});

$("submit-path").addEventListener("click", async () => {
  const path = $("server-path").value.trim();
  if (!path) { say("type a path under the data root"); return; }
  await submit(() => api("jobs", {
    method: "POST", body: JSON.stringify({ path }), headers: { "Content-Type": "application/json" },
  }), path);
});

async function submit(send, name) {
  say(`sending ${name} ...`);
  try {
    const job = await (await send()).json();
    remember(job.id);
    say(`queued ${name}`);
    state.jobs.set(job.id, job);
    renderJobs();
  } catch (error) { say(`refused: ${error.message}`); }
}

function say(text) { $("upload-status").textContent = text; }

function remember(id) {
  const known = JSON.parse(localStorage.getItem("lanp-jobs") || "[]");
  if (!known.includes(id)) localStorage.setItem("lanp-jobs", JSON.stringify([id, ...known].slice(0, 50)));
}

// --- the job list, with live progress ---------------------------------------------------------------------
async function refreshJobs() {
  try {
    const body = await (await api("jobs?limit=50")).json();
    const items = Array.isArray(body) ? body : body.items || body.jobs || [];
    state.jobs = new Map(items.map((job) => [job.id, job]));
  } catch (_) { // an older server without GET /jobs: follow the jobs this browser submitted
    const known = JSON.parse(localStorage.getItem("lanp-jobs") || "[]");
    for (const id of known) {
      try { state.jobs.set(id, await (await api(`jobs/${id}`)).json()); } catch (_) { state.jobs.delete(id); }
    }
  }
  renderJobs();
}

// One entry of a side list (jobs, streams): its title and a status line, marked open when it is shown.
function listItem(data, open, titleText, statusName, statusText) {
  const item = document.createElement("li");
  Object.assign(item.dataset, data);
  item.className = open ? "open" : "";
  const title = document.createElement("span");
  title.textContent = titleText;
  const status = document.createElement("span");
  status.className = `status-${statusName}`;
  status.textContent = statusText;
  item.append(title, status);
  return item;
}

// RFC 3339 in the browser's zone, to the second: 2026-12-01T14:30:05+01:00 (what operators paste into reports).
function rfc3339(seconds) {
  const date = new Date(seconds * 1000);
  const pad = (n) => String(Math.trunc(Math.abs(n))).padStart(2, "0");
  const offset = -date.getTimezoneOffset();
  const zone = offset === 0 ? "Z" : `${offset > 0 ? "+" : "-"}${pad(offset / 60)}:${pad(offset % 60)}`;
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:`
    + `${pad(date.getMinutes())}:${pad(date.getSeconds())}${zone}`;
}

function timeElement(text) {
  const element = document.createElement("time");
  element.dateTime = text;
  element.textContent = text;
  return element;
}

function duration(seconds) {
  const whole = Math.round(seconds);
  const [h, m, s] = [Math.floor(whole / 3600), Math.floor(whole / 60) % 60, whole % 60];
  return h ? `${h} h ${m} min` : m ? `${m} min ${s} s` : `${seconds.toFixed(1)} s`;
}

// Warning kinds as a badge says them; the badge's tooltip (and the result's banner) carries the whole message.
const WARNING_NAMES = { domain_shift: "unlike training footage", saturated: "saturated scores" };

function badges(warnings) {
  return (warnings || []).map((warning) => {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.dataset.kind = warning.kind;
    badge.title = warning.message;
    badge.textContent = `⚠ ${WARNING_NAMES[warning.kind] || warning.kind}`;
    return badge;
  });
}

// The times a job's line shows: the recording's own clock when the video carries it, else when it was scored.
function jobFacts(job) {
  const facts = document.createElement("span");
  facts.className = "facts";
  const result = job.result;
  const [start, end, label] = result && result.start_time
    ? [result.start_time, result.end_time, "recorded"]
    : [job.started_at && rfc3339(job.started_at), job.finished_at && rfc3339(job.finished_at), "scored"];
  if (start) {
    facts.append(`${label} `, timeElement(start));
    if (end) facts.append(" – ", timeElement(end));
  }
  if (result) {
    facts.append(` · ${duration(result.duration_s)} · ${result.events} event(s) · top score `
      + `${result.top_score.toFixed(2)}`);
  }
  return facts;
}

function renderJobs() {
  const list = $("jobs");
  list.replaceChildren(...[...state.jobs.values()].map((job) => {
    const item = listItem({ job: job.id, status: job.status }, job.id === state.open, job.video, job.status,
      job.status + (job.error ? `: ${job.error}` : ""));
    item.firstChild.append(...badges(job.result && job.result.warnings));
    item.append(jobFacts(job));
    if (job.status === "running" || job.status === "pending") {
      const bar = document.createElement("progress");
      bar.max = 1;
      bar.value = job.progress || 0;
      item.append(bar);
    }
    if (job.status === "completed") item.addEventListener("click", () => openJob(job.id));
    return item;
  }));
}

// --- one result: video, curve, events -----------------------------------------------------------------------
async function openJob(id) {
  state.open = id;
  renderJobs();
  if (window.live) window.live.close();
  const doc = await (await api(`jobs/${id}/result`)).json();
  state.doc = doc;
  state.segments = doc.segments;
  state.lastSeek = 0;
  document.body.classList.remove("landing");
  $("result").hidden = false;
  renderWarnings($("warnings"), doc.warnings);
  $("result-title").textContent = `${doc.video} · ${doc.num_frames} frames · ${doc.duration_s.toFixed(1)} s`;
  $("threshold").value = doc.threshold;
  $("threshold-value").textContent = Number(doc.threshold).toFixed(2);
  for (const [link, format] of [["dl-json", "json"], ["dl-csv", "csv"]]) {
    const anchor = $(link);
    anchor.href = `jobs/${id}/result?format=${format}`;
    anchor.download = `${doc.video}.${format}`;
  }
  const video = $("video");
  video.pause();
  $("video-message").hidden = true;
  video.src = await mediaUrl(`jobs/${id}/video`);
  video.currentTime = 0; // every result opens at its start, whatever the last one was playing
  renderEvents();
  draw();
}

// A banner per warning: the whole message, which says how far off the video is and what to do.
function renderWarnings(container, warnings) {
  container.replaceChildren(...(warnings || []).map((warning) => {
    const banner = document.createElement("div");
    banner.className = "banner";
    banner.dataset.kind = warning.kind;
    const title = document.createElement("strong");
    title.textContent = `⚠ ${WARNING_NAMES[warning.kind] || warning.kind}: read these scores with care`;
    banner.append(title, warning.message);
    return banner;
  }));
}
window.renderWarnings = renderWarnings; // live.js shows a stream's warnings the same way

function timeOf(frame) {
  const times = state.doc.timestamps;
  return frame < times.length ? times[frame] : state.doc.duration_s;
}

function renderEvents() {
  const id = state.open;
  $("event-count").textContent = `${state.segments.length} event(s)`;
  $("events").replaceChildren(...state.segments.map((segment, index) => {
    const item = document.createElement("li");
    item.dataset.start = segment.start_s;
    const thumbnail = document.createElement("img");
    thumbnail.alt = `event ${index + 1}`;
    thumbnail.loading = "lazy";
    if (segment.thumbnail !== false) {
      mediaUrl(`jobs/${id}/events/${index + 1}/thumbnail.jpg?threshold=${$("threshold").value}`)
        .then((url) => { thumbnail.src = url; }).catch(() => thumbnail.remove());
    }
    const label = document.createElement("div");
    label.innerHTML = `<span class="n">#${index + 1}</span> ${segment.start_s.toFixed(1)}–${segment.end_s.toFixed(1)} s`
      + ` · frames ${segment.start_frame}–${segment.end_frame - 1} · peak ${segment.peak.toFixed(2)}`;
    const clip = document.createElement("a");
    clip.textContent = "clip";
    clip.className = "clip";
    clip.href = `jobs/${id}/events/${index + 1}/clip.mp4?threshold=${$("threshold").value}`;
    clip.addEventListener("click", async (event) => { // with a key, fetch it (links cannot send headers)
      event.stopPropagation();
      if (!keyField.value || clip.dataset.fetched) return;
      event.preventDefault();
      clip.href = await mediaUrl(clip.href);
      clip.download = `${state.doc.video}-event-${index + 1}.mp4`;
      clip.dataset.fetched = "1";
      clip.click();
    });
    label.append(" · ", clip);
    item.append(thumbnail, label);
    item.addEventListener("click", () => seek(segment.start_s));
    return item;
  }));
}

function seek(seconds) {
  const video = $("video");
  video.currentTime = seconds;
  state.lastSeek = seconds;
  draw();
}

// Re-thresholding: the server recomputes the events with its own segment rules (one implementation).
$("threshold").addEventListener("input", () => {
  $("threshold-value").textContent = Number($("threshold").value).toFixed(3);
  draw();
  clearTimeout(state.timer);
  state.timer = setTimeout(async () => {
    const body = await (await api(`jobs/${state.open}/segments?threshold=${$("threshold").value}`)).json();
    state.segments = body.segments;
    renderEvents();
    draw();
  }, 150);
});

function draw() {
  const doc = state.doc;
  if (!doc) return;
  const canvas = $("curve");
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  const pad = { left: 34, right: 18, top: 8, bottom: 20 };
  const duration = Math.max(doc.duration_s, 1e-6);
  const x = (seconds) => pad.left + (seconds / duration) * (width - pad.left - pad.right);
  const y = (score) => pad.top + (1 - score) * (height - pad.top - pad.bottom);
  context.clearRect(0, 0, width, height);
  context.font = "11px system-ui";
  // events, shaded and numbered
  state.segments.forEach((segment, index) => {
    context.fillStyle = "#e5393522";
    context.fillRect(x(segment.start_s), pad.top, Math.max(1, x(segment.end_s) - x(segment.start_s)), y(0) - pad.top);
    context.fillStyle = "#b3261e";
    context.fillText(`#${index + 1}`, x(segment.start_s) + 2, pad.top + 10);
  });
  // axes
  context.strokeStyle = "#99a";
  context.fillStyle = "#556";
  for (const score of [0, 0.5, 1]) {
    context.fillText(score.toFixed(1), 4, y(score) + 4);
  }
  const step = niceStep(duration);
  for (let t = 0; t <= duration; t += step) {
    context.fillText(`${t.toFixed(step < 1 ? 1 : 0)}s`, x(t) - 8, height - 5);
  }
  // threshold
  const threshold = Number($("threshold").value);
  context.setLineDash([5, 4]);
  context.beginPath();
  context.moveTo(x(0), y(threshold));
  context.lineTo(x(duration), y(threshold));
  context.stroke();
  context.setLineDash([]);
  // the per-frame score curve
  context.strokeStyle = "#3a64d8";
  context.lineWidth = 1.5;
  context.beginPath();
  doc.frame_scores.forEach((score, frame) => {
    const px = x(timeOf(frame));
    if (frame === 0) context.moveTo(px, y(score)); else context.lineTo(px, y(score));
  });
  context.stroke();
  // the playback cursor
  const now = $("video").currentTime || 0;
  context.strokeStyle = "#1d2330";
  context.lineWidth = 1;
  context.beginPath();
  context.moveTo(x(now), pad.top);
  context.lineTo(x(now), y(0));
  context.stroke();
  canvas.dataset.cursor = now.toFixed(3);
  canvas.dataset.drawnEvents = String(state.segments.length);
  state.toSeconds = (px) => ((px - pad.left) / (width - pad.left - pad.right)) * duration;
}

function niceStep(duration) {
  for (const step of [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600]) {
    if (duration / step <= 10) return step;
  }
  return 7200;
}

$("curve").addEventListener("click", (event) => {
  if (!state.doc) return;
  const canvas = $("curve");
  const rect = canvas.getBoundingClientRect();
  const px = ((event.clientX - rect.left) / rect.width) * canvas.width;
  seek(Math.min(Math.max(state.toSeconds(px), 0), state.doc.duration_s));
});

const video = $("video");
video.addEventListener("error", () => { // the server's playable copy was refused (too long) or failed
  if (!state.doc) return;
  const message = $("video-message");
  message.textContent = "This video cannot play in the browser (its format, and no playable copy could be made); "
    + "the event clips below can.";
  message.hidden = false;
});
video.addEventListener("timeupdate", draw);
video.addEventListener("seeked", draw);
(function follow() { if (!video.paused) draw(); requestAnimationFrame(follow); })();

// --- start ------------------------------------------------------------------------------------------------
fetch("models", { headers: headers() }).then((r) => (r.ok ? r.json() : null)).then((body) => {
  const model = body && (body.models ? body.models[0] : body);
  if (model && model.name) $("model").textContent = `model ${model.id || model.name}`;
}).catch(() => {});
refreshJobs();
setInterval(refreshJobs, 1000);
