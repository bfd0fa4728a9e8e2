"""Sharded collectors: which tags a collector owns, where its files are, and when a layout may change.

N collectors (`pi-platform stream --shard K/N`, `PI_STREAM_SHARDS=N` for the sensor and `up`) split one
subscription by a stable hash of each tag's canonical Full WebID (`pi_platform.sharding.shard_of`, the same
function that splits a batch day, never Python's salted `hash()`): every shard is given the whole subscription,
resolves it, and collects only the WebIDs it owns. A tag moves shard only when N changes.

Each shard is a complete collector of its own: state directory `<state_dir>/shard-K-of-N/` (WAL, status,
lock, gap ledger, identities, cursors, tags.json) and Delta application id `<app_id>-shard-K-of-N`, whose
version is that shard's WAL offset, so exactly-once holds per shard while all commit to one `stream_values`.
N = 1 is the unsharded layout: the state directory itself and the plain app id, as before sharding existed.

Changing N (a re-shard) hands streams over through the table: a stream new to a shard resumes from its
newest committed value in `stream_values` minus the correction look-back (read back from PI, reconciled, so
nothing is lost or doubled), and each new shard adopts the old layout's open gaps for the streams it owns
(gaps.py `adopt`), so an interval the old collector never read back is read by the new owner. WAL records
cannot be handed over (only their writer's app id makes them exactly-once), so a shard refuses to start while
another layout's WAL holds records its app id has not committed (a kill -9), or while a collector of another
layout still runs; the fix is to run the old layout once more and stop it with SIGTERM (it drains and
commits), then change N.
"""

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pi_platform.errors import ConfigError
from pi_platform.sharding import shard_of
from pi_platform.streaming import state
from pi_platform.streaming.errors import StreamingError
from pi_platform.streaming.gaps import GAPS_FILE, Gap, read_gaps
from pi_platform.streaming.wal import durable_end

_DIR = re.compile(r"^shard-(\d+)-of-(\d+)$")
# Storage options that make concurrent Delta commits on S3 safe: conditional writes (If-None-Match on the
# commit file) or a DynamoDB locking provider. AWS_S3_ALLOW_UNSAFE_RENAME is for a single writer only.
# Keys as delta-rs reads them: case-insensitive, with or without the `aws_` prefix.
_S3_SAFE = {"conditional_put": "etag", "aws_conditional_put": "etag", "aws_s3_locking_provider": "dynamodb"}


class ShardLayoutError(StreamingError):
    """The shard count changed while another layout still holds data the table does not."""


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as operators count
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ConfigError(f"shard {self.index}/{self.count} does not exist: use K/N with 1 <= K <= N, e.g. 1/2")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
        if not match:
            raise ConfigError(f"--shard {text!r}: write K/N, e.g. --shard 1/2 for the first of two collectors")
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def sharded(self) -> bool:
        return self.count > 1

    @property
    def suffix(self) -> str:
        """Of the state directory and the app id; empty for the unsharded layout."""
        return f"shard-{self.index}-of-{self.count}" if self.sharded else ""

    def state_dir(self, root: str | Path) -> Path:
        return Path(root) / self.suffix if self.sharded else Path(root)

    def app_id(self, base: str) -> str:
        return f"{base}-{self.suffix}" if self.sharded else base

    def owns(self, key: str) -> bool:
        return shard_of(key, self.count) == self.index - 1

    @property
    def compacts(self) -> bool:
        """Only the first shard compacts the shared table: N compactions racing each other would only conflict."""
        return self.index == 1


def all_shards(count: int) -> list[Shard]:
    return [Shard(k, count) for k in range(1, count + 1)]


def state_dirs(root: str | Path, count: int) -> dict[str, Path]:
    """The state directory of each collector of the `count`-shard layout under `root`, by shard label ("K/N"); the
    root itself for one collector. The launcher, `stream --status` and the viewer find the collectors here."""
    return {shard.label: shard.state_dir(root) for shard in all_shards(count)}


def layouts(root: str | Path) -> dict[int, list[Path]]:
    """The shard layouts found under a state root: count -> shard directories (1 -> the root itself)."""
    root = Path(root)
    found: dict[int, list[Path]] = {}
    if any((root / name).exists() for name in (state.WAL_DIR, state.STATUS_FILE, GAPS_FILE, state.LOCK_FILE)):
        found[1] = [root]
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if child.is_dir() and (match := _DIR.match(child.name)):
                found.setdefault(int(match.group(2)), []).append(child)
    return found


def check_handover(root: str | Path, shard: Shard, committed: Callable[[str], int | None]) -> list[Gap]:
    """Refuse to start `shard` while another layout under `root` holds WAL records the table does not (module
    doc); returns that layout's open gaps, for the new owner of each stream to adopt.
    `committed(app_id)`: the last version that app id committed to stream_values (None: never)."""
    inherited: list[Gap] = []
    for count, directories in layouts(root).items():
        if count == shard.count:
            continue
        what = "the unsharded layout" if count == 1 else f"the {count}-shard layout"
        fix = (f"run {what} again (PI_STREAM_SHARDS={count}) and stop it with SIGTERM so it commits, then change "
               "the shard count")
        for directory in directories:
            lock = state.try_lock(directory / state.LOCK_FILE)
            if lock is None:
                raise ShardLayoutError(f"cannot start shard {shard.label}: a collector of {what} still runs on "
                                       f"{directory}; stop it first (the same tags would be collected twice)")
            os.close(lock)  # closing the descriptor drops the probe's lock
            end = durable_end(directory / state.WAL_DIR)
            status = state.read_status(directory) or {}
            app_id = status.get("app_id")
            done = committed(app_id) if app_id else None
            if end > (done or 0):
                raise ShardLayoutError(f"cannot start shard {shard.label}: {directory} ({what}) holds WAL records up "
                                       f"to offset {end} but its app id {app_id or '?'} committed {done or 0}; {fix}")
            inherited += read_gaps(directory)
    return inherited


def check_concurrent_store(root: str, storage_options: dict[str, str], count: int) -> None:
    """Several writers on S3 need a commit that cannot overwrite another's (deltalake's conditional PUT or a lock)."""
    if count < 2 or urlsplit(root).scheme not in ("s3", "s3a"):
        return
    options = {str(k).lower(): str(v).lower() for k, v in storage_options.items()}
    if any(options.get(key) == value for key, value in _S3_SAFE.items()):
        return
    raise ConfigError(f"{count} sharded collectors on {root} commit concurrently, which S3 makes safe only with "
                      "conditional writes or a lock: add \"conditional_put\": \"etag\" to PI_DELTA_STORAGE_OPTIONS "
                      "(or \"AWS_S3_LOCKING_PROVIDER\": \"dynamodb\" with DELTA_DYNAMO_TABLE_NAME), or run one collector")
