"""`/feed` over a real uvicorn server and a real WebSocket client: replay since a time, one `live` marker, then rows
as they commit; selected by tag name and by WebID; digital/system states, same-timestamp values and flags intact."""

import json
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
from conftest import T0, since_rows
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from pi_platform.feed.websocket import feed_route

FIELDS = ("web_id", "name", "position", "value", "value_str", "digital_state", "digital_code", "is_system", "good",
          "questionable", "substituted", "annotated")


def _expected(rows) -> list[tuple]:
    """Rows as the message must carry them, built here from the table without the feed's own formatting code."""
    out = []
    for row in rows.to_pylist():
        value = row["value"]
        row["value"] = None if value is not None and value != value else value  # NaN travels as null
        out.append((row["timestamp"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"), *(row[f] for f in FIELDS)))
    return sorted(out, key=lambda r: (r[1], r[0], r[3]))


def _received(rows: list[dict]) -> list[tuple]:
    return sorted(((r["timestamp"], *(r[f] for f in FIELDS)) for r in rows), key=lambda r: (r[1], r[0], r[3]))


def _read_until(ws, done, timeout: float = 60.0) -> list[dict]:
    messages = []
    while not done(messages):
        messages.append(json.loads(ws.recv(timeout=timeout)))
    return messages


def test_websocket_replays_then_marks_live_then_follows_commits(lake, plant, serve):
    lake.commit_window(T0, T0 + timedelta(minutes=10))
    lake.commit_window(T0 + timedelta(minutes=10), T0 + timedelta(minutes=20))
    server = serve(Starlette(routes=[feed_route(lake.uri, poll_interval_s=0.1)]))
    digital, same_ts = plant.point_by_name("EDGE.DigitalSystem"), plant.point_by_name("EDGE.SameTs")
    since = T0 + timedelta(minutes=5)

    def selected(rows):
        rows = since_rows(rows, since)
        return rows.filter(pc.is_in(rows["web_id"], pa.array([digital.web_id, same_ts.web_id])))

    url = (f"ws://127.0.0.1:{server.port}/feed?since={since.isoformat().replace('+00:00', 'Z')}"
           f"&tag={digital.name}&tag={same_ts.web_id}")
    with connect(url, open_timeout=30) as ws:
        replay = _read_until(ws, lambda m: m and m[-1]["type"] == "live")
        assert [m["type"] for m in replay[:-1]] == ["values"] * (len(replay) - 1)
        replayed = [row for m in replay[:-1] for row in m["rows"]]
        truth = selected(lake.table())
        assert truth.num_rows > 20 and set(truth["is_system"].to_pylist()) == {False, True}
        assert _received(replayed) == _expected(truth)

        lake.commit_window(T0 + timedelta(minutes=20), T0 + timedelta(minutes=30))
        later = selected(lake.table()).num_rows - truth.num_rows
        assert later > 0
        live = _read_until(ws, lambda m: sum(len(x["rows"]) for x in m) >= later)
        assert {m["type"] for m in live} == {"values"}  # exactly one `live` marker, already received
        assert _received(replayed + [r for m in live for r in m["rows"]]) == _expected(selected(lake.table()))


def test_websocket_refuses_a_bad_since_in_one_line(lake, serve):
    lake.commit_window(T0, T0 + timedelta(minutes=1))
    server = serve(Starlette(routes=[feed_route(lake.uri)]))
    with connect(f"ws://127.0.0.1:{server.port}/feed?since=last-tuesday", open_timeout=30) as ws:
        message = json.loads(ws.recv(timeout=30))
        assert message["type"] == "error" and "last-tuesday" in message["message"] and "\n" not in message["message"]
        try:
            ws.recv(timeout=30)
            raise AssertionError("the socket stayed open after the error")
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1008
