"""`pi-platform simulate`: run the PI Web API simulator in the foreground until Ctrl-C.

Flags and PISIM_* variables are defined with the settings they fill, in `config`.
"""

import argparse
import signal
import threading

from pi_platform.simulator.config import add_arguments, from_args

__all__ = ["add_arguments", "run"]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from pi_platform.simulator.server import SimulatorServer

    config = from_args(args)
    server = SimulatorServer(config)
    server.start()
    signal.signal(signal.SIGTERM, _interrupt)
    print(
        f"PI Web API simulator: {server.base_url}  (admin: {server.admin_url}; "
        f"{config.n_tags} tags, seed {config.seed}, auth {config.auth}) - Ctrl-C to stop",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
