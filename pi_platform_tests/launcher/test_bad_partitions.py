"""A Dagster run over a reversed or out-of-range partition range (as `dagster asset materialize
--partition-range` allows) fails with one line saying so, not a traceback from deep inside."""

from pathlib import Path

import dagster as dg
import pytest

from pi_platform.defs.definitions import defs
from pi_platform.defs.resources import DeltaStorageResource

RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


@pytest.mark.parametrize("first, last, message", [
    ("2024-03-03", "2024-03-01", "partition range 2024-03-03...2024-03-01 ends before it starts: write the earlier day first"),
    ("1999-03-03", "1999-03-04", "partitions 1999-03-03...1999-03-04 are outside 2024-01-01..."),
])
def test_bad_range_fails_the_run_with_one_line(first: str, last: str, message: str, tmp_path: Path):
    with dg.instance_for_test() as instance:
        result = dg.materialize([defs.get_assets_def("alarm_kpis")], instance=instance, selection=["alarm_kpis"],
                                resources={"delta": DeltaStorageResource(root=str(tmp_path))},
                                tags=dict(zip(RANGE, (first, last))), raise_on_error=False)
    assert not result.success
    [failure] = result.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith(message) and "\n" not in description
    assert not any(tmp_path.iterdir())  # failed before writing anything
