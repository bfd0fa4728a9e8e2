"""Reads from PI that make the stream complete and correct: gap backfill and verification of late groups.

Both return *authoritative* rows (see reconcile.py) stamped with when the read started: a read that
started earlier must never overwrite a group a later read already committed (a correction can land
between the two).
"""

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow as pa

from pi_platform.client import PIWebAPIClient
from pi_platform.client.errors import PIWebAPIError
from pi_platform.streaming.messages import with_received_at
from pi_platform.streaming.pending import VERIFY_SPAN_US
from pi_platform.streaming.reconcile import select_groups

# Streams whose gap starts within this spread share one multi-stream read (the earliest start wins; rows
# before a stream's own start are dropped), so a reconnect of 1,000 streams is a few requests, not 1,000.
_START_SPREAD_US = 300_000_000


@dataclass(frozen=True)
class AuthoritativeRows:
    read_started: float  # epoch seconds
    rows: pa.Table  # STREAM_SCHEMA
    rejects: pa.Table  # REJECT_SCHEMA
    closes_gap: str | None = None  # set on the last chunk of a complete gap read: its commit closes the gap
    verifies: pd.MultiIndex | None = None  # set on a verification read: the late groups it is PI's answer for


@dataclass(frozen=True)
class Verification:
    """One round of verification reads: PI's answers, and the streams of each window PI failed (with why)."""

    answers: list[AuthoritativeRows]
    failures: list[tuple[list[str], Exception]]  # PIWebAPIError, or what broke a whole round


def verified_by(answers: Sequence[AuthoritativeRows]) -> pd.MultiIndex:
    """The late groups a round's `answers` are PI's answer for (none for no answers)."""
    verified = pd.MultiIndex.from_arrays([np.array([], dtype=object), np.array([], dtype=np.int64)],
                                         names=["web_id", "ts"])
    for answer in answers:
        if answer.verifies is not None:
            verified = verified.union(answer.verifies)
    return verified


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, timezone.utc)


def gap_groups(starts: dict[str, int]) -> list[tuple[int, list[str]]]:
    """Streams grouped by gap start (µs), each group read from its earliest start."""
    groups: list[tuple[int, list[str]]] = []
    for web_id, start in sorted(starts.items(), key=lambda kv: kv[1]):
        if groups and start - groups[-1][0] <= _START_SPREAD_US:
            groups[-1][1].append(web_id)
        else:
            groups.append((start, [web_id]))
    return groups


async def backfill(client: PIWebAPIClient, starts: dict[str, int], end_us: int) -> AsyncIterator[AuthoritativeRows]:
    """Recorded values of each stream from its start (inclusive: the group at a high-water mark may be
    incomplete) up to `end_us` (inclusive), chunk by chunk so an outage of any length streams through
    bounded memory."""
    for group_start, web_ids in gap_groups(starts):
        read_started = time.time()
        own_start = pd.Series({w: starts[w] for w in web_ids})
        async for batch in client.recorded(web_ids, _dt(group_start), _dt(max(end_us, group_start))):
            values = batch.values
            if values.num_rows and len(web_ids) > 1:
                floor = pd.Series(values["web_id"].to_numpy(zero_copy_only=False)).map(own_start).to_numpy()
                ts = values["timestamp"].cast(pa.int64()).to_numpy(zero_copy_only=False)
                values = values.filter(pa.array(ts >= floor))
            yield AuthoritativeRows(read_started, with_received_at(values, int(time.time() * 1e6)), batch.rejects)


async def verify(client: PIWebAPIClient, groups: pd.MultiIndex) -> Verification:
    """PI's current content of exactly these (web_id, ts) groups (possibly none: PI no longer holds it). Groups in
    one `VERIFY_SPAN_US` window (aligned, as the queue counts them) share one multi-stream read; the windows are read
    at once, and one PI fails (a deleted tag's 404, a 5xx after the client's retries) costs only its own groups."""
    if len(groups) == 0:
        return Verification([], [])
    frame = groups.to_frame(index=False).sort_values("ts", kind="stable")
    window = frame["ts"].to_numpy() // VERIFY_SPAN_US
    parts = [frame.iloc[run] for run in np.split(np.arange(len(frame)), np.flatnonzero(np.diff(window)) + 1)]
    results = await asyncio.gather(*(_read_groups(client, part) for part in parts), return_exceptions=True)
    answers, failures = [], []
    for part, result in zip(parts, results, strict=True):
        if isinstance(result, PIWebAPIError):
            failures.append((list(dict.fromkeys(part["web_id"])), result))
        elif isinstance(result, BaseException):
            raise result
        else:
            answers.append(result)
    return Verification(answers, failures)


async def _read_groups(client: PIWebAPIClient, part: pd.DataFrame) -> AuthoritativeRows:
    web_ids: Sequence[str] = list(dict.fromkeys(part["web_id"]))
    read_started = time.time()
    batch = await client.recorded_batch(web_ids, _dt(int(part["ts"].min())), _dt(int(part["ts"].max())))
    wanted = pd.MultiIndex.from_frame(part)
    return AuthoritativeRows(read_started, with_received_at(select_groups(batch.values, wanted), int(time.time() * 1e6)),
                             batch.rejects, verifies=wanted)
