"""The client's chunks read by reader processes, so one extraction uses more than one core.

Why: reading a day of 100k tags is CPU-bound Python (HTTP, JSON decoding, column building) under one GIL, which
this process also needs to validate the chunks and feed the Delta writer. Here each reader process runs the
ordinary `read_chunks` on a contiguous part of the tags and hands its chunks over as Arrow IPC files (memory-
backed, mapped here without a copy); this process validates them and passes them to the single Delta commit.
Readers only read: they import the client alone (`recorded_chunks`), and validation, the quarantine and the
commit stay where they are in a one-process run. Nothing about the result changes: the same rows, one commit,
the same rejects.

It pays where a core is free for it: on the 2-core benchmark VM, beside the simulator, one reader cut a
100,000-tag day's wall by 8-15 % at no more CPU per value (one process also pays GIL hand-offs between its
reader thread and its writer); a reader costs ~1 s of imports and ~550 MB. Opt-in (`processes` 1 by default):
where an executor already runs steps side by side, readers would only contend with them.

Workers are started with `spawn` (never `fork`: the caller may be a threaded Dagster step or hold an event
loop). The server sees the same load as from one process: `max_concurrency` and `max_requests_per_second`
are divided among the readers. A reader's error stops the others and is raised here as it was raised there;
what a reader logs (a retry, a throttled request) is logged here too, so a retry in a reader is never silent.
"""

import logging
import multiprocessing
import os
import pickle
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection, wait

import pyarrow as pa

from pi_platform.batch.recorded_chunks import read_chunks
from pi_platform.batch.window import DayWindow
from pi_platform.client import PIWebAPIConfig, ValueBatch
from pi_platform.client.transport import collect_now_and_then, long_lived_heap_frozen
from pi_platform.errors import PlatformError
from pi_platform.value_columns import REJECT_SCHEMA

_MIN_TAGS_PER_PROCESS = 200  # below this, starting a process (~1 s of imports) costs more than it saves
_IN_FLIGHT = 4  # chunks a reader may have handed over and not yet seen received (the memory bound, per reader)
_SPOOL_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None  # memory-backed where there is one


class ReaderProcessError(PlatformError):
    """A reader process died without saying why (killed, out of memory)."""


def chunks_in_processes(
    config: PIWebAPIConfig, web_ids: Sequence[str], window: DayWindow, readers: int
) -> Iterator[ValueBatch]:
    """`read_chunks` over `readers` reader processes (fewer for few tags; none, or 0 asked: read in this process).

    Each reader's chunks arrive in its order; chunks of different readers interleave (their tags differ). The
    heap is frozen and collected per chunk bytes as in a one-process read (where the decoder keeps that schedule):
    validation's cyclic garbage (pandas frames) is made here, and left uncollected it held the mapped chunks, a
    100,000-tag day's writer growing to 2.0 GB."""
    readers = min(readers, len(web_ids) // _MIN_TAGS_PER_PROCESS)
    if readers < 1:
        yield from read_chunks(config, web_ids, window)
        return
    with _Readers(config, web_ids, window, readers) as pool, long_lived_heap_frozen():
        yield from pool.chunks()


class _Readers:
    """Running reader processes and their pipes; leaving the block stops any still running."""

    def __init__(self, config: PIWebAPIConfig, web_ids: Sequence[str], window: DayWindow, readers: int) -> None:
        level = logging.getLogger("pi_platform").getEffectiveLevel()  # readers log what this process would
        self._jobs = [(_shared_limits(config, readers), part, window, level) for part in _parts(list(web_ids), readers)]
        self._workers: dict[Connection, multiprocessing.process.BaseProcess] = {}
        self._credits: dict[Connection, "multiprocessing.synchronize.BoundedSemaphore"] = {}
        self._spool = ""

    def __enter__(self) -> "_Readers":
        context = multiprocessing.get_context("spawn")
        self._spool = tempfile.mkdtemp(prefix="pi-recorded-", dir=_SPOOL_DIR)
        try:
            for index, job in enumerate(self._jobs):
                receive, send = context.Pipe(duplex=False)
                credit = context.BoundedSemaphore(_IN_FLIGHT)
                worker = context.Process(target=_work, args=(*job, send, credit, f"{self._spool}/{index}"),
                                         name="pi-recorded-reader", daemon=True)
                worker.start()
                send.close()  # only the worker writes; EOF here then means it is gone
                self._workers[receive], self._credits[receive] = worker, credit
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for connection, worker in self._workers.items():
            worker.terminate()
            worker.join()
            connection.close()
        self._workers.clear()
        shutil.rmtree(self._spool, ignore_errors=True)

    def chunks(self) -> Iterator[ValueBatch]:
        """Every reader's chunks as they come; a reader's error is raised here as it was raised there."""
        while self._workers:
            for connection in wait(list(self._workers)):
                chunk = self._receive(connection)
                if chunk is not None:
                    yield chunk

    def _receive(self, connection: Connection) -> ValueBatch | None:
        """The reader's next chunk, or None when it said it is done."""
        try:
            kind, payload = connection.recv()
        except EOFError:
            worker = self._workers.pop(connection)
            worker.join()
            raise ReaderProcessError(
                f"a recorded-values reader process exited (status {worker.exitcode}) without finishing; "
                "check memory limits, or use fewer processes (run config `processes`, PI_RECORDED_PROCESSES)") from None
        if kind == "log":  # a reader's record (a retry...), told here as if logged here
            logging.getLogger(payload.name).handle(payload)
            return None
        if kind != "chunk":  # "done", or "failed" with the worker's own exception
            self._workers.pop(connection).join()
            if kind == "failed":
                raise payload
            return None
        path, rejects = payload
        values = pa.ipc.open_stream(pa.memory_map(path)).read_all()  # mapped: lives on with `values`
        os.unlink(path)
        self._credits[connection].release()
        collect_now_and_then(values.nbytes)
        return ValueBatch(values, rejects if rejects is not None else REJECT_SCHEMA.empty_table())


def _work(config: PIWebAPIConfig, web_ids: list[str], window: DayWindow, level: int, out: Connection,
          credit: "multiprocessing.synchronize.BoundedSemaphore", spool: str) -> None:
    """A reader process: the ordinary read of its tags, every chunk handed over as it is made.

    A chunk's values (~10 MB) go through a memory-backed file, not the pipe: a pipe moves 64 KiB per hand-over,
    and on a busy machine each hand-over waits for a time slice (measured: the pipe made the run 60 % slower).
    The pipe carries the file's name and the chunk's rejects (rare, small), and the platform's log records;
    `credit` bounds the chunks not yet received."""
    outbox = _Outbox(out)
    logger = logging.getLogger("pi_platform")
    logger.setLevel(level)
    logger.addHandler(outbox)
    try:
        for sequence, chunk in enumerate(read_chunks(config, web_ids, window)):
            credit.acquire()
            path = f"{spool}-{sequence}.arrow"
            with pa.OSFile(path, "wb") as spooled, pa.ipc.new_stream(spooled, chunk.values.schema) as ipc:
                ipc.write_table(chunk.values)  # Arrow IPC: no per-value work either side, read back mapped
            outbox.send("chunk", (path, chunk.rejects if chunk.rejects.num_rows else None))
        outbox.send("done", None)
    except BaseException as exc:  # noqa: BLE001 - sent to the parent, which raises it
        outbox.send("failed", _sendable(exc))
    finally:
        logger.removeHandler(outbox)
        out.close()


class _Outbox(logging.Handler):
    """A reader's side of its pipe: its messages, and its log records (made by the client's event loop thread
    while the main thread hands chunks over, hence the lock: a Connection is not safe to share)."""

    def __init__(self, out: Connection) -> None:
        super().__init__()
        self._out = out
        self._sending = threading.Lock()

    def send(self, kind: str, payload: object) -> None:
        with self._sending:
            self._out.send((kind, payload))

    def emit(self, record: logging.LogRecord) -> None:
        try:  # the message rendered here: its arguments need not pickle, a traceback travels as text
            record.msg, record.args = self.format(record), None
            record.exc_info = record.exc_text = record.stack_info = None
            self.send("log", record)
        except Exception:  # noqa: BLE001 - logging must not break the read
            self.handleError(record)


def _sendable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a PlatformError carrying its one-line text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any unpicklable exception is replaced, never lost
        return PlatformError(f"{type(exc).__name__}: {exc}")


def _shared_limits(config: PIWebAPIConfig, processes: int) -> PIWebAPIConfig:
    """Each reader's config: the server-facing limits divided, so N readers load PI like one."""
    rate = config.max_requests_per_second
    return config.model_copy(update={
        "max_concurrency": max(1, config.max_concurrency // processes),
        "max_requests_per_second": rate / processes if rate else rate,
    })


def _parts(items: list[str], n: int) -> list[list[str]]:
    """n contiguous, near-equal parts (contiguous: a tag's rows come from one reader, in order)."""
    size, extra = divmod(len(items), n)
    bounds = [i * size + min(i, extra) for i in range(n + 1)]
    return [items[bounds[i]:bounds[i + 1]] for i in range(n)]
