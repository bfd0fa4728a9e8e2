"""Late-join feed of `stream_values` (replay since a time, then live from the Delta commit log) and its fan-out:
a WebSocket route (`websocket.feed_route`), `pi-platform tail`, and the MQTT publisher (`pi-platform publish`)."""

from pi_platform.feed.commits import FeedError
from pi_platform.feed.follow import Feed, FeedBatch, Position, follow, follow_sync

__all__ = ["Feed", "FeedBatch", "FeedError", "Position", "follow", "follow_sync"]
