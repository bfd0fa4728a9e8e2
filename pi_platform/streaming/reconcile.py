"""Turn what arrived (channel rows, PI reads) into the rows that make `stream_values` equal what PI holds.

The key of `stream_values` is (web_id, timestamp, position). The unit of truth is a *group*: all values of
one stream at one timestamp, positions 0..n-1 in PI's order. Rules, applied per micro-batch:

1. **Authoritative groups.** Rows read from PI (gap backfill, verification) are complete groups as PI holds
   them now. They replace whatever the channel delivered for the same group; if the same group was read
   twice, the later read wins.
2. **Late groups.** A channel group at or before the stream's high-water mark (the newest timestamp
   already committed), or one carrying `Substituted` (a correction), may collide with committed rows or
   be a partial view of a group. The collector does not guess: it reads that exact timestamp back from
   PI (verification) and the result is authoritative (rule 1). Corrections are rare, so this costs little,
   and it turns "corrections, out-of-order values, groups split across messages" into one code path.
3. **Fresh groups.** Everything else is newer than anything committed for its stream. Overlapping
   sockets (subscription change, reconnect with initial values) may deliver a value twice; the same
   value can also legitimately occur twice in one group. So multiplicity is the *maximum over sources*
   (connection attempts), not the sum; positions follow arrival order.

Writes (`rewrite.py`): rows above their stream's high-water mark go to new files; rows at or below it that
differ from what the table holds (corrections, completed groups) replace the row of their key in the file holding
it, or are inserted, in the same commit; identical re-reads are dropped, so a reconnect's look-back re-read costs
a read, not a rewrite. Either way the commit carries the batch's application-transaction version, so re-running
it after a crash is a no-op.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pi_platform.streaming.messages import CHANNEL_SCHEMA, STREAM_SCHEMA

_FINGERPRINT = ["value", "value_str", "digital_code", "is_system", "good", "questionable", "substituted", "annotated"]


@dataclass(frozen=True)
class Plan:
    rows: pa.Table  # STREAM_SCHEMA, unique on the key
    may_exist: np.ndarray  # per row: at or below its stream's high-water mark, so possibly already committed
    fresh_rows: int
    authoritative_rows: int

    @property
    def needs_merge(self) -> bool:
        return bool(self.may_exist.any())

    def plus(self, reads: "Plan") -> "Plan":
        """This plan and another one's rows (reads only, keys disjoint), as one commit holds them: fresh rows first."""
        return Plan(pa.concat_tables([self.rows, reads.rows]), np.concatenate([self.may_exist, reads.may_exist]),
                    self.fresh_rows, self.authoritative_rows + reads.authoritative_rows)


def group_keys(table: pa.Table) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays(
        [table["web_id"].to_numpy(zero_copy_only=False), table["timestamp"].cast(pa.int64()).to_numpy(zero_copy_only=False)],
        names=["web_id", "ts"],
    )


def _in_groups(table: pa.Table, groups: pd.MultiIndex) -> np.ndarray:
    """Per row: is its (web_id, ts) one of `groups`. Groups are mostly a few late groups against a whole batch,
    so rows are first narrowed, vectorised, to those whose stream and timestamp both occur in `groups`; only
    those few get the exact (pair) check."""
    inside = np.zeros(table.num_rows, dtype=bool)
    if table.num_rows == 0 or len(groups) == 0:
        return inside
    web_ids = pa.array(groups.get_level_values(0).unique().to_numpy(), table.schema.field("web_id").type)
    stamps = pa.array(np.unique(groups.get_level_values(1).to_numpy(dtype=np.int64)), pa.int64())
    maybe = pc.and_(pc.is_in(table["timestamp"].cast(pa.int64()), value_set=stamps),
                    pc.is_in(table["web_id"], value_set=web_ids))
    candidates = np.flatnonzero(maybe.to_numpy(zero_copy_only=False))
    if len(candidates):
        inside[candidates] = group_keys(table.take(pa.array(candidates))).isin(groups)
    return inside


def _compare(table: pa.Table, marks: dict[str, int], op: np.ufunc) -> np.ndarray:
    """op(timestamp, mark of the row's stream); False for streams without a mark. Marks are looked up once per
    distinct stream (dictionary encoding), not per row."""
    if table.num_rows == 0 or not marks:
        return np.zeros(table.num_rows, dtype=bool)
    encoded = pc.dictionary_encode(table["web_id"]).combine_chunks()
    per_stream = np.array([marks.get(w, np.nan) for w in encoded.dictionary.to_pylist()], dtype="float64")
    ts = table["timestamp"].cast(pa.int64()).to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        return op(ts, per_stream[encoded.indices.to_numpy(zero_copy_only=False)])  # NaN compares False


def _at_or_below(table: pa.Table, hwm: dict[str, int]) -> np.ndarray:
    return _compare(table, hwm, np.less_equal)


def drop_before_start(channel: pa.Table, starts: dict[str, int]) -> pa.Table:
    """Channel rows older than their stream's data start (e.g. a correction of pre-subscription history)
    are outside what the table promises to hold, so they are not verified or written."""
    before = _compare(channel, starts, np.less)
    return channel.filter(pa.array(~before)) if before.any() else channel


def late_groups(channel: pa.Table, hwm: dict[str, int], covered: pd.MultiIndex | None = None) -> pd.MultiIndex:
    """(web_id, ts) groups of channel rows that must be verified against PI (rule 2)."""
    if channel.num_rows == 0:
        return pd.MultiIndex.from_arrays([[], []], names=["web_id", "ts"])
    late = _at_or_below(channel, hwm) | channel["substituted"].to_numpy(zero_copy_only=False)
    keys = group_keys(channel.filter(pa.array(late))).unique()
    if covered is not None and len(covered):
        keys = keys[~keys.isin(covered)]
    return keys


def select_groups(values: pa.Table, groups: pd.MultiIndex) -> pa.Table:
    """Rows of `values` whose (web_id, ts) is in `groups` (verification reads cover a wider range)."""
    if values.num_rows == 0 or len(groups) == 0:
        return values.slice(0, 0)
    return values.filter(pa.array(_in_groups(values, groups)))


def compose(
    channel: pa.Table,
    authoritative: list[pa.Table],
    verified: pd.MultiIndex,
    hwm: dict[str, int],
) -> Plan:
    """Apply the rules above. `authoritative` tables are in read order (later reads win); `verified` are
    the late groups that were read back, including those PI no longer holds (their channel rows drop)."""
    auth = _latest_reads(authoritative)
    covered = group_keys(auth).unique() if auth.num_rows else verified
    if auth.num_rows and len(verified):
        covered = covered.union(verified)
    fresh = _fresh(channel, covered)
    rows = pa.concat_tables([fresh, auth]) if auth.num_rows else fresh
    return Plan(rows, _at_or_below(rows, hwm), fresh.num_rows, auth.num_rows)


def _latest_reads(tables: list[pa.Table]) -> pa.Table:
    tables = [t.select(STREAM_SCHEMA.names).cast(STREAM_SCHEMA) for t in tables if t.num_rows]
    if not tables:
        return STREAM_SCHEMA.empty_table()
    if len(tables) == 1:
        return tables[0]
    read = np.concatenate([np.full(t.num_rows, i) for i, t in enumerate(tables)])
    table = pa.concat_tables(tables)
    keys = group_keys(table).to_frame(index=False)
    keys["read"] = read
    latest = keys.groupby(["web_id", "ts"], sort=False)["read"].transform("max").to_numpy()
    return table.filter(pa.array(read == latest))


def _fresh(channel: pa.Table, covered: pd.MultiIndex) -> pa.Table:
    """Channel rows of groups nobody read back, de-duplicated across sources, positions by arrival."""
    if channel.num_rows == 0:
        return STREAM_SCHEMA.empty_table()
    channel = channel.cast(CHANNEL_SCHEMA)
    if len(covered):
        channel = channel.filter(pa.array(~_in_groups(channel, covered)))
        if channel.num_rows == 0:
            return STREAM_SCHEMA.empty_table()
    group, position = _groups(channel)
    sources = pc.dictionary_encode(channel["source"]).combine_chunks().indices.to_numpy(zero_copy_only=False)
    lo, hi = np.full(group.max() + 1, sources.max() + 1), np.full(group.max() + 1, -1)
    np.minimum.at(lo, group, sources)
    np.maximum.at(hi, group, sources)
    shared = (lo != hi)[group]  # groups two sockets delivered: the only place duplicates can come from
    if shared.any():
        keep = np.ones(channel.num_rows, dtype=bool)
        keep[shared] = _max_over_sources(channel.filter(pa.array(shared)))
        channel = channel.filter(pa.array(keep))
        group, position = _groups(channel)
    index = channel.schema.get_field_index("position")
    channel = channel.set_column(index, channel.schema.field("position"), pa.array(position, pa.int32()))
    return channel.select(STREAM_SCHEMA.names).cast(STREAM_SCHEMA)


def _groups(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Per row: its (web_id, ts) group number and its arrival rank within the group (its position)."""
    web = pc.dictionary_encode(table["web_id"]).combine_chunks().indices.to_numpy(zero_copy_only=False)
    ts = table["timestamp"].cast(pa.int64()).to_numpy(zero_copy_only=False)
    n = len(ts)
    order = np.lexsort((np.arange(n), ts, web))  # by group, then arrival
    new = np.ones(n, dtype=bool)
    new[1:] = (web[order][1:] != web[order][:-1]) | (ts[order][1:] != ts[order][:-1])
    group_sorted = np.cumsum(new) - 1
    group, position = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int32)
    group[order] = group_sorted
    position[order] = np.arange(n) - np.flatnonzero(new)[group_sorted]
    return group, position


def _max_over_sources(rows: pa.Table) -> np.ndarray:
    """Keep mask: a value's multiplicity in a group is the largest any single source delivered."""
    frame = rows.select(["web_id", "timestamp", "source", *_FINGERPRINT]).to_pandas()
    frame["fp"] = pd.util.hash_pandas_object(frame[_FINGERPRINT], index=False).to_numpy()
    occurrence = frame.groupby(["web_id", "timestamp", "fp", "source"], sort=False, dropna=False).cumcount()
    return (~pd.DataFrame({"w": frame["web_id"], "t": frame["timestamp"], "fp": frame["fp"], "k": occurrence})
            .duplicated()).to_numpy()
