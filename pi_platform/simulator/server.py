"""Run the simulator as a real uvicorn server (HTTP + WebSocket) in a background thread.

Tests and the embedded default start it with `SimulatorServer(SimulatorConfig(...))` on 127.0.0.1 port 0;
the bound socket is created here first so the free port is known before uvicorn starts.
"""

import logging
import socket
import threading
import time
from datetime import timedelta

import uvicorn

from pi_platform.errors import ConfigError
from pi_platform.simulator.app import AbortConnection, SimulatorApp
from pi_platform.simulator.config import SimulatorConfig
from pi_platform.simulator.faults import Faults, FaultState
from pi_platform.simulator.plant import Plant


class _ExpectedErrorsFilter(logging.Filter):
    """Drop two uvicorn error lines that are the simulator working as intended: the sans-io WebSocket
    protocol's bogus "without completing handshake" after a pre-upgrade denial (how PI Web API refuses a
    channel), and the traceback of the truncated-body fault, which aborts the connection on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "returned without completing handshake" in record.getMessage():
            return False
        return not (record.exc_info and isinstance(record.exc_info[1], AbortConnection))


logging.getLogger("uvicorn.error").addFilter(_ExpectedErrorsFilter())


class SimulatorServer:
    """Context manager: a running simulator with `.base_url`, `.admin_url`, `.plant`, `.set_faults()`."""

    def __init__(self, config: SimulatorConfig | None = None, **overrides: object) -> None:
        self.config = config or SimulatorConfig(**overrides)  # type: ignore[arg-type]
        self.plant = Plant(
            self.config.seed,
            self.config.n_tags,
            self.config.values_per_minute,
            edge_tags=self.config.edge_tags,
            now=self.config.now,
            clock_offset=timedelta(seconds=self.config.clock_offset_s),
            event_frames=self.config.event_frames,
            flat_fraction=self.config.flat_fraction,
            failures=self.config.failures,
            correction_rate=self.config.correction_rate,
        )
        assert isinstance(self.config.faults, Faults)
        self.faults = FaultState(self.config.faults, seed=self.config.seed)
        self.app = SimulatorApp(self.plant, self.config, self.faults)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port = 0

    # ---- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> "SimulatorServer":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.host, self.config.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"cannot listen on {self.config.host}:{self.config.port} ({exc.strerror}); "
                "pick another --port or stop what is using it"
            ) from None
        sock.listen(2048)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level=self.config.log_level,
            lifespan="off",
            ws="websockets-sansio",
            timeout_graceful_shutdown=2,
            # IIS, which hosts PI Web API, keeps idle connections 120 s; uvicorn's 5 s default raced the
            # client's pool and cost needless "connection closed" retries in long extractions.
            timeout_keep_alive=120,
            access_log=False,
            ws_ping_interval=20,
            ws_ping_timeout=20,
            # PI Web API (.NET Framework WebSockets) never negotiates permessage-deflate; compressing every
            # channel message cost the simulator ~1.5 us of CPU per value sent (and the client as much again).
            ws_per_message_deflate=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"pisim-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("simulator server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self.app.channels.drop_all()
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> "SimulatorServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- addresses and controls -------------------------------------------------------------------------------
    @property
    def root_url(self) -> str:
        host = self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/piwebapi"

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1)

    @property
    def admin_url(self) -> str:
        return f"{self.root_url}/admin"

    def set_faults(self, **faults: object) -> Faults:
        """Same as POST /admin/faults: unknown names raise, unspecified ones keep their value."""
        return self.faults.update(faults)

    def reset_faults(self) -> Faults:
        return self.faults.reset()
