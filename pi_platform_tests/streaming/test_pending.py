"""The correction backlog (`streaming/pending.py`): late groups queue durably, oldest first, and each micro-batch
verifies only its budget of them, so fresh values keep committing through a storm of corrections, a graceful stop
drains the queue, and a crash leaves it in `pending_groups.json` for the next start."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from streaming_helpers import doubled_keys, group_rows, mismatches, plant_groups, table_values, utc, wait_until

from pi_platform.client import PIWebAPIConfig
from pi_platform.simulator.clock import to_us
from pi_platform.storage import DeltaStore
from pi_platform.streaming.collector import Collector, CollectorConfig
from pi_platform.streaming.messages import parse_records
from pi_platform.streaming.pending import PENDING_FILE, VERIFY_SPAN_US, CorrectionBudget, PendingGroups, windows
from pi_platform.streaming.sink import StreamSink
from pi_platform.streaming.state import CURSORS_FILE, STATUS_FILE, WAL_DIR, read_json, write_subscription
from pi_platform.streaming.wal import WriteAheadLog



S = VERIFY_SPAN_US  # one read window


def _keys(pairs: list[tuple[str, int]]) -> pd.MultiIndex:
    return pd.MultiIndex.from_tuples(pairs, names=["web_id", "ts"])


def test_pending_groups_keep_first_seen_order_and_survive_a_new_instance(tmp_path):
    """One group per read window here: `take(n)` is then the n oldest groups."""
    pending = PendingGroups(tmp_path, fsync=False)
    assert len(pending) == 0 and pending.age_s(100.0) is None and len(pending.take(5)) == 0
    pending.add(_keys([("b", 20 * S), ("a", 10 * S)]), 100.0)
    pending.add(_keys([("a", 10 * S), ("c", 5 * S)]), 107.0)  # ("a", 10 * S) again: keeps its place and first-seen time
    assert pending.take(10).tolist() == [("b", 20 * S), ("a", 10 * S), ("c", 5 * S)]
    assert pending.take(2).tolist() == [("b", 20 * S), ("a", 10 * S)] and len(pending.take(0)) == 0
    assert pending.take(10).names == ["web_id", "ts"]
    assert pending.age_s(110.0) == 10.0  # the oldest first-seen time, not the re-add's

    pending.save()
    path = tmp_path / PENDING_FILE
    restored = PendingGroups(tmp_path)
    assert restored.take(10).tolist() == [("b", 20 * S), ("a", 10 * S), ("c", 5 * S)] and restored.age_s(110.0) == 10.0
    restored.discard(_keys([("b", 20 * S)]))
    assert restored.age_s(110.0) == 10.0  # ("a", 10 * S) kept its first-seen time through the file
    restored.add(_keys([("b", 20 * S)]), 120.0)  # re-queued after its verification: now the newest
    assert restored.take(10).tolist() == [("a", 10 * S), ("c", 5 * S), ("b", 20 * S)]
    restored.save()
    assert PendingGroups(tmp_path).take(10).tolist() == [("a", 10 * S), ("c", 5 * S), ("b", 20 * S)]

    # Nothing changed (re-adding waiting groups, discarding unknown ones): nothing is written.
    before = os.stat(path)
    time.sleep(0.01)
    restored.add(_keys([("c", 5 * S)]), 200.0)
    restored.discard(_keys([("z", S)]))
    restored.save()
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    restored.discard(_keys([("b", 20 * S), ("c", 5 * S)]))
    restored.save()
    assert PendingGroups(tmp_path).take(10).tolist() == [("a", 10 * S)]
    restored.discard(restored.take(1))
    restored.save()
    emptied = PendingGroups(tmp_path)
    assert len(emptied) == 0 and emptied.age_s(0.0) is None


def test_a_round_takes_every_group_waiting_in_the_windows_of_the_oldest_ones(tmp_path):
    """The budget counts read windows: a window's read and rewrite are paid once, so a round takes all of its groups,
    however recently they came, and the newest window waits behind the budget."""
    pending = PendingGroups(tmp_path, fsync=False)
    pending.add(_keys([("a", 10 * S + 1)]), 100.0)
    pending.add(_keys([("b", 30 * S)]), 101.0)
    pending.add(_keys([("c", 10 * S + 999_999), ("d", 20 * S)]), 102.0)
    pending.add(_keys([("e", 10 * S)]), 103.0)  # window 10 again, after everything else
    assert pending.take(1).tolist() == [("a", 10 * S + 1), ("c", 10 * S + 999_999), ("e", 10 * S)]
    assert windows(pending.take(1)) == 1
    two = pending.take(2)
    assert set(two.tolist()) == {("a", 10 * S + 1), ("c", 10 * S + 999_999), ("e", 10 * S), ("b", 30 * S)}
    assert windows(two) == 2 and windows(pending.take(99)) == 3 and len(pending.take(99)) == 5
    assert windows(_keys([])) == 0 and len(pending.take(0)) == 0
    # Settling: only windows of groups first seen before the cut are chosen, with every group in them.
    assert len(pending.take(5, seen_before=100.0)) == 0
    assert set(pending.take(5, seen_before=100.5).tolist()) == {("a", 10 * S + 1), ("c", 10 * S + 999_999),
                                                                 ("e", 10 * S)}
    assert windows(pending.take(5, seen_before=102.0)) == 2

    pending.discard(_keys([("a", 10 * S + 1), ("c", 10 * S + 999_999)]))  # verified; ("e", 10 * S) still waits in window 10
    assert pending.take(1).tolist() == [("b", 30 * S)]  # the longest-waiting group left decides, not the time
    assert pending.take(3).tolist() == [("b", 30 * S), ("d", 20 * S), ("e", 10 * S)]
def test_correction_budget_grows_only_when_used_while_caught_up_and_is_cut_when_behind():
    budget = CorrectionBudget(low=8, high=64, slack_s=0.5, now=16)
    assert budget.next(0.2, 1.0, used=15) == 16  # not all of it used: unchanged
    assert budget.next(1.4, 1.0, used=16) == 32  # all of it used, behind only within the slack: grows
    assert budget.next(0.0, 1.0, used=32) == 64
    assert budget.next(0.0, 1.0, used=64) == 64  # bounded by `high`
    assert budget.next(1.6, 1.0, used=64) == 32  # behind: at least halved, however much was used
    assert budget.next(6.0, 1.0, used=32) == 8  # far behind: cut in proportion (32 * 1.5 s allowed / 6 s)
    budget.now = 64
    assert budget.next(100.0, 1.0, used=0) == 8  # never below `low`
    assert budget.next(0.0, 1.0, used=7) == 8  # caught up but not all used: no growth
    assert budget.next(0.0, 1.0, used=8, took_s=12.0) == 8  # a round that took long: halved, however used
    budget.now = 64
    assert budget.next(0.0, 1.0, used=64, took_s=12.0) == 32
    assert budget.next(0.0, 1.0, used=32, took_s=9.0) == 64  # quick enough: grows again
    frozen = CorrectionBudget(low=0, high=0, now=0)
    assert frozen.next(0.0, 1.0, used=0) == 0 and frozen.next(5.0, 1.0, used=0) == 0


def _last_values_us(plant, web_ids: list[str], windows: dict[str, tuple[int, int]], frozen: datetime) -> dict[str, int]:
    """Each stream's newest value time PI holds at `frozen` (what the collector's high-water mark must reach)."""
    out = {}
    for web_id in web_ids:
        truth = plant.recorded(web_id, utc(windows[web_id][0]), frozen, now=frozen)
        if truth.num_rows:
            out[web_id] = pc.max(truth["timestamp"]).cast(pa.int64()).as_py()
    return out


def test_fresh_values_flow_while_late_groups_wait_and_a_stop_drains_them(make_simulator, tmp_path):
    sim = make_simulator(n_tags=8, values_per_minute=600, correction_rate=0.3)
    plant = sim.plant
    web_ids = [p.web_id for p in plant.points if not p.name.startswith("EDGE.")] + [
        p.web_id for p in plant.points if p.name == "EDGE.SameTs"]
    state_dir, lake = tmp_path / "state", tmp_path / "lake"
    # Start minutes back: the backfill holds values whose corrections then arrive live, as late groups.
    write_subscription(state_dir, web_ids, start="*-3m")
    config = CollectorConfig(state_dir=state_dir, delta_root=str(lake), batch_max_age_s=0.3, status_interval_s=0.2,
                             verify_settle_s=0.0)
    collector = Collector(config, PIWebAPIConfig(url=sim.base_url))
    collector._budget = CorrectionBudget(low=1, high=1, now=1)  # noqa: SLF001 - one verification per batch

    async def scenario() -> tuple[list[dict], dict[str, tuple[int, int]], datetime]:
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        samples: list[dict] = []
        try:
            deadline = time.monotonic() + 30
            # Until the backfill is committed (its read starts once the channel's open overlap has passed) and fresh
            # rows were committed across several samples that all found late groups waiting.
            while True:
                status = collector.status()
                samples.append({"waiting": status["late_groups"]["waiting"], "rows": status["total_rows_committed"],
                                "commits": status["commits"], "budget": status["late_groups"]["budget_per_round"]})
                recent = samples[-8:]
                if (len(recent) == 8 and all(s["waiting"] > 0 for s in recent) and recent[-1]["waiting"] >= 12
                        and recent[-1]["rows"] > recent[0]["rows"] and recent[-1]["commits"] > recent[0]["commits"]
                        and status["backfills"]["closed"] >= 1 and not status["gaps"]):
                    break
                assert time.monotonic() < deadline, f"no backlog with fresh values flowing: {samples[-5:]}"
                assert not task.done()
                await asyncio.sleep(0.25)
            # Freeze the plant: no new values or corrections, so "what PI holds" is a constant to converge to.
            frozen = plant.clock.now()
            await asyncio.to_thread(lambda: httpx.post(f"{sim.admin_url}/clock",
                                                       json={"now": frozen.isoformat()}).raise_for_status())
            since = {k: int(v) for k, v in read_json(state_dir / CURSORS_FILE).items()}
            windows = {w: (since[w], to_us(frozen)) for w in web_ids}
            last = _last_values_us(plant, web_ids, windows, frozen)
            deadline = time.monotonic() + 20
            # Every value (and so every correction sent before it) PI's channels delivered up to the freeze was
            # received and its batch committed; late groups are still waiting.
            while any(collector._hwm.get(w, -1) < ts for w, ts in last.items()):  # noqa: SLF001
                assert time.monotonic() < deadline, "the fresh values up to the freeze were not committed"
                await asyncio.sleep(0.1)
            # The drain below takes several batches (most of what waits was named by batches committed already).
            assert len(collector._pending) > 3 * 2  # noqa: SLF001
            collector._budget = CorrectionBudget(low=2, high=2, now=2)  # noqa: SLF001
            stop.set()
            await asyncio.wait_for(task, 60)
        finally:
            stop.set()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        return samples, windows, frozen

    samples, windows, frozen = asyncio.run(scenario())
    assert all(s["budget"] == 1 for s in samples)
    assert max(s["waiting"] for s in samples) >= 12
    final = read_json(state_dir / STATUS_FILE)
    assert final["state"] == "stopped" and final["late_groups"]["waiting"] == 0
    assert final["verified_groups"] >= max(s["waiting"] for s in samples)
    assert len(PendingGroups(state_dir)) == 0  # the drain is written down
    assert mismatches(plant, lake, windows, frozen) == []
    assert doubled_keys(lake) == 0
    table = table_values(lake)
    assert pc.sum(table["substituted"]).as_py() > 0  # the corrections the drain verified are in the table


_CRASHING_COLLECTOR = """
import asyncio, sys
from pathlib import Path
from pi_platform.client import PIWebAPIConfig
from pi_platform.streaming.collector import Collector, CollectorConfig
from pi_platform.streaming.pending import CorrectionBudget

state_dir, lake, url = sys.argv[1:4]
config = CollectorConfig(state_dir=Path(state_dir), delta_root=lake, batch_max_age_s=0.3, status_interval_s=0.2)
collector = Collector(config, PIWebAPIConfig(url=url))
collector._budget = CorrectionBudget(low=0, high=0, now=0)  # late groups only queue: nothing verifies them
asyncio.run(collector.run(asyncio.Event()))
"""


def test_groups_waiting_in_the_file_at_a_crash_are_verified_after_the_restart(make_simulator, tmp_path):
    sim = make_simulator(n_tags=8, values_per_minute=600, correction_rate=0.3)
    plant = sim.plant
    web_ids = [p.web_id for p in plant.points if not p.name.startswith("EDGE.")][:6]
    state_dir, lake = tmp_path / "state", tmp_path / "lake"
    write_subscription(state_dir, web_ids, start="*-3m")
    # A real crash: a collector process whose budget is 0 (late groups only queue), killed with SIGKILL.
    process = subprocess.Popen([sys.executable, "-c", _CRASHING_COLLECTOR, str(state_dir), str(lake), sim.base_url],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        def status() -> dict:
            assert process.poll() is None, "the collector process died"
            found = read_json(state_dir / STATUS_FILE) or {}
            return found if found.get("pid") == process.pid else {}

        # The backfill read is committed (corrections that arrived before it are in it already), then more late
        # groups queue (corrections PI made after that read) while fresh batches commit.
        wait_until(lambda: status() and status()["backfills"]["closed"] >= 1 and not status()["gaps"], 40,
                   "the backfill committed")
        queued, commits = len(PendingGroups(state_dir)), status()["commits"]
        wait_until(lambda: len(PendingGroups(state_dir)) >= queued + 5 and status()["commits"] >= commits + 2, 30,
                   "late groups queued in the file behind committed fresh batches")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate(timeout=10)
    assert b"Traceback" not in err, err.decode()[-2000:]
    frozen = plant.clock.now()  # PI stops changing: its content at the crash is what the restart must reach
    httpx.post(f"{sim.admin_url}/clock", json={"now": frozen.isoformat()}).raise_for_status()

    saved = set(PendingGroups(state_dir).take(10**9).tolist())
    committed = StreamSink(DeltaStore(str(lake)), CollectorConfig(state_dir, str(lake)).app_id).committed_offset()
    unread = [r for r in WriteAheadLog(state_dir / WAL_DIR).records(after=committed) if r.payload]
    rows = parse_records(unread).rows
    in_wal = set(zip(rows["web_id"].to_pylist(), rows["timestamp"].cast(pa.int64()).to_pylist(), strict=True))
    only_in_file = saved - in_wal  # named by messages whose batches were committed: the WAL will not replay them
    assert len(only_in_file) >= 5
    truth = plant_groups(plant, saved, frozen)
    before = group_rows(table_values(lake), saved)
    stale = {key for key in saved if before[key] != truth[key]}  # the table holds the uncorrected values
    assert len(stale & only_in_file) >= 3

    # Restart on the same state directory, normal budget, subscribed to nothing: no channel, no restart gap read,
    # so only the queue in the file can bring PI's corrections in.
    write_subscription(state_dir, [])
    restarted = Collector(CollectorConfig(state_dir=state_dir, delta_root=str(lake), batch_max_age_s=0.1,
                                          verify_settle_s=0.0),
                          PIWebAPIConfig(url=sim.base_url))
    assert len(restarted._pending) == len(saved)  # noqa: SLF001

    async def until_verified() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(restarted.run(stop))
        deadline = time.monotonic() + 30
        while len(restarted._pending) or restarted.wal.buffered_records:  # noqa: SLF001 - test observes progress
            assert time.monotonic() < deadline and not task.done(), "the saved late groups were not verified"
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 30)

    asyncio.run(until_verified())
    assert restarted.ledger.closed == 0 and restarted._backfill_rows == 0  # noqa: SLF001 - no gap read helped
    assert restarted._verified_groups >= len(only_in_file)  # noqa: SLF001
    after = group_rows(table_values(lake), saved)
    assert [key for key in saved if after[key] != truth[key]] == []
    assert len(PendingGroups(state_dir)) == 0
    assert doubled_keys(lake) == 0


def test_a_stop_while_pi_refuses_the_verification_reads_leaves_the_queue_to_the_next_start(tmp_path):
    """The drain on stop gives up on the late groups once PI fails their read (as a failing commit gives up on the
    buffered messages): they stay in the file; a REST outage must not hold a graceful stop forever."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    write_subscription(state_dir, [])
    waiting = PendingGroups(state_dir)
    waiting.add(_keys([("W1", 1_700_000_000_000_000)]), time.time())
    waiting.save()
    collector = Collector(CollectorConfig(state_dir=state_dir, delta_root=str(tmp_path / "lake"), batch_max_age_s=0.1,
                                          verify_settle_s=0.0),
                          PIWebAPIConfig(url="http://127.0.0.1:9/piwebapi"))  # nothing listens: every read fails

    async def stop_once_a_read_failed() -> list[dict]:
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        deadline = time.monotonic() + 30
        while collector._verify_error is None:  # noqa: SLF001 - test observes progress
            assert time.monotonic() < deadline and not task.done(), "no verification read was tried"
            await asyncio.sleep(0.05)
        problems = collector.status()["problems"]
        stop.set()
        await asyncio.wait_for(task, 30)
        return problems

    problems = asyncio.run(stop_once_a_read_failed())
    assert [p["kind"] for p in problems] == ["verification"] and "127.0.0.1:9" in problems[0]["message"]
    assert read_json(state_dir / STATUS_FILE)["late_groups"]["waiting"] == 1
    assert PendingGroups(state_dir).take(5).tolist() == [("W1", 1_700_000_000_000_000)]
