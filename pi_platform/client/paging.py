"""Paging rules that never lose or double an item.

Lists (elements, points, event frames...) page with startIndex/maxCount until a short page.

Recorded values have no continuation link: a response simply stops at maxCount. The time cursor re-queries
from the last timestamp it saw and skips exactly the values at that timestamp it already took (counted,
not de-duplicated by content, because PI legitimately stores identical values at one timestamp). When a
whole page is one timestamp the count to skip reaches maxCount, so that request asks for more (up to the
server's MaxReturnedItemsPerCall) instead of re-reading the same page forever. Counting raw items (values,
system states, items with Errors alike) is what keeps a page of only system states from ending the read.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pi_platform.client.config import SERVER_MAX_ITEMS
from pi_platform.client.errors import PagingError, ProtocolError


@dataclass(frozen=True)
class Cursor:
    """Next recorded request for one stream: from `start` (PI's own timestamp string), skipping `skip`
    items at exactly that timestamp, asking for `max_count` items."""

    start: str
    skip: int
    max_count: int


def dict_stamp(item: Any) -> str | None:
    """The `Timestamp` of an item orjson decoded (anything, since the generic path takes any JSON)."""
    return item.get("Timestamp") if type(item) is dict else None


def advance(cursor: Cursor, items: list, page_size: int, server_max: int = SERVER_MAX_ITEMS,
            stamp: Callable[[Any], str | None] = dict_stamp) -> tuple[list, Cursor | None]:
    """Split a response into the items not taken before, and the cursor for the rest (None: stream done).

    `server_max` is the server's MaxReturnedItemsPerCall: maxCount may grow up to it, never beyond.
    `stamp` reads an item's timestamp: dict items by default, typed ones with `attrgetter("Timestamp")`.
    """
    skipped = 0
    if cursor.skip:
        limit = min(cursor.skip, len(items))
        while skipped < limit and stamp(items[skipped]) == cursor.start:
            skipped += 1
    fresh = items[skipped:] if skipped else items
    if len(items) < cursor.max_count:
        return fresh, None
    # The response starts with every value at cursor.start, so the trailing group of this page is exactly
    # what has been taken at `last`, whether or not `last` is the old cursor (a page of one timestamp).
    last, taken_at_last = _trailing_group(items, stamp)
    next_max = page_size if taken_at_last < page_size else min(server_max, taken_at_last + page_size)
    if next_max <= taken_at_last:
        raise PagingError(
            f"{taken_at_last} or more values share timestamp {last}, and the server returns at most {server_max} "
            "per call (MaxReturnedItemsPerCall): raise that server setting (and server_max_items) to read them all")
    return fresh, Cursor(last, taken_at_last, next_max)


def _trailing_group(items: list, stamp: Callable[[Any], str | None]) -> tuple[str, int]:
    """The last timestamp of a page and how many items at its end carry it."""
    end = len(items) - 1
    while end >= 0 and not stamp(items[end]):
        end -= 1
    if end < 0:
        raise ProtocolError("a full page of recorded values has no Timestamp at all; cannot continue paging")
    last = stamp(items[end])
    run = len(items) - end  # items without a timestamp after it count as taken with it
    i = end - 1
    while i >= 0 and stamp(items[i]) == last:
        run += 1
        i -= 1
    return last, run


async def paged_items(
    fetch: Callable[[dict[str, Any]], Awaitable[Any]], params: dict[str, Any], page_size: int
) -> AsyncIterator[dict]:
    """Yield every item of a startIndex/maxCount list endpoint, stopping at the first short page."""
    start = 0
    while True:
        data = await fetch({**params, "startIndex": start, "maxCount": page_size})
        items = data.get("Items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ProtocolError("list response without an Items array; is the URL a PI Web API endpoint?")
        for item in items:
            yield item
        if len(items) < page_size:
            return
        start += len(items)
