"""The PI side of a recorded extraction: the client's chunks, read by an event loop in its own thread.

Kept apart from validation and storage (no pandas, pandera or deltalake imports) because it is all a reader
process (`recorded_processes`) runs: each such process then starts with the client's imports alone.
"""

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TypeVar

from pi_platform.batch.window import DayWindow
from pi_platform.client import PIWebAPIClient, PIWebAPIConfig, ValueBatch
from pi_platform.client.transport import long_lived_heap_frozen

T = TypeVar("T")
_QUEUE_DEPTH = 4  # chunks in flight between the PI reader and the Delta writer (the memory bound)


def read_chunks(config: PIWebAPIConfig, web_ids: Sequence[str], window: DayWindow) -> Iterator[ValueBatch]:
    """PI's recorded values of `web_ids` in the window, as the client's chunks (VALUE_SCHEMA rows and rejects),
    PI's inclusive range unchanged. The heap the read starts with is left out of the garbage collections made
    meanwhile (`long_lived_heap_frozen`)."""

    async def batches() -> AsyncIterator[ValueBatch]:
        if not web_ids:  # nothing selected: the window is emptied, not an error
            return
        async with PIWebAPIClient(config) as client:
            async for batch in client.recorded(list(web_ids), window.start_time, window.end_time):
                yield batch

    with long_lived_heap_frozen():
        yield from iterate_in_thread(batches)


def iterate_in_thread(make: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
    """Drive an async iterator in its own event loop thread and hand its items to this (sync) thread.

    A bounded queue gives back-pressure: when the Delta writer is slow, the reader waits (in an executor,
    so its event loop keeps serving in-flight responses instead of timing them out). If the consumer stops
    early, the producer is told to stop and the thread is joined; producer errors re-raise here.
    """
    items: queue.Queue = queue.Queue(maxsize=_QUEUE_DEPTH)
    stop = threading.Event()
    done, failed = object(), object()

    async def produce() -> None:
        loop = asyncio.get_running_loop()
        try:
            async for item in make():
                if stop.is_set():
                    return
                await loop.run_in_executor(None, _put, items, item, stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread, which re-raises it
            await loop.run_in_executor(None, _put, items, (failed, exc), stop)
            return
        await loop.run_in_executor(None, _put, items, (done, None), stop)

    thread = threading.Thread(target=asyncio.run, args=(produce(),), name="pi-recorded-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if isinstance(item, tuple) and len(item) == 2 and item[0] is done:
                return
            if isinstance(item, tuple) and len(item) == 2 and item[0] is failed:
                raise item[1]
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                items.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


def _put(items: queue.Queue, item: object, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            items.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
