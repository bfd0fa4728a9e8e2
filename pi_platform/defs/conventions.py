"""Conventions every asset shares: owners, kinds, the PI concurrency pool, freshness expectations."""

from datetime import timedelta

import dagster as dg

OWNERS = ["team:plant-data"]
KINDS = {"python", "deltalake"}

# Every asset that reads PI joins this pool; its limit (dagster.yaml `concurrency.pools`, or
# `dagster instance concurrency set pi_webapi N`) caps how many steps query PI at once, whatever the number
# of backfill runs.
PI_POOL = "pi_webapi"

# Daily data is expected once a day, after the lag; warn after a missed day, fail after two.
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=50), warn_window=timedelta(hours=26))
