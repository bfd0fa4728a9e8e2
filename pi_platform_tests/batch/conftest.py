"""Batch fixtures: a small simulator with a frozen clock, a temp Delta lake, and a runner that materialises
assets through Dagster's real execution machinery (in process, with an ephemeral instance)."""

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from pi_platform.defs.definitions import defs
from pi_platform.defs.resources import DeltaStorageResource, PIWebAPIResource
from pi_platform.simulator.server import SimulatorServer
from pi_platform.storage import DeltaStore

NOW = datetime(2024, 3, 6, 12, 0, tzinfo=timezone.utc)  # simulator clock: every test day is complete
DAY = date(2024, 3, 3)
ALL_ASSETS = ("af_elements", "af_attributes", "pi_points", "recorded_values", "event_frames", "alarms", "alarm_kpis")


def day_bounds(day: date, days: int = 1) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return start, start + timedelta(days=days)


class Runner:
    """Materialise a selection of the real code location's assets for a day or a day range."""

    def __init__(self, simulator: SimulatorServer, root: Path, instance: dg.DagsterInstance) -> None:
        self.simulator = simulator
        self.store = DeltaStore(str(root))
        self.instance = instance
        self.resources = {
            "pi_webapi": PIWebAPIResource(overrides={"url": simulator.base_url, "max_requests_per_second": "1000"}),
            "delta": DeltaStorageResource(root=str(root)),
        }

    def materialize(
        self, assets: Sequence[str] = ALL_ASSETS, *, day: date = DAY, days: int = 1, run_config: dict | None = None,
        raise_on_error: bool = True,
    ) -> dg.ExecuteInProcessResult:
        selected = [defs.get_assets_def(name) for name in assets]
        last = day + timedelta(days=days - 1)
        kwargs: dict = {}
        if days == 1:
            kwargs["partition_key"] = day.isoformat()
        else:
            kwargs["tags"] = {
                "dagster/asset_partition_range_start": day.isoformat(),
                "dagster/asset_partition_range_end": last.isoformat(),
            }
        return dg.materialize(
            selected, resources=self.resources, instance=self.instance, run_config=run_config,
            raise_on_error=raise_on_error, **kwargs,
        )

    def table(self, name: str) -> pa.Table:
        return self.store.read(name)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def small_simulator(make_simulator) -> SimulatorServer:
    return make_simulator(n_tags=20, now=NOW)


@pytest.fixture
def plain_simulator(make_simulator) -> SimulatorServer:
    """Without the edge-case tags (one of them holds 86,400 values a day): for tests about run mechanics."""
    return make_simulator(n_tags=20, now=NOW, edge_tags=False)


@pytest.fixture
def runner(small_simulator, tmp_path, instance) -> Runner:
    return Runner(small_simulator, tmp_path / "lake", instance)


@pytest.fixture
def make_runner(tmp_path, instance) -> Callable[[SimulatorServer, str], Runner]:
    return lambda simulator, name: Runner(simulator, tmp_path / name, instance)
