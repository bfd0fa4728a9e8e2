"""The stale-tag rules on their own (pure, injected now): each rule fires exactly past its PI-derived bound; and
the `tags_fresh` check built on them, from a published snapshot poll and the AF attribute table."""

import time
from datetime import date

import dagster as dg
import pyarrow as pa

from pi_platform.defs.streaming.checks import tags_fresh
from pi_platform.defs.streaming.resources import StreamCollectorResource
from pi_platform.storage.tables import AF_ATTRIBUTES
from pi_platform.streaming.state import TAGS_FILE, write_json
from pi_platform.streaming.staleness import (
    CHANNEL_SILENT,
    INTERFACE_STATE,
    STOPPED,
    UNREADABLE,
    StalenessPolicy,
    judge,
)

T = 1_700_000_000.0
POLICY = StalenessPolicy()  # margin 60 s, state grace 0.75 x excmax, channel margin 300 s, poll overdue 300 s
FLAT = {"excmax": 600, "compmax": 28_800, "compressing": 1, "pointsource": "Area0001", "ptclassname": "classic"}


def _tag(snapshot: float | None, *, state: str | None = None, channel: float | None = None,
         first: float | None = None, error: str | None = None, **attributes) -> dict:
    return {"name": "Tag", "path": "\\\\PISIM\\Tag", "attributes": {**FLAT, **attributes}, "snapshot": snapshot,
            "state": state, "error": error, "first_snapshot": snapshot if first is None else first,
            "channel_last": channel}


def _reasons(tag: dict, *, polled_at: float = T, now: float = T) -> list[tuple[str, str]]:
    document = {"started_at": T - 3600, "polled_at": polled_at, "server_time": polled_at, "tags": {"W": tag}}
    return [(v.reason, v.severity) for v in judge(document, POLICY, now=now).verdicts]


def test_a_flat_tag_is_healthy_until_its_snapshot_is_older_than_excmax_plus_margin():
    assert _reasons(_tag(T - 660, channel=T - 8 * 3600)) == []  # archive silent for 8 h: fine for PI
    assert _reasons(_tag(T - 661)) == [(STOPPED, "ERROR")]
    assert _reasons(_tag(T - 1300, excmax=1200)) == [(STOPPED, "ERROR")]
    assert _reasons(_tag(T - 1250, excmax=1200)) == []


def test_interface_states_need_to_hold_before_they_count():
    assert _reasons(_tag(T - 400, state="I/O Timeout")) == []  # a transient state: replaced at the next exception
    assert _reasons(_tag(T - 451, state="I/O Timeout")) == [(INTERFACE_STATE, "ERROR")]
    assert _reasons(_tag(T - 451, state="Under Range")) == []  # an instrument state, not the interface


def test_points_without_excmax_are_judged_by_state_only_unless_a_default_is_configured():
    tag = _tag(T - 90_000, excmax=None)
    assert _reasons(tag) == []
    document = {"polled_at": T, "server_time": T, "tags": {"W": tag}}
    assert [v.reason for v in judge(document, StalenessPolicy(default_excmax_s=3600), now=T).verdicts] == [STOPPED]


def test_channel_silent_while_the_snapshot_moves_is_warn_only_past_compmax_plus_excmax():
    bound = 28_800 + 600 + 300
    assert _reasons(_tag(T - 10, channel=T - 10 - bound, first=T - 90_000)) == []
    assert _reasons(_tag(T - 10, channel=T - 11 - bound, first=T - 90_000)) == [(CHANNEL_SILENT, "WARN")]
    # A watch that only started recently never blames the channel for history it has not seen.
    assert _reasons(_tag(T - 10, channel=T - 11 - bound, first=T - 1000)) == []
    # A point that does not compress archives every snapshot: the channel must follow within excmax + margin.
    assert _reasons(_tag(T - 10, channel=T - 1000, first=T - 90_000, compressing=0)) == [(CHANNEL_SILENT, "WARN")]


def test_unreadable_tags_and_overdue_polls_are_errors():
    assert _reasons(_tag(None, error="404 not found")) == [(UNREADABLE, "ERROR")]
    document = {"started_at": T - 30, "polled_at": T - 400, "server_time": T - 400, "last_error": "ConnectError: x",
                "tags": {"W": _tag(T - 700)}}
    report = judge(document, POLICY, now=T)
    assert report.poll_overdue and "ConnectError" in report.poll_problem and report.severity == "ERROR"
    assert [v.reason for v in report.verdicts] == [STOPPED]  # 300 s old at the poll, 700 s now: ages run on
    fresh = judge({"started_at": T - 30, "tags": {}}, POLICY, now=T)
    assert fresh.severity == "WARN" and not fresh.poll_overdue  # no poll yet, collector just started
    assert judge({"started_at": T - 400, "tags": {}}, POLICY, now=T).severity == "ERROR"


def test_the_check_lists_stale_tags_with_their_af_element_path_and_passes_on_healthy_ones(tmp_path):
    collector = StreamCollectorResource(mode="external", state_dir=str(tmp_path / "state"),
                                        delta_root=str(tmp_path / "lake"), web_ids=["W1"])
    now = time.time()
    tags = {"W1": {**_tag(now - 700), "name": "Pump1.Flow"}, "W2": {**_tag(now - 10), "name": "Pump1.Speed"},
            "W3": {**_tag(now - 800, state="I/O Timeout"), "name": "Tank1.Level"}}
    write_json(tmp_path / "state" / TAGS_FILE, {"started_at": now - 60, "polled_at": now, "server_time": now,
                                                "tags": tags})
    rows = {f.name: [None] for f in AF_ATTRIBUTES.schema}
    rows.update(snapshot_date=[date(2024, 5, 2)], web_id=["A1"], element_web_id=["E1"], name=["Flow"],
                element_path=["\\\\AF\\DB\\Site1\\Pump1"], path=["\\\\AF\\DB\\Site1\\Pump1|Flow"], point_web_id=["W1"])
    collector.store.overwrite_range("af_attributes", pa.Table.from_pydict(rows, schema=AF_ATTRIBUTES.schema),
                                    partition_column="snapshot_date", start=date(2024, 5, 2), end=date(2024, 5, 3))
    outcome = tags_fresh(collector)
    assert not outcome.passed and outcome.severity == dg.AssetCheckSeverity.ERROR
    stale = outcome.metadata["stale_tags_error"].value
    assert set(stale) == {"Pump1.Flow", "Tank1.Level"} and "Pump1.Flow (snapshot stopped)" in outcome.description
    assert stale["Pump1.Flow"]["element_path"] == "\\\\AF\\DB\\Site1\\Pump1"  # from af_attributes
    assert stale["Tank1.Level"]["element_path"] == "\\\\PISIM\\Tag"  # no AF element: the point path
    assert stale["Tank1.Level"]["reason"] == INTERFACE_STATE and stale["Pump1.Flow"]["age_s"] == 700.0
    assert outcome.metadata["stale_by_pointsource"].value == {"Area0001": 2}

    healthy = StreamCollectorResource(mode="external", state_dir=str(tmp_path / "state"),
                                      delta_root=str(tmp_path / "lake"), stale_tags="PUMP1.S*")
    assert tags_fresh(healthy).passed  # the judged set is configurable
