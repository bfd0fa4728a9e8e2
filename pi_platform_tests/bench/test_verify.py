"""The benchmark's ground truth uses the same half-open day the extraction writes, so a correct run verifies."""

from datetime import date, datetime, timedelta, timezone

import pyarrow as pa

from pi_platform.bench.simproc import SimulatorSpec
from pi_platform.bench.verify import ground_truth
from pi_platform.simulator.plant import Plant

DAY = date(2026, 3, 29)
END = datetime(2026, 3, 30, tzinfo=timezone.utc)


def test_a_value_at_the_next_midnight_belongs_to_the_next_day():
    spec = SimulatorSpec(n_tags=2000, now=END + timedelta(hours=1))
    plant = Plant(spec.seed, spec.n_tags, spec.values_per_minute, edge_tags=False, now=spec.now, event_frames=False)
    at_midnight = [p.web_id for p in plant.points
                   if plant.recorded(p.web_id, END, END)["timestamp"].cast(pa.int64()).to_pylist()]
    assert at_midnight  # the plant (seed 42) has tags with a value stamped exactly at the day's end
    truth = ground_truth(spec, at_midnight[:3], DAY)
    stamps = truth["timestamp"].cast(pa.int64()).to_pylist()
    assert stamps and max(stamps) < int(END.timestamp() * 1e6)
    assert min(stamps) >= int((END - timedelta(days=1)).timestamp() * 1e6)
