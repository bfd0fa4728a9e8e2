"""Everything at once, seeded: kill -9 of collector subprocesses at random moments, channel drops, REST 5xx/429
storms overlapping the reconnects' gap reads, and a tag PI does not know among the good ones; one collector
subscribed by tag name, one by WebID. After a quiet period both tables equal the simulator's ground truth."""

from pi_platform.bench.chaos import FAULT_KINDS, ChaosSettings, format_report, lost_nothing, run_chaos


def test_combined_chaos_loses_nothing_and_doubles_nothing(make_simulator, tmp_path):
    sim = make_simulator(n_tags=12, values_per_minute=600)
    report = run_chaos(ChaosSettings(duration_s=30, seed=11, tags=4, quiet_timeout_s=60), sim, tmp_path)
    print(format_report(report))
    assert all(report["faults"][kind] >= 1 for kind in FAULT_KINDS)
    totals = report["totals"]
    assert totals["expected"] > 0 and totals["committed"] == totals["expected"]
    assert (totals["missing"], totals["doubled"], totals["extra"], totals["differing"]) == (0, 0, 0, 0)
    assert totals["corrections_expected"] > 0 and totals["corrections_applied"] == totals["corrections_expected"]
    assert report["bad_tags_isolated"] == {"by_name": ["CHAOS.NO.SUCH.TAG"],
                                           "by_web_id": [report["bad_tags_isolated"]["by_web_id"][0]]}
    assert report["bad_tags_isolated"]["by_web_id"][0].startswith("F1DP")
    assert report["collector_crashes"] == 0 and report["exit_codes"] == {"by_name": 0, "by_web_id": 0}
    assert lost_nothing(report)
