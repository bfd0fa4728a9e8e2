"use strict";
// Every table's figures from its Delta log, quarantined rows by reason, and the stream collector's health;
// refreshed every 5 s. `#<table>` in the address (the Dagster asset pages link there) highlights a table.
const { api, el, time, number, showError, table } = V;
const REFRESH_MS = 5000;

const bytes = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`);
const ago = (seconds) => (seconds === null || seconds === undefined ? "" : `${number(seconds)} s ago`);

function tableRow(t) {
  const linked = location.hash.slice(1) === t.table;
  if (!t.exists) {
    return el("tr", { id: t.table, "data-table": t.table, style: linked ? "background:#fff8db" : null },
      el("td", {}, t.table), el("td", { colspan: 7, class: "muted" }, "not written yet"));
  }
  const quarantined = t.quarantine.reduce((sum, q) => sum + q.rows, 0);
  const reasons = t.quarantine.map((q) => el("div", { class: "reason" }, `${q.rows.toLocaleString()} × ${q.reason}`));
  return el("tr", { id: t.table, "data-table": t.table, style: linked ? "background:#fff8db" : null },
    el("td", {}, el("b", {}, t.table)), el("td", { class: "num rows" }, t.rows.toLocaleString()),
    el("td", { class: "num version" }, t.version), el("td", { class: "num" }, `${t.files} / ${bytes(t.bytes)}`),
    el("td", { class: "newest" }, time(t.newest_data), el("div", { class: "muted" }, t.newest_data_column)),
    el("td", {}, t.last_commit_ms ? time(new Date(t.last_commit_ms).toISOString()) : ""),
    el("td", { class: "num quarantined" }, quarantined.toLocaleString()), el("td", {}, reasons));
}

// One panel per collector: PI_STREAM_SHARDS collectors each report from their own state directory. The first
// collector's figures keep the plain ids (stream-state, stream-gaps, ...), the others' carry their number.
function streamPanels(data) {
  const parts = [];
  if (data.shard_count > 1) {
    parts.push(el("p", { id: "stream-overall" }, `${data.shard_count} sharded collectors; stream ${data.flowing ? "flowing" : "not flowing"} — ${data.reason}`));
  }
  data.shards.forEach((s, i) => {
    const section = el("section", { "data-shard": s.shard }, streamPanel(s, i === 0 ? "" : `-${i + 1}`));
    if (data.shard_count > 1) section.prepend(el("h2", {}, `Shard ${s.shard}`));
    parts.push(section);
  });
  return parts;
}

function streamPanel(s, idSuffix) {
  const id = (name) => `${name}${idSuffix}`;
  const stateClass = s.flowing ? "ok" : s.state === "running" ? "warn" : "bad";
  const facts = [
    ["collector", el("span", { class: `state ${stateClass}`, id: id("stream-state") }, s.state), s.pid ? ` (pid ${s.pid})` : ""],
    ["flowing", el("span", { id: id("stream-flowing") }, s.flowing ? "yes" : "no"), ` — ${s.reason}`],
    ["values/s", el("span", { id: id("stream-rate") }, s.values_per_s === undefined ? "" : number(s.values_per_s))],
    ["rows committed", s.rows_committed === undefined ? "" : s.rows_committed.toLocaleString()],
    ["tags subscribed", s.streams ?? ""],
    ["open gaps", el("span", { id: id("stream-gaps") }, s.open_gaps ?? "")],
    ["stale tags", el("span", { id: id("stream-stale") }, s.stale_tags ?? ""), s.stale_poll_problem ? ` — ${s.stale_poll_problem}` : ""],
    ["state directory", el("span", { class: "muted" }, s.state_dir)],
  ].map(([k, ...v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)));
  const parts = [table(["", ""], facts)];
  if (s.channels && s.channels.length) {
    parts.push(el("h2", {}, "Channels"), table(["connection", "state", "tags", "messages", "reconnects", "last message", "last error"],
      s.channels.map((c) => el("tr", { "data-channel": c.name }, el("td", {}, c.name), el("td", {}, c.state), el("td", { class: "num" }, c.web_ids),
        el("td", { class: "num" }, c.messages), el("td", { class: "num" }, c.reconnects),
        el("td", {}, c.last_message_at ? time(new Date(c.last_message_at * 1000).toISOString()) : ""), el("td", {}, c.last_error || "")))));
  }
  if (s.gaps && s.gaps.length) {
    parts.push(el("h2", {}, "Open gaps"), table(["reason", "tags", "age", "attempts", "last error"],
      s.gaps.map((g) => el("tr", {}, el("td", {}, g.reason), el("td", { class: "num" }, g.streams), el("td", {}, ago(g.age_s)),
        el("td", { class: "num" }, g.attempts), el("td", {}, g.last_error || "")))));
  }
  if (s.stale && s.stale.length) {
    parts.push(el("h2", {}, "Stale tags (PI's own terms)"), table(["tag", "reason", "age", "detail"],
      s.stale.map((v) => el("tr", {}, el("td", {}, v.name), el("td", {}, v.reason), el("td", {}, v.age_s === null ? "" : `${v.age_s} s`), el("td", {}, v.detail)))));
  }
  if (s.problems && s.problems.length) {
    parts.push(el("h2", {}, "Problems"), el("ul", {}, s.problems.map((p) => el("li", { class: p.severity === "ERROR" ? "error" : "" }, `${p.severity}: ${p.message}`))));
  }
  return parts;
}

async function refresh() {
  const tables = document.getElementById("tables"), stream = document.getElementById("stream");
  try {
    const data = await api("/api/tables");
    tables.replaceChildren(table(["table", "rows", "Delta version", "files / size", "newest data (UTC)", "last commit (UTC)",
      "quarantined", "quarantine reasons"], data.tables.map(tableRow)));
    document.getElementById("tables-updated").textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
  } catch (error) { showError(tables, error); }
  try { stream.replaceChildren(...streamPanels(await api("/api/stream"))); } catch (error) { showError(stream, error); }
  setTimeout(refresh, REFRESH_MS);
}
refresh();
