"""Each stream's rhythm (last committed value time, usual interval), kept by the collector as it commits.

The stale-tag check needs, per tag, "how long since its last value" and "how often does it usually
update". Scanning the table for that costs a read of recent history per evaluation and misses slow tags
whose last value is older than the window; the collector already sees every committed row, so it keeps
both figures in memory (O(tags)) and publishes them in `tags.json` next to its status.
"""

import numpy as np
import pandas as pd
import pyarrow as pa

_SMOOTHING = 0.2  # weight of a batch's median gap in the running interval estimate


class StreamRhythm:
    def __init__(self, previous: dict[str, list] | None = None, hwm: dict[str, int] | None = None) -> None:
        """`previous`: a former tags.json (its intervals are still good); `hwm`: committed high-water marks."""
        self.names: dict[str, str] = {}
        self.last: dict[str, float] = {}
        self.interval: dict[str, float] = {}
        for web_id, (name, _, interval) in (previous or {}).items():
            self.names[web_id] = name
            if interval is not None:
                self.interval[web_id] = float(interval)
        for web_id, ts in (hwm or {}).items():
            self.last[web_id] = ts / 1e6

    def update(self, rows: pa.Table) -> None:
        """Fold in committed rows: newest time per stream, and the median gap between distinct timestamps."""
        if rows.num_rows == 0:
            return
        frame = pd.DataFrame({
            "web_id": rows["web_id"].to_numpy(zero_copy_only=False),
            "name": rows["name"].to_numpy(zero_copy_only=False),
            "ts": rows["timestamp"].cast(pa.int64()).to_numpy(zero_copy_only=False) / 1e6,
        }).drop_duplicates(["web_id", "ts"])
        previous = frame["web_id"].map(self.last)
        frame = frame[previous.isna() | (frame["ts"] > previous)]  # re-reads of older values say nothing new
        previous = frame["web_id"].map(self.last)
        extra = frame.loc[previous.notna(), ["web_id", "name"]].drop_duplicates("web_id")
        extra["ts"] = extra["web_id"].map(self.last)  # the gap from the last committed value counts too
        frame = (pd.concat([frame, extra]).drop_duplicates(["web_id", "ts"]).sort_values(["web_id", "ts"])
                 .reset_index(drop=True))
        frame["gap"] = frame.groupby("web_id", sort=False)["ts"].diff()
        medians = frame[frame["gap"] > 0].groupby("web_id")["gap"].median()
        newest = frame.groupby("web_id", sort=False).agg(ts=("ts", "max"), name=("name", "last"))
        for web_id, ts, name in zip(newest.index, newest["ts"], newest["name"], strict=True):
            self.last[web_id] = max(ts, self.last.get(web_id, ts))
            self.names[web_id] = name
        for web_id, gap in medians.items():
            old = self.interval.get(web_id)
            self.interval[web_id] = float(gap) if old is None else (1 - _SMOOTHING) * old + _SMOOTHING * float(gap)

    def snapshot(self) -> dict[str, list]:
        """web_id -> [name, last value time (epoch s), usual interval (s) or None]."""
        return {w: [self.names.get(w, ""), round(t, 6), _rounded(self.interval.get(w))] for w, t in self.last.items()}


def _rounded(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(value, 6)
