"""The publisher's checkpoint: which feed it follows (table, since, tags) and the last `Position` the broker
acknowledged in full. Written durably (fsync + rename, `streaming.gaps.durable_write`) after every acknowledged
batch, so a killed publisher resumes right after what the broker holds, never before what it lost."""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pi_platform import pitime
from pi_platform.errors import ConfigError
from pi_platform.feed.follow import Position
from pi_platform.streaming.gaps import durable_write
from pi_platform.streaming.state import read_json

CHECKPOINT_FILE = "checkpoint.json"


@dataclass(frozen=True)
class Checkpoint:
    table_uri: str
    since: datetime
    tags: tuple[str, ...]
    position: Position | None  # None: nothing acknowledged yet (start with the replay)


class CheckpointFile:
    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / CHECKPOINT_FILE

    def load(self, table_uri: str, since: datetime, tags: tuple[str, ...]) -> Checkpoint:
        """The stored checkpoint of this feed, or a fresh one; a checkpoint of another feed is refused, since its
        offsets mean nothing for a different table or tag selection."""
        data = read_json(self.path)
        if not isinstance(data, dict):
            return Checkpoint(table_uri, since, tags, None)
        stored_tags = tuple(data.get("tags") or ())
        if data.get("table_uri") != table_uri or sorted(stored_tags) != sorted(tags):
            raise ConfigError(f"{self.path} belongs to another feed (table {data.get('table_uri')}, tags "
                              f"{list(stored_tags) or 'all'}): use the same --tag and lake, or another "
                              "PI_MQTT_STATE_DIR, or delete the file to publish from --since again")
        position = data.get("position")
        return Checkpoint(table_uri, pitime.parse_time(data["since"]), stored_tags,
                          Position.from_json(position) if position else None)

    def save(self, checkpoint: Checkpoint) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        durable_write(self.path, {"table_uri": checkpoint.table_uri, "since": pitime.format_time(checkpoint.since),
                                  "tags": list(checkpoint.tags),
                                  "position": checkpoint.position.as_json() if checkpoint.position else None})
