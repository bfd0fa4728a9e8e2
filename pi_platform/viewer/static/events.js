"use strict";
// Event frames on a timeline (one lane per element) with template/severity/time filters, and the daily alarm
// KPIs as bar charts against the ISA-18.2 / EEMUA 191 targets.
const { api, el, time, number, showError, table, pager, svg, bars } = V;
const PAGE = 100;
const SEVERITY_COLORS = { Critical: "#c92a2a", Major: "#e8590c", Minor: "#f08c00", Warning: "#fab005",
  Information: "#1c7ed6", None: "#868e96" };
const DAY_MS = 86400000;

const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);

// One lane per element; frames that overlap inside a lane are stacked on sub-rows so none hides another.
function timeline(rows, startMs, endMs) {
  const width = 1100, labelW = 190, barH = 12, top = 18;
  const x = (ms) => labelW + ((Math.min(Math.max(ms, startMs), endMs) - startMs) / (endMs - startMs)) * (width - labelW - 10);
  const lanes = new Map();
  for (const row of [...rows].sort((a, b) => Date.parse(a.start_time) - Date.parse(b.start_time))) {
    const key = row.element_path || "(no element)";
    if (!lanes.has(key)) lanes.set(key, []);
    const ends = lanes.get(key), from = Date.parse(row.start_time), to = row.end_time ? Date.parse(row.end_time) : endMs;
    let sub = ends.findIndex((end) => end <= from);
    if (sub < 0) { sub = ends.length; ends.push(to); } else ends[sub] = to;
    row._sub = sub;
  }
  const names = [...lanes.keys()].sort(), offsets = new Map();
  let y = top;
  for (const name of names) { offsets.set(name, y); y += Math.max(1, lanes.get(name).length) * barH + 8; }
  const height = y + 22, parts = [];
  for (let tick = 0; tick <= 8; tick += 1) {
    const ms = startMs + (tick * (endMs - startMs)) / 8;
    parts.push(svg("line", { class: "axis", x1: x(ms), x2: x(ms), y1: top - 4, y2: height - 20, "stroke-dasharray": "2 4" }),
      svg("text", { x: x(ms) - 14, y: height - 6 }, new Date(ms).toISOString().slice(endMs - startMs > DAY_MS ? 5 : 11, 16).replace("T", " ")));
  }
  names.forEach((name) => parts.push(svg("text", { x: 4, y: offsets.get(name) + 10, "data-lane": name }, name.split("\\").pop()),
    svg("line", { class: "axis", x1: labelW, x2: width - 10, y1: offsets.get(name) - 4, y2: offsets.get(name) - 4, opacity: 0.3 })));
  for (const row of rows) {
    const from = Date.parse(row.start_time), to = row.end_time ? Date.parse(row.end_time) : endMs;
    parts.push(svg("rect", { x: x(from), y: offsets.get(row.element_path || "(no element)") + row._sub * barH, width: Math.max(2, x(to) - x(from)),
      height: barH - 2, fill: SEVERITY_COLORS[row.severity] || "#868e96", opacity: 0.85, "data-frame": row.web_id },
      svg("title", {}, `${row.name} (${row.template_name}, ${row.severity}) ${time(row.start_time)} → ${row.end_time ? time(row.end_time) : "open"}`)));
  }
  const legend = Object.entries(SEVERITY_COLORS).map(([name, color], i) => svg("text", { x: labelW + i * 95, y: 12, fill: color }, `■ ${name}`));
  return svg("svg", { id: "timeline-svg", width, height, viewBox: `0 0 ${width} ${height}` }, legend, parts);
}

async function showFrames(offset = 0) {
  const form = new FormData(document.getElementById("filters"));
  const params = Object.fromEntries(form.entries());
  const where = document.getElementById("frames"), lane = document.getElementById("timeline");
  try {
    const data = await api("/api/event-frames", { ...params, offset, limit: PAGE });
    const startMs = Date.parse(data.start), endMs = Date.parse(data.end);
    lane.replaceChildren(timeline(data.rows, startMs, endMs));
    const rows = data.rows.map((r) => el("tr", { "data-frame": r.web_id },
      el("td", {}, r.name), el("td", {}, r.template_name), el("td", { class: "severity" }, r.severity),
      el("td", {}, (r.element_path || "").split("\\").pop()), el("td", {}, time(r.start_time)),
      el("td", {}, r.end_time ? time(r.end_time) : "open"),
      el("td", {}, r.can_be_acknowledged ? (r.is_acknowledged ? `acknowledged by ${r.acknowledged_by}` : "not acknowledged") : "")));
    where.replaceChildren(table(["frame", "template", "severity", "element", "start (UTC)", "end", "acknowledgement"], rows),
      pager(data, showFrames));
  } catch (error) { showError(where, error); lane.replaceChildren(); }
}

async function showKpis() {
  const form = new FormData(document.getElementById("kpi-filters"));
  const last = form.get("end");
  const where = document.getElementById("kpis");
  try {
    const data = await api("/api/alarm-kpis", { start: form.get("start"), end: last ? isoDay(Date.parse(last) + DAY_MS) : "" });
    const days = data.days, labels = days.map((d) => d.event_date);
    const pick = (key, scale = 1) => days.map((d) => (d[key] === null ? null : d[key] * scale));
    const minutes = (x) => `${number(x)} min`;
    where.replaceChildren(
      bars({ id: "kpi-count", title: "alarms per day", labels, series: [{ name: "alarms", values: pick("alarm_count") }] }),
      bars({ id: "kpi-rate", title: "alarms per 10 min (target ≤ 1 average)", labels, target: 1,
        series: [{ name: "average", values: pick("avg_per_10min") }, { name: "peak", values: pick("peak_per_10min") }] }),
      bars({ id: "kpi-flood", title: "share of 10-min windows in flood, % (target < 1 %)", labels, target: 1,
        series: [{ name: "flood %", values: pick("flood_share", 100) }] }),
      bars({ id: "kpi-chattering", title: "chattering sources", labels, series: [{ name: "chattering", values: pick("chattering_count") }] }),
      bars({ id: "kpi-standing", title: "standing alarms (active ≥ 24 h at day end)", labels,
        series: [{ name: "standing", values: pick("standing_count") }] }),
      bars({ id: "kpi-ack", title: "time to acknowledge, minutes", labels, format: minutes,
        series: [{ name: "median", values: pick("median_time_to_ack_s", 1 / 60) }, { name: "p90", values: pick("p90_time_to_ack_s", 1 / 60) }] }));
    if (!days.length) where.replaceChildren(el("p", { class: "muted" }, "no alarm_kpis rows in these days"));
    const actors = data.bad_actors.map((a) => el("tr", {}, el("td", {}, a.source), el("td", { class: "num" }, a.alarms)));
    document.getElementById("bad-actors").replaceChildren(table(["source (template @ element)", "alarms"], actors));
  } catch (error) { showError(where, error); }
}

async function start() {
  const facets = await api("/api/event-frames/facets");
  const filters = document.getElementById("filters"), kpi = document.getElementById("kpi-filters");
  for (const [name, values] of [["template", facets.template_name], ["severity", facets.severity]]) {
    filters.elements[name].append(...values.map((v) => el("option", { value: v }, v)));
  }
  const params = new URLSearchParams(location.search);
  const newest = Date.parse(`${facets.newest_day}T00:00:00Z`);
  filters.elements.start.value = params.get("start") || `${facets.newest_day}T00:00:00Z`;
  filters.elements.end.value = params.get("end") || `${isoDay(newest + DAY_MS)}T00:00:00Z`;
  for (const name of ["template", "severity"]) if (params.get(name)) filters.elements[name].value = params.get(name);
  kpi.elements.end.value = facets.newest_day;
  kpi.elements.start.value = isoDay(newest - 13 * DAY_MS);
  filters.addEventListener("submit", (event) => { event.preventDefault(); showFrames(0); });
  kpi.addEventListener("submit", (event) => { event.preventDefault(); showKpis(); });
  await Promise.all([showFrames(0), showKpis()]);
}
start().catch((error) => showError(document.getElementById("frames"), error));
