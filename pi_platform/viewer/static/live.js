"use strict";
// Live monitor: pick tags; the feed's WebSocket (/feed) replays their committed values since `since` and then
// pushes new commits. A chart per tag and a table of the newest values show quality flags, and digital states
// by name. The picked tags and `since` live in the address (?tag=...&since=...), so a view can be shared.
const { api, el, time, value, flags, number, showError, table, svg, COLORS } = V;
const KEEP = 3000;  // values kept per tag for the chart
const TABLE_ROWS = 25;

const params = new URLSearchParams(location.search);
const state = { tags: params.getAll("tag"), since: params.get("since") || "*-10m", series: new Map(), recent: [],
  received: 0, live: false, socket: null, drawn: false };

function connect() {
  state.socket?.close();
  state.series = new Map(); state.recent = []; state.received = 0; state.live = false;
  draw();
  if (!state.tags.length) return;
  const query = new URLSearchParams({ since: state.since });
  state.tags.forEach((t) => query.append("tag", t));
  const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/feed?${query}`);
  state.socket = socket;
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "values") {
      for (const row of message.rows) {
        const key = row.name || row.web_id;
        if (!state.series.has(key)) state.series.set(key, []);
        const points = state.series.get(key);
        points.push(row);
        if (points.length > KEEP) points.splice(0, points.length - KEEP);
        state.recent.push(row);
      }
      state.received += message.rows.length;
      if (state.recent.length > TABLE_ROWS) state.recent.splice(0, state.recent.length - TABLE_ROWS);
    } else if (message.type === "live") {
      state.live = true;
    } else if (message.type === "error") {
      document.getElementById("live-status").replaceChildren(el("span", { class: "error" }, message.message || message.error));
      return;
    }
    schedule();
  };
  socket.onclose = () => { if (state.socket === socket) status("connection closed: reload the page to reconnect", "error"); };
}

function status(text, cls = "muted") {
  const node = document.getElementById("live-status");
  node.className = cls; node.textContent = text;
}

let pending = false;
function schedule() { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; draw(); }); } }

function chart(name, rows, color) {
  const width = 640, height = 110, pad = { l: 58, r: 8, t: 16, b: 16 };
  const numeric = rows.filter((r) => r.digital_state === null && r.value !== null && r.value_str === null);
  const times = rows.map((r) => Date.parse(r.timestamp));
  const t0 = Math.min(...times), t1 = Math.max(t0 + 1000, ...times);
  const x = (ms) => pad.l + ((ms - t0) / (t1 - t0)) * (width - pad.l - pad.r);
  const parts = [svg("text", { x: 2, y: 12, "font-weight": "600" }, name),
    svg("line", { class: "axis", x1: pad.l, x2: width - pad.r, y1: height - pad.b, y2: height - pad.b })];
  if (numeric.length) {
    const values = numeric.map((r) => r.value), lo = Math.min(...values), hi = Math.max(lo + 1e-9, ...values);
    const y = (v) => pad.t + (1 - (v - lo) / (hi - lo)) * (height - pad.t - pad.b);
    parts.push(svg("text", { x: 2, y: pad.t + 8 }, number(hi)), svg("text", { x: 2, y: height - pad.b }, number(lo)),
      svg("polyline", { fill: "none", stroke: color, "stroke-width": 1.5,
        points: numeric.map((r) => `${x(Date.parse(r.timestamp)).toFixed(1)},${y(r.value).toFixed(1)}`).join(" ") }));
  }
  let previous = null;  // digital states, strings, system states: a mark and the name where it changes
  for (const row of rows) {
    if (row.digital_state === null && row.value_str === null) continue;
    const shown = value(row), at = x(Date.parse(row.timestamp));
    if (shown === previous) continue;
    parts.push(svg("line", { x1: at, x2: at, y1: pad.t, y2: height - pad.b, stroke: row.good ? "#868e96" : "#c62828", "stroke-dasharray": "3 2" }),
      svg("text", { x: at + 3, y: pad.t + 12, fill: row.good ? "#495057" : "#c62828" }, shown));
    previous = shown;
  }
  parts.push(svg("text", { x: pad.l, y: height - 2 }, time(new Date(t0).toISOString()).slice(11, 19)),
    svg("text", { x: width - pad.r - 50, y: height - 2 }, time(new Date(t1).toISOString()).slice(11, 19)));
  return svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, "data-tag": name }, parts);
}

function draw() {
  document.getElementById("picked").replaceChildren(...state.tags.map((t) => el("span", {}, t, " ",
    el("a", { href: "#", onclick: (e) => { e.preventDefault(); pick(state.tags.filter((x) => x !== t)); } }, "×"))));
  if (!state.tags.length) { status("pick tags to watch"); document.getElementById("live-chart").replaceChildren(); document.getElementById("live-table").replaceChildren(); return; }
  status(`${state.live ? "live" : "replaying committed values"} — ${state.received.toLocaleString()} values since ${state.since}`,
    state.live ? "state ok" : "muted");
  document.getElementById("live-status").dataset.live = state.live;
  const order = (name) => (state.tags.includes(name) ? state.tags.indexOf(name) : state.tags.length);  // as picked
  const series = [...state.series.entries()].sort(([a], [b]) => order(a) - order(b));
  document.getElementById("live-chart").replaceChildren(...series.map(([name, rows], i) => chart(name, rows, COLORS[i % COLORS.length])));
  const rows = state.recent.slice().reverse().map((r) => el("tr", { "data-tag": r.name, "data-time": r.timestamp },
    el("td", {}, time(r.timestamp)), el("td", {}, r.name), el("td", { class: "value num" }, value(r)), el("td", { class: "flags" }, flags(r))));
  document.getElementById("live-table").replaceChildren(table(["time (UTC)", "tag", "value", "quality"], rows));
}

function pick(tags) {
  state.tags = [...new Set(tags)];
  const query = new URLSearchParams({ since: state.since });
  state.tags.forEach((t) => query.append("tag", t));
  history.replaceState(null, "", `?${query}`);
  connect();
}

async function search(text) {
  const where = document.getElementById("tag-results");
  try {
    const data = await api("/api/points", { search: text, limit: 50 });
    where.replaceChildren(table(["", "tag", "type"], data.rows.map((p) => el("tr", { "data-point": p.name },
      el("td", {}, el("button", { onclick: () => pick([...state.tags, p.name]) }, "watch")),
      el("td", {}, p.name, el("div", { class: "muted" }, [p.descriptor, p.engineering_units].filter(Boolean).join(", "))),
      el("td", {}, p.point_type, p.digital_set ? el("div", { class: "muted" }, p.digital_set) : "")))),
      el("p", { class: "muted" }, `${data.total.toLocaleString()} tags match`));
  } catch (error) { showError(where, error); }
}

let timer = null;
document.getElementById("tag-search").addEventListener("input", (event) => {
  clearTimeout(timer);
  timer = setTimeout(() => search(event.target.value.trim()), 250);
});
search("");
connect();
