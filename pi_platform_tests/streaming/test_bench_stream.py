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
