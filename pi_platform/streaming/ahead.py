"""A verification round's rewrite, prepared beside the batcher instead of in the batch that commits it.

Why: a round's answers replace rows in files written half a minute or more before; reading and rewriting those files
(~15 ms a file, 10-20 files a round at 10,000 values/s) inside the commit that also carries the fresh values held
every fresh value of that batch back by as long, and those batches were the live latency's tail. The round's reads
already run off the batch path; its rewrite is now prepared there too (`StreamSink.prepare`), and the batch that
carries the answers only adds the prepared actions to its own.

When a prepared rewrite still applies: data files never change, so it stays right while (1) every file it replaces
is still live (the sink checks: a compaction may have merged one, and then it writes that file's rows again), and (2)
no row has been written in the round's time span since it was prepared, neither by a commit in between nor by the
batch that carries it: such a row (a gap read, or a slow stream's value inside a read window) could be a key the
rewrite took for absent, or a later read of a key the answers hold. The collector checks (2) with `Span` and
otherwise commits the answers the way any read is committed, in its batch.
"""

from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pi_platform.streaming.messages import STREAM_SCHEMA
from pi_platform.streaming.reconcile import Plan, compose, group_keys
from pi_platform.streaming.sink import Prepared, StreamSink


@dataclass
class Span:
    """The PI time the answers' rows cover (µs, inclusive), and whether a row written since it was taken fell in it."""

    low: int
    high: int
    touched: bool = False

    def note(self, rows: pa.Table) -> None:
        """Note a commit's (or the carrying batch's) rows."""
        if rows.num_rows and not self.touched:
            low, high = (v.value for v in pc.min_max(rows["timestamp"]).values())
            self.touched = low <= self.high and high >= self.low


@dataclass(frozen=True)
class AheadRewrite:
    plan: Plan  # the answers as their batch would compose them: their rows, and which may already be stored
    prepared: Prepared
    keys: pd.MultiIndex  # the groups the answers hold: the carrying batch drops its channel rows of them
    span: Span = field(compare=False)


def prepare(sink: StreamSink, answers: list[pa.Table], verified: pd.MultiIndex, hwm: dict[str, int], span: Span
            ) -> AheadRewrite:
    """Compose the round's `answers` (unsuperseded rows, in read order) against the high-water marks `hwm` as they
    were when `span` started noting commits, and write their files. Runs in a worker thread."""
    plan = compose(STREAM_SCHEMA.empty_table(), answers, verified, hwm)
    return AheadRewrite(plan, sink.prepare(plan.rows, plan.may_exist), group_keys(plan.rows).unique(), span)


def span_of(answers: list[pa.Table]) -> Span:
    """The time the answers' rows cover; an empty span (nothing to rewrite) when they hold none."""
    stamps = [pc.min_max(a["timestamp"]) for a in answers if a.num_rows]
    if not stamps:
        return Span(1, 0)
    return Span(min(s["min"].value for s in stamps), max(s["max"].value for s in stamps))
