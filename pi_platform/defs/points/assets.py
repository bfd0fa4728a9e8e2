"""`pi_points`: the daily point catalog of the data server."""

import dagster as dg

from pi_platform.batch import inventory
from pi_platform.defs import checks
from pi_platform.defs.conventions import daily_asset
from pi_platform.defs.failures import user_errors
from pi_platform.defs.partitions import run_window
from pi_platform.defs.resources import DeltaStorageResource, PIWebAPIResource
from pi_platform.defs.snapshots import write_snapshot
from pi_platform.storage import schemas
from pi_platform.storage.tables import PI_POINTS


@dg.asset(
    **daily_asset("points"),
    metadata={"table": PI_POINTS.name, "partition_expr": PI_POINTS.partition_column},
    check_specs=checks.standard_specs("pi_points"),
    description="Daily snapshot of the PI point catalog: type, engineering units, zero, span, step, digital set.",
)
@user_errors
def pi_points(context: dg.AssetExecutionContext, pi_webapi: PIWebAPIResource, delta: DeltaStorageResource) -> dg.MaterializeResult:
    server, points = pi_webapi.run(inventory.data_server_points)
    context.log.info(f"{points.num_rows} points on {server}")
    return write_snapshot(
        context, delta.store(), PI_POINTS, schemas.PI_POINTS, run_window(context),
        lambda day: inventory.points_snapshot(server, points, day),
    )
