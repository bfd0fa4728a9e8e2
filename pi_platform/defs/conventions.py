"""Conventions every asset shares: owners, kinds, the PI concurrency pool, freshness expectations."""

import warnings
from datetime import timedelta

import dagster as dg

from pi_platform.defs.partitions import daily_partitions

OWNERS = ["team:plant-data"]
KINDS = {"python", "deltalake"}

# Every asset that reads PI joins this pool; its limit (dagster.yaml `concurrency.pools`, or
# `dagster instance concurrency set pi_webapi N`) caps how many steps query PI at once, whatever the number
# of backfill runs.
PI_POOL = "pi_webapi"

# Single-run backfills are a deliberate choice (one Delta commit per table for a range; `storage` makes a range
# run and one run per day write identical tables), and `backfill_policy` has been Beta since Dagster 1.5
# without a stable alternative: its BetaWarning, repeated for every daily asset on every code-location load,
# would say nothing new.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy` of function `asset`", category=dg.BetaWarning)

# Daily data is expected once a day, after the lag; warn after a missed day, fail after two.
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=50), warn_window=timedelta(hours=26))


def daily_asset(group: str, *, reads_pi: bool = True) -> dict:
    """`@dg.asset` arguments every daily table shares: the plant's day partitions, single-run backfills (one run for a
    range writes one commit per table), kinds, owners, freshness, and the PI pool for assets that read PI."""
    args = dict(
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=group,
        kinds=KINDS,
        owners=OWNERS,
        freshness_policy=DAILY_FRESHNESS,
    )
    if reads_pi:
        args["pool"] = PI_POOL
    return args
