"""MQTT fan-out against a real Mosquitto broker and a real subscriber: every committed value since --since arrives
(QoS 1: possibly twice, never missing) through a kill -9 of the publisher and a broker outage mid-stream; each
tag's retained message is its newest value for a late subscriber, and a late correction of an old value does not
replace it."""

import os
import signal
import subprocess
import sys
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import T0, canonical, since_rows, wait_for
from mqtt_helpers import Mosquitto, Subscriber

from pi_platform.streaming.messages import STREAM_SCHEMA

SINCE = T0 + timedelta(minutes=2)
PREFIX = "test/pi"
PAYLOAD = ("value", "value_str", "digital_state", "is_system", "good", "questionable", "substituted")


@pytest.fixture
def broker(require_executable, tmp_path):
    executable = require_executable("mosquitto", package="mosquitto", alternatives=("/usr/sbin/mosquitto",))
    broker = Mosquitto(executable, tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


class PublisherProcess:
    def __init__(self, lake, broker, state_dir) -> None:
        self.command = [sys.executable, "-m", "pi_platform.cli", "publish", "--url", broker.url, "--since",
                        SINCE.isoformat(), "--delta-root", str(lake.store.root), "--state-dir", str(state_dir),
                        "--topic-prefix", PREFIX, "--poll-interval", "0.1"]
        self.log = state_dir.parent / "publisher.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "PublisherProcess":
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    def kill9(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


def _key(payload: dict) -> tuple:
    return payload["web_id"], payload["time"], payload["position"]


def _truth(rows: pa.Table) -> dict[tuple, tuple]:
    """Expected payload content per key, built from the table here (not by the publisher's own code)."""
    out = {}
    for row in rows.to_pylist():
        value = row["value"]
        row["value"] = None if value is not None and value != value else value
        out[(row["web_id"], row["timestamp"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"), row["position"])] = \
            tuple(row[c] for c in PAYLOAD)
    return out


def _newest(received: list) -> dict[tuple, tuple]:
    latest = {}
    for _, payload, _ in received:
        latest[_key(payload)] = tuple(payload[c] for c in PAYLOAD)
    return latest


def test_every_value_arrives_through_publisher_kill_and_broker_outage_and_retained_is_newest(
        lake, plant, broker, tmp_path):
    lake.commit_window(T0, T0 + timedelta(minutes=10))
    subscriber = Subscriber(broker.port, f"{PREFIX}/#", "feed-test-subscriber")
    state_dir = tmp_path / "publisher"
    publisher = PublisherProcess(lake, broker, state_dir).start()
    late = None
    try:
        def arrived() -> bool:
            return set(_truth(since_rows(lake.table(), SINCE))) <= set(_newest(subscriber.received()))

        wait_for(arrived, "the replay at the subscriber", 60)
        lake.commit_window(T0 + timedelta(minutes=10), T0 + timedelta(minutes=15))
        publisher.kill9()  # mid-stream: whatever it had not seen acknowledged is published again from the checkpoint
        lake.commit_window(T0 + timedelta(minutes=15), T0 + timedelta(minutes=20))
        publisher = PublisherProcess(lake, broker, state_dir).start()
        wait_for(arrived, "the values committed while the publisher was down", 60)
        broker.stop()  # the broker goes down mid-stream: these values wait in the publisher, unacknowledged
        lake.commit_window(T0 + timedelta(minutes=20), T0 + timedelta(minutes=25))
        wait_for(lambda: "not acknowledged by the broker" in publisher.log.read_text(), "the publisher to wait", 60)
        broker.start()
        lake.commit_window(T0 + timedelta(minutes=25), T0 + timedelta(minutes=30))
        # PI corrects an old value: published, but the retained message stays the newest value
        old = since_rows(lake.table(), SINCE).sort_by("timestamp").slice(0, 1)
        corrected = old.set_column(old.schema.get_field_index("value"), "value",
                                   pc.add(pc.fill_null(old["value"], 0.0), 500.0)).cast(STREAM_SCHEMA)
        lake.commit(corrected, may_exist=np.ones(1, dtype=bool))
        wait_for(arrived, "every committed value at the subscriber", 90)
        wait_for(lambda: _newest(subscriber.received()) == _truth(since_rows(lake.table(), SINCE)),
                 "the correction at the subscriber", 60)
        assert publisher.terminate() == 0
        log = publisher.log.read_text()
        assert "resuming at Delta version" in log and "MQTT connection to" in log and "lost" in log
        assert "message(s) awaiting PUBACK will be sent again" in log

        table = since_rows(lake.table(), SINCE)
        received = subscriber.received()
        assert _newest(received) == _truth(table)  # nothing missing, nothing foreign, corrections applied
        assert all(topic == f"{PREFIX}/{payload['name']}" for topic, payload, _ in received)
        assert table.num_rows > 500 and len(received) >= table.num_rows + 1

        late = Subscriber(broker.port, f"{PREFIX}/#", "feed-test-late", clean=True)
        expected = {}
        for row in canonical(table).to_pylist():  # sorted by key: the last row of each stream is its newest
            expected[f"{PREFIX}/{row['name']}"] = row["timestamp"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        wait_for(lambda: len({t for t, _, r in late.received() if r}) == len(expected), "every retained message", 30)
        retained = {topic: payload["time"] for topic, payload, flag in late.received() if flag}
        assert retained == expected
    finally:
        subscriber.close()
        if late is not None:
            late.close()
        if publisher.process.poll() is None:
            publisher.kill9()
