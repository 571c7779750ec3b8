// The otpy dashboard: plain JavaScript, no build step, no CDN.
// The token comes from the URL fragment (#token=...): a browser never sends a fragment to a
// server, so it appears in no request line, log or Referer; it is kept in sessionStorage.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = {
  token: null,
  jobs: new Map(),        // job id -> last status
  selected: null,         // the job whose plot is shown
  plotAt: 0,              // when the plot was last fetched
  plotTimer: null,        // a fetch due at the end of the current second
  chats: new Map(),       // agent request id -> its <li>
};

// -- the token and requests ---------------------------------------------------------------

function readToken() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem("otpy-token", hash.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  state.token = sessionStorage.getItem("otpy-token");
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (state.token) h.Authorization = "Bearer " + state.token;
  return h;
}

async function api(method, path, body, contentType) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.headers["Content-Type"] = contentType || "application/json";
    init.body = contentType ? body : JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (response.status === 401) $("#token-form").hidden = false;
  if (!response.ok) throw new Error((data && data.error) || response.statusText);
  return data;
}

function notice(text) {
  $("#notice").textContent = text || "";
}

// -- formatting ---------------------------------------------------------------------------

function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  if (seconds < 1) return Math.round(seconds * 1000) + " ms";
  if (seconds < 60) return seconds.toFixed(1) + " s";
  const m = Math.floor(seconds / 60);
  return m + "m" + String(Math.round(seconds % 60)).padStart(2, "0") + "s";
}
const score = (v) => (v === null || v === undefined ? "–" : Number(v).toPrecision(4));
const money = (v) => "$" + Number(v || 0).toFixed(4);
const count = (v) => Number(v || 0).toLocaleString();

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) node.append(child);
  return node;
}

function badge(text, kind) {
  return el("span", { class: "badge " + kind + "-" + text, textContent: text });
}

// -- jobs ---------------------------------------------------------------------------------

function jobRow(id) {
  let row = document.querySelector(`tr[data-job="${CSS.escape(id)}"]`);
  if (row) return row;
  const bar = el("div", { class: "bar" }, el("div", { class: "fill" }));
  row = el("tr", { "data-job": id },
    el("td", { class: "id" }), el("td", { class: "state" }),
    el("td", { class: "progress" }, bar, el("span", { class: "count num" })),
    el("td", { class: "best num" }), el("td", { class: "tokens num" }),
    el("td", { class: "cost num" }), el("td", { class: "elapsed num" }),
    el("td", { class: "eta num" }),
    el("td", { class: "actions" },
      el("button", { type: "button", "data-action": "pause", textContent: "Pause" }), " ",
      el("button", { type: "button", "data-action": "resume", textContent: "Resume" }), " ",
      el("button", { type: "button", "data-action": "cancel", textContent: "Cancel" })));
  row.addEventListener("click", (event) => {
    const action = event.target.closest("button")?.dataset.action;
    if (action) steer(id, action);
    else select(id);
  });
  $("#jobs tbody").append(row);
  return row;
}

function showJob(job) {
  state.jobs.set(job.job_id, job);
  const row = jobRow(job.job_id);
  row.dataset.state = job.state;
  row.querySelector(".id").textContent = job.name ? `${job.job_id} (${job.name})` : job.job_id;
  row.querySelector(".state").replaceChildren(badge(job.state, "state"));
  const total = job.evaluations_total;
  row.querySelector(".fill").style.width = ((job.progress || 0) * 100).toFixed(1) + "%";
  row.querySelector(".count").textContent =
    `${job.evaluations_done}${total ? "/" + total : ""}` +
    (job.in_flight ? ` (${job.in_flight} running)` : "");
  row.querySelector(".count").dataset.done = job.evaluations_done;
  row.querySelector(".best").textContent = score(job.best_score);
  row.querySelector(".tokens").textContent = count(job.tokens);
  row.querySelector(".cost").textContent = money(job.cost);
  row.querySelector(".elapsed").textContent = duration(job.elapsed);
  row.querySelector(".eta").textContent = job.state === "running" ? duration(job.eta) : "–";
  row.querySelector('[data-action="pause"]').disabled = job.state !== "running";
  row.querySelector('[data-action="resume"]').disabled = job.state !== "paused";
  row.querySelector('[data-action="cancel"]').disabled = !["running", "paused"].includes(job.state);
  $("#jobs-empty").hidden = true;
  if (state.selected === null) select(job.job_id);
  else if (state.selected === job.job_id) refreshPlot(false);
}

async function loadJobs() {
  const data = await api("GET", "/api/jobs");
  for (const job of data.jobs) showJob(job);
}

async function steer(id, action) {
  try {
    showJob(await api("POST", `/api/jobs/${encodeURIComponent(id)}/${action}`));
    notice("");
  } catch (error) {
    notice(`${action} ${id}: ${error.message}`);
  }
}

function select(id) {
  state.selected = id;
  for (const row of document.querySelectorAll("tr[data-job]")) {
    row.classList.toggle("selected", row.dataset.job === id);
  }
  refreshPlot(true);
}

async function refreshPlot(now) {
  const id = state.selected;
  if (id === null) return;
  const wait = 1000 - (Date.now() - state.plotAt);
  if (!now && wait > 0) {  // at most one fetch a second, and the last change always drawn
    if (!state.plotTimer) {
      state.plotTimer = setTimeout(() => { state.plotTimer = null; refreshPlot(true); }, wait);
    }
    return;
  }
  state.plotAt = Date.now();
  try {
    const data = await api("GET", `/api/jobs/${encodeURIComponent(id)}/trials`);
    if (state.selected === id) drawPlot(id, data.trials);
  } catch (error) {
    notice(error.message);
  }
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function drawPlot(id, trials) {
  const plot = $("#plot");
  $("#plot-box").hidden = false;
  $("#plot-title").textContent = id;
  const scored = trials.filter((t) => t.score !== null);
  const W = Math.max(300, Math.round(plot.clientWidth || 600)), H = 200, pad = 24;
  plot.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const nodes = [svg("line", { class: "axis", x1: pad, y1: H - pad, x2: W - 4, y2: H - pad }),
    svg("line", { class: "axis", x1: pad, y1: 4, x2: pad, y2: H - pad })];
  if (scored.length) {
    const lo = Math.min(0, ...scored.map((t) => t.score));
    const hi = Math.max(1, ...scored.map((t) => t.score));
    const total = (state.jobs.get(id) || {}).evaluations_total || 0;
    const n = Math.max(1, trials.length, total);  // the x axis spans the whole job
    const x = (i) => pad + ((W - pad - 8) * i) / n;
    const y = (v) => H - pad - ((H - pad - 8) * (v - lo)) / (hi - lo || 1);
    let best = null;
    const points = [];
    trials.forEach((t, i) => {
      if (t.score !== null && (best === null || t.score > best)) best = t.score;
      if (best !== null) points.push(`${x(i + 1)},${y(best)}`);
      if (t.score !== null) nodes.push(svg("circle", { class: "trial", cx: x(i + 1), cy: y(t.score), r: 2.5 }));
    });
    nodes.push(svg("polyline", { class: "best", points: points.join(" ") }));
    const label = (text, ax, ay) => {
      const node = svg("text", { x: ax, y: ay });
      node.textContent = text;
      return node;
    };
    nodes.push(label(score(hi), 2, 12), label(score(lo), 2, H - pad), label(String(n), W - 30, H - 8));
  }
  plot.replaceChildren(...nodes);
}

async function startJob() {
  try {
    const job = await api("POST", "/api/jobs", $("#job-file").value, "application/yaml");
    showJob(job);
    select(job.job_id);
    notice(`started job ${job.job_id}`);
  } catch (error) {
    notice(error.message);
  }
}

// -- the supervision tree -----------------------------------------------------------------

const restartsSeen = new Map();

function treeNode(child) {
  const key = child.name || child.id;
  const restarts = el("span", { class: "restarts meta", textContent: `restarts ${child.restarts}` });
  restarts.dataset.count = child.restarts;
  if (restartsSeen.has(key) && restartsSeen.get(key) < child.restarts) restarts.classList.add("flash");
  restartsSeen.set(key, child.restarts);
  const bits = [el("span", { class: "label", textContent: child.name || child.id }),
    badge(child.state, "state"), restarts];
  if (child.mailbox !== null && child.mailbox !== undefined) {
    bits.push(el("span", { class: "meta", textContent: `mailbox ${child.mailbox}` }));
  }
  if (child.suspended) bits.push(badge("suspended", "state"));
  const item = el("li", { "data-node": key }, el("div", { class: "node" }, ...bits));
  if (child.supervisor) item.append(treeList(child.supervisor));
  return item;
}

function treeList(node) {
  return el("ul", {}, ...node.children.map(treeNode));
}

let treeTimer = null;
async function loadTree() {
  clearTimeout(treeTimer);
  try {
    const data = await api("GET", "/api/tree");
    const root = data.root;
    const head = el("div", { class: "node" },
      el("span", { class: "label", textContent: root.name || "root" }),
      el("span", { class: "meta", textContent:
        `${root.strategy} · ${root.restarts_in_window}/${root.max_restarts} restarts in ${root.max_seconds}s` }));
    $("#tree").replaceChildren(el("ul", {}, el("li", {}, head, treeList(root))));
    $("#runtime-name").textContent = data.runtime;
    $("#runtime-state").replaceChildren(badge(data.state, "state"));
  } catch (error) {
    notice(error.message);
  }
  treeTimer = setTimeout(loadTree, 5000);
}

// -- providers ----------------------------------------------------------------------------

function gauge(bucket) {
  if (!bucket) return el("span", { class: "muted", textContent: "–" });
  const used = Math.min(1, bucket.used);
  const fill = el("div", { class: "fill" });
  fill.style.width = (used * 100).toFixed(1) + "%";
  const bar = el("div", { class: "bar gauge" + (used > 0.8 ? " hot" : "") }, fill);
  return el("span", {}, bar, `${Math.round(bucket.level)}/${bucket.limit}`);
}

async function loadProviders() {
  try {
    const data = await api("GET", "/api/providers");
    const rows = data.providers.map((p) => {
      const bucket = (d) => p.buckets.find((b) => b.dimension === d);
      return el("tr", { "data-provider": p.name },
        el("td", { textContent: p.name }),
        el("td", {}, badge(p.healthy ? "ok" : "bad", "health")),
        el("td", {}, badge(p.breaker.state, "state")),
        el("td", {}, gauge(bucket("requests"))),
        el("td", {}, gauge(bucket("tokens"))),
        el("td", { class: "num", textContent: p.health.in_flight }),
        el("td", { class: "num", textContent: (p.health.error_rate * 100).toFixed(0) + "%" }),
        el("td", { class: "num", textContent: duration(p.health.latency_p50) }));
    });
    $("#providers tbody").replaceChildren(...rows);
  } catch (error) {
    notice(error.message);
  }
}

// -- the agent ----------------------------------------------------------------------------

function showReply(reply) {
  const item = state.chats.get(reply.id);
  if (!item) return;
  if (reply.state === "running") {
    item.querySelector(".text").textContent = `… routing to ${reply.pipeline || "a pipeline"}`;
    return;
  }
  const text = reply.state === "completed"
    ? (typeof reply.response === "string" ? reply.response : JSON.stringify(reply.response))
    : `failed: ${reply.error}`;
  item.className = "agent" + (reply.state === "completed" ? "" : " failed");
  item.dataset.state = reply.state;
  item.querySelector(".text").textContent = text;
  item.querySelector(".meta").textContent =
    `${reply.pipeline || "–"} · ${duration(reply.duration)}` +
    (reply.fallback_used ? " · fallback used" : "") + ` · ${reply.reason}`;
}

async function followReply(id) {
  try {
    const reply = await api("GET", `/api/agent/runs/${encodeURIComponent(id)}`);
    showReply(reply);
    return reply.state !== "running";
  } catch (error) {
    notice(error.message);
    return true;
  }
}

async function sendChat(event) {
  event.preventDefault();
  const message = $("#chat-input").value.trim();
  if (!message) return;
  $("#chat-log").append(el("li", { class: "user", textContent: message }));
  $("#chat-input").value = "";
  try {
    const reply = await api("POST", "/api/agent/chat", { message });
    const item = el("li", { class: "agent", "data-request": reply.id },
      el("span", { class: "text" }), el("span", { class: "meta" }));
    state.chats.set(reply.id, item);
    $("#chat-log").append(item);
    showReply(reply);
    // the event stream says when it is done; poll as well in case the stream is down
    const poll = async () => { if (!(await followReply(reply.id))) setTimeout(poll, 1000); };
    setTimeout(poll, 1000);
  } catch (error) {
    $("#chat-log").append(el("li", { class: "agent failed", textContent: error.message }));
  }
  $("#chat-log").scrollTop = $("#chat-log").scrollHeight;
}

// -- the event stream (fetch, so that the token travels in a header) ----------------------

function dispatch(kind, data) {
  if (kind === "hello") {
    $("#runtime-name").textContent = data.runtime;
  } else if (kind === "job") {
    showJob(data);
  } else if (kind === "restart") {
    clearTimeout(treeTimer);
    treeTimer = setTimeout(loadTree, 200);
  } else if (kind === "provider") {
    loadProviders();
  } else if (kind === "agent" && data.name === "chat.finished") {
    followReply(data.metadata.request);
  }
}

async function stream() {
  for (;;) {
    try {
      const response = await fetch("/api/events", { headers: headers({ Accept: "text/event-stream" }) });
      if (!response.ok) throw new Error("event stream: " + response.status);
      $("#stream").className = "badge stream-on";
      $("#stream").textContent = "live";
      refreshAll();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let kind = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) kind = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trimStart();
          }
          if (data) dispatch(kind, JSON.parse(data));
        }
      }
    } catch (error) {
      notice(error.message);
    }
    $("#stream").className = "badge stream-off";
    $("#stream").textContent = "offline";
    await new Promise((resolve) => setTimeout(resolve, 1500));
  }
}

function refreshAll() {
  loadJobs().catch((error) => notice(error.message));
  loadTree();
  loadProviders();
}

function main() {
  readToken();
  $("#token-form").hidden = Boolean(state.token);
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("#token-input").value.trim();
    sessionStorage.setItem("otpy-token", state.token);
    $("#token-form").hidden = true;
    refreshAll();
  });
  $("#chat-form").addEventListener("submit", sendChat);
  $("#job-start").addEventListener("click", startJob);
  setInterval(loadProviders, 2000);
  stream();
}

document.addEventListener("DOMContentLoaded", main);
