"""Which shard a PI tag belongs to: a stable hash of its canonical (Full) WebID, modulo the shard count.

Batch runs split a day's tags into shards that run as separate Dagster steps (and, on Kubernetes, separate pods);
every process and every rerun must put a tag in the same shard, so Python's `hash()` (salted per process) will
not do. CRC-32 of the WebID's UTF-8 bytes is stable across processes, machines and Python versions, needs no
dependency and spreads WebIDs evenly (they end in base64 of GUIDs and path hashes). It hashes tags, not values,
so a Python loop over a million tags (~0.3 s) is not a hot path.
"""

import zlib
from collections.abc import Sequence

from pi_platform.errors import ConfigError


def shard_of(web_id: str, shards: int) -> int:
    """The shard (0..shards-1) owning `web_id`."""
    return zlib.crc32(web_id.encode("utf-8")) % shards


def split(web_ids: Sequence[str], shards: int) -> list[list[str]]:
    """`web_ids` in `shards` lists, each keeping the input order; a shard may be empty when tags are few."""
    if shards < 1:
        raise ConfigError(f"shard count {shards} must be at least 1")
    parts: list[list[str]] = [[] for _ in range(shards)]
    for web_id in web_ids:
        parts[shard_of(web_id, shards)].append(web_id)
    return parts
