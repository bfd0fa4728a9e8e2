"""`pi-platform` command line: one sub-command per module, imported only when used so `--help` is instant.

Every command turns expected failures (bad URL, bad credentials, malformed config) into one line on stderr
and exit status 2, never a traceback: `pi_platform.errors.PlatformError` marks "the user can fix this".
"""

import argparse
import importlib
import sys

# name -> (module with `add_arguments(parser)` and `run(args) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("pi_platform.launcher.up", "start the simulator, the Dagster UI and daemon, and backfill yesterday"),
    "simulate": ("pi_platform.simulator.command", "run the PI Web API simulator (HTTP + WebSocket)"),
    "doctor": ("pi_platform.client.doctor", "check a PI Web API server: reachability, TLS, auth, inventory"),
    "stream": ("pi_platform.streaming.command", "run the streaming collector, or show its status"),
    "bench": ("pi_platform.bench.command", "benchmarks: `bench batch`, `bench stream`, `bench chaos`, `bench alerts`"),
    "tail": ("pi_platform.feed.tail", "print stream values committed since a time, then live as they commit"),
    "publish": ("pi_platform.feed.publish", "publish committed stream values to MQTT (PI_MQTT_URL), from a checkpoint"),
    "viewer": ("pi_platform.viewer.command", "serve the web viewer: AF tree, events and alarms, live values, ingestion"),
}

DESCRIPTION = "PI System data (PI Web API) into Delta Lake tables, in batch and live, orchestrated by Dagster."
EPILOG = """start here:
  pi-platform up          simulator + Dagster UI at http://127.0.0.1:3000, yesterday backfilled
  pi-platform doctor      check a real PI Web API (set PI_WEBAPI_URL) before pointing `up` at it
settings are PI_* environment variables, listed in README.md; `pi-platform COMMAND --help` for a command"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pi-platform", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name) if name == _requested(name) else None
        if module is not None:
            module.add_arguments(command)
        command.set_defaults(_module=module_name)
    return parser


def _requested(name: str) -> str | None:
    """Only the command actually invoked imports its module (keeps `pi-platform --help` light)."""
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    return name if args and args[0] == name else None


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    args = build_parser().parse_args(argv)
    try:
        module = importlib.import_module(args._module)  # inside: a module may read a malformed setting
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place user-facing errors are rendered
        from pi_platform.errors import user_message

        message = user_message(exc)
        if message is None:
            raise
        print(f"pi-platform {args.command}: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
