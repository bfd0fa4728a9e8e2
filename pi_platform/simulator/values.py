"""Recorded values as a pure function of (seed, tag, time), generated per time bucket with numpy.

A bucket's events depend only on (seed, tag, bucket), so any time range is computed in-process by
generating the buckets it touches, and two processes with the same seed agree value for value. Buckets
are an hour for ordinary rates and shorter for fast tags (at most ~240 instants each). Nothing is stored
except a small LRU of recent buckets that channel polling re-reads every second.

Per bucket: an irregular number of instants (~values_per_minute per minute), some instants carrying several
values (same-timestamp groups), system states sprinkled in, questionable/annotated flags, and a few
values corrected 5 s to 5 min after they happened (the correction exists once `now` passes it, and is
only applied to values alone at their timestamp so a channel can re-send it unambiguously).
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from pi_platform.simulator import hashrng
from pi_platform.simulator.catalog import (
    DIGITAL,
    DIGITAL_SETS,
    INTEGER,
    NUMERIC,
    STRING_VOCABULARY,
    VALUE_SYSTEM_CODES,
    Catalog,
    Point,
)

HOUR_US = 3_600_000_000
MAX_INSTANTS_PER_BUCKET = 240
# Bucket lengths are divisors of an hour so buckets of every tag tile hours exactly.
_BUCKET_SECONDS = [d for d in range(3600, 0, -1) if 3600 % d == 0]
NEVER = np.iinfo(np.int64).max
CORRECTED_TEXT = "Corrected entry"
# Label table shared by value_str/digital_state: vocabulary, correction text, then system states by code.
STRING_LABELS: tuple[str, ...] = (*STRING_VOCABULARY, CORRECTED_TEXT)
CORRECTED_INDEX = len(STRING_VOCABULARY)
CORRECTION_MAX_DELAY_US = 300_000_000

# Value kinds inside a block.
K_NUMBER, K_DIGITAL, K_STRING, K_SYSTEM = 0, 1, 2, 3

_SALT_COUNT, _SALT_TIME, _SALT_MULT, _SALT_MULT_N, _SALT_NOISE = 1, 2, 3, 4, 5
_SALT_SYS, _SALT_SYS_CODE, _SALT_Q, _SALT_ANN, _SALT_CORR, _SALT_DELAY, _SALT_STATE, _SALT_FIX = range(6, 14)


@dataclass(frozen=True)
class Profile:
    """How a tag behaves; regular tags differ only by seed-derived parameters, EDGE.* tags by design."""

    kind: str
    instants_per_hour: float
    mult_prob: float = 0.0  # share of instants carrying several values
    mult_min: int = 2
    mult_max: int = 4
    sys_prob: float = 0.004
    system_run: bool = False  # only system states 3 hours out of every 4
    whole_seconds: bool = False
    questionable_prob: float = 0.004
    annotated_prob: float = 0.002
    correction_prob: float = 0.004
    decimals: int = 4
    digital_set: str = ""

    @cached_property
    def bucket_us(self) -> int:
        """Generation unit: an hour for ordinary rates, shorter for fast tags so a cached bucket stays small."""
        seconds = next(
            d for d in _BUCKET_SECONDS if self.instants_per_hour * d / 3600 <= MAX_INSTANTS_PER_BUCKET or d == 1
        )
        return seconds * 1_000_000


def profile_for(point: Point, seed: int, values_per_minute: float) -> Profile:
    rate = max(values_per_minute * 60.0, 1.0)
    decimals = 3 if point.point_type == "Float32" else 5
    if point.edge == "EDGE.SameTs":
        return Profile(
            NUMERIC,
            30.0,
            mult_prob=1.0,
            mult_min=5,
            mult_max=30,
            whole_seconds=True,
            correction_prob=0.0,
            decimals=decimals,
        )
    if point.edge == "EDGE.SystemRun":
        return Profile(NUMERIC, 600.0, system_run=True, decimals=decimals)
    if point.edge == "EDGE.Dense":
        return Profile(NUMERIC, 3600.0, decimals=decimals)
    if point.edge == "EDGE.DigitalSystem":
        return Profile(DIGITAL, 60.0, sys_prob=0.3, digital_set=point.digital_set, whole_seconds=True)
    # Half the ordinary tags stamp whole seconds, as many PI interfaces do (fast ones then pile values up per second).
    whole = hashrng.uniform1(seed, point.index, 99) < 0.5
    mult_prob = 0.05 if point.index % 10 == 7 else 0.0
    return Profile(
        point.kind, rate, mult_prob=mult_prob, whole_seconds=whole, decimals=decimals, digital_set=point.digital_set
    )


@dataclass
class Block:
    """Columnar values of one tag (numpy arrays of equal length, sorted by (timestamp, position)).

    `alt_*` hold the corrected value and `corr_at` when the correction appears (NEVER if none); `alt_*` are
    meaningful only where `corr_at` is set.
    """

    ts: np.ndarray  # int64 microseconds since the epoch, UTC
    pos: np.ndarray  # int32 position within the timestamp
    kind: np.ndarray  # uint8 K_*
    num: np.ndarray  # float64 (NaN when not numeric)
    code: np.ndarray  # int32 digital/system code (-1 when none)
    sidx: np.ndarray  # int32 index into STRING_LABELS (-1 when none)
    questionable: np.ndarray  # bool
    annotated: np.ndarray  # bool
    substituted: np.ndarray  # bool
    corr_at: np.ndarray  # int64
    alt_num: np.ndarray
    alt_code: np.ndarray
    alt_sidx: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, selector: "np.ndarray | slice") -> "Block":
        return Block(**{name: getattr(self, name)[selector] for name in _FIELDS})

    @staticmethod
    def concat(blocks: "list[Block]") -> "Block":
        if len(blocks) == 1:
            return blocks[0]
        return Block(**{name: np.concatenate([getattr(b, name) for b in blocks]) for name in _FIELDS})


_FIELDS = tuple(Block.__dataclass_fields__)


class ValueGenerator:
    """Generates and caches buckets for the tags of one catalog."""

    def __init__(self, catalog: Catalog, values_per_minute: float = 1.0, cache_buckets: int = 50_000) -> None:
        self.catalog = catalog
        self.seed = catalog.seed
        self.values_per_minute = values_per_minute
        self._profiles: dict[int, Profile] = {}
        self._keys: dict[int, np.ndarray] = {}
        self._cache: OrderedDict[tuple[int, int], Block] = OrderedDict()
        self._cache_size = cache_buckets
        self._lock = threading.Lock()  # the server thread and in-process ground truth share the cache

    def profile(self, point: Point) -> Profile:
        profile = self._profiles.get(point.index)
        if profile is None:
            profile = self._profiles[point.index] = profile_for(point, self.seed, self.values_per_minute)
        return profile

    def _key(self, point: Point, salt: int) -> np.uint64:
        return self._salted_keys(point)[salt]

    def _salted_keys(self, point: Point) -> np.ndarray:
        """The point's hash key for every salt (index = salt), derived once per point."""
        keys = self._keys.get(point.index)
        if keys is None:
            salts = np.arange(_SALT_FIX + 1, dtype=np.uint64) * np.uint64(0x9E3779B1)
            keys = self._keys[point.index] = hashrng.key(self.seed, point.index) ^ salts
        return keys

    # ---- public ---------------------------------------------------------------------------------------
    def block(self, point: Point, start_us: int, end_us: int) -> Block:
        """All raw events of `point` with start_us <= ts <= end_us (before `now`, pauses and corrections)."""
        size = self.profile(point).bucket_us
        b0, b1 = start_us // size, end_us // size
        if b1 - b0 <= 1:
            block = Block.concat([self._cached(point, b) for b in range(b0, b1 + 1)])
        else:
            block = self._generate(point, np.arange(b0, b1 + 1, dtype=np.int64))
        lo = int(np.searchsorted(block.ts, start_us, side="left"))
        hi = int(np.searchsorted(block.ts, end_us, side="right"))
        return block.take(slice(lo, hi))

    def any_between(self, point: Point, start_us: int, end_us: int) -> bool:
        """Cheap test whether any raw value is stamped in [start, end] (channel polls skip quiet streams)."""
        size = self.profile(point).bucket_us
        b0, b1 = start_us // size, end_us // size
        if b1 - b0 > 1:
            return len(self.block(point, start_us, end_us)) > 0
        for b in range(b0, b1 + 1):
            ts = self._cached(point, b).ts
            if np.searchsorted(ts, end_us, side="right") > np.searchsorted(ts, start_us, side="left"):
                return True
        return False

    def _cached(self, point: Point, bucket: int) -> Block:
        cache_key = (point.index, bucket)
        with self._lock:
            block = self._cache.get(cache_key)
            if block is not None:
                self._cache.move_to_end(cache_key)
                return block
        block = self._generate(point, np.array([bucket], dtype=np.int64))
        with self._lock:
            self._cache[cache_key] = block
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return block

    # ---- generation ------------------------------------------------------------------------------------
    def _generate(self, point: Point, buckets: np.ndarray) -> Block:
        p = self.profile(point)
        size = p.bucket_us
        per_bucket = p.instants_per_hour * size / HOUR_US
        u_count = hashrng.uniform(self._key(point, _SALT_COUNT), buckets)
        u_round = hashrng.uniform(self._key(point, _SALT_COUNT) ^ np.uint64(1), buckets)
        counts = np.floor(per_bucket * (0.75 + 0.5 * u_count) + u_round).astype(np.int64)  # unbiased rounding
        total = int(counts.sum())
        bucket_of = np.repeat(buckets, counts)
        starts = np.cumsum(counts) - counts
        j = np.arange(total, dtype=np.int64) - np.repeat(starts, counts)
        instant = bucket_of * (1 << 20) + j  # unique counter per instant
        offsets = np.floor(hashrng.uniform(self._key(point, _SALT_TIME), instant) * size).astype(np.int64)
        if p.whole_seconds:
            offsets -= offsets % 1_000_000
        ts = bucket_of * size + offsets
        counter = instant * 64
        if p.mult_prob > 0:
            u_mult = hashrng.uniform(self._key(point, _SALT_MULT), instant)
            group = p.mult_min + np.floor(
                hashrng.uniform(self._key(point, _SALT_MULT_N), instant) * (p.mult_max - p.mult_min + 1)
            )
            mult = np.where(u_mult < p.mult_prob, group, 1).astype(np.int64)
            ts = np.repeat(ts, mult)
            group_start = np.cumsum(mult) - mult
            counter = np.repeat(counter, mult) + (np.arange(len(ts)) - np.repeat(group_start, mult))
        order = np.argsort(ts, kind="stable")
        ts, counter = ts[order], counter[order]
        n = len(ts)
        new_group = np.ones(n, dtype=bool)
        new_group[1:] = ts[1:] != ts[:-1]
        if new_group.all():  # no shared timestamp (most tags stamping fractions): skip the group arithmetic
            pos, alone = np.zeros(n, dtype=np.int32), new_group
        else:
            group_id = np.cumsum(new_group) - 1
            group_first = np.flatnonzero(new_group)
            pos = (np.arange(n) - group_first[group_id]).astype(np.int32)
            group_size = np.diff(np.append(group_first, n))
            alone = group_size[group_id] == 1

        num = np.full(n, np.nan)
        code = np.full(n, -1, dtype=np.int32)
        sidx = np.full(n, -1, dtype=np.int32)
        kind = np.zeros(n, dtype=np.uint8)
        # The per-value draws share one pass over the counters; flags are tested on the hashes directly.
        salts = (_SALT_NOISE, _SALT_SYS, _SALT_Q, _SALT_ANN, _SALT_CORR)
        h_noise, h_sys, h_q, h_ann, h_corr = hashrng.hashes_many(self._salted_keys(point)[list(salts)], counter)
        u_noise = hashrng.to_unit(h_noise)
        alt_num, alt_code, alt_sidx = num.copy(), code.copy(), sidx.copy()
        if p.kind in (NUMERIC, INTEGER):
            base, amplitude, period, phase = self.catalog.signal_params(point.index)
            # base + amplitude * sin(2 pi t / period + phase) + amplitude * 0.1 * (u_noise - 0.5), in place and
            # in the same order of operations (so the same floats) without a temporary per operator.
            raw = ts / 1e6
            raw *= 2 * np.pi
            raw /= period
            raw += phase
            np.sin(raw, out=raw)
            raw *= amplitude
            raw += base
            u_noise -= 0.5
            u_noise *= amplitude * 0.1
            raw += u_noise
            decimals = 0 if p.kind == INTEGER else p.decimals
            num = np.round(raw, decimals)
        elif p.kind == DIGITAL:
            dset = DIGITAL_SETS[p.digital_set]
            segment = ts // 420_000_000  # the state holds for 7-minute segments
            u_state = hashrng.uniform(self._key(point, _SALT_STATE), segment)
            code = np.searchsorted(np.cumsum(dset.weights), u_state * sum(dset.weights), side="right").astype(np.int32)
            code = np.minimum(code, len(dset.states) - 1)
            alt_code = ((code + 1) % len(dset.states)).astype(np.int32)
            num, alt_num = code.astype(np.float64), alt_code.astype(np.float64)
            kind[:] = K_DIGITAL
        else:
            sidx = np.minimum(np.floor(u_noise * len(STRING_VOCABULARY)), len(STRING_VOCABULARY) - 1).astype(np.int32)
            alt_sidx = np.full(n, CORRECTED_INDEX, dtype=np.int32)
            kind[:] = K_STRING

        system = hashrng.below(h_sys, p.sys_prob)
        if p.system_run:
            system |= (ts // HOUR_US) % 4 != 3
        if system.any():
            choice = np.floor(
                hashrng.uniform(self._key(point, _SALT_SYS_CODE), counter[system]) * len(VALUE_SYSTEM_CODES)
            )
            code[system] = np.asarray(VALUE_SYSTEM_CODES, dtype=np.int32)[choice.astype(np.int64)]
            kind[system] = K_SYSTEM
            num[system] = np.nan
            sidx[system] = -1
        questionable = hashrng.below(h_q, p.questionable_prob) & ~system
        annotated = hashrng.below(h_ann, p.annotated_prob)
        corrected = alone & ~system & hashrng.below(h_corr, p.correction_prob)
        # The correction's value and delay matter only where one exists (alt_* are read where corr_at <= now),
        # so they are hashed for those few values alone.
        fixed = np.flatnonzero(corrected)
        if p.kind in (NUMERIC, INTEGER):
            fix = amplitude * 0.02 * (1 + hashrng.uniform(self._key(point, _SALT_FIX), counter[fixed]))
            alt_num[fixed] = np.round(raw[fixed] + fix, decimals)
        delay = 5_000_000 + np.floor(
            hashrng.uniform(self._key(point, _SALT_DELAY), counter[fixed]) * (CORRECTION_MAX_DELAY_US - 5_000_000)
        )
        corr_at = np.full(n, NEVER, dtype=np.int64)
        corr_at[fixed] = ts[fixed] + delay.astype(np.int64)
        return Block(
            ts,
            pos,
            kind,
            num,
            code,
            sidx,
            questionable,
            annotated,
            np.zeros(n, dtype=bool),
            corr_at,
            alt_num,
            alt_code,
            alt_sidx,
        )


def system_block(ts: np.ndarray, code: int) -> Block:
    """System-state values (No Data, I/O Timeout, ...) at the given instants."""
    n = len(ts)
    codes = np.full(n, code, np.int32)
    no = np.zeros(n, bool)
    return Block(
        ts.astype(np.int64),
        np.zeros(n, np.int32),
        np.full(n, K_SYSTEM, np.uint8),
        np.full(n, np.nan),
        codes,
        np.full(n, -1, np.int32),
        no,
        no.copy(),
        no.copy(),
        np.full(n, NEVER, np.int64),
        np.full(n, np.nan),
        codes.copy(),
        np.full(n, -1, np.int32),
    )


def as_of(block: Block, now_us: int) -> Block:
    """Values as PI holds them at `now`: only ts <= now, corrections whose time has come applied."""
    if len(block) and block.ts[-1] > now_us:
        block = block.take(slice(0, int(np.searchsorted(block.ts, now_us, side="right"))))
    done = block.corr_at <= now_us
    if not done.any():
        return block
    out = Block(
        **{name: getattr(block, name).copy() for name in ("num", "code", "sidx", "substituted")},
        **{name: getattr(block, name) for name in _FIELDS if name not in ("num", "code", "sidx", "substituted")},
    )
    out.num[done] = block.alt_num[done]
    out.code[done] = block.alt_code[done]
    out.sidx[done] = block.alt_sidx[done]
    out.substituted[done] = True
    return out
