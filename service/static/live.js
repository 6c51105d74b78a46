// The review page's live streams: start one, list them, and watch one's score curve grow and its events arrive.
// The records come from GET /streams/{id}/events (Server-Sent Events), read with fetch so that the API key can
// go in a header (EventSource cannot send one); a dropped connection resumes with Last-Event-ID.
// Uses review.js's helpers ($, api, listItem).
"use strict";

const POINTS_KEPT = 4000; // snippets drawn at most (the curve shows the current session, oldest dropped)

const live = {
  streams: [], open: null, session: null, threshold: 0.5, points: [], events: [], lastId: 0, status: "",
  abort: null, clock: null, stopping: new Set(),
  close() { // stop following (another stream or a job is opened)
    if (this.abort) this.abort.abort();
    this.abort = null;
    this.open = null;
    $("live").hidden = true;
    renderStreams();
  },
};
window.live = live; // for the browser test

// --- starting and listing ------------------------------------------------------------------------------------
$("watch").addEventListener("submit", async (event) => {
  event.preventDefault();
  const url = $("stream-url").value.trim();
  if (!url) { $("watch-status").textContent = "type a stream URL"; return; }
  const body = { url };
  const threshold = $("stream-threshold").value;
  if (threshold !== "") body.threshold = Number(threshold);
  try {
    const stream = await (await api("streams", {
      method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" },
    })).json();
    $("watch-status").textContent = `watching ${url}`;
    await refreshStreams();
    openStream(stream.id);
  } catch (error) { $("watch-status").textContent = `refused: ${error.message}`; }
});

async function refreshStreams() {
  try { live.streams = (await (await api("streams")).json()).streams; } catch (_) { live.streams = []; }
  renderStreams();
}

function renderStreams() {
  $("streams").replaceChildren(...live.streams.map((stream) => {
    // a stream asked to stop says so at once, until the server reports it stopped
    const status = live.stopping.has(stream.id) && stream.status !== "stopped" ? "stopping" : stream.status;
    const item = listItem({ stream: stream.id, status }, stream.id === live.open, stream.url,
      status, `${status === "stopping" ? "stopping…" : status} · ${stream.snippets_scored} snippets`
        + (stream.snippets_dropped ? ` (${stream.snippets_dropped} dropped)` : ""));
    item.addEventListener("click", () => openStream(stream.id));
    return item;
  }));
}

// --- one stream: its records as they come --------------------------------------------------------------------
function openStream(id) {
  live.close();
  if (window.review) { window.review.open = null; window.review.doc = null; $("result").hidden = true; }
  Object.assign(live, { open: id, session: null, points: [], events: [], lastId: 0, status: "connecting",
    clock: null });
  const stream = live.streams.find((s) => s.id === id);
  $("live-title").textContent = stream ? stream.url : id;
  document.body.classList.remove("landing");
  $("live-warnings").replaceChildren();
  $("live").hidden = false;
  $("live-stop").disabled = false;
  renderStreams();
  renderLiveEvents();
  drawLive();
  follow(id, new AbortController());
}

async function follow(id, controller) {
  live.abort = controller;
  while (live.open === id) {
    try {
      const response = await api(`streams/${id}/events`, {
        signal: controller.signal, headers: { "Last-Event-ID": String(live.lastId) },
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          handleBlock(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
      if (live.status === "stopped") return; // the stream is over: its events ended the response
    } catch (error) {
      if (controller.signal.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000)); // resume after the last record seen
  }
}

function handleBlock(block) {
  const fields = {};
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue; // keep-alive comment
    const colon = line.indexOf(": ");
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 2);
  }
  if (!fields.data) return;
  live.lastId = Number(fields.id);
  onRecord(JSON.parse(fields.data));
}

function onRecord(record) {
  switch (record.type) {
    case "start": live.threshold = record.threshold; break;
    case "connected":
      live.session = record.session;
      live.points = [];
      live.status = "live";
      live.clock = record.wall_time; // until the first snippet: stream time 0 is about when the session began
      break;
    case "snippet": case "dropped":
      // the wall clock of stream time 0: when this snippet's last frame arrived, less its stream time
      if (record.latency_s !== undefined && record.end_s !== undefined) {
        live.clock = record.wall_time - record.latency_s - record.end_s;
      }
      live.points.push({
        start: record.start_s, end: record.end_s ?? record.start_s + 0.04 * (record.end_frame - record.start_frame),
        score: record.type === "snippet" ? record.score : record.held_score, dropped: record.type === "dropped",
        latency: record.latency_s,
      });
      if (live.points.length > POINTS_KEPT) live.points.shift();
      break;
    case "event_start":
      live.events.push({ session: record.session, start_s: record.start_s, peak: record.peak, open: true,
        clock: live.clock });
      renderLiveEvents();
      break;
    case "event_end": {
      const open = live.events.find((e) => e.open && e.session === record.session);
      const event = open || {};
      if (!open) live.events.push(event);
      Object.assign(event, { clock: live.clock, ...record, open: false });
      renderLiveEvents();
      break;
    }
    case "warning": // the stream is unlike the training footage: the same banner as a result's
      window.renderWarnings($("live-warnings"), [record]);
      break;
    case "disconnected": case "reconnecting": case "gave_up": live.status = record.type; break;
    case "stopped": case "failed": live.status = "stopped"; break;
    default: break;
  }
  if (live.stopping.has(live.open) && live.status !== "stopped") live.status = "stopping";
  if (live.status === "stopped") $("live-stop").disabled = true;
  const last = live.points[live.points.length - 1];
  $("live-status").textContent = `${live.status === "stopping" ? "stopping…" : live.status}`
    + (live.session ? ` · session ${live.session}` : "")
    + ` · ${live.points.length} snippets` + (last && last.latency !== undefined
    ? ` · last score ${last.score.toFixed(2)}, ${last.latency.toFixed(1)} s after its frames` : "");
  $("live").dataset.status = live.status;
  drawLive();
}

function renderLiveEvents() {
  $("live-events").replaceChildren(...live.events.map((event, index) => {
    const item = document.createElement("li");
    item.className = event.open ? "open" : "";
    if (event.thumbnail && event.thumbnail.jpeg_base64) {
      const image = document.createElement("img");
      image.alt = `event ${index + 1}`;
      image.src = `data:image/jpeg;base64,${event.thumbnail.jpeg_base64}`;
      item.append(image);
    }
    const label = document.createElement("div");
    label.append(`#${index + 1} `);
    if (event.clock !== null && event.clock !== undefined) { // wall-clock times, RFC 3339 as in the job list
      label.append(timeElement(rfc3339(event.clock + event.start_s)));
      if (!event.open) label.append(" – ", timeElement(rfc3339(event.clock + event.end_s)));
      label.append(" · ");
    }
    label.append(event.open
      ? `since ${event.start_s.toFixed(1)} s (open)`
      : `${event.start_s.toFixed(1)}–${event.end_s.toFixed(1)} s of the stream · peak ${event.peak.toFixed(2)}`);
    item.append(label);
    return item;
  }));
}

function drawLive() {
  const canvas = $("live-curve");
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  const pad = { left: 34, right: 18, top: 8, bottom: 20 };
  const first = live.points.length ? live.points[0].start : 0;
  const last = live.points.length ? live.points[live.points.length - 1].end : 1;
  const span = Math.max(last - first, 1e-6);
  const x = (seconds) => pad.left + ((seconds - first) / span) * (width - pad.left - pad.right);
  const y = (score) => pad.top + (1 - score) * (height - pad.top - pad.bottom);
  context.clearRect(0, 0, width, height);
  context.font = "11px system-ui";
  for (const event of live.events.filter((e) => e.session === live.session)) {
    const end = event.open ? last : event.end_s;
    context.fillStyle = event.open ? "#e5393544" : "#e5393522";
    context.fillRect(x(event.start_s), pad.top, Math.max(1, x(end) - x(event.start_s)), y(0) - pad.top);
  }
  context.fillStyle = "#556";
  for (const score of [0, 0.5, 1]) context.fillText(score.toFixed(1), 4, y(score) + 4);
  context.fillText(`${first.toFixed(0)} s`, pad.left, height - 5);
  context.fillText(`${last.toFixed(0)} s`, width - pad.right - 30, height - 5);
  context.strokeStyle = "#99a";
  context.setLineDash([5, 4]);
  context.beginPath();
  context.moveTo(x(first), y(live.threshold));
  context.lineTo(x(last), y(live.threshold));
  context.stroke();
  context.setLineDash([]);
  context.lineWidth = 1.5;
  for (const point of live.points) { // each snippet's score holds over its frames (as the offline curve)
    context.strokeStyle = point.dropped ? "#aab" : "#3a64d8";
    context.beginPath();
    context.moveTo(x(point.start), y(point.score));
    context.lineTo(x(point.end), y(point.score));
    context.stroke();
  }
  canvas.dataset.points = String(live.points.length);
  canvas.dataset.events = String(live.events.length);
}

$("live-stop").addEventListener("click", async () => {
  if (!live.open) return;
  const id = live.open;
  live.stopping.add(id); // said at once: the server scores the last snippet and closes events before it answers
  $("live-stop").disabled = true;
  $("live-status").textContent = "stopping…";
  live.status = "stopping";
  $("live").dataset.status = "stopping";
  renderStreams();
  try { await api(`streams/${id}`, { method: "DELETE" }); } catch (error) {
    live.stopping.delete(id);
    live.status = "live";
    $("live-stop").disabled = false;
    $("live-status").textContent = error.message;
  }
  refreshStreams();
});

refreshStreams();
setInterval(refreshStreams, 2000);
