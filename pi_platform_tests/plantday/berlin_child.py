"""The Berlin side of test_plant_day, run as a child process with PI_PARTITION_TIMEZONE=Europe/Berlin (the
zone is fixed when the code location loads): materialise the DST days through the real code location (its
assets and settings-backed resources, real Dagster execution) and evaluate its real schedules at the ticks
their crons give around both DST changes. Prints one JSON line for the test to judge; judges nothing itself.

    python pi_platform_tests/plantday/berlin_child.py 2024-03-31:af_elements,recorded_values 2024-10-27:recorded_values
"""

import json
import sys
from datetime import datetime, timezone

import dagster as dg
from dagster._utils.schedules import cron_string_iterator

from pi_platform.defs.calendar.schedules import previous_day_schedule, today_refresh_schedule
from pi_platform.defs.definitions import defs
from pi_platform.defs.partitions import daily_partitions
from pi_platform.defs.resources import default_resources

TICKS_FROM = ("2024-03-30T12:00:00+00:00", "2024-10-26T12:00:00+00:00")


def ticks(schedule: dg.ScheduleDefinition, count: int) -> list[list[str]]:
    """(tick in UTC, partition key it asks for) for `count` ticks after each of TICKS_FROM."""
    out = []
    for start in TICKS_FROM:
        moments = cron_string_iterator(datetime.fromisoformat(start).timestamp(), schedule.cron_schedule,
                                       schedule.execution_timezone)
        for _ in range(count):
            tick = next(moments)
            with dg.build_schedule_context(scheduled_execution_time=tick) as context:
                request = schedule(context)
            out.append([tick.astimezone(timezone.utc).isoformat(), request.partition_key])
    return out


def main(runs: list[str]) -> None:
    instance = dg.DagsterInstance.ephemeral()
    for run in runs:
        day, _, names = run.partition(":")
        result = dg.materialize([defs.get_assets_def(n) for n in names.split(",")], resources=default_resources(),
                                instance=instance, partition_key=day)
        assert result.success, f"materialising {names} for {day} failed"
    print(json.dumps({
        "partitions_timezone": daily_partitions.timezone,
        "schedules": {
            s.name: {"timezone": s.execution_timezone, "ticks": ticks(s, n)}
            for s, n in ((previous_day_schedule, 3), (today_refresh_schedule, 60))
        },
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
