"""A real Mosquitto broker started by the test (own config, free loopback port, persistence in tmp) and a real
paho subscriber that keeps every message it receives."""

import json
import getpass
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mosquitto:
    """`mosquitto -c <tmp config>`; `restart()` stops it (SIGTERM: it saves its persistence file) and starts it again
    on the same port, as a broker upgrade or crash-restart does."""

    def __init__(self, executable: str, work_dir: Path) -> None:
        self.executable = executable
        self.port = free_port()
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self.config = work_dir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {work_dir}/\nautosave_interval 1\nmax_queued_messages 0\n"
            f"user {getpass.getuser()}\nlog_dest file {work_dir}/mosquitto.log\n")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> "Mosquitto":
        self.process = subprocess.Popen([self.executable, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.work_dir / "mosquitto.log")
                    raise RuntimeError(f"mosquitto did not start: {log.read_text() if log.exists() else ''}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


class Subscriber:
    """A paho client subscribed to `topic` at QoS 1; a persistent session (clean_session=False) unless `clean`."""

    def __init__(self, port: int, topic: str, client_id: str, *, clean: bool = False) -> None:
        self.messages: list[tuple[str, dict, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
        client.reconnect_delay_set(0.2, 2)
        client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        client.on_subscribe = lambda *a: self._subscribed.set()
        client.on_message = self._on_message
        self.client = client
        client.connect(host="127.0.0.1", port=port, keepalive=10)
        client.loop_start()
        if not self._subscribed.wait(30):
            raise RuntimeError("no SUBACK within 30 s")

    def _on_message(self, client, userdata, message) -> None:  # noqa: ANN001 - paho API
        with self._lock:
            self.messages.append((message.topic, json.loads(message.payload), bool(message.retain)))

    def received(self) -> list[tuple[str, dict, bool]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
