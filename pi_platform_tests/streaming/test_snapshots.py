"""The collector's snapshot watch against the real simulator over real sockets, its clock moved by the admin API:
a healthy plant with flat tags raises nothing for hours of PI time, and each kind of failure PI shows is named.

The channel side is the ideal channel (the newest archive event the simulator holds), except where a test
freezes it to make a channel silent; the collector's own channel is covered by the sensor test.
"""

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from pi_platform.client import PIWebAPIClient, PIWebAPIConfig
from pi_platform.pitime import format_time, to_us
from pi_platform.simulator.plant import Plant
from pi_platform.streaming.snapshots import SnapshotOptions, SnapshotWatch
from pi_platform.streaming.staleness import (
    CHANNEL_SILENT,
    INTERFACE_STATE,
    STOPPED,
    UNREADABLE,
    StalenessPolicy,
    StalenessReport,
    judge,
)

T0 = datetime(2024, 5, 2, 6, 0, tzinfo=timezone.utc)
POLICY = StalenessPolicy()


class Watched:
    """A SnapshotWatch on a simulator whose frozen clock the test moves; `at(t)` polls and judges at PI time t."""

    def __init__(self, sim, channel: Callable[[], dict[str, int]] | None = None) -> None:
        self.sim = sim
        self.plant: Plant = sim.plant
        self.points = [p for p in self.plant.points if not p.edge]
        self.names = {p.web_id: p.name for p in self.points}
        self.watch = SnapshotWatch(PIWebAPIConfig(url=sim.base_url), SnapshotOptions(max_requests_per_s=1000.0),
                                   lambda: list(self.names), channel or self.ideal_channel)

    def ideal_channel(self) -> dict[str, int]:
        now = self.plant.clock.now_us()
        newest = {}
        for point in self.points:
            block = self.plant.block(point, now - 9 * 3_600_000_000, now, now)  # compmax 8 h: an event is in it
            if len(block):
                newest[point.web_id] = int(block.ts[-1])
        return newest

    def admin(self, path: str, body: dict) -> None:
        httpx.post(f"{self.sim.admin_url}/{path}", json=body).raise_for_status()

    def at(self, when: datetime) -> StalenessReport:
        self.admin("clock", {"now": format_time(when)})

        async def poll() -> dict:
            async with PIWebAPIClient(self.watch.pi) as client:
                return await self.watch.poll(client)

        document = asyncio.run(poll())
        assert document["server_time"] == pytest.approx(when.timestamp())  # judged on PI's clock, not ours
        return judge(document, POLICY, now=document["polled_at"])

    def flagged(self, report: StalenessReport) -> dict[str, str]:
        return {v.name: v.reason for v in report.verdicts}


@pytest.fixture
def plant_sim(make_simulator):
    return make_simulator(n_tags=200, edge_tags=False, event_frames=False, flat_fraction=0.5, now=T0)


def test_a_healthy_plant_with_flat_tags_raises_nothing_for_nine_hours(make_simulator):
    sim = make_simulator(n_tags=100, edge_tags=False, event_frames=False, flat_fraction=0.5, now=T0)
    watched = Watched(sim)
    flat = [p for p in watched.points if p.flat]
    assert len(flat) > 30
    # Flat tags' archives (so their channels) are silent for hours, their snapshots move every excmax.
    assert any(len(sim.plant.block(p, to_us(T0), to_us(T0 + timedelta(hours=3)), to_us(T0 + timedelta(hours=3))))
               <= 1 for p in flat)
    for minutes in range(0, 9 * 60 + 1, 29):
        report = watched.at(T0 + timedelta(minutes=minutes))
        assert report.severity is None, (minutes, [v.as_dict() for v in report.verdicts][:5])
    assert report.tags == 100


def test_dead_interfaces_stuck_and_deleted_tags_are_named(plant_sim):
    watched = Watched(plant_sim)
    by_source = {s: {p.name for p in points} for s, points in plant_sim.plant.interfaces().items()}
    assert watched.at(T0).severity is None
    watched.admin("interfaces/Area0001/fail", {"mode": "silent"})
    watched.admin("interfaces/Area0002/fail", {"mode": "io_timeout"})
    quick = watched.flagged(watched.at(T0 + timedelta(minutes=8)))
    # io_timeout: the I/O Timeout state counts once it held 0.75 x excmax (450 s on flat tags, 900 s on the rest).
    assert quick and set(quick.values()) == {INTERFACE_STATE} and set(quick) < by_source["Area0002"]
    later = watched.flagged(watched.at(T0 + timedelta(minutes=22)))  # past 1200 s excmax + 60 s margin
    assert {n for n, r in later.items() if r == STOPPED} == by_source["Area0001"]
    assert {n for n, r in later.items() if r == INTERFACE_STATE} == by_source["Area0002"]

    watched.admin("interfaces/Area0001/restore", {})
    watched.admin("interfaces/Area0002/restore", {})
    stuck, deleted = watched.points[0].name, watched.points[-1].name
    watched.admin("streams/pause", {"names": [stuck]})
    watched.admin("tags/delete", {"names": [deleted]})
    after = watched.flagged(watched.at(T0 + timedelta(minutes=25)))
    assert after[deleted] == UNREADABLE and stuck not in after  # the stuck tag is not late yet
    # Restored interfaces send again (flat tags at once, the others at their next scan); the stuck tag is late.
    assert watched.flagged(watched.at(T0 + timedelta(minutes=60))) == {deleted: UNREADABLE, stuck: STOPPED}


def test_a_channel_silent_while_the_snapshot_moves_is_flagged(make_simulator):
    sim = make_simulator(n_tags=40, edge_tags=False, event_frames=False, flat_fraction=0.5, now=T0)
    frozen: dict[str, int] = {}
    watched = Watched(sim, channel=lambda: frozen)
    victim = next(p for p in watched.points if p.flat)
    frozen.update(watched.ideal_channel())
    frozen[victim.web_id] = to_us(T0)  # its channel delivers nothing from now on
    for hours in range(0, 9):
        frozen.update({w: t for w, t in watched.ideal_channel().items() if w != victim.web_id})
        assert watched.at(T0 + timedelta(hours=hours)).severity is None
    frozen.update({w: t for w, t in watched.ideal_channel().items() if w != victim.web_id})
    report = watched.at(T0 + timedelta(hours=8, minutes=30))  # snapshot > compmax 8 h + excmax + 300 s ahead
    assert watched.flagged(report) == {victim.name: CHANNEL_SILENT}
    assert report.severity == "WARN"
