"""Feed fixtures: a lake whose `stream_values` is written through the real sink with the simulator plant's ground
truth (digital and system states, same-timestamp values, flags), and an ASGI app served by uvicorn on a free
loopback port. Everything started here is stopped at teardown."""

import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import uvicorn
from deltalake import DeltaTable

from pi_platform.simulator.plant import Plant
from pi_platform.storage import DeltaStore
from pi_platform.streaming.messages import STREAM_SCHEMA
from pi_platform.streaming.sink import StreamSink
from pi_platform.value_columns import VALUE_KEY

T0 = datetime(2024, 6, 1, 8, 0, tzinfo=timezone.utc)


class Lake:
    """`stream_values` under `root`, committed in exactly-once micro-batches like the collector does."""

    def __init__(self, root: Path, plant: Plant) -> None:
        self.store = DeltaStore(str(root))
        self.plant = plant
        self.uri = self.store.uri("stream_values")
        self.sink = StreamSink(self.store, "pi-platform-stream:feed-test")
        self.batches = 0

    def truth(self, start: datetime, end: datetime) -> pa.Table:
        """Every point's recorded values in [start, end), as stream rows (received_at = end)."""
        parts = [self.plant.recorded(p.web_id, start, end, now=end + timedelta(days=1)) for p in self.plant.points]
        rows = pa.concat_tables(parts)
        rows = rows.filter(pc.less(rows["timestamp"], pa.scalar(end, rows.schema.field("timestamp").type)))
        received = pa.array([end] * rows.num_rows, STREAM_SCHEMA.field("received_at").type)
        return rows.append_column("received_at", received)

    def commit(self, rows: pa.Table, may_exist: np.ndarray | None = None) -> int:
        self.batches += 1
        return self.sink.commit(rows.cast(STREAM_SCHEMA), version=self.batches, may_exist=may_exist).delta_version

    def commit_window(self, start: datetime, end: datetime) -> int:
        return self.commit(self.truth(start, end))

    def table(self, version: int | None = None) -> pa.Table:
        return DeltaTable(self.uri, version=version).to_pyarrow_table().select(STREAM_SCHEMA.names).cast(STREAM_SCHEMA)

    def version(self) -> int:
        return DeltaTable(self.uri).version()


@pytest.fixture
def plant() -> Plant:
    return Plant(seed=7, n_tags=8, values_per_minute=6.0)


@pytest.fixture
def lake(tmp_path: Path, plant: Plant) -> Lake:
    return Lake(tmp_path / "lake", plant)


def last_per_key(rows: pa.Table) -> pa.Table:
    """What a consumer holds after applying delivered rows in order: the last row per key wins."""
    order = pa.array(np.arange(rows.num_rows))
    latest = rows.append_column("_order", order).group_by(list(VALUE_KEY), use_threads=False).aggregate(
        [("_order", "max")])
    return rows.take(latest["_order_max"])


def canonical(rows: pa.Table, schema: pa.Schema = STREAM_SCHEMA) -> pa.Table:
    return rows.sort_by([(c, "ascending") for c in VALUE_KEY]).select(schema.names).cast(schema)


def since_rows(rows: pa.Table, since: datetime) -> pa.Table:
    return rows.filter(pc.greater_equal(rows["timestamp"], pa.scalar(since, rows.schema.field("timestamp").type)))


class AppServer:
    """An ASGI app under a real uvicorn server in a thread, on a port bound before it starts."""

    def __init__(self, app: object) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def start(self) -> "AppServer":
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start within 30 s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(30)
        self._socket.close()


@pytest.fixture
def serve() -> Iterator:
    servers: list[AppServer] = []

    def start(app: object) -> AppServer:
        servers.append(AppServer(app).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


class Follower:
    """A `Feed` iterated in a thread, keeping every batch, until `stop()`; an error in the feed is kept too."""

    def __init__(self, feed) -> None:
        self.feed = feed
        self.batches: list = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            for batch in self.feed.batches(self._stop):
                self.batches.append(batch)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    def start(self) -> "Follower":
        self._thread.start()
        return self

    def caught_up(self) -> bool:
        return any(b.kind == "caught_up" for b in self.batches)

    def reached(self, version: int) -> bool:
        """Every commit up to `version` is delivered (or the feed failed)."""
        if self.error is not None:
            return True
        last = self.batches[-1].position if self.batches else None
        return last is not None and last.version > version and not last.replay

    def rows(self) -> pa.Table:
        return pa.concat_tables([b.rows for b in self.batches]).cast(STREAM_SCHEMA)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def wait_for(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)
