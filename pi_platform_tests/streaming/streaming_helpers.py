"""Streaming test helpers: a real TCP proxy that can stall live connections, a webhook sink, ground-truth comparison;
the collector subprocess and table readers come from pi_platform.bench.chaos (shared with `bench chaos`).

The proxy makes a "stalled channel" real: the socket stays open and nothing flows (not even pongs), which is
what a hung PI Web API data pipe or a half-dead network path looks like to the collector.
"""

import asyncio
import http.server
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from pi_platform.bench.chaos import CollectorProcess, compare, stream_rows, table_values, utc, wait_until
from pi_platform.defs.streaming.resources import StreamCollectorResource
from pi_platform.defs.streaming.sensors import SensorCursor, stream_collector_sensor
from pi_platform.simulator.clock import to_us
from pi_platform.client import PIWebAPIConfig
from pi_platform.streaming.collector import Collector, CollectorConfig
from pi_platform.streaming.messages import STREAM_SCHEMA
from pi_platform.streaming.state import CURSORS_FILE, read_json, write_subscription

__all__ = ["CollectorProcess", "RunningCollector", "StallingProxy", "Ticker", "WebhookSink", "assert_equals_pi",
           "corrected_plant_collector",
           "doubled_keys", "freeze_and_converge", "group_rows", "heal_and_drain", "mismatches", "newest_per_stream",
           "plant_groups", "sink_rows", "stream_rows", "table_values", "utc", "verification_problems", "wait_until"]


class StallingProxy:
    """Forwards 127.0.0.1:port to a target; `stall_open()` freezes every channel (WebSocket) open right now.

    REST connections are left alone: a stalled channel is the fault under test, not the client's timeouts."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self._pipes: list[dict] = []
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def start(self) -> "StallingProxy":
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        future.result(10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        pipe = {"stalled": asyncio.Event(), "writers": (writer, up_writer), "channel": False}
        self._pipes.append(pipe)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if src is reader and b"/channel" in data[:2048] and data.startswith(b"GET "):
                        pipe["channel"] = True
                    if pipe["stalled"].is_set():
                        continue  # swallow: the peer sees an open, silent socket
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                if not pipe["stalled"].is_set():
                    dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def stall_open(self) -> int:
        async def stall() -> int:
            live = [p for p in self._pipes if p["channel"] and not p["stalled"].is_set()]
            for pipe in live:
                pipe["stalled"].set()
            return len(live)

        return asyncio.run_coroutine_threadsafe(stall(), self.loop).result(5)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for pipe in self._pipes:
                for writer in pipe["writers"]:
                    writer.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)




def mismatches(plant, delta_root: Path | str, windows: dict[str, tuple[int, int]], now: datetime,
               storage_options: dict[str, str] | None = None) -> list[str]:
    """Streams whose rows in `stream_values` differ from what the simulator holds over their window."""
    table = table_values(delta_root, storage_options)
    bad = []
    for web_id, (start_us, end_us) in windows.items():
        got = stream_rows(table, web_id, start_us, end_us)
        truth = plant.recorded(web_id, utc(start_us), utc(end_us), now=now)
        truth = stream_rows(truth.cast(got.schema), web_id, start_us, end_us)
        if not got.equals(truth):
            bad.append(f"{plant.point_by_webid(web_id).name}: {got.num_rows} rows, truth {truth.num_rows}")
    return bad


def doubled_keys(delta_root: Path) -> int:
    """Rows beyond the first per key (web_id, timestamp, position): must always be 0."""
    table = table_values(delta_root)
    keys = table.group_by(["web_id", "timestamp", "position"]).aggregate([("position", "count")])
    return table.num_rows - keys.num_rows


class WebhookSink:
    """A real HTTP server collecting alert POSTs."""

    def __init__(self) -> None:
        received: list[dict] = []
        self.received = received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alert"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Ticker:
    """Evaluates the sensor like the daemon does: cursor carried over, events recorded on the instance."""

    def __init__(self, instance: dg.DagsterInstance, collector: StreamCollectorResource) -> None:
        self.instance = instance
        self.collector = collector
        self.cursor: str | None = None
        self.pids: set[int] = set()

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor,
                                          resources={"stream_collector": self.collector})
        result = stream_collector_sensor(context)
        for event in result.asset_events:
            self.instance.report_runless_asset_event(event)
        self.cursor = result.cursor
        cursor = SensorCursor.parse(self.cursor)
        self.pids.update(p for p in [cursor.pid, *(s.get("pid") for s in cursor.shards.values())] if p is not None)
        return result

    def check(self, name: str) -> dg.AssetCheckEvaluation:
        (evaluation,) = [e for e in self.tick().asset_events
                         if isinstance(e, dg.AssetCheckEvaluation) and e.check_name == name]
        return evaluation

    def kill_all(self) -> None:
        for pid in self.pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


T0 = datetime(2024, 3, 3, 12, 0, tzinfo=timezone.utc)


def sink_rows(values: list[tuple[int, float, bool]], web_id: str = "W1") -> pa.Table:
    """STREAM_SCHEMA rows of one stream at T0 + seconds, position 0, with the given value and Substituted flag."""
    n = len(values)
    return pa.table(
        {
            "web_id": [web_id] * n,
            "name": ["TAG1"] * n,
            "timestamp": pa.array([T0.timestamp() * 1e6 + s * 1e6 for s, _, _ in values]).cast(pa.int64()).cast(
                pa.timestamp("us", tz="UTC")),
            "position": pa.array([0] * n, pa.int32()),
            "value": [v for _, v, _ in values],
            "value_str": pa.nulls(n, pa.string()),
            "digital_state": pa.nulls(n, pa.string()),
            "digital_code": pa.nulls(n, pa.int32()),
            "is_system": [False] * n,
            "good": [True] * n,
            "questionable": [False] * n,
            "substituted": [sub for _, _, sub in values],
            "annotated": [False] * n,
            "units": ["bar"] * n,
            "received_at": pa.array([T0] * n, pa.timestamp("us", tz="UTC")),
        },
        schema=STREAM_SCHEMA,
    )


class RunningCollector:
    """A real Collector on its own event loop thread, so the test can poll and change the simulator meanwhile."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.error: BaseException | None = None
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self.loop, self.stop_event = asyncio.get_running_loop(), asyncio.Event()
            self._running.set()
            await self.collector.run(self.stop_event)

        try:
            asyncio.run(main())  # closes what the run leaves open (async generators, executor) like any service
        except BaseException as exc:  # noqa: BLE001 - surfaced by stop()
            self.error = exc
        finally:
            self._running.set()

    def start(self) -> "RunningCollector":
        self._thread.start()
        self._running.wait(10)
        return self

    def status(self) -> dict[str, Any]:
        """Taken on the collector's loop: never a view of a half-updated batch."""
        async def take() -> dict[str, Any]:
            return self.collector.status()

        assert self.loop is not None and self._thread.is_alive(), f"collector stopped: {self.error!r}"
        return asyncio.run_coroutine_threadsafe(take(), self.loop).result(10)

    def stop(self, timeout: float = 30) -> None:
        if self._thread.is_alive() and self.loop is not None and self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "collector did not stop"
        if self.error is not None:
            raise self.error


def newest_per_stream(lake, web_ids: list[str]) -> dict[str, int]:
    table = table_values(lake)
    newest = table.group_by("web_id").aggregate([("timestamp", "max")])
    found = dict(zip(newest["web_id"].to_pylist(), newest["timestamp_max"].cast(pa.int64()).to_pylist(), strict=True))
    return {w: found.get(w, -1) for w in web_ids}


def verification_problems(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in status["problems"] if p["kind"] == "verification"]


_GROUP_COLUMNS = ["position", "value", "value_str", "digital_state", "is_system", "substituted"]


def group_rows(table: pa.Table, keys: set[tuple[str, int]]) -> dict[tuple[str, int], list[tuple]]:
    """The rows of each (web_id, ts) group in `keys`, as comparable tuples in position order."""
    out: dict[tuple[str, int], list[tuple]] = {key: [] for key in keys}
    rows = table.sort_by([("web_id", "ascending"), ("timestamp", "ascending"), ("position", "ascending")])
    stamps = rows["timestamp"].cast(pa.int64()).to_pylist()
    columns = [rows[name].to_pylist() for name in _GROUP_COLUMNS]
    for i, (web_id, ts) in enumerate(zip(rows["web_id"].to_pylist(), stamps, strict=True)):
        if (web_id, ts) in out:
            out[(web_id, ts)].append(tuple(c[i] for c in columns))
    return out


def plant_groups(plant, keys: set[tuple[str, int]], frozen: datetime) -> dict[tuple[str, int], list[tuple]]:
    found: dict[tuple[str, int], list[tuple]] = {}
    for web_id in {w for w, _ in keys}:
        stamps = [ts for w, ts in keys if w == web_id]
        recorded = plant.recorded(web_id, utc(min(stamps)), utc(max(stamps)), now=frozen)
        found.update(group_rows(recorded, {k for k in keys if k[0] == web_id}))
    return found


def freeze_and_converge(plant, lake, admin, state_dir: Path, web_ids: list[str], runner: RunningCollector,
                        timeout: float = 15) -> tuple[dict[str, tuple[int, int]], datetime]:
    """Freeze the plant so "what PI holds" stops moving, wait until the table holds all of it with no late group
    waiting; the windows compared (each stream's data start to the frozen now) and the frozen time."""
    frozen = plant.clock.now()
    admin.post("/clock", json={"now": frozen.isoformat()}).raise_for_status()
    since = {w: int(v) for w, v in read_json(state_dir / CURSORS_FILE).items()}
    windows = {w: (since[w], to_us(frozen)) for w in web_ids}
    wait_until(lambda: (f := compare(plant, lake, windows, frozen))["committed"] == f["expected"]
               and f["differing"] == 0 and runner.status()["late_groups"]["waiting"] == 0, timeout,
               "convergence to ground truth")
    return windows, frozen


def assert_equals_pi(plant, lake, windows: dict[str, tuple[int, int]], frozen: datetime) -> None:
    """The table holds exactly what PI holds over `windows`: nothing missing, doubled, extra or differing, every
    correction applied."""
    figures = compare(plant, lake, windows, frozen)
    assert figures["expected"] > 0
    assert (figures["missing"], figures["doubled"], figures["extra"], figures["differing"]) == (0, 0, 0, 0), figures
    assert figures["corrections_applied"] == figures["corrections_expected"] > 0
    assert doubled_keys(lake) == 0


def heal_and_drain(admin, runner: RunningCollector, fault: str, timeout: float) -> None:
    """Clear a REST fault of the simulator and wait until the late groups it held back are verified and the
    verification problem is gone."""
    admin.post("/faults", json={fault: 0.0}).raise_for_status()
    wait_until(lambda: (s := runner.status())["late_groups"]["waiting"] == 0 and not verification_problems(s),
               timeout, "the late groups to drain after REST heals")


def corrected_plant_collector(make_simulator, tmp_path: Path, client: dict[str, Any] | None = None
                              ) -> tuple[Any, list[str], Path, Path, RunningCollector]:
    """A simulator whose six regular tags send 2 values/s, a tenth of them corrected 5 s-5 min later (~1 correction/s
    across the streams), and a running Collector subscribed from 5 minutes back (so corrections of backfilled values
    arrive live): (simulator, web_ids, state_dir, lake, runner), once live with a correction verified."""
    sim = make_simulator(n_tags=8, values_per_minute=120, correction_rate=0.1)
    web_ids = [p.web_id for p in sim.plant.points if not p.name.startswith("EDGE.")][:6]
    state_dir, lake = tmp_path / "state", tmp_path / "lake"
    write_subscription(state_dir, web_ids, start="*-5m")
    # Late groups verified as soon as seen (no settling): the verification reads themselves are under test.
    config = CollectorConfig(state_dir=state_dir, delta_root=str(lake), batch_max_age_s=0.2, verify_settle_s=0.0)
    runner = RunningCollector(Collector(config, PIWebAPIConfig(url=sim.base_url, **(client or {})))).start()
    try:
        wait_until(lambda: (s := runner.status())["commits"] >= 3 and not s["gaps"] and s["verified_groups"] >= 1, 20,
                   "live streams with corrections verified")
    except BaseException:
        runner.stop()
        raise
    return sim, web_ids, state_dir, lake, runner


def run_until_queue_empty(collector: Collector, timeout: float, observe: Callable[[], None] | None = None
                          ) -> dict[str, Any]:
    """Run `collector` until no late group waits or is being verified, calling `observe` between looks; then stop it
    (a drain) and return the status it had when the queue emptied."""
    async def until_drained() -> dict[str, Any]:
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        try:
            deadline = time.monotonic() + timeout
            while len(collector._pending) or collector._round is not None:  # noqa: SLF001 - test observes progress
                assert time.monotonic() < deadline and not task.done(), \
                    f"the queue did not empty: {collector.status()['late_groups']}, {collector.status()['problems']}"
                if observe is not None:
                    observe()
                await asyncio.sleep(0.05)
            return collector.status()
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    return asyncio.run(until_drained())
