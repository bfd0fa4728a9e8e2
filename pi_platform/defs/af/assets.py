"""`af_elements` and `af_attributes`: daily snapshots of the AF hierarchy."""

import dagster as dg

from pi_platform.client import PIWebAPIClient
from pi_platform.batch import inventory
from pi_platform.defs import checks
from pi_platform.defs.conventions import daily_asset
from pi_platform.defs.failures import user_errors
from pi_platform.defs.partitions import run_window
from pi_platform.defs.resources import DeltaStorageResource, PIWebAPIResource
from pi_platform.defs.snapshots import write_snapshot
from pi_platform.storage import schemas
from pi_platform.storage.tables import AF_ATTRIBUTES, AF_ELEMENTS

_COMMON = daily_asset("af")


@dg.asset(
    **_COMMON,
    metadata={"table": AF_ELEMENTS.name, "partition_expr": AF_ELEMENTS.partition_column},
    check_specs=checks.standard_specs("af_elements"),
    description="Daily snapshot of the AF element hierarchy: paths, parents, depth, templates, categories.",
)
@user_errors
def af_elements(context: dg.AssetExecutionContext, pi_webapi: PIWebAPIResource, delta: DeltaStorageResource) -> dg.MaterializeResult:
    pairs = pi_webapi.run(lambda client: inventory.element_items(client, pi_webapi.af_database))
    context.log.info(f"{len(pairs)} elements")
    return write_snapshot(
        context, delta.store(), AF_ELEMENTS, schemas.AF_ELEMENTS, run_window(context),
        lambda day: inventory.elements_snapshot(pairs, day),
    )


@dg.asset(
    **_COMMON,
    deps=[af_elements],
    metadata={"table": AF_ATTRIBUTES.name, "partition_expr": AF_ATTRIBUTES.partition_column},
    check_specs=checks.standard_specs("af_attributes"),
    description=(
        "Daily snapshot of element attributes: types, units, categories, data references, with PI Point "
        "references resolved to point WebIDs."
    ),
)
@user_errors
def af_attributes(context: dg.AssetExecutionContext, pi_webapi: PIWebAPIResource, delta: DeltaStorageResource) -> dg.MaterializeResult:
    window = run_window(context)
    store = delta.store()
    elements = store.read_range(AF_ELEMENTS.name, AF_ELEMENTS.partition_column, window.days[-1], window.end)
    elements = elements.select(["web_id", "path"])
    if elements.num_rows == 0:
        context.log.warning(f"af_elements has no snapshot for {window.days[-1]}: materialise af_elements for it first")

    async def read(client: PIWebAPIClient):
        per_element = await inventory.attribute_items(client, elements["web_id"].to_pylist())
        _, points = await inventory.data_server_points(client)
        return per_element, points

    per_element, points = pi_webapi.run(read)
    return write_snapshot(
        context, store, AF_ATTRIBUTES, schemas.AF_ATTRIBUTES, window,
        lambda day: inventory.attributes_snapshot(elements, per_element, points, day),
    )
