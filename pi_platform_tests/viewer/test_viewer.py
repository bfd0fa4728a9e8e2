"""The viewer end to end over real data: materialised assets, a running collector and `pi-platform viewer` as a
subprocess (fixtures in conftest.py, built once for this module).

- The JSON endpoints against expectations computed independently from the Delta tables (whole-table reads
  filtered in plain Python) and from the simulated plant: paging is complete and in order, filters return exactly
  the matching rows, figures equal the tables', bad input is a 400 with one line.
- The four pages in headless Chromium, asserted on the DOM; each leaves a screenshot in the test's artefact
  directory (printed at the end; the README's images in docs/images/ come from there), and no page may throw a
  script error.
"""

import json
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone

import httpx
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from pi_platform import settings
from pi_platform.errors import ConfigError
from pi_platform.storage.tables import TABLES
from pi_platform_tests.batch import truth
from pi_platform_tests.batch.conftest import DAY
from pi_platform_tests.viewer.conftest import LIVE_TAGS

UTC = timezone.utc


def get(url: str, path: str, **params) -> dict:
    reply = httpx.get(f"{url}{path}", params=params, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def all_pages(url: str, path: str, limit: int, **params) -> tuple[list[dict], dict]:
    rows, offset = [], 0
    while True:
        page = get(url, path, offset=offset, limit=limit, **params)
        assert len(page["rows"]) <= limit and page["offset"] == offset
        rows += page["rows"]
        offset += limit
        if offset >= page["total"]:
            return rows, page


def newest_snapshot(plant_lake, table: str) -> list[dict]:
    rows = plant_lake.store.read(table).to_pylist()
    newest = max(r["snapshot_date"] for r in rows)
    return [r for r in rows if r["snapshot_date"] == newest]


def test_hierarchy_levels_page_completely_and_match_the_plant(viewer, plant_lake):
    stored = newest_snapshot(plant_lake, "af_elements")
    seen, parents = [], [None]
    while parents:  # walk the whole tree level by level through the API, two rows per page
        parent = parents.pop()
        rows, _ = all_pages(viewer, "/api/elements", 2, **({"parent": parent} if parent else {}))
        expected = sorted(r["path"] for r in stored if r["parent_path"] == parent)
        assert [r["path"] for r in rows] == expected
        seen += rows
        parents += [r["path"] for r in rows if r["has_children"]]
    assert sorted(r["path"] for r in seen) == sorted(r["path"] for r in stored)
    assert {(r["web_id"], r["path"], r["template_name"], r["parent_path"]) for r in seen} == truth.elements(plant_lake.plant)

    found = get(viewer, "/api/elements", search="tANK")
    assert [r["path"] for r in found["rows"]] == sorted(
        r["path"] for r in stored if "tank" in r["name"].lower() or "tank" in r["path"].lower())
    assert found["total"] >= 1


def test_attributes_carry_units_and_the_newest_stored_value(viewer, plant_lake, live_stream):
    attributes = newest_snapshot(plant_lake, "af_attributes")
    values = plant_lake.store.read("recorded_values").to_pylist() + plant_lake.store.read("stream_values").to_pylist()
    live_element = next(a["element_web_id"] for a in attributes if a["point_web_id"] == live_stream.web_ids["Tank00003.State"])
    batch_element = next(a["element_web_id"] for a in attributes
                         if a["point_web_id"] and a["element_web_id"] != live_element
                         and a["point_web_id"] not in live_stream.web_ids.values())
    for element in (batch_element, live_element):
        rows, _ = all_pages(viewer, "/api/attributes", 3, element=element)
        expected = sorted((a for a in attributes if a["element_web_id"] == element), key=lambda a: a["name"])
        assert [(r["name"], r["units"], r["point_web_id"]) for r in rows] == [
            (a["name"], a["units"], a["point_web_id"]) for a in expected]
        for row in rows:
            if not row["point_web_id"]:
                assert row["latest"] is None
                continue
            if row["point_web_id"] in live_stream.web_ids.values():
                assert row["latest"]["source"] == "stream_values"  # newer than any recorded day
                continue
            mine = [v for v in values if v["web_id"] == row["point_web_id"]]
            newest = max(mine, key=lambda v: (v["timestamp"], v["position"]))
            latest = row["latest"]
            assert datetime.fromisoformat(latest["timestamp"]) == newest["timestamp"]
            assert (latest["value"], latest["value_str"], latest["digital_state"], latest["good"]) == (
                newest["value"], newest["value_str"], newest["digital_state"], newest["good"])


def test_event_frames_filter_and_page_exactly(viewer, plant_lake):
    frames = plant_lake.store.read("event_frames").to_pylist()
    start = datetime(DAY.year, DAY.month, DAY.day, 6, tzinfo=UTC)
    end = start + timedelta(hours=30)

    def expected(**match) -> list[str]:
        chosen = [f for f in frames if f["start_time"] < end and (f["end_time"] is None or f["end_time"] >= start)
                  and all(f[k] == v for k, v in match.items())]
        return [f["web_id"] for f in sorted(chosen, key=lambda f: (f["start_time"], f["web_id"]))]

    window = {"start": start.isoformat(), "end": end.isoformat()}
    rows, page = all_pages(viewer, "/api/event-frames", 7, **window)
    assert [r["web_id"] for r in rows] == expected() and len(rows) > 7
    assert datetime.fromisoformat(page["start"]) == start and datetime.fromisoformat(page["end"]) == end
    paths = {r["web_id"]: r["path"] for r in newest_snapshot(plant_lake, "af_elements")}
    assert all(r["element_path"] == paths[r["primary_element_web_id"]] for r in rows)

    template, severity = Counter((f["template_name"], f["severity"]) for f in frames).most_common(1)[0][0]
    rows, _ = all_pages(viewer, "/api/event-frames", 5, template=template, severity=severity, **window)
    assert [r["web_id"] for r in rows] == expected(template_name=template, severity=severity) and rows
    element = rows[0]["primary_element_web_id"]
    rows, _ = all_pages(viewer, "/api/event-frames", 50, element=element, **window)
    assert [r["web_id"] for r in rows] == expected(primary_element_web_id=element)

    facets = get(viewer, "/api/event-frames/facets")
    assert facets["template_name"] == sorted({f["template_name"] for f in frames})
    assert facets["newest_day"] == max(f["start_time"] for f in frames).date().isoformat()


def test_alarm_kpis_per_day_and_bad_actors(viewer, plant_lake):
    kpis = sorted(plant_lake.store.read("alarm_kpis").to_pylist(), key=lambda r: r["event_date"])
    reply = get(viewer, "/api/alarm-kpis", start=DAY.isoformat(), end=(DAY + timedelta(days=2)).isoformat())
    assert [d["event_date"] for d in reply["days"]] == [k["event_date"].isoformat() for k in kpis] and len(kpis) == 2
    for day, kpi in zip(reply["days"], kpis):
        for key in ("alarm_count", "avg_per_10min", "peak_per_10min", "flood_share", "chattering_count",
                    "standing_count", "median_time_to_ack_s", "p90_time_to_ack_s"):
            assert day[key] == kpi[key], key
    summed: Counter = Counter()
    for kpi in kpis:
        summed.update({a["source"]: a["alarms"] for a in json.loads(kpi["top_bad_actors"])})
    top = sorted(summed.items(), key=lambda item: (-item[1], item[0]))[:10]
    assert [(a["source"], a["alarms"]) for a in reply["bad_actors"]] == top
    one = get(viewer, "/api/alarm-kpis", start=DAY.isoformat(), end=(DAY + timedelta(days=1)).isoformat())
    assert [d["event_date"] for d in one["days"]] == [DAY.isoformat()]


def test_tables_figures_and_quarantine_reasons_equal_the_lake(viewer, plant_lake, live_stream):
    reply = {t["table"]: t for t in get(viewer, "/api/tables")["tables"]}
    assert set(reply) == set(TABLES)
    quarantine = plant_lake.store.read("quarantine")
    assert quarantine.num_rows > 0  # the simulator injected per-value errors
    reasons = Counter(zip(quarantine["table_name"].to_pylist(), quarantine["reason"].to_pylist()))
    for name, figures in reply.items():
        if not plant_lake.store.exists(name):
            assert figures == {"table": name, "exists": False, "quarantine": []}
            continue
        if name == "stream_values":  # the collector commits on: figures of a version at least as new
            assert figures["rows"] > 0 and figures["version"] >= 0
            continue
        table = plant_lake.store.read(name)
        assert figures["rows"] == table.num_rows, name
        assert figures["version"] == DeltaTable(str(plant_lake.root / name)).version()
        newest = pc.max(table[figures["newest_data_column"]]).as_py()
        assert figures["newest_data"] == (newest.isoformat() if newest is not None else None), name
        assert {(name, q["reason"]): q["rows"] for q in figures["quarantine"]} == {
            k: n for k, n in reasons.items() if k[0] == name}


def test_stream_health_is_the_collectors(viewer, live_stream):
    stream = get(viewer, "/api/stream")  # one collector (PI_STREAM_SHARDS unset): the state directory itself
    assert stream["shard_count"] == 1 and [s["shard"] for s in stream["shards"]] == ["1/1"]
    health = stream["shards"][0]
    assert health["state_dir"] == stream["state_dir"] == str(live_stream.state_dir)
    status = live_stream.collector.status()
    assert health["state"] == "running" and health["pid"] == status["pid"]
    assert health["streams"] == len(live_stream.web_ids)
    assert health["open_gaps"] == len(status.get("gaps") or [])
    assert {c["name"] for c in health["channels"]} == {c["name"] for c in status["connections"]}
    assert health["values_per_s"] is not None and health["rows_committed"] > 0


def test_dagster_links_land_on_the_tables_page(viewer, plant_lake):
    for asset, link in plant_lake.viewer_links.items():
        assert link == f"{settings.viewer_url()}/tables/{asset}"
        reply = httpx.get(f"{viewer}/tables/{asset}", timeout=30)
        assert reply.status_code == 307
        landing = httpx.get(f"{viewer}{reply.headers['location']}", timeout=30)
        assert landing.status_code == 200 and "<header>" in landing.text
    assert set(plant_lake.viewer_links) >= {"af_elements", "recorded_values", "event_frames", "alarm_kpis"}


def test_bad_input_is_one_line(viewer):
    for params, words in (({"start": "yesterday-ish"}, "cannot read time"), ({"limit": "5000"}, "limit between"),
                          ({"start": "2024-03-05", "end": "2024-03-04"}, "end must be after start")):
        reply = httpx.get(f"{viewer}/api/event-frames", params=params, timeout=30)
        assert reply.status_code == 400 and words in reply.json()["error"]
        assert "\n" not in reply.json()["error"]
    assert httpx.get(f"{viewer}/api/attributes", timeout=30).status_code == 400
    assert httpx.get(f"{viewer}/tables/nope", timeout=30).status_code == 404

    for value in ("web", "70000"):  # a bad PI_VIEWER_PORT names itself
        with pytest.raises(ConfigError, match="PI_VIEWER_PORT"):
            settings.viewer_port({"PI_VIEWER_PORT": value})
    assert settings.viewer_url({"PI_VIEWER_URL": "https://plant.example.com/viewer/"}) == \
        "https://plant.example.com/viewer"

    port = viewer.rsplit(":", 1)[1]  # the port is taken: one line, exit status 2, no traceback
    taken = subprocess.run([sys.executable, "-m", "pi_platform.cli", "viewer", "--port", port],
                           capture_output=True, text=True, timeout=120)
    assert taken.returncode == 2
    assert taken.stderr.strip().count("\n") == 0 and "cannot listen" in taken.stderr and "Traceback" not in taken.stderr


# ------------------------------------------------------------------------------------------- pages in Chromium
@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("screenshots")
    yield folder
    print(f"\nviewer screenshots: {folder}")


def shown_time(ts: datetime) -> str:
    """A UTC time as the pages print it (milliseconds, no zone)."""
    return re.sub(r"(\.\d{3})\d*", r"\1", ts.isoformat(sep=" ")).removesuffix("+00:00")


def tree_node(path: str) -> str:
    """JavaScript finding the tree item of an AF path (paths are full of backslashes: compared, not selected)."""
    return f"[...document.querySelectorAll('#roots li')].find(li => li.dataset.path === {json.dumps(path)})"


def rows_of(browser, selector: str, cells: str) -> list[list[str]]:
    return browser.evaluate(f"[...document.querySelectorAll({selector!r})].map(tr => "
                            f"[...tr.querySelectorAll({cells!r})].map(td => td.textContent))")


def same_value(text: str, row: dict) -> bool:
    """The page shows a digital/system state by name, a string as is, a number to 4 decimals."""
    if row["digital_state"] is not None:
        return text == row["digital_state"]
    if row["value_str"] is not None:
        return text == row["value_str"]
    return float(text) == pytest.approx(row["value"], rel=1e-4, abs=1e-4)


def open_in_tree(browser, elements: dict[str, dict], element: dict) -> None:
    """Click each ancestor's toggle from the root down, like a user, then the element itself."""
    chain, parent = [], element["parent_path"]
    while parent:
        chain.insert(0, parent)
        parent = elements[parent]["parent_path"]
    for path in chain:
        browser.wait_for(tree_node(path), f"tree node {path}")
        browser.evaluate(f"{tree_node(path)}.querySelector(':scope > .toggle').click()")
    browser.wait_for(tree_node(element["path"]), f"{element['name']} in the tree")
    browser.evaluate(f"{tree_node(element['path'])}.querySelector(':scope > .node').click()")
    browser.wait_for(f"document.getElementById('element-title').textContent === {json.dumps(element['name'])} && "
                     "document.querySelectorAll('#attributes tr[data-attribute]').length", "its attributes")


def test_tree_page_opens_levels_shows_attribute_values_and_searches(browser, viewer, plant_lake, shots):
    elements = {e["path"]: e for e in newest_snapshot(plant_lake, "af_elements")}
    reactor = next(e for e in elements.values() if e["name"] == "Reactor00004")
    browser.open(f"{viewer}/")
    open_in_tree(browser, elements, reactor)

    attributes = sorted((a for a in newest_snapshot(plant_lake, "af_attributes")
                         if a["element_web_id"] == reactor["web_id"]), key=lambda a: a["name"])
    shown = rows_of(browser, "#attributes tr[data-attribute]", "td")
    assert [row[0] for row in shown] == [a["name"] for a in attributes]
    values = plant_lake.store.read("recorded_values").to_pylist()
    for row, attribute in zip(shown, attributes):
        name, value, units, when, _quality, source, point = row
        assert units == (attribute["units"] or "") and point == (attribute["point_name"] or "")
        if not attribute["point_web_id"]:
            assert value == "" and source == "static"
            continue
        newest = max((v for v in values if v["web_id"] == attribute["point_web_id"]),
                     key=lambda v: (v["timestamp"], v["position"]))
        assert same_value(value, newest), (name, value, newest)
        assert when == shown_time(newest["timestamp"]) and source == "recorded_values"
    assert {a["type"] for a in attributes} >= {"EnumerationValue", "String"}  # a state name and a string were shown

    browser.evaluate("const s = document.getElementById('search'); s.value = 'TANK'; "
                     "s.dispatchEvent(new Event('input'))")
    browser.wait_for("[...document.querySelectorAll('#roots > li')].every(li => /tank/i.test(li.dataset.path))",
                     "search results")
    found = browser.evaluate("[...document.querySelectorAll('#roots > li')].map(li => li.dataset.path)")
    assert found == sorted(p for p, e in elements.items() if "tank" in e["name"].lower() or "tank" in p.lower())

    browser.open("about:blank")  # a new document: the search above is left behind
    browser.open(f"{viewer}/#element={reactor['web_id']}")  # a link to an element opens it
    browser.wait_for(f"document.getElementById('element-path').textContent === {json.dumps(reactor['path'])}",
                     "the linked element")

    tank = next(e for e in elements.values() if e["name"] == "Tank00003")  # its tags stream: the README's picture
    browser.open("about:blank")
    browser.open(f"{viewer}/")
    open_in_tree(browser, elements, tank)
    browser.wait_for("[...document.querySelectorAll('#attributes td')].some(td => td.textContent === 'stream_values')",
                     "streamed values on the tank")
    browser.screenshot(shots / "viewer-tree.png")
    assert browser.errors == []


def test_events_page_draws_the_days_frames_and_kpis_and_filters(browser, viewer, plant_lake, shots):
    frames = plant_lake.store.read("event_frames").to_pylist()
    newest = max(f["start_time"] for f in frames)
    start = datetime(newest.year, newest.month, newest.day, tzinfo=UTC)
    end = start + timedelta(days=1)

    def expected(**match) -> list[str]:
        chosen = [f for f in frames if f["start_time"] < end and (f["end_time"] is None or f["end_time"] >= start)
                  and all(f[k] == v for k, v in match.items())]
        return [f["web_id"] for f in sorted(chosen, key=lambda f: (f["start_time"], f["web_id"]))][:100]

    browser.open(f"{viewer}/events")
    browser.wait_for("document.querySelectorAll('#timeline-svg rect[data-frame]').length && "
                     "document.querySelectorAll('#kpi-rate rect').length", "timeline and KPI charts")
    listed = browser.evaluate("[...document.querySelectorAll('#frames tr[data-frame]')].map(tr => tr.dataset.frame)")
    drawn = browser.evaluate("[...document.querySelectorAll('#timeline-svg rect[data-frame]')].map(r => r.dataset.frame)")
    assert listed == expected() and sorted(drawn) == sorted(listed)
    lanes = browser.evaluate("[...document.querySelectorAll('#timeline-svg text[data-lane]')].map(t => t.dataset.lane)")
    paths = {e["web_id"]: e["path"] for e in newest_snapshot(plant_lake, "af_elements")}
    by_id = {f["web_id"]: f for f in frames}
    assert lanes == sorted({paths[by_id[w]["primary_element_web_id"]] for w in listed})

    kpis = sorted(plant_lake.store.read("alarm_kpis").to_pylist(), key=lambda k: k["event_date"])
    averages = browser.evaluate("[...document.querySelectorAll('#kpi-rate rect[data-series=average]')]"
                                ".map(r => [r.dataset.label, +r.dataset.value])")
    assert averages == [[k["event_date"].isoformat(), pytest.approx(k["avg_per_10min"])] for k in kpis]
    standing = browser.evaluate("[...document.querySelectorAll('#kpi-standing rect')].map(r => +r.dataset.value)")
    assert standing == [k["standing_count"] for k in kpis]
    assert browser.evaluate("document.querySelectorAll('#bad-actors tbody tr').length") == min(10, len(
        {a for k in kpis for a in re.findall(r'"source":"((?:[^"\\]|\\.)*)"', k["top_bad_actors"])}))
    browser.screenshot(shots / "viewer-events.png")

    template = Counter(by_id[w]["template_name"] for w in listed).most_common(1)[0][0]
    browser.evaluate(f"const f = document.getElementById('filters'); f.elements.template.value = {template!r}; "
                     "f.requestSubmit()")
    want = expected(template_name=template)
    browser.wait_for(f"[...document.querySelectorAll('#frames tr[data-frame]')].length === {len(want)} && "
                     f"[...document.querySelectorAll('#frames td:nth-child(2)')].every(td => td.textContent === {template!r})",
                     "the template filter")
    assert browser.evaluate("[...document.querySelectorAll('#frames tr[data-frame]')].map(tr => tr.dataset.frame)") == want
    assert browser.errors == []


def test_ingestion_page_shows_tables_quarantine_and_stream_health(browser, viewer, plant_lake, live_stream, shots):
    browser.open(f"{viewer}/ingestion")
    browser.wait_for("document.querySelector('tr[data-table=recorded_values] .rows') && "
                     "document.getElementById('stream-state')", "tables and stream")
    for table in ("af_elements", "pi_points", "recorded_values", "event_frames", "alarm_kpis"):
        rows = plant_lake.store.read(table).num_rows
        assert browser.evaluate(f"document.querySelector('tr[data-table={table}] .rows').textContent") == f"{rows:,}"
    quarantine = plant_lake.store.read("quarantine")
    quarantined = Counter(quarantine["table_name"].to_pylist())["recorded_values"]
    assert quarantined > 0
    assert browser.evaluate("document.querySelector('tr[data-table=recorded_values] .quarantined').textContent") == \
        f"{quarantined:,}"
    reasons = browser.evaluate("[...document.querySelectorAll('tr[data-table=recorded_values] .reason')]"
                               ".map(d => d.textContent)")
    counted = Counter(r for t, r in zip(quarantine["table_name"].to_pylist(), quarantine["reason"].to_pylist())
                      if t == "recorded_values")
    assert sorted(reasons) == sorted(f"{n:,} × {reason}" for reason, n in counted.items())

    browser.wait_for("document.getElementById('stream-state').textContent === 'running'", "the running collector")
    status = live_stream.collector.status()
    assert browser.evaluate("document.getElementById('stream-gaps').textContent") == str(len(status.get("gaps") or []))
    channels = browser.evaluate("[...document.querySelectorAll('tr[data-channel]')].map(tr => tr.dataset.channel)")
    assert sorted(channels) == sorted(c["name"] for c in status["connections"])
    browser.screenshot(shots / "viewer-ingestion.png")
    assert browser.errors == []


def test_live_page_replays_then_follows_commits_with_states_by_name(browser, viewer, plant_lake, live_stream, shots):
    tags = list(LIVE_TAGS[:2])  # a number and a digital state
    browser.open(f"{viewer}/live?since=*-10m&tag={tags[0]}&tag={tags[1]}")
    browser.wait_for("document.getElementById('live-status').dataset.live === 'true' && "
                     "document.querySelectorAll('#live-table tr[data-tag]').length", "the replay and the switch to live")
    first = browser.evaluate("document.querySelector('#live-table tr[data-tag]').dataset.time")
    browser.wait_for(f"document.querySelector('#live-table tr[data-tag]').dataset.time > {first!r}",
                     "a value committed after the page went live", timeout=120)

    shown = browser.evaluate("[...document.querySelectorAll('#live-table tr[data-tag]')].map(tr => "
                             "[tr.dataset.tag, tr.dataset.time, tr.querySelector('.value').textContent, "
                             "tr.querySelector('.flags').textContent])")
    committed = {}
    for row in plant_lake.store.read("stream_values").to_pylist():
        committed.setdefault((row["name"], row["timestamp"]), []).append(row)
    assert {name for name, *_ in shown} == set(tags)
    for name, when, value, flags in shown:
        rows = committed[(name, datetime.fromisoformat(when.replace("Z", "+00:00")))]
        assert any(same_value(value, row) for row in rows), (name, when, value)
        if all(row["questionable"] for row in rows):
            assert "questionable" in flags
    states = {row["digital_state"] for (name, _), rows in committed.items() if name == tags[1] for row in rows}
    assert {value for name, _, value, _ in shown if name == tags[1]} <= states  # by name, never a code
    chart = f"document.querySelector('#live-chart svg[data-tag=\"{tags[0]}\"] polyline')"
    assert browser.evaluate(f"{chart}.getAttribute('points').split(' ').length") > 1
    browser.screenshot(shots / "viewer-live.png")
    assert browser.errors == []
