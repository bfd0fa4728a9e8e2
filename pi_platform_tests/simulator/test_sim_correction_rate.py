"""The share of values the plant corrects later (`correction_rate`, `--correction-rate`, PISIM_CORRECTION_RATE): none
at 0, about the default share by default, reaching the plant of a running simulator; out-of-range values refused."""

import argparse
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from pi_platform.errors import ConfigError
from pi_platform.simulator.config import SimulatorConfig, add_arguments, from_args
from pi_platform.simulator.plant import Plant
from pi_platform.simulator.values import CORRECTION_RATE, NEVER

NOW = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
HOUR_AGO = NOW - timedelta(hours=1)
FAST = 600.0  # values per minute: 36,000 values an hour per tag


def _corrections(plant: Plant) -> tuple[int, int]:
    """(corrected values, values) over the last hour of the plant's ordinary tags, as PI holds them 10 minutes
    later (every correction, at most 5 minutes late, has happened): corrected values are re-sent Substituted."""
    corrected = total = 0
    for point in plant.points:
        assert not point.edge
        values = plant.recorded(point.web_id, HOUR_AGO, NOW, now=NOW + timedelta(minutes=10))
        block = plant.generator.block(point, int(HOUR_AGO.timestamp() * 1e6), int(NOW.timestamp() * 1e6))
        planned = int(np.count_nonzero(block.corr_at != NEVER))
        substituted = values["substituted"].to_pylist().count(True)
        assert substituted == planned  # each correction the generator planned is in PI's archive by then
        corrected += substituted
        total += values.num_rows
    return corrected, total


def test_no_corrections_at_rate_zero_and_about_the_default_share_by_default():
    none, values = _corrections(Plant(seed=3, n_tags=6, values_per_minute=FAST, edge_tags=False, now=NOW,
                                      correction_rate=0.0))
    assert none == 0 and values > 100_000
    some, values = _corrections(Plant(seed=3, n_tags=6, values_per_minute=FAST, edge_tags=False, now=NOW))
    assert 0.5 * CORRECTION_RATE < some / values < 1.5 * CORRECTION_RATE


def test_config_refuses_a_rate_outside_0_to_1_naming_the_setting():
    for bad in (2.0, -0.1):
        with pytest.raises(ConfigError, match="correction_rate"):
            SimulatorConfig(correction_rate=bad)


def test_flag_and_environment_reach_the_running_plant(monkeypatch, make_simulator):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert from_args(parser.parse_args([])).correction_rate == CORRECTION_RATE
    assert from_args(parser.parse_args(["--correction-rate", "0.0005"])).correction_rate == 0.0005
    monkeypatch.setenv("PISIM_CORRECTION_RATE", "0")
    parser = argparse.ArgumentParser()
    add_arguments(parser)  # the environment sets the flag's default
    config = from_args(parser.parse_args(["--tags", "6", "--values-per-minute", str(FAST), "--no-edge-tags",
                                          "--now", NOW.isoformat()]))
    assert config.correction_rate == 0.0

    sim = make_simulator(**{name: getattr(config, name) for name in
                            ("n_tags", "values_per_minute", "edge_tags", "now", "correction_rate")})
    assert _corrections(sim.plant)[0] == 0
