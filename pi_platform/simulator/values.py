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
# Share of the ordinary tags' plain values an operator corrects later (PISIM_CORRECTION_RATE): a stress level,
# far above most plants', so short tests see corrections; `bench stream --correction-rate` lowers it.
CORRECTION_RATE = 0.004

# Value kinds inside a block.
K_NUMBER, K_DIGITAL, K_STRING, K_SYSTEM = 0, 1, 2, 3

_SALT_COUNT, _SALT_TIME, _SALT_MULT, _SALT_MULT_N, _SALT_NOISE = 1, 2, 3, 4, 5
_SALT_SYS, _SALT_SYS_CODE, _SALT_Q, _SALT_ANN, _SALT_CORR, _SALT_DELAY, _SALT_STATE, _SALT_FIX = range(6, 14)
_SALT_MASKS = np.arange(_SALT_FIX + 1, dtype=np.uint64) * np.uint64(0x9E3779B1)  # key of salt s = tag key ^ mask s


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
    correction_prob: float = CORRECTION_RATE
    decimals: int = 4
    digital_set: str = ""

    @cached_property
    def bucket_us(self) -> int:
        """Generation unit: an hour for ordinary rates, shorter for fast tags so a cached bucket stays small."""
        seconds = next(
            d for d in _BUCKET_SECONDS if self.instants_per_hour * d / 3600 <= MAX_INSTANTS_PER_BUCKET or d == 1
        )
        return seconds * 1_000_000


def profile_for(point: Point, seed: int, values_per_minute: float, correction_rate: float = CORRECTION_RATE) -> Profile:
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
        return Profile(NUMERIC, 600.0, system_run=True, decimals=decimals, correction_prob=correction_rate)
    if point.edge == "EDGE.Dense":
        return Profile(NUMERIC, 3600.0, decimals=decimals, correction_prob=correction_rate)
    if point.edge == "EDGE.DigitalSystem":
        return Profile(DIGITAL, 60.0, sys_prob=0.3, digital_set=point.digital_set, whole_seconds=True)
    # Half the ordinary tags stamp whole seconds, as many PI interfaces do (fast ones then pile values up per second).
    whole = hashrng.uniform1(seed, point.index, 99) < 0.5
    mult_prob = 0.05 if point.index % 10 == 7 else 0.0
    return Profile(
        point.kind, rate, mult_prob=mult_prob, whole_seconds=whole, decimals=decimals, digital_set=point.digital_set,
        correction_prob=correction_rate,
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

    def __init__(self, catalog: Catalog, values_per_minute: float = 1.0, cache_buckets: int = 50_000,
                 correction_rate: float = CORRECTION_RATE) -> None:
        self.catalog = catalog
        self.seed = catalog.seed
        self.values_per_minute = values_per_minute
        self.correction_rate = correction_rate
        self._profiles: dict[int, Profile] = {}
        self._tags: dict[int, _Tag] = {}
        self._cache: OrderedDict[tuple[int, int], Block] = OrderedDict()
        self._cache_size = cache_buckets
        self._lock = threading.Lock()  # the server thread and in-process ground truth share the cache

    def profile(self, point: Point) -> Profile:
        profile = self._profiles.get(point.index)
        if profile is None:
            profile = profile_for(point, self.seed, self.values_per_minute, self.correction_rate)
            self._profiles[point.index] = profile
        return profile

    def _tag(self, point: Point) -> "_Tag":
        """The point's generation constants, derived once per point."""
        tag = self._tags.get(point.index)
        if tag is None:
            tag = self._tags[point.index] = _Tag.of(point, self.profile(point), self.catalog, self.seed)
        return tag

    # ---- public ---------------------------------------------------------------------------------------
    def block(self, point: Point, start_us: int, end_us: int) -> Block:
        """All raw events of `point` with start_us <= ts <= end_us (before `now`, pauses and corrections)."""
        size = self.profile(point).bucket_us
        b0, b1 = start_us // size, end_us // size
        if b1 - b0 <= 1:
            block = Block.concat([self._cached(point, b) for b in range(b0, b1 + 1)])
        else:
            block = self._generate([point], [np.arange(b0, b1 + 1, dtype=np.int64)])[0]
        lo = int(np.searchsorted(block.ts, start_us, side="left"))
        hi = int(np.searchsorted(block.ts, end_us, side="right"))
        return block.take(slice(lo, hi))

    def blocks(self, points: list[Point], start_us: int, end_us: int) -> list[Block]:
        """`block` of every point, generated in one numpy pass: a stream set reads ~50 tags a day at a time, and
        one pass per tag costs ~20 numpy calls of fixed overhead per tag. Not cached: such reads rarely repeat."""
        if not points:
            return []
        buckets = []
        for point in points:
            size = self.profile(point).bucket_us
            buckets.append(np.arange(start_us // size, end_us // size + 1, dtype=np.int64))
        whole, bounds = self._generate(points, buckets, (start_us, end_us))
        return [whole.take(slice(lo, hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]

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
        block = self._generate([point], [np.array([bucket], dtype=np.int64)])[0]
        with self._lock:
            self._cache[cache_key] = block
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return block

    # ---- generation ------------------------------------------------------------------------------------
    def _generate(
        self, points: list[Point], buckets: list[np.ndarray], window: tuple[int, int] | None = None
    ) -> tuple[Block, list[int]]:
        """The events of `buckets[i]` of `points[i]` for every i, as one block (tag after tag, in order) and the
        offsets where each tag's events start (plus the end); with `window` (start, end), only the events
        stamped in it (whole same-timestamp groups, so positions are unaffected).

        Every tag's parameters become arrays gathered per bucket, instant or value, so the arithmetic on each
        value is the very same floating-point sequence as for a tag on its own: a value does not depend on
        which other tags share its pass."""
        tags = [self._tag(p) for p in points]
        per_tag = _TagArrays(tags)
        tag_b = np.repeat(np.arange(len(tags)), [len(b) for b in buckets])
        bucket = np.concatenate(buckets) if len(buckets) > 1 else buckets[0]
        count_key = per_tag.keys[_SALT_COUNT][tag_b]
        u_count = hashrng.uniform(count_key, bucket)
        u_round = hashrng.uniform(count_key ^ np.uint64(1), bucket)
        # unbiased rounding
        counts = np.floor(per_tag.per_bucket[tag_b] * (0.75 + 0.5 * u_count) + u_round).astype(np.int64)
        group = np.repeat(np.arange(len(bucket)), counts)  # (tag, bucket) group of each instant
        bucket_of, tag = bucket[group], tag_b[group]
        starts = np.cumsum(counts) - counts
        instant = bucket_of * (1 << 20) + (np.arange(len(group), dtype=np.int64) - starts[group])  # unique per tag
        size = per_tag.size[tag]
        offsets = np.floor(hashrng.uniform(per_tag.keys[_SALT_TIME][tag], instant) * size).astype(np.int64)
        if per_tag.whole.any():
            whole = np.flatnonzero(per_tag.whole[tag])
            offsets[whole] -= offsets[whole] % 1_000_000
        counter = instant * 64
        if per_tag.mult_prob.any():
            mult = np.ones(len(instant), dtype=np.int64)
            grouping = np.flatnonzero(per_tag.mult_prob[tag] > 0)
            at, by = instant[grouping], tag[grouping]
            u_mult = hashrng.uniform(per_tag.keys[_SALT_MULT][by], at)
            size_of_group = per_tag.mult_min[by] + np.floor(
                hashrng.uniform(per_tag.keys[_SALT_MULT_N][by], at) * per_tag.mult_span[by]
            )
            mult[grouping] = np.where(u_mult < per_tag.mult_prob[by], size_of_group, 1).astype(np.int64)
            group_start = np.cumsum(mult) - mult
            counter = np.repeat(counter, mult) + (np.arange(int(mult.sum())) - np.repeat(group_start, mult))
        else:
            mult = None
        # Sorting each tag's events by time is sorting each (tag, bucket) group by its offset: buckets tile time
        # (an offset is under a bucket, at most an hour < 2**32 us, so it never spills into the next group's key).
        ts, key = bucket_of * size + offsets, group * (1 << 32) + offsets
        if mult is not None:
            ts, key, tag = (np.repeat(a, mult) for a in (ts, key, tag))
        order = np.argsort(key, kind="stable")
        ts, counter, tag = ts[order], counter[order], tag[order]
        n = len(ts)
        new_group = np.ones(n, dtype=bool)
        new_group[1:] = (ts[1:] != ts[:-1]) | (tag[1:] != tag[:-1])
        if new_group.all():  # no shared timestamp (most tags stamping fractions): skip the group arithmetic
            pos, alone = np.zeros(n, dtype=np.int32), new_group
        else:
            group_id = np.cumsum(new_group) - 1
            group_first = np.flatnonzero(new_group)
            pos = (np.arange(n) - group_first[group_id]).astype(np.int32)
            group_size = np.diff(np.append(group_first, n))
            alone = group_size[group_id] == 1
        if window is not None:
            inside = np.flatnonzero((ts >= window[0]) & (ts <= window[1]))
            ts, counter, tag, pos, alone = ts[inside], counter[inside], tag[inside], pos[inside], alone[inside]
            n = len(ts)

        num = np.full(n, np.nan)
        code = np.full(n, -1, dtype=np.int32)
        sidx = np.full(n, -1, dtype=np.int32)
        kind = np.zeros(n, dtype=np.uint8)
        alt_num, alt_code, alt_sidx = num.copy(), code.copy(), sidx.copy()
        # The per-value draws share one pass over the counters; flags are tested on the hashes directly.
        salts = [_SALT_NOISE, _SALT_SYS, _SALT_Q, _SALT_ANN, _SALT_CORR]
        # A salted key is the tag's key ^ a salt constant: one gather, then a row per salt.
        rows = per_tag.keys[0][tag][None, :] ^ _SALT_MASKS[salts][:, None]
        h_noise, h_sys, h_q, h_ann, h_corr = hashrng.hashes_many(rows, counter)
        u_noise = hashrng.to_unit(h_noise)
        strings = np.flatnonzero(per_tag.family[tag] == _STRINGS)
        if len(strings):
            vocabulary = len(STRING_VOCABULARY)
            sidx[strings] = np.minimum(np.floor(u_noise[strings] * vocabulary), vocabulary - 1).astype(np.int32)
            alt_sidx[strings] = CORRECTED_INDEX
            kind[strings] = K_STRING
        for name in per_tag.digital_sets:
            self._digital(ts, tag, per_tag, name, code, alt_code, num, alt_num, kind)
        raw = self._signal(ts, tag, u_noise, per_tag, num)

        system = per_tag.below(h_sys, "sys_prob", tag)
        if per_tag.system_run.any():
            system |= per_tag.system_run[tag] & ((ts // HOUR_US) % 4 != 3)
        if system.any():
            drawn = hashrng.uniform(per_tag.keys[_SALT_SYS_CODE][tag[system]], counter[system])
            choice = np.floor(drawn * len(VALUE_SYSTEM_CODES))
            code[system] = np.asarray(VALUE_SYSTEM_CODES, dtype=np.int32)[choice.astype(np.int64)]
            kind[system] = K_SYSTEM
            num[system] = np.nan
            sidx[system] = -1
        questionable = per_tag.below(h_q, "questionable_prob", tag) & ~system
        annotated = per_tag.below(h_ann, "annotated_prob", tag)
        corrected = alone & ~system & per_tag.below(h_corr, "correction_prob", tag)
        # The correction's value and delay matter only where one exists (alt_* are read where corr_at <= now),
        # so they are hashed for those few values alone.
        fixed = np.flatnonzero(corrected)
        fixed_numbers = fixed[per_tag.family[tag[fixed]] == _NUMBERS]
        if len(fixed_numbers):
            by = tag[fixed_numbers]
            fix = per_tag.fix_scale[by] * (1 + hashrng.uniform(per_tag.keys[_SALT_FIX][by], counter[fixed_numbers]))
            _round_into(alt_num, fixed_numbers, raw[fixed_numbers] + fix, per_tag.decimals[by])
        u_delay = hashrng.uniform(per_tag.keys[_SALT_DELAY][tag[fixed]], counter[fixed])
        delay = 5_000_000 + np.floor(u_delay * (CORRECTION_MAX_DELAY_US - 5_000_000))
        corr_at = np.full(n, NEVER, dtype=np.int64)
        corr_at[fixed] = ts[fixed] + delay.astype(np.int64)
        block = Block(
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
        return block, [0, *np.cumsum(np.bincount(tag, minlength=len(tags))).tolist()]

    @staticmethod
    def _digital(ts: np.ndarray, tag: np.ndarray, per_tag: "_TagArrays", name: str, code: np.ndarray,
                 alt_code: np.ndarray, num: np.ndarray, alt_num: np.ndarray, kind: np.ndarray) -> None:
        """States of the values of the tags of digital set `name`: each holds for a 7-minute segment."""
        where = np.flatnonzero(per_tag.digital_set[tag] == per_tag.digital_sets.index(name))
        dset = DIGITAL_SETS[name]
        u_state = hashrng.uniform(per_tag.keys[_SALT_STATE][tag[where]], ts[where] // 420_000_000)
        state = np.searchsorted(np.cumsum(dset.weights), u_state * sum(dset.weights), side="right").astype(np.int32)
        state = np.minimum(state, len(dset.states) - 1)
        alt = ((state + 1) % len(dset.states)).astype(np.int32)
        code[where], alt_code[where] = state, alt
        num[where], alt_num[where] = state.astype(np.float64), alt.astype(np.float64)
        kind[where] = K_DIGITAL

    @staticmethod
    def _signal(ts: np.ndarray, tag: np.ndarray, u_noise: np.ndarray, per_tag: "_TagArrays", num: np.ndarray
                ) -> np.ndarray:
        """Numbers of the numeric tags' values (rounded into `num`); returns the unrounded signal (NaN elsewhere)
        for the corrections. base + amplitude * sin(2 pi t / period + phase) + amplitude * 0.1 * (u_noise - 0.5),
        in place and in the same order of operations (so the same floats) without a temporary per operator."""
        numbers = per_tag.family[tag] == _NUMBERS
        every = bool(numbers.all())
        where = slice(None) if every else np.flatnonzero(numbers)
        by = tag if every else tag[where]
        raw = ts[where] / 1e6
        raw *= 2 * np.pi
        raw /= per_tag.period[by]
        raw += per_tag.phase[by]
        np.sin(raw, out=raw)
        raw *= per_tag.amplitude[by]
        raw += per_tag.base[by]
        noise = u_noise[where]
        noise -= 0.5
        noise *= per_tag.noise_scale[by]
        raw += noise
        if every:
            _round_into(num, slice(None), raw, per_tag.decimals[by])
            return raw
        out = np.full(len(ts), np.nan)
        out[where] = raw
        _round_into(num, where, raw, per_tag.decimals[by])
        return out


_NUMBERS, _DIGITALS, _STRINGS = 0, 1, 2


@dataclass(frozen=True)
class _Tag:
    """What generation needs of one point, as plain numbers (gathered into arrays per pass)."""

    keys: np.ndarray  # hash key per salt (index = salt)
    size: int  # bucket length, us
    per_bucket: float  # mean instants per bucket
    family: int  # _NUMBERS, _DIGITALS or _STRINGS
    decimals: int
    digital_set: str
    signal: tuple[float, float, float, float]  # base, amplitude, period, phase (numbers only)
    profile: Profile

    @staticmethod
    def of(point: Point, p: Profile, catalog: Catalog, seed: int) -> "_Tag":
        numbers = p.kind in (NUMERIC, INTEGER)
        family = _NUMBERS if numbers else _DIGITALS if p.kind == DIGITAL else _STRINGS
        return _Tag(
            keys=hashrng.key(seed, point.index) ^ _SALT_MASKS,
            size=p.bucket_us,
            per_bucket=p.instants_per_hour * p.bucket_us / HOUR_US,
            family=family,
            decimals=0 if p.kind == INTEGER else p.decimals,
            digital_set=p.digital_set if family == _DIGITALS else "",
            signal=catalog.signal_params(point.index) if numbers else (0.0, 1.0, 1.0, 0.0),
            profile=p,
        )


class _TagArrays:
    """The tags of one pass, each constant as an array indexed by the tag's position (gathered per value)."""

    def __init__(self, tags: list[_Tag]) -> None:
        self.tags = tags
        self.keys = np.stack([t.keys for t in tags], axis=1)  # (salt, tag)
        self.size = np.array([t.size for t in tags], dtype=np.int64)
        self.per_bucket = np.array([t.per_bucket for t in tags])
        self.family = np.array([t.family for t in tags], dtype=np.int8)
        self.decimals = np.array([t.decimals for t in tags], dtype=np.int64)
        self.digital_sets = sorted({t.digital_set for t in tags if t.family == _DIGITALS})
        self.digital_set = np.array([self.digital_sets.index(t.digital_set) if t.family == _DIGITALS else -1
                                     for t in tags], dtype=np.int64)
        profiles = [t.profile for t in tags]
        self.whole = np.array([p.whole_seconds for p in profiles], dtype=bool)
        self.system_run = np.array([p.system_run for p in profiles], dtype=bool)
        self.mult_prob = np.array([p.mult_prob for p in profiles])
        self.mult_min = np.array([p.mult_min for p in profiles], dtype=np.int64)
        self.mult_span = np.array([p.mult_max - p.mult_min + 1 for p in profiles], dtype=np.int64)
        base, amplitude, period, phase = zip(*(t.signal for t in tags))
        self.base, self.amplitude = np.array(base), np.array(amplitude)
        self.period, self.phase = np.array(period), np.array(phase)
        self.noise_scale = np.array([a * 0.1 for a in amplitude])
        self.fix_scale = np.array([a * 0.02 for a in amplitude])

    def below(self, h: np.ndarray, probability: str, tag: np.ndarray) -> np.ndarray:
        """`hashrng.below` with each value's tag's probability (one comparison when the tags agree)."""
        probabilities = [getattr(t.profile, probability) for t in self.tags]
        if len(set(probabilities)) == 1:
            return hashrng.below(h, probabilities[0])
        return hashrng.below(h, np.array(probabilities)[tag])


def _round_into(out: np.ndarray, where: "np.ndarray | slice", values: np.ndarray, decimals: np.ndarray) -> None:
    """out[where] = np.round(values, decimals) with a number of decimals per value (0..8): numpy rounds as
    rint(x * 10**d) / 10**d with exact powers of ten, so a scale per value gives the very same floats."""
    scale = _POWERS_OF_TEN[decimals]
    values = values * scale
    np.rint(values, out=values)
    values /= scale
    out[where] = values


_POWERS_OF_TEN = np.array([10.0**d for d in range(9)])


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
