"""The stream_collector sensor on a real instance: it starts the collector, pushes the subscription, reports
commits, fails the stale-tag check for a tag the simulator sticks once PI's clock passes its excmax (alerting
through a real webhook), passes again on resume, and restarts a collector whose heartbeat stopped."""

import os
import signal
from pathlib import Path

import dagster as dg
import httpx
import pytest
from streaming_helpers import Ticker, wait_until

from pi_platform.defs.streaming.definitions import build_defs
from pi_platform.defs.streaming.checks import STREAM_FLOWING, TAGS_FRESH
from pi_platform.defs.streaming.resources import StreamCollectorResource
from pi_platform.defs.streaming.sensors import SensorCursor
from pi_platform.streaming.state import TAGS_FILE, read_json, read_status, read_subscription


@pytest.fixture
def ticker(make_simulator, webhook, tmp_path):
    sim = make_simulator(n_tags=8, values_per_minute=180)
    points = [p for p in sim.plant.points if not p.name.startswith("EDGE.")][:5]
    collector = StreamCollectorResource(
        mode="local",
        state_dir=str(tmp_path / "state"),
        delta_root=str(tmp_path / "lake"),
        pi_url=sim.base_url,
        web_ids=[p.web_id for p in points],
        heartbeat_timeout_s=10.0,  # beats every second; generous so a loaded machine's slow beat is not a death
        startup_grace_s=6.0,
        collector_args=["--batch-age", "0.3", "--heartbeat-rate", "1", "--dead-channel-timeout", "5"],
        snapshot_interval_s=1.0,
        silent_after_s=30.0,
        alert_webhook_url=webhook.url,
        report_interval_s=0.0,  # every tick reports, so each tick can be asserted on (the quiet cadence: test_reporting)
    )
    with dg.instance_for_test() as instance:
        # Inside the instance: definitions loading reads the current instance's state storage, and an
        # earlier test's disposed instance must not be the one it finds.
        dg.Definitions.validate_loadable(build_defs(collector))
        ticker = Ticker(instance, collector)
        ticker.sim, ticker.points = sim, points  # type: ignore[attr-defined]
        try:
            yield ticker
        finally:
            ticker.kill_all()


def test_sensor_drives_collector_and_stale_check_follows_pause_and_resume(ticker, webhook):
    sim, points, collector = ticker.sim, ticker.points, ticker.collector
    first = ticker.tick()
    pid = SensorCursor.parse(first.cursor).pid
    assert pid is not None
    assert read_subscription(collector.state_dir)["web_ids"] == sorted(p.web_id for p in points)

    wait_until(lambda: ticker.check(TAGS_FRESH).passed and ticker.check(STREAM_FLOWING).passed, 60, "healthy stream")
    materialization = ticker.instance.get_latest_materialization_event(dg.AssetKey("stream_values"))
    metadata = materialization.asset_materialization.metadata
    assert metadata["rows"].value > 0
    assert "dagster/last_updated_timestamp" in metadata and "lag_s" in metadata

    assert not webhook.received  # new tags get time to deliver before they count as stale

    def excmax_known() -> bool:
        tags = (read_json(Path(collector.state_dir) / TAGS_FILE) or {}).get("tags") or {}
        return all((tags.get(p.web_id) or {}).get("attributes", {}).get("excmax") for p in points)

    wait_until(excmax_known, 60, "every tag's point attributes in the published snapshot poll")
    victim = points[0].name
    httpx.post(f"{sim.admin_url}/streams/pause", json={"names": [victim]}).raise_for_status()
    # PI's clock jumps past excmax (600 s) + margin: the stuck tag's snapshot is now too old, the others move on.
    httpx.post(f"{sim.admin_url}/clock", json={"offset_s": 1800}).raise_for_status()

    def only_victim_stale() -> dg.AssetCheckEvaluation | None:
        evaluation = ticker.check(TAGS_FRESH)
        stale = set(evaluation.metadata["stale_tags_error"].value)
        failing = not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
        return evaluation if failing and stale == {victim} else None

    only_victim_stale_check = wait_until(only_victim_stale, 60, "the stale-tag ERROR for the paused tag alone")
    assert only_victim_stale_check.metadata["tags"].value == len(points)
    record = ticker.instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(dg.AssetKey("stream_values"), TAGS_FRESH))
    assert record is not None and not record.event.asset_check_evaluation.passed
    alerts = [a for a in webhook.received if a["check"] == TAGS_FRESH]
    assert len(alerts) == 1 and victim in alerts[0]["text"]
    ticker.tick()
    assert len([a for a in webhook.received if a["check"] == TAGS_FRESH]) == 1  # fires on the transition only

    httpx.post(f"{sim.admin_url}/streams/resume", json={"names": [victim]}).raise_for_status()
    wait_until(lambda: ticker.check(TAGS_FRESH).passed, 60, "the check to pass after resume")

    # A collector whose heartbeat stops is replaced by the next tick (local mode).
    os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: not collector.is_alive(), 20, "the heartbeat to go stale")
    wait_until(lambda: SensorCursor.parse(ticker.tick().cursor).pid != pid, 20, "a restart")
    new_pid = SensorCursor.parse(ticker.cursor).pid
    wait_until(lambda: (read_status(collector.state_dir) or {}).get("pid") == new_pid and collector.is_alive(), 60,
               "the new collector's heartbeat")
    assert SensorCursor.parse(ticker.cursor).restarts == 2


def test_external_mode_only_watches(tmp_path):
    collector = StreamCollectorResource(mode="external", state_dir=str(tmp_path / "state"),
                                        delta_root=str(tmp_path / "lake"), web_ids=["W1"])
    with dg.instance_for_test() as instance:
        ticker = Ticker(instance, collector)
        result = ticker.tick()
    assert SensorCursor.parse(result.cursor).pid is None  # nothing started
    assert read_subscription(collector.state_dir)["web_ids"] == ["W1"]  # but the subscription is published
    flowing = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation) and e.check_name == STREAM_FLOWING]
    assert not flowing[0].passed and flowing[0].severity == dg.AssetCheckSeverity.ERROR


def test_name_filter_resolves_through_pi_when_there_is_no_point_catalog(make_simulator, tmp_path):
    sim = make_simulator(n_tags=6)
    collector = StreamCollectorResource(mode="external", state_dir=str(tmp_path / "state"),
                                        delta_root=str(tmp_path / "lake"), pi_url=sim.base_url, name_filter="EDGE.*")
    with dg.instance_for_test() as instance:
        Ticker(instance, collector).tick()
    expected = sorted(p.web_id for p in sim.plant.points if p.name.startswith("EDGE."))
    assert len(expected) == 4
    assert read_subscription(collector.state_dir)["web_ids"] == expected
