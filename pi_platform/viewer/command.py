"""`pi-platform viewer`: serve the web viewer over the lake and the collector's state directory until stopped.

The lake and state directory come from settings (`PI_DELTA_ROOT`, `PI_DELTA_STORAGE_OPTIONS`,
`PI_STREAM_STATE_DIR`), the port from `PI_VIEWER_PORT`. The socket is bound here before uvicorn starts, so a
port in use is one line naming the fix, and SIGINT/SIGTERM stop it gracefully (uvicorn's own handlers).
"""

import argparse
import socket
from pathlib import Path

import uvicorn

from pi_platform import settings
from pi_platform.errors import ConfigError
from pi_platform.storage import DeltaStore
from pi_platform.viewer.app import create_app

# Open live pages hold WebSockets; a stop must not wait on them for long.
_GRACEFUL_S = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=settings.VIEWER_HOST, help=f"address to bind (default {settings.VIEWER_HOST})")
    parser.add_argument("--port", type=int, default=None, help="port (default PI_VIEWER_PORT, else 3100)")
    parser.add_argument("--delta-root", default=None, help="the lake to show (default PI_DELTA_ROOT)")
    parser.add_argument("--state-dir", default=None, help="the stream collector's state directory (default "
                        "PI_STREAM_STATE_DIR)")


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"the viewer cannot listen on {host}:{port} ({exc.strerror}): pick another --port "
                          "(or PI_VIEWER_PORT) or stop what is using it") from None
    sock.listen(128)
    return sock


def run(args: argparse.Namespace) -> int:
    store = DeltaStore(args.delta_root or settings.delta_root(), settings.storage_options())
    state_dir = Path(args.state_dir or settings.stream_state_dir())
    sock = bind(args.host, settings.viewer_port() if args.port is None else args.port)
    host, port = sock.getsockname()[:2]
    app = create_app(store, state_dir, settings.stream_shards())
    print(f"viewer: http://{host}:{port}  (lake {store.root}; stream state {state_dir}) - Ctrl-C to stop", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                            timeout_graceful_shutdown=_GRACEFUL_S, ws="websockets-sansio")
    uvicorn.Server(config).run(sockets=[sock])
    return 0
