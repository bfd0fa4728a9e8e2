"""Smoke test of `pi-platform bench batch` at small size: the real benchmark path (simulator process,
extraction process through `extract_recorded`, floor, report), judged on correctness, never on speed."""

import json
from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from pi_platform import cli
from pi_platform.simulator.plant import Plant
from pi_platform.value_columns import VALUE_SCHEMA, sort_values

DAY = date(2026, 3, 29)  # a Sunday, nothing special; fixed so the run is the same every time
NOW = datetime(2026, 3, 29, 4, 0, tzinfo=timezone.utc)  # frozen clock: the day holds its first 4 hours
N_TAGS = 20

RUN_FIELDS = {
    "tags", "rows", "values_per_tag", "quarantined", "wall_s", "tags_per_s", "values_per_s", "peak_rss_bytes",
    "client_cpu_s", "client_cpu_user_s", "client_cpu_system_s", "simulator_cpu_s", "simulator_cpu_share",
    "simulator_peak_rss_bytes",
    "client_cpu_us_per_value", "floor", "ratio_to_floor", "verified", "verified_tags", "delta", "client_warnings",
    "load_average_1m", "writer_rss_timeline",
}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, DeltaTable, int]:
    tmp = tmp_path_factory.mktemp("bench")
    out, lake = tmp / "report.json", tmp / "lake"
    status = cli.main([
        "bench", "batch", "--tags", str(N_TAGS), "--edge-tags", "--day", DAY.isoformat(), "--now", NOW.isoformat(),
        "--floor-tags", "10", "--verify-tags", "5", "--out", str(out), "--keep-lake", str(lake),
    ])
    return json.loads(out.read_text()), DeltaTable(str(lake / "recorded_values")), status


def ground_truth() -> pa.Table:
    """Every point's values for the day as the plant computes them in this process, independently."""
    plant = Plant(42, N_TAGS, 1.0, edge_tags=True, now=NOW, event_frames=False)
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=timezone.utc)
    return sort_values(pa.concat_tables([plant.recorded(p.web_id, start, start + timedelta(days=1)) for p in plant.points]))


def test_extracted_rows_equal_the_simulators_ground_truth(bench_run: tuple[dict, DeltaTable, int]) -> None:
    report, table, status = bench_run
    expected = ground_truth()
    got = sort_values(table.to_pyarrow_table(columns=VALUE_SCHEMA.names).cast(VALUE_SCHEMA))
    assert status == 0
    assert expected.num_rows > N_TAGS * 200  # four hours of ~1 value/minute per tag, plus the edge-case tags
    assert got.num_rows == expected.num_rows == report["runs"][0]["rows"]
    assert got.equals(expected)
    # the edge cases made it through: system states and same-timestamp groups
    assert pa.compute.any(got["is_system"]).as_py()
    assert pa.compute.max(got["position"]).as_py() >= 1
    assert table.to_pyarrow_table(columns=["event_date"])["event_date"].unique().to_pylist() == [DAY]


def test_report_has_every_figure_and_the_machine(bench_run: tuple[dict, DeltaTable, int]) -> None:
    report, _, _ = bench_run
    (run,) = report["runs"]
    assert RUN_FIELDS <= set(run)
    assert run["tags"] == len(Plant(42, N_TAGS, edge_tags=True).points)
    assert run["verified"] is True and run["verified_tags"] == 5 and run["quarantined"] == 0
    assert run["values_per_s"] == pytest.approx(run["rows"] / run["wall_s"])
    assert run["client_cpu_s"] > 0 and run["simulator_cpu_s"] is not None and run["peak_rss_bytes"] > 0
    timeline = run["writer_rss_timeline"]  # sampled, so never above the kernel's high-water mark
    assert timeline["samples"] > 0 and 0 < timeline["median_bytes"] <= timeline["max_bytes"] <= run["writer_peak_rss_bytes"]
    assert run["floor"]["values"] > 0 and run["floor"]["floor_us_per_value"] > 0
    assert run["ratio_to_floor"] == pytest.approx(run["client_cpu_us_per_value"] / run["floor"]["floor_us_per_value"])
    assert report["settings"]["day"] == DAY.isoformat()
    assert report["machine"]["cores"] >= 1 and report["machine"]["python"].startswith("CPython")
    assert report["published_claim"]["tags_per_s"] == 139.0


def test_bad_tag_count_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "batch", "--tags", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "pi-platform bench: --tags must be positive (got 0)"
