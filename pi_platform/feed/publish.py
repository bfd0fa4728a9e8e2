"""`pi-platform publish`: fan committed `stream_values` rows out to MQTT, driven by the Delta commit log.

One topic per stream under `PI_MQTT_TOPIC_PREFIX` (tag name, or AF attribute path with `PI_MQTT_TOPIC_BY=af`),
JSON payload `{"time", "value", "value_str", "digital_state", flags...}`, QoS 1, the stream's newest value
retained. The loop follows the feed from its checkpoint and saves the next position only once the broker has
acknowledged every message of a batch: a broker restart (paho re-sends what was not acknowledged) or a killed
publisher (the next one starts from the checkpoint) loses nothing; a value may arrive twice (QoS 1).
"""

import argparse
import logging
import signal
import threading
from dataclasses import replace
from datetime import datetime

from pi_platform import pitime, settings
from pi_platform.errors import ConfigError
from pi_platform.feed.checkpoint import CheckpointFile
from pi_platform.feed.commits import newest_per_stream
from pi_platform.feed.follow import POLL_INTERVAL_S, Feed, FeedBatch, release_arrow
from pi_platform.feed.publisher import NewestTracker, Publisher, to_messages
from pi_platform.feed.source import stream_values_location
from pi_platform.feed.topics import TopicMap, af_paths
from pi_platform.storage import DeltaStore

log = logging.getLogger(__name__)

ACK_WAIT_S = 2.0
LOG_EVERY_WAITS = 15


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="broker, mqtt://[user:password@]host:port (env PI_MQTT_URL)")
    parser.add_argument("--since", default="*",
                        help="first start only (the checkpoint wins later): publish rows with timestamp >= this "
                        "(ISO 8601 or PI time; default *: from now on)")
    parser.add_argument("--tag", action="append", default=[],
                        help="tag name or WebID to publish (repeatable; default all)")
    parser.add_argument("--topic-prefix", default=None,
                        help="topic prefix (env PI_MQTT_TOPIC_PREFIX, default pi/values)")
    parser.add_argument("--topic-by", choices=("tag", "af"), default=None,
                        help="topic per tag name or per AF attribute path (env PI_MQTT_TOPIC_BY, default tag)")
    parser.add_argument("--client-id", default="pi-platform-publisher", help="MQTT client id")
    parser.add_argument("--state-dir", default=None, help="checkpoint directory (env PI_MQTT_STATE_DIR)")
    parser.add_argument("--delta-root", default=None, help="Delta lake root holding stream_values (env PI_DELTA_ROOT)")
    parser.add_argument("--poll-interval", type=float, default=POLL_INTERVAL_S,
                        help=f"seconds between looks for a new commit (default {POLL_INTERVAL_S})")


def run(args: argparse.Namespace) -> int:
    from pi_platform.feed.mqtt import MqttConfig, MqttPublisher  # paho only where MQTT is used

    url = args.url or settings.mqtt_url()
    if not url:
        raise ConfigError("no MQTT broker: set PI_MQTT_URL=mqtt://host:1883 or pass --url")
    config = MqttConfig.from_url(url, args.client_id)
    root = args.delta_root or settings.delta_root()
    uri, options = stream_values_location(root)
    by = args.topic_by or settings.mqtt_topic_by()
    topics = TopicMap(args.topic_prefix if args.topic_prefix is not None else settings.mqtt_topic_prefix(),
                      af_paths(DeltaStore(root, options)) if by == "af" else None)
    try:
        since = pitime.parse_time(args.since)
    except pitime.PITimeError as exc:
        raise ConfigError(f"--since: {exc}") from None
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    publisher = MqttPublisher(config)
    state_dir = args.state_dir or settings.mqtt_state_dir()
    log.info("publishing %s to %s (checkpoint in %s)", uri, config.safe_url(), state_dir)
    try:
        run_publisher(uri, options, publisher, CheckpointFile(state_dir), topics,
                      since=since, tags=tuple(sorted(args.tag)), stop=stop, poll_interval_s=args.poll_interval)
    finally:
        publisher.close()
    return 0


def run_publisher(uri: str, options: dict[str, str], publisher: Publisher, checkpoints: CheckpointFile,
                  topics: TopicMap, *, since: datetime, tags: tuple[str, ...], stop: threading.Event,
                  poll_interval_s: float = POLL_INTERVAL_S) -> None:
    """Follow the feed from the checkpoint until `stop`, advancing the checkpoint after each acknowledged batch."""
    checkpoint = checkpoints.load(uri, since, tags)
    if checkpoint.position is not None:
        log.info("resuming at Delta version %d, offset %d (%s) of rows since %s", checkpoint.position.version,
                 checkpoint.position.offset, "replay" if checkpoint.position.replay else "live",
                 pitime.format_time(checkpoint.since))
    feed = Feed(uri, options, checkpoint.since, checkpoint.tags, start=checkpoint.position,
                poll_interval_s=poll_interval_s)
    newest = NewestTracker(newest_per_stream(uri, options))
    batches = feed.batches(stop)
    try:
        for batch in batches:
            if batch.rows.num_rows:
                publisher.publish(to_messages(batch.rows, topics, newest))
                if not _acknowledged(publisher, batch, stop):
                    return  # stopping with messages unacknowledged: the checkpoint stays before them
            checkpoint = replace(checkpoint, position=batch.position)
            checkpoints.save(checkpoint)
    finally:
        release_arrow(batches)


def _acknowledged(publisher: Publisher, batch: FeedBatch, stop: threading.Event) -> bool:
    """Wait for every PUBACK of the batch (paho re-sends after reconnecting); logged at once, then every 30 s."""
    waits = 0
    while (missing := publisher.flush(ACK_WAIT_S)) and not stop.is_set():
        waits += 1
        if waits == 1 or waits % LOG_EVERY_WAITS == 0:
            log.warning("%d of %d message(s) up to Delta version %d not acknowledged by the broker after %.0f s; "
                        "still waiting", missing, batch.rows.num_rows, batch.position.version, waits * ACK_WAIT_S)
    return missing == 0

