"""A PI REST outage delays the verification of late groups (corrections), never the live stream.

Every /piwebapi request answers 5xx (the simulator's `error_rate` fault, which spares open channels) while the
plant keeps correcting values: commits and fresh values go on, the late groups wait and the status names them;
once REST heals they drain, and the table equals what PI holds, the outage's corrections included, nothing doubled.
"""

import logging

import httpx
import pyarrow as pa
from streaming_helpers import (assert_equals_pi, corrected_plant_collector, freeze_and_converge, heal_and_drain,
                               newest_per_stream, stream_rows, table_values, utc, verification_problems, wait_until)

from pi_platform.simulator.clock import to_us


def _corrected_keys(plant, web_id: str, start_us: int, end_us: int, now_us: int) -> set[tuple[int, int]]:
    rows = plant.recorded(web_id, utc(start_us), utc(end_us), now=utc(now_us))
    rows = rows.filter(rows["substituted"])
    return set(zip(rows["timestamp"].cast(pa.int64()).to_pylist(), rows["position"].to_pylist(), strict=True))


def _corrected_since(plant, web_ids: list[str], since_us: int) -> int:
    """Corrections the plant made after `since_us` (of values up to 6 minutes older: it corrects 5 s-5 min late)."""
    now_us = to_us(plant.clock.now())
    start_us = since_us - 360_000_000
    return sum(len(_corrected_keys(plant, w, start_us, now_us, now_us)
                   - _corrected_keys(plant, w, start_us, now_us, since_us)) for w in web_ids)


def test_rest_outage_delays_corrections_but_never_the_live_stream(make_simulator, tmp_path, caplog):
    sim, web_ids, state_dir, lake, runner = corrected_plant_collector(make_simulator, tmp_path)
    plant = sim.plant
    admin = httpx.Client(base_url=sim.admin_url, timeout=10)
    try:
        with caplog.at_level(logging.WARNING, logger="pi_platform.streaming.collector"):
            channels_opened = admin.get("/channels").json()["opened_total"]

            # Outage: every REST request fails; open channels go on.
            outage_us = to_us(plant.clock.now())
            before = runner.status()
            admin.post("/faults", json={"error_rate": 1.0}).raise_for_status()
            assert httpx.get(f"{sim.base_url}/system", timeout=5).status_code >= 500
            status = wait_until(lambda: (s := runner.status())["late_groups"]["waiting"] > 0
                                and verification_problems(s) and s, 15, "late groups waiting on the outage")
            # The live stream goes on: commits, and on every stream values stamped after the outage began (a
            # stream's values are up to 5 s apart, so this waits for them rather than for a fixed time).
            wait_until(lambda: runner.status()["commits"] >= before["commits"] + 3
                       and all(ts > outage_us for ts in newest_per_stream(lake, web_ids).values()), 15,
                       "fresh values committed during the outage")
            # ~1 correction a second: REST stays down until one falls inside the outage (a fast machine met the
            # waits above before the plant had corrected anything, leaving the outage's corrections untested).
            wait_until(lambda: _corrected_since(plant, web_ids, outage_us) > 0, 15, "a correction during the outage")
            during = runner.status()
            healed_us = to_us(plant.clock.now())
            failed = [r for r in caplog.records if "verification reads failed" in r.getMessage()]

            assert during["late_groups"]["waiting"] > 0  # still waiting: nothing verified while REST fails
            (problem,) = verification_problems(status)
            assert problem["severity"] == "WARN" and "late groups" in problem["message"]
            assert failed and all(r.levelno == logging.WARNING for r in failed)
            assert admin.get("/channels").json()["opened_total"] == channels_opened  # no channel was reopened
            assert all(c["state"] == "open" for c in during["connections"])

            # Heal: the backlog drains and the problem clears.
            heal_and_drain(admin, runner, "error_rate", 15)

        windows, frozen = freeze_and_converge(plant, lake, admin, state_dir, web_ids, runner)
    finally:
        runner.stop()
        admin.close()

    assert_equals_pi(plant, lake, windows, frozen)
    # Every correction PI made while its REST side was down is in the table, as PI holds it now.
    table = table_values(lake)
    made = 0
    for web_id in web_ids:
        start, end = windows[web_id]
        outage = (_corrected_keys(plant, web_id, start, end, healed_us)
                  - _corrected_keys(plant, web_id, start, end, outage_us))
        made += len(outage)
        got = stream_rows(table, web_id, start, end)
        got = got.filter(got["substituted"])
        keys = set(zip(got["timestamp"].cast(pa.int64()).to_pylist(), got["position"].to_pylist(), strict=True))
        assert outage <= keys
    assert made > 0
