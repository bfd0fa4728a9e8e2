"""Streaming definitions: the `stream_values` asset, its health checks, the collector sensor, compaction.

The batch definitions merge `defs` (or call `build_defs` with their own resource settings).
Settings come from the environment so the local default works with no configuration:
PI_STREAM_STATE_DIR, PI_DELTA_ROOT, PI_STREAM_MODE (local | external), PI_STREAM_NAME_FILTER,
PI_STREAM_WEB_IDS (comma-separated), PI_PLATFORM_ALERT_WEBHOOK_URL.
"""

import os

import dagster as dg

from pi_platform.defs.streaming.assets import STREAM_VALUES
from pi_platform.defs.streaming.checks import CHECKS
from pi_platform.defs.streaming.maintenance import stream_values_compaction, stream_values_compaction_schedule
from pi_platform.defs.streaming.resources import StreamCollectorResource
from pi_platform.defs.streaming.sensors import stream_collector_sensor


def collector_from_env() -> StreamCollectorResource:
    web_ids = [w for w in os.environ.get("PI_STREAM_WEB_IDS", "").split(",") if w]
    return StreamCollectorResource(
        mode=os.environ.get("PI_STREAM_MODE", "local"),  # type: ignore[arg-type]
        state_dir=os.environ.get("PI_STREAM_STATE_DIR", ".pi_platform/stream"),
        delta_root=os.environ.get("PI_DELTA_ROOT", ".pi_platform/lake"),
        name_filter=os.environ.get("PI_STREAM_NAME_FILTER") or None,
        web_ids=web_ids,
    )


def build_defs(collector: StreamCollectorResource | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[STREAM_VALUES],
        asset_checks=CHECKS,
        sensors=[stream_collector_sensor],
        jobs=[stream_values_compaction],
        schedules=[stream_values_compaction_schedule],
        resources={"stream_collector": collector or collector_from_env()},
    )


defs = build_defs()

__all__ = ["StreamCollectorResource", "build_defs", "defs"]
