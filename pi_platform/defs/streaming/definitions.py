"""Streaming definitions: the `stream_values` asset, its health checks and the collector sensor.

`build_defs` takes a collector resource for tests; the default one is configured by pi_platform/settings.py
(PI_STREAM_*, PI_DELTA_*), so the local default works with no configuration. stream_values is compacted by
the shared `delta_maintenance` job (defs/maintenance).
"""

import dagster as dg

from pi_platform.defs.streaming.assets import STREAM_VALUES
from pi_platform.defs.streaming.checks import CHECKS
from pi_platform.defs.streaming.gap_checks import GAP_CHECKS
from pi_platform.defs.streaming.resources import StreamCollectorResource
from pi_platform.defs.streaming.sensors import stream_collector_sensor


def build_defs(collector: StreamCollectorResource | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[STREAM_VALUES],
        asset_checks=[*CHECKS, *GAP_CHECKS],
        sensors=[stream_collector_sensor],
        resources={"stream_collector": collector or StreamCollectorResource()},
    )


defs = build_defs()

__all__ = ["StreamCollectorResource", "build_defs", "defs"]
