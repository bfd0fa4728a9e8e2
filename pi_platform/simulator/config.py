"""Simulator settings: `SimulatorConfig`, and the `pi-platform simulate` flags / PISIM_* variables that fill it.

One module owns every knob so the server, the CLI and tests cannot disagree on names or defaults. Every flag
has an environment variable (PISIM_<FLAG>) so containers and the launcher configure it the same way; secrets
(password, token) are best passed through the environment so they stay out of `ps`.
"""

import argparse
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pi_platform import settings
from pi_platform.errors import ConfigError
from pi_platform.pitime import PITimeError, parse_time
from pi_platform.simulator.failures import Failure
from pi_platform.simulator.faults import Faults
from pi_platform.simulator.values import CORRECTION_RATE

# The client calls "no credentials" `anonymous` (PI_WEBAPI_AUTH); the simulator uses the same word.
# PI Web API cannot enable Bearer and Kerberos together, so no choice combines them.
AUTH_CHOICES = ("anonymous", "basic", "bearer", "basic,bearer", "kerberos", "basic,kerberos")


@dataclass
class SimulatorConfig:
    host: str = settings.SIMULATOR_HOST
    port: int = 0  # 0 = pick a free port
    seed: int = 42
    n_tags: int = 1000
    values_per_minute: float = 1.0
    edge_tags: bool = True
    event_frames: bool = True
    auth: str = "anonymous"  # anonymous | basic | bearer | basic,bearer | kerberos | basic,kerberos
    keytab: str | None = None  # auth with kerberos: the HTTP/<host> service keytab the acceptor uses
    username: str = "pisim"
    password: str = "pisim"
    token: str = "pisim-token"
    realm: str = "PISIM"
    csrf: bool = True  # X-Requested-With required on POST/PUT/PATCH/DELETE (EnableCSRFDefense)
    rate_limit: int = 0  # requests per window per client address, 0 = unlimited
    rate_limit_window_s: float = 1.0
    max_returned_items: int = 150_000  # MaxReturnedItemsPerCall
    faults: Faults | dict = field(default_factory=Faults)
    now: datetime | None = None  # freeze the clock here
    clock_offset_s: float = 0.0
    channel_poll_interval_s: float = 0.5
    log_level: str = "warning"
    # Share of regular numeric/digital tags that are flat (setpoint-like; archived on change or compmax only).
    flat_fraction: float = 0.0
    correction_rate: float = CORRECTION_RATE  # share of ordinary values corrected 5 s-5 min later
    # Failures known in advance, replayed deterministically: {"kind": "interface"|"tag"|"delete", "target":
    # pointsource or tag, "mode": "silent"|"io_timeout", "at": PI time, "until": optional PI time}; relative
    # times ("*-2h", "t+6h") are resolved against the simulator clock at start.
    failures: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.faults, dict):
            self.faults = Faults(**self.faults)
        auth = ",".join(sorted(self.auth.lower().replace(" ", "").split(",")))
        if "bearer" in auth and "kerberos" in auth:
            raise ConfigError(f"simulator auth {self.auth!r}: PI Web API cannot enable Bearer and Kerberos together; "
                              "choose kerberos (optionally basic,kerberos) or bearer")
        if auth not in AUTH_CHOICES:
            raise ConfigError(f"unknown simulator auth {self.auth!r}: use one of {', '.join(AUTH_CHOICES)}")
        self.auth = auth
        if "kerberos" in auth and not (self.keytab and os.path.isfile(self.keytab)):
            raise ConfigError(f"simulator auth {auth!r} needs the HTTP/<host> service keytab: --keytab FILE or "
                              f"PISIM_KEYTAB (got {self.keytab!r}; kadmin: ktadd -k FILE HTTP/<host>)")
        if self.n_tags < 1:
            raise ConfigError(f"n_tags must be at least 1 (got {self.n_tags})")
        if not 0.0 <= self.flat_fraction <= 1.0:
            raise ConfigError(f"flat_fraction must be within 0..1 (got {self.flat_fraction})")
        if not 0.0 <= self.correction_rate <= 1.0:
            raise ConfigError(f"correction_rate must be within 0..1 (got {self.correction_rate})")
        for spec in self.failures:  # a typo fails here; targets are checked against the plant at start
            Failure.from_json(spec, datetime.now(timezone.utc))

    @property
    def auth_schemes(self) -> list[str]:
        return [] if self.auth == "anonymous" else self.auth.split(",")

    def __repr__(self) -> str:  # never show secrets
        return (
            f"SimulatorConfig(host={self.host!r}, port={self.port}, seed={self.seed}, n_tags={self.n_tags}, "
            f"values_per_minute={self.values_per_minute}, auth={self.auth!r})"
        )


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"PISIM_{name}", default)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=_env("HOST", settings.SIMULATOR_HOST), help="address to bind (env PISIM_HOST)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(_env("PORT") or settings.SIMULATOR_PORT),
        help=f"port, 0 for a free one (env PISIM_PORT, default {settings.SIMULATOR_PORT})",
    )
    parser.add_argument("--seed", type=int, default=int(_env("SEED", "42") or 42), help="plant seed (env PISIM_SEED)")
    parser.add_argument(
        "--tags",
        type=int,
        default=int(_env("TAGS", "1000") or 1000),
        help="number of regular PI points (env PISIM_TAGS)",
    )
    parser.add_argument(
        "--values-per-minute",
        type=float,
        default=float(_env("VALUES_PER_MINUTE", "1.0") or 1.0),
        help="average values per tag per minute (env PISIM_VALUES_PER_MINUTE)",
    )
    parser.add_argument(
        "--auth",
        default=_env("AUTH", "anonymous"),
        choices=AUTH_CHOICES,
        metavar="MODE",
        help="authentication clients must use: anonymous, basic, bearer, kerberos, or basic,bearer / basic,kerberos "
        "for either; like PI Web API, never bearer with kerberos (env PISIM_AUTH, default anonymous)",
    )
    parser.add_argument("--keytab", default=_env("KEYTAB"),
                        help="HTTP/<host> service keytab for kerberos (env PISIM_KEYTAB)")
    parser.add_argument("--username", default=_env("USERNAME", "pisim"), help="Basic user (env PISIM_USERNAME)")
    parser.add_argument("--password", default=None, help="Basic password (prefer env PISIM_PASSWORD)")
    parser.add_argument("--token", default=None, help="Bearer token (prefer env PISIM_TOKEN)")
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=int(_env("RATE_LIMIT", "0") or 0),
        help="requests per second per client before 429, 0 = off (env PISIM_RATE_LIMIT)",
    )
    parser.add_argument(
        "--max-items",
        type=int,
        default=int(_env("MAX_ITEMS", "150000") or 150000),
        help="MaxReturnedItemsPerCall (env PISIM_MAX_ITEMS)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=float(_env("POLL_INTERVAL", "0.5") or 0.5),
        help="channel polling interval in seconds (env PISIM_POLL_INTERVAL)",
    )
    parser.add_argument("--now", default=_env("NOW"), help="freeze the clock at this time, e.g. 2024-05-02T00:00:00Z")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"fault setting, repeatable; names: {', '.join(Faults.names())} (env PISIM_FAULTS=a=1,b=2)",
    )
    parser.add_argument("--no-edge-tags", action="store_true", help="leave out the EDGE.* paging test tags")
    parser.add_argument(
        "--flat-fraction",
        type=float,
        default=float(_env("FLAT_FRACTION", "0") or 0),
        help="share of tags that are flat setpoint-like tags (env PISIM_FLAT_FRACTION, default 0)",
    )
    parser.add_argument(
        "--correction-rate",
        type=float,
        default=float(_env("CORRECTION_RATE", str(CORRECTION_RATE)) or CORRECTION_RATE),
        help="share of ordinary values an operator corrects 5 s-5 min later, re-sent with Substituted "
        f"(env PISIM_CORRECTION_RATE, default {CORRECTION_RATE})",
    )
    parser.add_argument(
        "--failures",
        default=_env("FAILURES", "[]"),
        metavar="JSON",
        help="scheduled failures as a JSON list of {kind, target, mode, at, until} (README; env PISIM_FAILURES)",
    )


def _faults(pairs: list[str]) -> dict[str, float]:
    env = _env("FAULTS")
    items = [*(env.split(",") if env else []), *pairs]
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name.strip() not in Faults.names():
            raise ConfigError(f"bad fault {item!r}: use NAME=VALUE with NAME one of {', '.join(Faults.names())}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"bad fault {item!r}: {value!r} is not a number") from None
    return out


def _failures(text: str) -> list[dict]:
    try:
        failures = json.loads(text or "[]")
    except ValueError as exc:
        raise ConfigError(f"--failures is not JSON: {exc}") from None
    if not isinstance(failures, list) or not all(isinstance(f, dict) for f in failures):
        raise ConfigError("--failures must be a JSON list of objects")
    return failures


def from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The config `pi-platform simulate` runs with (flags over PISIM_* variables over defaults)."""
    try:
        frozen = parse_time(args.now) if args.now else None
    except PITimeError as exc:
        raise ConfigError(f"--now: {exc}") from None
    return SimulatorConfig(
        host=args.host,
        port=args.port,
        seed=args.seed,
        n_tags=args.tags,
        values_per_minute=args.values_per_minute,
        edge_tags=not args.no_edge_tags,
        auth=args.auth,
        keytab=args.keytab,
        username=args.username,
        password=args.password or _env("PASSWORD", "pisim") or "pisim",
        token=args.token or _env("TOKEN", "pisim-token") or "pisim-token",
        rate_limit=args.rate_limit,
        max_returned_items=args.max_items,
        channel_poll_interval_s=args.poll_interval,
        now=frozen,
        faults=_faults(args.fault),
        log_level="warning",
        flat_fraction=args.flat_fraction,
        correction_rate=args.correction_rate,
        failures=_failures(args.failures),
    )
