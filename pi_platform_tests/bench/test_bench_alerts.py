"""A small `pi-platform bench alerts`: no false alarm on a healthy plant, every injected failure caught in time,
and the HTTP path judging exactly like the in-process one."""

import json

from pi_platform.cli import main


def test_small_alerts_benchmark_meets_its_targets(tmp_path, capsys):
    out = tmp_path / "alerts.json"
    code = main(["bench", "alerts", "--tags", "200", "--hours", "11", "--step", "60", "--http-minutes", "20",
                 "--out", str(out)])
    report = json.loads(out.read_text())
    assert code == 0, capsys.readouterr().out
    assert report["tag_days"] > 90 and report["flat_tags"] > 50
    assert report["false_error"] == 0 and report["false_warn_per_1000_tag_days"] <= 1.0
    kinds = {f["failure"]: f for f in report["failures"]}
    assert set(kinds) == {"interface-silent", "interface-io_timeout", "stuck", "deleted"}
    for failure in kinds.values():
        assert failure["detected"] == failure["tags"] and failure["late"] == 0
        assert failure["delay_s_max"] <= failure["target_s_max"]
    assert report["http_slice"]["steps"] == 20 and report["http_slice"]["mismatched_steps"] == 0
    assert report["http_slice"]["verdicts"] > 0  # the slice starts at a failure: the HTTP path flags tags too
    assert "false ERROR 0" in capsys.readouterr().out
