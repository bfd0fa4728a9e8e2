"""Late groups settle before their verification read (`CollectorConfig.verify_settle_s`, `pending.py`): a round takes
the read windows (one second of PI time) of the groups that have waited the settle, with every group waiting in them,
however recent; a window with no settled group waits. So corrections to one second that came within the settle cost
one read and one rewrite together.

Driven through the real collector against the simulator (its clock frozen, so PI's content is a constant), with the
queue written beforehand and no channel: only the queue brings PI's values in, and the simulator's request log shows
each read the collector made."""

import asyncio
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import pandas as pd
import pyarrow as pa
from streaming_helpers import doubled_keys, group_rows, plant_groups, run_until_queue_empty, table_values, utc

from pi_platform.client import PIWebAPIConfig
from pi_platform.streaming import ahead
from pi_platform.streaming.collector import Collector, CollectorConfig
from pi_platform.streaming.pending import VERIFY_SPAN_US, PendingGroups
from pi_platform.streaming.state import write_subscription

_SETTLE_S = 5.0


def _recorded_reads(admin: httpx.Client) -> list[set[str]]:
    """The WebIds of each recorded-values read the simulator served, in order."""
    reads = []
    for request in admin.get("/requests").json()["requests"]:
        if request["path"].endswith("/recorded"):
            query = parse_qs(request["query"])
            path_id = request["path"].split("/streams/")[-1].split("/")[0] if "/streams/" in request["path"] else None
            reads.append(set(query.get("webId") or query.get("webid") or []) | ({path_id} if path_id else set()))
    return reads


def _value_in(plant, web_id: str, start_us: int, now: datetime) -> int:
    """The first archived value time of `web_id` in the second from `start_us`."""
    stamps = plant.recorded(web_id, utc(start_us), utc(start_us + VERIFY_SPAN_US - 1), now=now)["timestamp"]
    return stamps.cast(pa.int64()).to_pylist()[0]


def _one_group_waiting(make_simulator, tmp_path: Path) -> tuple[Any, datetime, tuple[str, int], Path, Path]:
    """A simulator with its clock frozen and one archived group ten minutes back, queued a minute ago, with no channel:
    (simulator, its now, the group, state dir, lake)."""
    now = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    sim = make_simulator(n_tags=4, values_per_minute=600, correction_rate=0.3, now=now)
    tag = next(p.web_id for p in sim.plant.points if not p.name.startswith("EDGE."))
    group = (tag, _value_in(sim.plant, tag, int((now - timedelta(seconds=600)).timestamp() * 1e6), now))
    state_dir, lake = tmp_path / "state", tmp_path / "lake"
    state_dir.mkdir()
    write_subscription(state_dir, [])
    queued = PendingGroups(state_dir)
    queued.add(pd.MultiIndex.from_tuples([group], names=["web_id", "ts"]), time.time() - 60)
    queued.save()
    return sim, now, group, state_dir, lake


def _channel_value(group: tuple[str, int], *, substituted: bool) -> bytes:
    """A channel message carrying a value at `group`'s key other than PI's archived one."""
    tag, stamp = group[0], utc(group[1]).isoformat().replace("+00:00", "Z")
    return orjson.dumps({"Items": [{"WebId": tag, "Name": tag, "Items": [
        {"Timestamp": stamp, "Value": 123.25, "Good": True, "Substituted": substituted}]}]})


def test_a_round_waits_for_the_settle_and_reads_each_second_once_for_all_its_groups(make_simulator, tmp_path):
    now = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    sim = make_simulator(n_tags=4, values_per_minute=600, correction_rate=0.3, now=now)  # frozen: PI does not move
    plant = sim.plant
    tags = [p.web_id for p in plant.points if not p.name.startswith("EDGE.")][:3]
    # Three archived values ten minutes back (every correction made): two tags in one second, a third two seconds on.
    second = (int((now - timedelta(seconds=600)).timestamp() * 1e6) // VERIFY_SPAN_US) * VERIFY_SPAN_US

    old, young, other = [(web_id, _value_in(plant, web_id, start, now))
                         for web_id, start in zip(tags, [second, second, second + 2 * VERIFY_SPAN_US], strict=True)]
    state_dir, lake = tmp_path / "state", tmp_path / "lake"
    state_dir.mkdir()
    write_subscription(state_dir, [])  # no channel
    queued = PendingGroups(state_dir)
    started = time.time()
    queued.add(pd.MultiIndex.from_tuples([old], names=["web_id", "ts"]), started - 10 * _SETTLE_S)  # settled
    queued.add(pd.MultiIndex.from_tuples([young, other], names=["web_id", "ts"]), started)  # just seen
    queued.save()
    collector = Collector(CollectorConfig(state_dir=state_dir, delta_root=str(lake), batch_max_age_s=0.1,
                                          verify_settle_s=_SETTLE_S), PIWebAPIConfig(url=sim.base_url))
    admin = httpx.Client(base_url=sim.admin_url, timeout=10)
    samples: list[tuple[float, int, int]] = []  # (time after the look, groups verified, recorded reads so far)

    def observe() -> None:
        reads = _recorded_reads(admin)
        verified = collector.status()["verified_groups"]
        samples.append((time.time(), verified, len(reads)))

    try:
        run_until_queue_empty(collector, 30, observe)
        reads = _recorded_reads(admin)
    finally:
        admin.close()

    # The settled group's second was read at once, with the young group waiting in it: one read, both tags.
    assert reads[0] == {old[0], young[0]}
    # The other second, holding only a group seen at the start, was not read before the settle had passed.
    early = [s for s in samples if s[0] < started + _SETTLE_S - 0.1]
    assert early and max(verified for _, verified, _ in early) <= 2 and max(n for _, _, n in early) <= 1
    assert any(verified == 2 for _, verified, _ in early)  # the first round did not wait for the settle
    assert reads == [{old[0], young[0]}, {other[0]}]  # two seconds, two reads, for three groups
    assert collector.status()["verified_groups"] == 3
    # each round's rewrite was prepared beside the batcher: nothing was written in its time meanwhile
    assert collector.status()["late_groups"]["rounds"] == {"prepared_ahead": 2, "rewritten_in_batch": 0}
    keys = {old, young, other}
    assert group_rows(table_values(lake), keys) == plant_groups(plant, keys, now)
    assert all(group_rows(table_values(lake), keys).values()) and doubled_keys(lake) == 0
    assert len(PendingGroups(state_dir)) == 0


def test_a_group_a_channel_names_again_while_its_read_is_in_flight_is_read_again(make_simulator, tmp_path):
    """PI may change a value after the read of its group started; a channel message naming the group then must not be
    lost to the round's older answer (it was: the group, still queued, kept its place and was then discarded)."""
    sim, now, group, state_dir, lake = _one_group_waiting(make_simulator, tmp_path)
    plant, tag = sim.plant, group[0]
    admin = httpx.Client(base_url=sim.admin_url, timeout=10)
    admin.post("/faults", json={"latency_ms": 1500}).raise_for_status()  # each read is in flight 1.5 s
    collector = Collector(CollectorConfig(state_dir=state_dir, delta_root=str(lake), batch_max_age_s=0.1,
                                          verify_settle_s=0.0), PIWebAPIConfig(url=sim.base_url))
    message = _channel_value(group, substituted=True)  # PI's channel re-sending it as a correction during the read
    sent: list[bool] = []

    def observe() -> None:
        if not sent and collector._round is not None and not collector._answers:  # noqa: SLF001 - the round's state
            asyncio.get_running_loop().create_task(collector.wal.append(time.time_ns(), "c1#1", message))
            sent.append(True)

    try:
        run_until_queue_empty(collector, 30, observe)
        reads = _recorded_reads(admin)
    finally:
        admin.close()

    assert sent
    assert reads == [{tag}, {tag}]  # read, named again during the read, read again
    assert collector.status()["verified_groups"] == 2
    assert group_rows(table_values(lake), {group}) == plant_groups(plant, {group}, now)  # PI's value, not the message's
    assert doubled_keys(lake) == 0 and len(PendingGroups(state_dir)) == 0


def test_a_prepared_rewrite_is_dropped_when_its_time_was_written_meanwhile(make_simulator, tmp_path, monkeypatch):
    """A round's rewrite is prepared beside the batcher (`ahead.py`) against the table as it was. A channel value in
    the round's second committed meanwhile is a key the rewrite took for absent: committing the prepared files would
    store that key twice. The batch that carries the answers rewrites the files itself instead."""
    sim, now, group, state_dir, lake = _one_group_waiting(make_simulator, tmp_path)
    plant = sim.plant
    collector = Collector(CollectorConfig(state_dir=state_dir, delta_root=str(lake), batch_max_age_s=0.1,
                                          verify_settle_s=0.0), PIWebAPIConfig(url=sim.base_url))
    real_prepare = ahead.prepare

    def slow_prepare(*args: object) -> ahead.AheadRewrite:
        """The real preparation, then held until a batch has committed in the round's time (a large file's rewrite
        takes that long)."""
        prepared = real_prepare(*args)
        deadline = time.monotonic() + 10
        while not prepared.span.touched and time.monotonic() < deadline:
            time.sleep(0.02)
        return prepared

    monkeypatch.setattr(ahead, "prepare", slow_prepare)
    message = _channel_value(group, substituted=False)  # new to the table (above its stream's newest), unlike PI's
    sent: list[bool] = []

    def observe() -> None:
        if not sent and collector._span is not None:  # noqa: SLF001 - the round's rewrite is being prepared
            asyncio.get_running_loop().create_task(collector.wal.append(time.time_ns(), "c1#1", message))
            sent.append(True)

    status = run_until_queue_empty(collector, 30, observe)
    assert sent
    assert group_rows(table_values(lake), {group}) == plant_groups(plant, {group}, now)  # PI's value, once
    assert doubled_keys(lake) == 0 and len(PendingGroups(state_dir)) == 0
    assert status["late_groups"]["rounds"] == {"prepared_ahead": 0, "rewritten_in_batch": 1}
