"""A small `pi-platform bench stream`: every part runs and reports figures consistent with what it committed."""

from pi_platform.bench.stream import run_benchmark


def test_small_stream_benchmark_commits_everything_it_fed(tmp_path):
    report = run_benchmark(pipeline_seconds=1.0, pipeline_streams=50, values_per_stream=10, paced_rate=500,
                           paced_seconds=1.5, live_tags=10, live_values_per_minute=120, live_seconds=2.0,
                           warmup_s=3.0, work_dir=str(tmp_path))
    pipeline, paced, live = report["pipeline"], report["paced"], report["live"]
    assert pipeline["complete"] and pipeline["values_committed"] > 0 and pipeline["values_per_s"] > 0
    assert paced["samples"] > 0 and 0 < paced["latency_p50_s"] <= paced["latency_p99_s"] <= paced["latency_max_s"]
    assert live["samples"] > 0 and live["latency_p50_s"] <= live["latency_p99_s"]
    assert live["connections"] == 1 and live["receive_lag_p50_s"] is not None


def test_live_rates_report_each_rate_and_the_highest_sustained(tmp_path):
    report = run_benchmark(live_tags=10, live_values_per_minute=120, live_seconds=2.0, warmup_s=3.0,
                           live_rates=[60, 600], live_only=True, poll_interval_s=0.25, work_dir=str(tmp_path))
    assert "pipeline" not in report and "paced" not in report
    runs = report["live_rates"]
    assert [r["target_values_per_s"] for r in runs] == [60, 600]
    for run in runs:
        assert run["values_per_s"] > 0 and run["samples"] > 0 and run["poll_interval_s"] == 0.25
        assert run["settled_before_window"]  # the start-up backfill was worked off before the window opened
        # a 2 s window at 60 values/s may cost the simulator less than one 10 ms CPU tick: > 0 only over all runs
        assert 0 <= run["simulator_cpu_share"] < 1 and run["simulator_window_cpu_s"] >= 0
        # the verdict follows the stated rule: (nearly) all committed and latency not growing
        assert run["sustained"] == (run["values_per_s"] >= 0.95 * run["target_values_per_s"]
                                    and run["latency_growth_s"] is not None and run["latency_growth_s"] < 0.5)
    assert any(r["simulator_window_cpu_s"] > 0 for r in runs)
    sustained = [r["target_values_per_s"] for r in runs if r["sustained"]]
    assert report["max_sustained_live_values_per_s"] == (max(sustained) if sustained else None)
