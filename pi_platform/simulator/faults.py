"""Fault injection settings, changeable at run time, and the per-request dice that apply them.

Faults are rates (0..1) so a client's retry logic is exercised the way a flaky production PI Web API
exercises it: some requests fail, most succeed. They apply to /piwebapi only, never to /admin.
"""

import random
import threading
from dataclasses import asdict, dataclass, fields
from urllib.parse import parse_qsl


@dataclass
class Faults:
    latency_ms: float = 0.0  # added to every response
    error_rate: float = 0.0  # 500/502/503 with an Errors body
    status_429_rate: float = 0.0  # 429 with Retry-After, on top of the configured rate limit
    malformed_json_rate: float = 0.0  # 200 whose body is not valid JSON (complete HTTP message)
    truncated_rate: float = 0.0  # Content-Length announced, half the body sent, connection dropped
    stall_rate: float = 0.0  # response held for stall_seconds (client timeouts)
    stall_seconds: float = 30.0
    web_exception_rate: float = 0.0  # value reads: 200 with partial Items and a WebException (StatusCode 500)
    value_error_rate: float = 0.0  # share of values replaced by an item carrying per-value Errors
    channel_drop_interval_s: float = 0.0  # close every channel socket abruptly this often (0 = never)
    retry_after_s: int = 1

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class FaultState:
    """Current faults plus a seeded RNG; updates are validated so a typo in a test fails loudly."""

    def __init__(self, faults: Faults | None = None, seed: int = 0) -> None:
        self.faults = faults or Faults()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._failing: dict[str, int] = {}  # WebID -> requests naming it that still answer 503

    def update(self, values: dict[str, object]) -> Faults:
        unknown = sorted(set(values) - set(Faults.names()))
        if unknown:
            raise ValueError(f"unknown fault setting(s) {unknown}; known: {Faults.names()}")
        with self._lock:
            current = self.faults.as_dict()
            for name, value in values.items():
                number = float(value)  # type: ignore[arg-type]
                if number < 0 or (name.endswith("_rate") and number > 1):
                    raise ValueError(f"fault {name}={value!r} out of range (rates are 0..1, others >= 0)")
                current[name] = int(number) if name == "retry_after_s" else number
            self.faults = Faults(**current)
        return self.faults

    def reset(self) -> Faults:
        with self._lock:
            self.faults = Faults()
        return self.faults

    def fail_streams(self, web_ids: list[str], times: int) -> None:
        """The next `times` requests naming any of `web_ids` (webId query parameters) answer 503: an outage
        that only some tags see, e.g. the tags of one shard of a batch run."""
        with self._lock:
            self._failing.update(dict.fromkeys(web_ids, times))

    def hits_failing_stream(self, query_string: bytes) -> bool:
        """Whether this request names a failing WebID; counts the failure it gets."""
        if not self._failing:  # the common case: no query parsing on the hot path
            return False
        query = parse_qsl(query_string.decode("latin-1"))
        with self._lock:
            named = {value for key, value in query if key.lower() == "webid" and self._failing.get(value, 0) > 0}
            for web_id in named:
                self._failing[web_id] -= 1
                if not self._failing[web_id]:
                    del self._failing[web_id]  # spent: back to the hot path's early return
            return bool(named)

    def roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def choice(self, options: list[int]) -> int:
        with self._lock:
            return self._rng.choice(options)

    def mask(self, n: int, rate: float) -> "list[int]":
        """Indices of values to spoil with per-value Errors."""
        if rate <= 0 or n == 0:
            return []
        with self._lock:
            return [i for i in range(n) if self._rng.random() < rate]
