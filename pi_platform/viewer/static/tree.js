"use strict";
// AF hierarchy: the tree opens one level at a time (paged); an element shows its attributes with units and
// the newest stored value. `#element=<web_id>` in the address opens an element directly.
const { api, el, time, value, flags, showError, table, pager } = V;
const PAGE = 200;

function elementNode(element) {
  const children = el("ul", { class: "tree" });
  const toggle = el("span", { class: "toggle" }, element.has_children ? "▸" : "");
  let opened = false;
  toggle.addEventListener("click", async () => {
    if (!element.has_children) return;
    opened = !opened;
    toggle.textContent = opened ? "▾" : "▸";
    if (opened) await loadLevel(children, { parent: element.path }, 0);
    else children.replaceChildren();
  });
  const label = el("span", { class: "node", onclick: () => select(element) }, element.name, " ",
    el("span", { class: "muted" }, element.template_name || ""));
  return el("li", { "data-path": element.path, "data-web-id": element.web_id }, toggle, label, children);
}

// One page of a level (or of search results) into `list`; a "more" item fetches the next page.
async function loadLevel(list, params, offset) {
  try {
    const data = await api("/api/elements", { ...params, offset, limit: PAGE });
    document.getElementById("snapshot").textContent = data.snapshot_date ? `AF snapshot of ${data.snapshot_date}` : "no af_elements snapshot in the lake yet";
    if (offset === 0) list.replaceChildren();
    list.querySelector(":scope > li.more")?.remove();
    for (const element of data.rows) {
      const node = elementNode(element);
      if (params.search) node.querySelector(".node").append(el("div", { class: "muted" }, element.path));
      list.append(node);
    }
    if (offset + data.rows.length < data.total) {
      list.append(el("li", { class: "more" }, el("button", { onclick: () => loadLevel(list, params, offset + PAGE) },
        `${data.total - offset - data.rows.length} more…`)));
    }
  } catch (error) { showError(list, error); }
}

async function select(element, offset = 0) {
  document.querySelectorAll(".node.selected").forEach((n) => n.classList.remove("selected"));
  document.querySelector(`li[data-web-id="${element.web_id}"] > .node`)?.classList.add("selected");
  history.replaceState(null, "", `#element=${encodeURIComponent(element.web_id)}`);
  const title = document.getElementById("element-title"), where = document.getElementById("attributes");
  if (element.name) {
    title.textContent = element.name;
    document.getElementById("element-path").textContent = element.path;
  }
  try {
    const data = await api("/api/attributes", { element: element.web_id, offset, limit: PAGE });
    if (!element.name && data.rows.length) {  // opened from the address: name it from its attributes
      document.getElementById("element-path").textContent = data.rows[0].element_path;
      title.textContent = data.rows[0].element_path.split("\\").pop();
    }
    const rows = data.rows.map((a) => el("tr", { "data-attribute": a.name },
      el("td", {}, a.name), el("td", { class: "value num" }, value(a.latest)), el("td", {}, a.units || ""),
      el("td", { class: "time" }, a.latest ? time(a.latest.timestamp) : ""), el("td", { class: "flags" }, flags(a.latest)),
      el("td", { class: "muted" }, a.latest ? a.latest.source : a.point_name ? "no stored value" : a.data_reference || "static"),
      el("td", { class: "muted" }, a.point_name || "")));
    where.replaceChildren(table(["attribute", "latest value", "units", "value time (UTC)", "quality", "from", "PI point"], rows),
      pager(data, (next) => select(element, next)));
  } catch (error) { showError(where, error); }
}

function start() {
  const tree = el("ul", { class: "tree", id: "roots" });
  document.getElementById("tree").append(tree);
  let timer = null;
  document.getElementById("search").addEventListener("input", (event) => {
    clearTimeout(timer);
    const text = event.target.value.trim();
    timer = setTimeout(() => loadLevel(tree, text ? { search: text } : {}, 0), 250);
  });
  loadLevel(tree, {}, 0);
  const linked = () => new URLSearchParams(location.hash.slice(1)).get("element");
  if (linked()) select({ web_id: linked() });
  window.addEventListener("hashchange", () => { if (linked()) select({ web_id: linked() }); });
}
start();
