"""The MQTT `Publisher` (paho-mqtt): QoS 1, retained newest values, reconnects on its own.

paho keeps every QoS 1 message until its PUBACK and sends it again (DUP) after a reconnect, so a broker restart
loses nothing while this process lives; `flush` counts the PUBACKs. If this process dies, the messages it had
not seen acknowledged are sent again from the checkpoint by the next one: subscribers may see a value twice
(QoS 1 is at-least-once), never miss one.

PUBACKs are matched by message id in paho's network thread. paho calls `on_publish` while holding its own
outgoing-message lock, so the bookkeeping here takes its own lock only briefly and never around a paho call.
"""

import logging
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho

from pi_platform.errors import ConfigError
from pi_platform.feed.publisher import Message

log = logging.getLogger(__name__)

QOS = 1
MAX_INFLIGHT = 0  # unlimited: in flight is bounded by the feed batch (10,000 rows) that flush() waits for


@dataclass(frozen=True)
class MqttConfig:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    client_id: str

    def __repr__(self) -> str:  # the password never reaches a log
        return f"MqttConfig({self.safe_url()!r}, client_id={self.client_id!r})"

    def safe_url(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"

    @classmethod
    def from_url(cls, url: str, client_id: str = "pi-platform-publisher") -> "MqttConfig":
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError("PI_MQTT_URL must look like mqtt://host:1883 or mqtts://user:password@host:8883 "
                              f"(got scheme {parts.scheme!r})")
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError:
            raise ConfigError("PI_MQTT_URL has a port that is not a number: use mqtt://host:1883") from None
        return cls(parts.hostname, port, parts.scheme == "mqtts", unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None, client_id)


class MqttPublisher:
    """A connected paho client with PUBACK accounting; reconnects with backoff (1 s doubling to 30 s), logged."""

    def __init__(self, config: MqttConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._acked = threading.Condition(self._lock)
        self._waiting: set[int] = set()  # sent, PUBACK not seen yet
        self._early: set[int] = set()  # PUBACK seen before publish() recorded the id
        self._connects = 0
        self._closing = False
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=config.client_id, clean_session=True)
        if config.username:
            client.username_pw_set(config.username, config.password)
        if config.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client
        client.connect_async(config.host, config.port, keepalive=30)
        client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001 - paho API
        if reason_code.is_failure:
            log.warning("MQTT broker %s refused the connection: %s", self.config.safe_url(), reason_code)
            return
        self._connects += 1
        log.info("MQTT connected to %s (connection %d)", self.config.safe_url(), self._connects)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001 - paho API
        with self._lock:
            waiting = len(self._waiting)
        if self._closing:
            log.info("MQTT disconnected from %s (%d message(s) unacknowledged)", self.config.safe_url(), waiting)
            return
        log.warning("MQTT connection to %s lost (%s); reconnecting, %d message(s) awaiting PUBACK will be sent again",
                    self.config.safe_url(), reason_code, waiting)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # noqa: ANN001 - paho API
        with self._acked:
            if mid in self._waiting:
                self._waiting.discard(mid)
                self._acked.notify_all()
            else:
                self._early.add(mid)

    def publish(self, messages: Sequence[Message]) -> None:
        for message in messages:
            # queued even while disconnected (paho's queue is unbounded), sent on reconnect
            info = self.client.publish(message.topic, message.payload, qos=QOS, retain=message.retain)
            with self._lock:
                if info.mid in self._early:
                    self._early.discard(info.mid)
                else:
                    self._waiting.add(info.mid)

    def flush(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        with self._acked:
            while self._waiting and (left := deadline - time.monotonic()) > 0:
                self._acked.wait(left)
            return len(self._waiting)

    def close(self) -> None:
        self._closing = True
        self.client.disconnect()
        self.client.loop_stop()
