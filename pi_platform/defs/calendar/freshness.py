"""Data-level freshness: is the newest *event* in recorded_values recent?

Assets carry a FreshnessPolicy (asset level: was it materialised lately). This check reads the
`dagster/last_updated_timestamp` every materialisation reports (the newest value time), so a table that is
rematerialised but receives no new data from PI still goes stale. A sensor evaluates it.
"""

from datetime import timedelta

import dagster as dg

from pi_platform import settings

RECORDED_MAX_LAG = timedelta(minutes=settings.recorded_max_lag_minutes())

freshness_checks = dg.build_last_update_freshness_checks(
    assets=["recorded_values", "event_frames"], lower_bound_delta=RECORDED_MAX_LAG
)
freshness_sensor = dg.build_sensor_for_freshness_checks(freshness_checks=freshness_checks, name="pi_freshness_checks_sensor")

defs = dg.Definitions(asset_checks=freshness_checks, sensors=[freshness_sensor])
