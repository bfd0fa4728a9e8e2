"""The gap ledger, its check and alert, and canonical identities against the real simulator: tags named by name or by PathOnly WebID
lose nothing over a kill -9, an outage with corrections in it, and a REST 5xx storm that fails the first
backfills after the restart."""

import time

import dagster as dg
import httpx
import pyarrow.compute as pc
from streaming_helpers import doubled_keys, mismatches, table_values, wait_until

from pi_platform.defs.streaming.gap_checks import no_open_gaps
from pi_platform.defs.streaming.resources import StreamCollectorResource
from pi_platform.simulator.clock import to_us
from pi_platform.simulator.values import NEVER
from pi_platform.streaming.alerts import alert_payload, send_alert
from pi_platform.streaming.gaps import GapLedger, read_gaps
from pi_platform.streaming.identity import IDENTITIES_FILE
from pi_platform.streaming.state import CURSORS_FILE, read_json
from pi_platform.webid import point_path_webid


def test_ledger_is_durable_and_closes_only_what_it_is_told(tmp_path):
    ledger = GapLedger(tmp_path, retry_initial_s=0.01)
    growing = ledger.open("channel down", {"A": 100, "B": 200}, None, connection="c1")
    done = ledger.open("reconnect", {"C": 50}, 1_000)
    assert [g.id for g in ledger.due(time.time())] == [done.id]  # a growing gap is not read yet
    (pinned,) = ledger.pin("c1", 5_000, {"A": 90, "B": 300})
    assert (pinned.end_us, pinned.starts) == (5_000, {"A": 90, "B": 200})  # the earlier start wins
    ledger.failed(done.id, "ServerError: 503")
    reread = {g.id: g for g in read_gaps(tmp_path)}  # what a restarted collector finds
    assert reread[done.id].attempts == 1 and reread[done.id].last_error == "ServerError: 503"
    assert reread[growing.id].end_us == 5_000
    ledger.drop_streams({"C"})
    ledger.close(growing.id)
    assert read_gaps(tmp_path) == []


def test_name_and_path_only_subscriptions_lose_nothing_over_restart_outage_and_rest_storm(
    make_simulator, collector_process, tmp_path, monkeypatch
):
    monkeypatch.setenv("PI_WEBAPI_MAX_RETRIES", "1")  # a 5xx storm fails reads quickly instead of retrying inside
    sim = make_simulator(n_tags=16, values_per_minute=1200)
    plant = sim.plant
    now_us = to_us(plant.clock.now())
    corrected = [p for p in plant.points  # tags whose profile has corrections (not every one does)
                 if (plant.generator.block(p, now_us - 600_000_000, now_us).corr_at < NEVER).any()]
    points = [p for p in corrected if not p.name.startswith("EDGE.")][:4]
    assert len(points) == 4
    args = ["--batch-age", "0.3", "--heartbeat-rate", "1", "--dead-channel-timeout", "3", "--start", "*-1m"]
    refs = {
        "by_name": [a for p in points for a in ("--tag", p.name)],
        "by_path_only": [a for p in points for a in ("--web-id", point_path_webid(plant.data_server_name, p.name))],
    }
    collectors = {kind: collector_process(tmp_path / kind / "state", tmp_path / kind / "lake", sim.base_url,
                                          args + extra).start() for kind, extra in refs.items()}

    def all_committed(n: int) -> bool:
        return all((c.status().get("commits") or 0) >= n for c in collectors.values())

    wait_until(lambda: all_committed(3), 60, "first commits")
    for kind, collector in collectors.items():  # every name resolved to the server's Full WebID, and kept
        identities = read_json(collector.state_dir / IDENTITIES_FILE)
        assert sorted(e["web_id"] for e in identities.values()) == sorted(p.web_id for p in points), kind

    # Kill just before PI corrects a value the collectors already hold, so the outage surely contains a correction
    # (the plant is deterministic: its correction times are known in advance).
    first_us = min(int(v) for v in read_json(collectors["by_name"].state_dir / CURSORS_FILE).values())
    now_us = to_us(plant.clock.now())
    due = [int(c) for p in points for t, c in zip(*_corrections(plant, p, first_us, now_us + 60_000_000), strict=True)
           if t >= first_us and now_us + 2_000_000 < c < now_us + 60_000_000]
    assert due, "no correction due in the next minute: raise values_per_minute"
    time.sleep(max(0.0, (min(due) - 1_000_000 - to_us(plant.clock.now())) / 1e6))
    for collector in collectors.values():
        collector.kill9()
    killed_us = to_us(plant.clock.now())
    time.sleep(12)  # an outage: values and corrections keep happening in the plant
    httpx.post(f"{sim.admin_url}/faults", json={"error_rate": 1.0}).raise_for_status()  # PI's REST side fails
    restarted_us = to_us(plant.clock.now())
    collectors = {kind: collector_process(c.state_dir, c.state_dir.parent / "lake", sim.base_url,
                                          args + refs[kind]).start() for kind, c in collectors.items()}

    def backfill_failed(collector) -> bool:
        status = collector.status()
        return status.get("pid") == collector.process.pid and any(g["attempts"] >= 1 for g in status.get("gaps", []))

    for collector in collectors.values():  # the gap stays open through failed reads, and says why
        wait_until(lambda c=collector: backfill_failed(c), 90, "a failed gap read recorded in the status")
        assert any("ServerError" in (g["last_error"] or "") for g in collector.status()["gaps"])
        assert read_gaps(collector.state_dir)  # ... and in the ledger on disk
    time.sleep(2)  # fresh values commit meanwhile: the old high-water-mark approach would now skip the gap
    httpx.post(f"{sim.admin_url}/faults", json={"reset": True}).raise_for_status()
    for collector in collectors.values():
        wait_until(lambda c=collector: not c.status().get("gaps") and not read_gaps(c.state_dir), 90, "gaps closed")

    frozen = plant.clock.now()
    httpx.post(f"{sim.admin_url}/clock", json={"now": frozen.isoformat()}).raise_for_status()
    for kind, collector in collectors.items():
        since = {k: int(v) for k, v in read_json(collector.state_dir / CURSORS_FILE).items()}
        assert sorted(since) == sorted(p.web_id for p in points), kind  # cursors keyed canonically
        windows = {w: (since[w], to_us(frozen)) for w in since}
        lake = collector.state_dir.parent / "lake"
        wait_until(lambda: not mismatches(plant, lake, windows, frozen), 60, f"{kind} equal to ground truth")
        assert doubled_keys(lake) == 0
        assert set(table_values(lake)["web_id"].to_pylist()) == {p.web_id for p in points}  # one key per tag
        assert collector.terminate() == 0
    # The outage really held corrections PI made while nobody listened (now in the table, checked above).
    made_in_gap = sum(1 for p in points for t, c in zip(*_corrections(plant, p, first_us, restarted_us), strict=True)
                      if t >= first_us and killed_us <= c <= restarted_us)
    assert made_in_gap >= 1
    assert pc.sum(table_values(tmp_path / "by_name" / "lake")["substituted"]).as_py() >= 1


def test_no_open_gaps_check_lists_gaps_with_age_and_turns_error_when_old(tmp_path, webhook):
    collector = StreamCollectorResource(mode="external", state_dir=str(tmp_path), delta_root=str(tmp_path / "lake"))
    assert no_open_gaps(collector).passed
    ledger = GapLedger(tmp_path)
    fresh = ledger.open("reconnect", {"A": 1_000}, 2_000)
    assert no_open_gaps(collector).passed  # a gap being read for a second is not news
    ledger.failed(fresh.id, "ServerError: PI Web API kept failing with 503")
    failing = no_open_gaps(collector)
    assert not failing.passed and failing.severity == dg.AssetCheckSeverity.WARN
    ledger.gaps[fresh.id].opened_at -= 3600  # open for an hour
    ledger.failed(fresh.id, "ServerError: PI Web API kept failing with 503")
    old = no_open_gaps(collector)
    assert old.is_error and "oldest 3600s" in old.description and "503" in old.description
    (listed,) = old.metadata["gaps"].value
    assert listed["age_s"] >= 3600 and listed["attempts"] == 2 and listed["streams"] == 1
    details = {k: getattr(v, "value", v) for k, v in old.metadata.items()}
    assert send_alert(webhook.url, alert_payload(old.check_name, old.description, details))
    assert "oldest 3600s" in webhook.received[0]["text"] and webhook.received[0]["details"]["gaps"][0]["age_s"] >= 3600


def _corrections(plant, point, start_us: int, end_us: int) -> tuple[list[int], list[int]]:
    """(value time, correction time) of the values of [start_us - 5 min, end_us] that PI corrects."""
    block = plant.generator.block(point, start_us - 300_000_000, end_us)
    corrected = block.corr_at < NEVER
    return block.ts[corrected].tolist(), block.corr_at[corrected].tolist()
