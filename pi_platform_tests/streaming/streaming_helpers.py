"""Streaming test helpers: a real TCP proxy that can stall live connections, a collector subprocess, a webhook sink.

The proxy makes a "stalled channel" real: the socket stays open and nothing flows (not even pongs), which is
what a hung PI Web API data pipe or a half-dead network path looks like to the collector.
"""

import asyncio
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from pi_platform.streaming.state import read_status
from pi_platform.value_columns import VALUE_SCHEMA, sort_values


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




class CollectorProcess:
    """`pi-platform stream` as a real subprocess in its own session (so kill -9 hits only it)."""

    def __init__(self, state_dir: Path, delta_root: Path, url: str, extra: list[str]) -> None:
        self.state_dir = state_dir
        self.command = [sys.executable, "-m", "pi_platform.cli", "stream", "--state-dir", str(state_dir),
                        "--delta-root", str(delta_root), "--url", url, *extra]
        self.process: subprocess.Popen | None = None
        self.log = state_dir.parent / "collector.log"

    def start(self) -> "CollectorProcess":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    def kill9(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def status(self) -> dict:
        return read_status(self.state_dir) or {}




def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.25) -> object:
    """Poll until `predicate()` is truthy (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def table_values(delta_root: Path | str, storage_options: dict[str, str] | None = None) -> pa.Table:
    """stream_values of a local lake directory or an object-store root (with its delta-rs options)."""
    uri = f"{str(delta_root).rstrip('/')}/stream_values"
    if not DeltaTable.is_deltatable(uri, storage_options=storage_options):
        return VALUE_SCHEMA.empty_table()
    table = DeltaTable(uri, storage_options=storage_options).to_pyarrow_table()
    return table.select(VALUE_SCHEMA.names).cast(VALUE_SCHEMA)


def stream_rows(table: pa.Table, web_id: str, start_us: int, end_us: int) -> pa.Table:
    ts = table["timestamp"].cast(pa.int64())
    mask = pc.and_(pc.equal(table["web_id"], web_id),
                   pc.and_(pc.greater_equal(ts, start_us), pc.less_equal(ts, end_us)))
    return sort_values(table.filter(mask))


def utc(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, timezone.utc)


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
