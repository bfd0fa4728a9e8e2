"""Launch a backfill of the daily assets through Dagster's GraphQL API, and follow it to the end.

The mutation is the one the UI's Materialize button sends, so the backfill, its runs and their logs look in the
UI exactly as if a user had clicked. Following it reads the backfill's per-asset partition counts and the row
counts its materialisations report (`dagster/row_count`), so the terminal can say how far it is and, at the
end, what each table received.
"""

from dataclasses import dataclass, field

import httpx

from pi_platform.errors import PlatformError

UNFINISHED = {"REQUESTED", "CANCELING", "FAILING"}

_LAUNCH = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  ... on PartitionSetNotFoundError { message } ... on InvalidSubsetError { message } } }
"""
_PROGRESS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status
    assetBackfillData { assetBackfillStatuses { ... on AssetPartitionsStatusCounts {
      assetKey { path } numPartitionsTargeted numPartitionsInProgress numPartitionsMaterialized numPartitionsFailed } } } } }
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) { ... on Runs { results { runId status
    assetMaterializations { assetKey { path } metadataEntries { label ... on IntMetadataEntry { intValue } } } } } }
}
"""


@dataclass
class AssetProgress:
    targeted: int = 0
    in_progress: int = 0
    done: int = 0
    failed: int = 0
    rows: int = 0


@dataclass
class Progress:
    """One poll of a backfill: its status, its runs' statuses, and per asset partitions and rows."""

    status: str
    runs: list[str] = field(default_factory=list)
    assets: dict[str, AssetProgress] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED

    @property
    def succeeded(self) -> bool:
        return self.finished and bool(self.runs) and all(r == "SUCCESS" for r in self.runs)

    def line(self) -> str:
        total = sum(a.targeted for a in self.assets.values())
        done = sum(a.done for a in self.assets.values())
        failed = sum(a.failed for a in self.assets.values())
        running = sum(a.in_progress for a in self.assets.values())
        rows = sum(a.rows for a in self.assets.values())
        runs = ", ".join(f"{n} {s.lower()}" for s, n in sorted(_count(self.runs).items())) or "none yet"
        state = {"REQUESTED": "running"}.get(self.status, self.status.lower().replace("_", " "))
        return (f"backfill {state}: {done}/{total} asset partitions done, {failed} failed, "
                f"{running} in progress; {rows:,} rows written; runs: {runs}")

    def summary(self, order: list[str]) -> list[str]:
        """One line per table, in `order` (then any others)."""
        names = sorted(self.assets, key=lambda n: (order.index(n) if n in order else len(order), n))
        width = max((len(name) for name in names), default=0)
        return [f"  {name:<{width}}  {a.done}/{a.targeted} partitions done"
                + (f", {a.failed} FAILED" if a.failed else "") + f", {a.rows:,} rows"
                for name, a in ((n, self.assets[n]) for n in names)]


def _count(items: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


class DagsterAPI:
    def __init__(self, url: str) -> None:
        self.url = url

    def _graphql(self, query: str, variables: dict) -> dict:
        response = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise PlatformError(f"Dagster refused the request: {body['errors'][0].get('message')}")
        return body["data"]

    def launch_backfill(self, assets: list[str], days: list[str]) -> str:
        """The daemon turns it into runs: one for the whole range, as every daily asset has a single-run
        backfill policy."""
        params = {"assetSelection": [{"path": [name]} for name in assets], "partitionNames": days, "fromFailure": False}
        result = self._graphql(_LAUNCH, {"params": params})["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise PlatformError(f"could not launch the backfill: {result.get('message') or result['__typename']}")
        return result["backfillId"]

    def progress(self, backfill_id: str) -> Progress:
        data = self._graphql(_PROGRESS, {"id": backfill_id})
        backfill = data["partitionBackfillOrError"] or {}
        progress = Progress(status=backfill.get("status") or "REQUESTED")
        for counts in (backfill.get("assetBackfillData") or {}).get("assetBackfillStatuses") or []:
            if "assetKey" in counts:
                progress.assets["/".join(counts["assetKey"]["path"])] = AssetProgress(
                    counts["numPartitionsTargeted"], counts["numPartitionsInProgress"],
                    counts["numPartitionsMaterialized"], counts["numPartitionsFailed"])
        for run in (data["runsOrError"] or {}).get("results") or []:
            progress.runs.append(run["status"])
            # A range run records one materialisation per partition, each with the run's row count: count it once.
            rows: dict[str, int] = {}
            for event in run["assetMaterializations"]:
                name = "/".join(event["assetKey"]["path"])
                for entry in event["metadataEntries"]:
                    if entry["label"] == "dagster/row_count" and entry.get("intValue") is not None:
                        rows[name] = max(rows.get(name, 0), entry["intValue"])
            for name, count in rows.items():
                progress.assets.setdefault(name, AssetProgress()).rows += count
        return progress
