"""Late edits heal: an operator edits values 3 days old in PI (through the simulator's admin API, over HTTP);
the next tick of `late_edits_sensor` (driven with `build_sensor_context` on a real instance, polling the real
Stream Updates endpoints) requests exactly that day with exactly the edited tags; the real run replaces only
those tags' rows, after which recorded_values equals the plant's ground truth again, and the simulator's
request log shows that no other day or tag was read. `late_edits_applied` reports pending, applied and the day
of a failed healing run."""

import time
from datetime import date, datetime, timedelta, timezone
from urllib.parse import parse_qsl

import dagster as dg
import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pi_platform.defs.definitions import defs
from pi_platform.defs.healing.check import CHECK_NAME
from pi_platform.defs.healing.sensor import late_edits_sensor
from pi_platform.defs.resources import DeltaStorageResource, PIWebAPIResource
from pi_platform.pitime import parse_time
from pi_platform.storage import DeltaStore
from pi_platform.value_columns import VALUE_SCHEMA, sort_values
from pi_platform_tests.batch import truth

NOW = datetime(2024, 11, 4, 12, 0, tzinfo=timezone.utc)  # the simulator's frozen clock: PI's "today" is Nov 4
FIRST, DAYS = date(2024, 10, 31), 3  # materialised: Oct 31 .. Nov 2
EDITED = date(2024, 11, 1)  # 3 days old


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def numeric_value_at(plant, point, day: date, index: int) -> datetime:
    values = plant.recorded(point.web_id, midnight(day) + timedelta(hours=6), midnight(day) + timedelta(hours=18))
    return values["timestamp"][index].as_py()


def stored(store: DeltaStore):
    return sort_values(store.read("recorded_values").select(VALUE_SCHEMA.names))


def recorded_reads(admin: httpx.Client, since: int) -> list[tuple[set[str], datetime, datetime]]:
    """(WebIDs, start, end) of every recorded-values request the simulator served after position `since`."""
    reads = []
    for request in admin.get("/admin/requests").json()["requests"][since:]:
        if not request["path"].endswith("/recorded"):
            continue
        query = parse_qsl(request["query"])
        web_ids = {v for k, v in query if k.lower() == "webid"} or {request["path"].split("/")[1]}
        params = {k.lower(): v for k, v in query}
        reads.append((web_ids, parse_time(params["starttime"]), parse_time(params["endtime"])))
    return reads


@pytest.fixture
def healing_setup(make_simulator, tmp_path):
    simulator = make_simulator(n_tags=12, now=NOW)
    resources = {
        "pi_webapi": PIWebAPIResource(overrides={"url": simulator.base_url, "max_requests_per_second": "1000"}),
        "delta": DeltaStorageResource(root=str(tmp_path / "lake")),
    }
    with dg.instance_for_test() as instance, httpx.Client(base_url=simulator.root_url, timeout=60) as admin:
        yield simulator, resources, instance, admin, DeltaStore(str(tmp_path / "lake"))


def tick(instance, resources, cursor):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        result = late_edits_sensor(context)
    check = next(e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation))
    assert check.check_name == CHECK_NAME
    return result, check


def test_an_edit_3_days_old_is_healed_on_the_next_tick_reading_only_that_tag_day(healing_setup):
    simulator, resources, instance, admin, store = healing_setup
    plant = simulator.plant
    recorded = defs.get_assets_def("recorded_values")
    last = FIRST + timedelta(days=DAYS - 1)
    assert dg.materialize([recorded], resources=resources, instance=instance, tags={
        "dagster/asset_partition_range_start": FIRST.isoformat(), "dagster/asset_partition_range_end": last.isoformat(),
    }).success
    before = stored(store)

    first, check = tick(instance, resources, None)  # registers every tag's marker; nothing changed yet
    assert first.run_requests == [] and first.cursor
    assert check.passed and check.metadata["applied_tag_days"].value == 0

    numeric = [p for p in plant.points if p.point_type.startswith("Float")]
    edited, deleted, today_tag, old_tag = numeric[0], numeric[1], numeric[2], numeric[3]
    edit_at = numeric_value_at(plant, edited, EDITED, 1)
    delete_at = numeric_value_at(plant, deleted, EDITED, 2)
    started = time.monotonic()
    for body in (
        {"name": edited.name, "at": edit_at.isoformat(), "value": 12345.5},  # replace
        {"name": deleted.name, "at": delete_at.isoformat(), "value": None},  # delete
        {"name": today_tag.name, "at": (NOW - timedelta(hours=1)).isoformat(), "value": 1.0},  # today: its refresh re-reads it
        {"name": old_tag.name, "at": (NOW - timedelta(days=20)).isoformat(), "value": 2.0},  # beyond the lookback
    ):
        answer = admin.post("/admin/history/edit", json=body)
        assert answer.status_code == 200, answer.text
    mark = len(admin.get("/admin/requests").json()["requests"])

    second, check = tick(instance, resources, first.cursor)
    assert len(second.run_requests) == 1
    request = second.run_requests[0]
    assert request.partition_key == EDITED.isoformat()
    assert request.run_config["ops"]["recorded_values"]["config"]["tags"] == sorted([edited.name, deleted.name])
    assert check.passed

    result = dg.materialize([recorded], resources=resources, instance=instance, partition_key=request.partition_key,
                            run_config=request.run_config, tags=request.tags)
    assert result.success
    healed_after = time.monotonic() - started

    # the lake agrees with PI again: the replaced value is there (Substituted), the deleted one is gone, and every
    # other tag and day is exactly as before
    expected = truth.recorded(plant, midnight(FIRST), midnight(last + timedelta(days=1)))
    after = stored(store)
    assert after.equals(expected)
    assert not after.equals(before)
    row = after.filter(pc.and_(pc.equal(after["web_id"], edited.web_id), pc.equal(after["timestamp"], edit_at))).to_pylist()
    assert [(r["value"], r["substituted"]) for r in row] == [(12345.5, True)]
    assert after.filter(pc.and_(pc.equal(after["web_id"], deleted.web_id), pc.equal(after["timestamp"], delete_at))).num_rows == 0
    touched = pa.array([edited.web_id, deleted.web_id])
    others = lambda table: table.filter(pc.invert(pc.is_in(table["web_id"], value_set=touched)))  # noqa: E731
    assert others(after).equals(others(before))

    # what the healing cost PI: recorded reads of the two edited tags for that one day, nothing else
    reads = recorded_reads(admin, mark)
    assert reads
    for web_ids, start, end in reads:
        assert web_ids <= {edited.web_id, deleted.web_id}
        assert midnight(EDITED) <= start and end <= midnight(EDITED + timedelta(days=1))

    third, check = tick(instance, resources, second.cursor)  # nothing new: no run, and the check shows it applied
    assert third.run_requests == []
    assert check.passed
    assert check.metadata["applied_tag_days"].value == 2 and check.metadata["pending_runs"].value == 0
    print(f"edit -> healed recorded_values: {healed_after:.1f} s (one tick + one run)")

    # a healing run that fails leaves that day's edits unapplied, and the check says so, naming the day
    failing = {"ops": {"recorded_values": {"config": {"tags": ["No.Such.Tag"]}}}}
    assert not dg.materialize([recorded], resources=resources, instance=instance, partition_key=FIRST.isoformat(),
                              run_config=failing, tags=request.tags, raise_on_error=False).success
    _, check = tick(instance, resources, third.cursor)
    assert not check.passed and check.metadata["failed_days"].value == [FIRST.isoformat()]
    assert "NOT applied on " + FIRST.isoformat() in check.description
