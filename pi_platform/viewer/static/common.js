"use strict";
// Helpers the four pages share: JSON calls, DOM building, value and time formatting, SVG charts, paging.
const V = (() => {
  async function api(path, params = {}) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      for (const item of [].concat(value)) if (item !== undefined && item !== null && item !== "") query.append(key, item);
    }
    const reply = await fetch(`${path}?${query}`);
    const body = await reply.json();
    if (!reply.ok) throw new Error(body.error || `${path}: HTTP ${reply.status}`);
    return body;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    return node;
  }

  // "2024-03-03T12:00:01.123456+00:00" -> "2024-03-03 12:00:01.123"
  const time = (iso) => (iso ? String(iso).replace("T", " ").replace(/(\.\d{3})\d*/, "$1").replace(/\+00:00$|Z$/, "") : "");
  const number = (x) => (x === null || x === undefined ? "" : Math.abs(x) >= 1e5 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(4) : +x.toFixed(4));

  // A stored value as PI shows it: a digital or system state by its name, a string, or the number.
  function value(row) {
    if (!row) return "";
    if (row.digital_state !== null && row.digital_state !== undefined) return row.digital_state;
    if (row.value_str !== null && row.value_str !== undefined) return row.value_str;
    return number(row.value);
  }

  function flags(row) {
    if (!row) return [];
    const found = [];
    if (row.good === false) found.push(el("span", { class: "flag bad" }, row.is_system ? "system state" : "bad"));
    if (row.questionable) found.push(el("span", { class: "flag questionable" }, "questionable"));
    if (row.substituted) found.push(el("span", { class: "flag substituted" }, "substituted"));
    if (row.annotated) found.push(el("span", { class: "flag" }, "annotated"));
    return found;
  }

  function showError(where, error) {
    where.replaceChildren(el("p", { class: "error" }, String(error.message || error)));
  }

  function table(headers, rows) {
    return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))), el("tbody", {}, rows));
  }

  // "rows 1-100 of 2,345" with previous/next buttons that call back with the new offset.
  function pager(data, onOffset) {
    const last = Math.min(data.offset + data.limit, data.total);
    return el("div", { class: "pager" },
      el("button", { disabled: data.offset === 0 ? "" : null, onclick: () => onOffset(Math.max(0, data.offset - data.limit)) }, "‹ previous"),
      el("span", { class: "muted" }, data.total ? `rows ${data.offset + 1}–${last} of ${data.total.toLocaleString()}` : "no rows"),
      el("button", { disabled: last >= data.total ? "" : null, onclick: () => onOffset(data.offset + data.limit) }, "next ›"));
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    for (const child of children.flat()) if (child) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }
  const COLORS = ["#1f6feb", "#e8590c", "#2f9e44", "#ae3ec9", "#c92a2a", "#1098ad", "#f08c00", "#5c7cfa"];

  // Grouped bars: one group per label, one bar per series; a dashed line marks `target` when given.
  function bars({ id, title, labels, series, width = 340, height = 190, target, format = number }) {
    const pad = { l: 44, r: 8, t: 22, b: 34 };
    const peak = Math.max(1e-9, target || 0, ...series.flatMap((s) => s.values.map((v) => v || 0)));
    const plotW = width - pad.l - pad.r, plotH = height - pad.t - pad.b;
    const groupW = plotW / Math.max(1, labels.length), barW = Math.max(2, (groupW * 0.8) / series.length);
    const y = (v) => pad.t + plotH - (plotH * (v || 0)) / peak;
    const parts = [svg("text", { x: 4, y: 14, "font-weight": "600" }, title),
      svg("line", { class: "axis", x1: pad.l, y1: pad.t + plotH, x2: width - pad.r, y2: pad.t + plotH }),
      svg("text", { x: 2, y: pad.t + 8 }, format(peak)), svg("text", { x: 2, y: pad.t + plotH }, "0")];
    labels.forEach((label, i) => {
      series.forEach((s, j) => {
        const x = pad.l + i * groupW + groupW * 0.1 + j * barW, v = s.values[i] || 0;
        parts.push(svg("rect", { x, y: y(v), width: barW - 1, height: pad.t + plotH - y(v), fill: s.color || COLORS[j],
          "data-label": label, "data-series": s.name, "data-value": v }, svg("title", {}, `${label} ${s.name}: ${format(v)}`)));
      });
      if (labels.length <= 16 || i % Math.ceil(labels.length / 16) === 0) {
        parts.push(svg("text", { x: pad.l + i * groupW + 2, y: height - 18 }, String(label).slice(5)));
      }
    });
    if (target) parts.push(svg("line", { x1: pad.l, x2: width - pad.r, y1: y(target), y2: y(target), stroke: "#c62828", "stroke-dasharray": "4 3" }));
    series.forEach((s, j) => parts.push(svg("text", { x: pad.l + j * 110, y: height - 4, fill: s.color || COLORS[j] }, `■ ${s.name}`)));
    return svg("svg", { id, width, height, viewBox: `0 0 ${width} ${height}` }, parts);
  }

  return { api, el, time, number, value, flags, showError, table, pager, svg, bars, COLORS };
})();
