"""`pi-platform simulate`: run the PI Web API simulator in the foreground until Ctrl-C.

Every flag has an environment variable (PISIM_*), so containers and the launcher configure it the same
way; secrets (password, token) are best passed through the environment so they stay out of `ps`.
"""

import argparse
import os
import signal
import threading

from pi_platform.errors import ConfigError
from pi_platform.pitime import PITimeError, parse_time
from pi_platform.simulator.faults import Faults


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"PISIM_{name}", default)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=_env("HOST", "127.0.0.1"), help="address to bind (env PISIM_HOST)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(_env("PORT", "8765") or 8765),
        help="port, 0 for a free one (env PISIM_PORT, default 8765)",
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
        default=_env("AUTH", "none"),
        choices=["none", "basic", "bearer", "basic,bearer"],
        help="required authentication (env PISIM_AUTH)",
    )
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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from pi_platform.simulator.server import SimulatorConfig, SimulatorServer

    try:
        frozen = parse_time(args.now) if args.now else None
    except PITimeError as exc:
        raise ConfigError(f"--now: {exc}") from None
    config = SimulatorConfig(
        host=args.host,
        port=args.port,
        seed=args.seed,
        n_tags=args.tags,
        values_per_minute=args.values_per_minute,
        edge_tags=not args.no_edge_tags,
        auth=args.auth,
        username=args.username,
        password=args.password or _env("PASSWORD", "pisim") or "pisim",
        token=args.token or _env("TOKEN", "pisim-token") or "pisim-token",
        rate_limit=args.rate_limit,
        max_returned_items=args.max_items,
        channel_poll_interval_s=args.poll_interval,
        now=frozen,
        faults=_faults(args.fault),
        log_level="warning",
    )
    server = SimulatorServer(config)
    server.start()
    signal.signal(signal.SIGTERM, _interrupt)
    print(
        f"PI Web API simulator: {server.base_url}  (admin: {server.admin_url}; "
        f"{args.tags} tags, seed {args.seed}, auth {config.auth}) - Ctrl-C to stop",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
