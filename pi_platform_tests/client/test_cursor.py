"""The recorded-values time cursor, driven against an in-memory model of PI's `recorded` paging.

The model is the documented server behaviour (values with ts >= startTime, first maxCount of them), so
these tests sweep thousands of shapes quickly; tests against the simulator then prove the same on the wire.
"""

import random

import pytest

from pi_platform.client.config import SERVER_MAX_ITEMS
from pi_platform.client.errors import PagingError
from pi_platform.client.paging import Cursor, advance


def _serve(items: list[dict], start: str, max_count: int) -> list[dict]:
    return [it for it in items if it["Timestamp"] >= start][:max_count]


def _read_all(items: list[dict], page_size: int) -> tuple[list[dict], int]:
    cursor: Cursor | None = Cursor("", 0, page_size)
    out: list[dict] = []
    requests = 0
    while cursor is not None:
        requests += 1
        assert requests < 10_000, "cursor does not make progress"
        fresh, cursor = advance(cursor, _serve(items, cursor.start, cursor.max_count), page_size)
        out.extend(fresh)
    return out, requests


def _series(group_sizes: list[int], system_every: int = 0) -> list[dict]:
    items = []
    for t, size in enumerate(group_sizes):
        for k in range(size):
            value = {"Name": "Shutdown", "Value": 254, "IsSystem": True} if system_every and t % system_every == 0 else t * 100 + k
            items.append({"Timestamp": f"2024-01-01T00:{t // 60:02d}:{t % 60:02d}Z", "Value": value, "seq": len(items)})
    return items


@pytest.mark.parametrize("seed", range(200))
def test_random_shapes_are_read_exactly_once(seed: int) -> None:
    rng = random.Random(seed)
    sizes = [rng.choice([1, 1, 1, 2, 3, 7, 12]) for _ in range(rng.randint(0, 120))]
    items = _series(sizes, system_every=rng.choice([0, 2, 5]))
    page_size = rng.randint(1, 15)
    out, _ = _read_all(items, page_size)
    assert [it["seq"] for it in out] == list(range(len(items)))


def test_group_straddling_a_page_boundary() -> None:
    items = _series([1, 1, 1, 5, 1])  # the 5-value group spans pages of 4
    out, _ = _read_all(items, 4)
    assert [it["seq"] for it in out] == list(range(9))


def test_page_that_is_one_timestamp_grows_max_count() -> None:
    items = _series([1, 25, 1])  # 25 values at one timestamp, page size 4
    cursor = Cursor("", 0, 4)
    fresh, cursor = advance(cursor, _serve(items, "", 4), 4)
    assert [it["seq"] for it in fresh] == [0, 1, 2, 3]
    assert cursor is not None and cursor.skip == 3 and cursor.max_count == 4
    fresh, cursor = advance(cursor, _serve(items, cursor.start, 4), 4)  # whole page at that timestamp
    assert [it["seq"] for it in fresh] == [4]
    assert cursor is not None and cursor.skip == 4 and cursor.max_count == 8  # grown, so progress is made
    out, _ = _read_all(items, 4)
    assert [it["seq"] for it in out] == list(range(27))


def test_pages_of_only_system_states_do_not_end_the_read() -> None:
    items = _series([1] * 30, system_every=1)  # three full pages of system states, then one value
    items += [{"Timestamp": "2024-01-01T01:00:00Z", "Value": 1.0, "seq": 30}]
    out, _ = _read_all(items, 10)
    assert len(out) == 31 and out[-1]["Value"] == 1.0


def test_more_values_at_one_timestamp_than_the_server_cap_is_a_clear_error() -> None:
    cursor = Cursor("2024-01-01T00:00:00Z", SERVER_MAX_ITEMS - 10, SERVER_MAX_ITEMS)
    page = [{"Timestamp": "2024-01-01T00:00:00Z", "Value": 0}] * SERVER_MAX_ITEMS
    with pytest.raises(PagingError, match="per call \\(MaxReturnedItemsPerCall\\)"):
        advance(cursor, page, 10_000)
