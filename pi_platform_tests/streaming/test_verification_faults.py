"""Verification rounds run off the batch path: a hung PI REST side, or a deleted tag among the waiting late groups,
delays only the corrections concerned, never the fresh values or the other corrections.

A hung REST side is the simulator's `stall_rate` fault (every /piwebapi request held past the client's timeout;
open channels go on). A deleted tag is one PI answers 404 for: its groups, queued ahead of healthy ones in the same
read window, fail that window until the tag is probed, named a bad tag, and its groups dropped.
"""

import logging
import time
from datetime import datetime, timedelta, timezone

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from streaming_helpers import (assert_equals_pi, corrected_plant_collector, doubled_keys, freeze_and_converge,
                               group_rows, heal_and_drain, newest_per_stream, plant_groups, run_until_queue_empty,
                               table_values, utc, verification_problems)

from pi_platform.bench.chaos import unknown_point
from pi_platform.client import PIWebAPIConfig
from pi_platform.simulator.clock import to_us
from pi_platform.streaming.collector import Collector, CollectorConfig
from pi_platform.streaming.pending import PendingGroups
from pi_platform.streaming.state import write_subscription


def test_hung_rest_side_holds_back_corrections_but_never_a_commit(make_simulator, tmp_path, caplog):
    # A round fails after 2 attempts of 2 s each: the old in-batch verification held a commit at least that long.
    sim, web_ids, state_dir, lake, runner = corrected_plant_collector(make_simulator, tmp_path,
                                                                      {"timeout_s": 2.0, "max_retries": 1})
    plant = sim.plant
    admin = httpx.Client(base_url=sim.admin_url, timeout=10)
    try:
        with caplog.at_level(logging.WARNING, logger="pi_platform.streaming.collector"):
            channels_opened = admin.get("/channels").json()["opened_total"]

            # REST hangs: requests are held past the client's timeout; open channels go on.
            stall_us = to_us(plant.clock.now())
            admin.post("/faults", json={"stall_rate": 1.0, "stall_seconds": 6.0}).raise_for_status()
            with pytest.raises(httpx.TimeoutException):
                httpx.get(f"{sim.base_url}/system", timeout=1.0)
            # Sample the commit count until a round has failed on the hang, late groups wait, and every stream has
            # committed values stamped after the hang began (a stream's values are up to 5 s apart).
            samples: list[tuple[float, int]] = []
            deadline = time.monotonic() + 20
            while True:
                status = runner.status()
                samples.append((time.monotonic(), status["commits"]))
                if (verification_problems(status) and status["late_groups"]["waiting"] > 0
                        and all(ts > stall_us for ts in newest_per_stream(lake, web_ids).values())
                        and samples[-1][0] - samples[0][0] > 6.0):
                    break
                assert time.monotonic() < deadline, f"no failed round with fresh values flowing: {status}"
                time.sleep(0.1)
            during = status
            changes = [t for (t, c), (_, before) in zip(samples[1:], samples, strict=False) if c != before]
            stamps = [samples[0][0], *changes, samples[-1][0]]
            longest = max(b - a for a, b in zip(stamps, stamps[1:], strict=False))
            healed_us = to_us(plant.clock.now())
            failed = [r for r in caplog.records if "verification reads failed" in r.getMessage()]

            assert longest < 3.0, f"{longest:.1f} s without a commit while REST hung"
            assert during["commits"] >= samples[0][1] + 3
            (problem,) = verification_problems(during)
            assert problem["severity"] == "WARN" and "late groups" in problem["message"]
            assert failed and all(r.levelno == logging.WARNING for r in failed)
            assert admin.get("/channels").json()["opened_total"] == channels_opened  # no channel was reopened
            assert all(c["state"] == "open" for c in during["connections"]) and not during["gaps"]

            # Heal: requests answer again (those held finish their stall); the backlog drains.
            heal_and_drain(admin, runner, "stall_rate", 20)

        windows, frozen = freeze_and_converge(plant, lake, admin, state_dir, web_ids, runner)
    finally:
        runner.stop()
        admin.close()

    assert_equals_pi(plant, lake, windows, frozen)
    # Corrections PI made while its REST side hung were among what waited, and are in the table now.
    made = 0
    for web_id in web_ids:
        start, end = windows[web_id]
        truth = plant.recorded(web_id, utc(start), utc(end), now=utc(healed_us))
        was = plant.recorded(web_id, utc(start), utc(end), now=utc(stall_us))
        made += int(pc.sum(truth["substituted"]).as_py() or 0) - int(pc.sum(was["substituted"]).as_py() or 0)
    assert made > 0


def test_a_deleted_tag_among_waiting_groups_is_dropped_and_the_others_are_verified(make_simulator, tmp_path, caplog):
    now = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    sim = make_simulator(n_tags=4, values_per_minute=120, correction_rate=0.3, now=now)  # frozen: PI does not move
    plant = sim.plant
    real = [p.web_id for p in plant.points if not p.name.startswith("EDGE.")]
    gone = unknown_point(plant, "GONE.TAG")  # PI answers 404 for it, like a deleted tag
    # Healthy groups: every value of the regular tags in 5 s ten minutes back (all corrections made), one corrected.
    start, end = now - timedelta(seconds=605), now - timedelta(seconds=600)
    healthy: list[tuple[str, int]] = []
    for web_id in real:
        stamps = plant.recorded(web_id, start, end, now=now)["timestamp"].cast(pa.int64()).to_pylist()
        healthy.extend((web_id, ts) for ts in dict.fromkeys(stamps))
    assert len(healthy) >= 8
    # The deleted tag's groups first, in the same read windows as the healthy ones (one 404 fails a whole window).
    first = min(ts for _, ts in healthy)
    bad = [(gone, first), (gone, first + 1_500_000)]
    state_dir, lake = tmp_path / "state", tmp_path / "lake"
    state_dir.mkdir()
    write_subscription(state_dir, [])  # no channel: only the queue brings PI's values in
    waiting = PendingGroups(state_dir)
    waiting.add(pd.MultiIndex.from_tuples([*bad, *healthy], names=["web_id", "ts"]), time.time())
    waiting.save()
    collector = Collector(CollectorConfig(state_dir=state_dir, delta_root=str(lake), batch_max_age_s=0.1,
                                          verify_settle_s=0.0),
                          PIWebAPIConfig(url=sim.base_url))

    with caplog.at_level(logging.WARNING, logger="pi_platform.streaming.collector"):
        status = run_until_queue_empty(collector, 20)

    assert [b["web_id"] for b in status["bad_tags"]] == [gone]
    assert any(p["kind"] == "bad_tag" and gone in p["message"] for p in status["problems"])
    assert not verification_problems(status)
    dropped = [r for r in caplog.records if r.getMessage().startswith("dropped 2 late groups of tags PI refuses")]
    assert len(dropped) == 1 and dropped[0].levelno == logging.WARNING
    named = [r for r in caplog.records if r.getMessage().startswith("bad tag")]
    assert len(named) == 1 and named[0].levelno == logging.ERROR  # probed once, though two windows failed on it
    assert status["verified_groups"] == len(healthy) and status["late_groups"]["waiting"] == 0
    assert len(PendingGroups(state_dir)) == 0
    keys = set(healthy)
    truth = plant_groups(plant, keys, now)
    got = group_rows(table_values(lake), keys)
    assert [k for k in keys if got[k] != truth[k]] == []
    assert any(row[-1] for rows in truth.values() for row in rows)  # corrected values among them
    assert table_values(lake).filter(pc.equal(table_values(lake)["web_id"], gone)).num_rows == 0
    assert doubled_keys(lake) == 0
