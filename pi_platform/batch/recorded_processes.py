"""`read_valid` spread over worker processes, so one extraction uses every core.

Why: reading a day of 100k tags is CPU-bound Python (JSON parsing, column building, validation) under one GIL,
while the Delta writer, fed from the same process, idles in between. Here each worker process runs the ordinary
`read_valid` on a contiguous part of the tags and hands its validated chunks over as Arrow IPC files (memory-
backed, mapped here without a copy); this process only passes them to the single Delta commit, which keeps
consuming while the workers parse (~0.1 µs per value of hand-over against ~3 µs of reading). Nothing about the
result changes: the same rows, one commit, the same rejects (each worker's, gathered when it finishes).

It pays only where cores are idle: each worker costs ~2 s of imports and ~600 MB, and on a 2-core machine
already busy with the PI server (or other work) it measured slower than one process. Hence opt-in (default 1).

Workers are started with `spawn` (never `fork`: the caller may be a threaded Dagster step or hold an event
loop). The server sees the same load as from one process: `max_concurrency` and `max_requests_per_second`
are divided among the workers. A worker's error stops the others and is raised here as it was raised there.
"""

import multiprocessing
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection, wait

import pyarrow as pa

from pi_platform.batch.recorded import Reading, read_valid
from pi_platform.batch.window import DayWindow
from pi_platform.client import PIWebAPIConfig
from pi_platform.errors import PlatformError
from pi_platform.storage.tables import RECORDED_VALUES

_MIN_TAGS_PER_PROCESS = 200  # below this, starting a process (~2 s of imports) costs more than it saves
_IN_FLIGHT = 4  # chunks a worker may have handed over and not yet seen consumed (the memory bound, per worker)
_SPOOL_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None  # memory-backed where there is one


class ReaderProcessError(PlatformError):
    """A reader process died without saying why (killed, out of memory)."""


def read_valid_in_processes(
    config: PIWebAPIConfig, web_ids: Sequence[str], window: DayWindow, reading: Reading, processes: int
) -> Iterator[pa.RecordBatch]:
    """`read_valid` over `processes` worker processes (fewer for few tags; 1 runs it here, no process)."""
    processes = max(1, min(processes, len(web_ids) // _MIN_TAGS_PER_PROCESS))
    if processes == 1:
        yield from read_valid(config, web_ids, window, reading)
        return
    share = _shared_limits(config, processes)
    context = multiprocessing.get_context("spawn")
    spool = tempfile.mkdtemp(prefix="pi-recorded-", dir=_SPOOL_DIR)
    workers: dict[Connection, multiprocessing.process.BaseProcess] = {}
    credits: dict[Connection, "multiprocessing.synchronize.BoundedSemaphore"] = {}
    try:
        for index, part in enumerate(_parts(list(web_ids), processes)):
            receive, send = context.Pipe(duplex=False)
            credit = context.BoundedSemaphore(_IN_FLIGHT)
            worker = context.Process(target=_work, args=(share, part, window, send, credit, f"{spool}/{index}"),
                                     name="pi-recorded-reader", daemon=True)
            worker.start()
            send.close()  # only the worker writes; EOF here then means it is gone
            workers[receive], credits[receive] = worker, credit
        while workers:
            for connection in wait(list(workers)):
                try:
                    kind, payload = connection.recv()
                except EOFError:
                    worker = workers.pop(connection)
                    worker.join()
                    raise ReaderProcessError(
                        f"a recorded-values reader process exited (status {worker.exitcode}) without finishing; "
                        "check memory limits, or set fewer reader processes") from None
                if kind == "batch":
                    batch = pa.ipc.read_record_batch(pa.memory_map(payload).read_buffer(), RECORDED_VALUES.schema)
                    os.unlink(payload)  # the mapping lives on until the writer has consumed the batch
                    credits[connection].release()
                    reading.rows += batch.num_rows
                    yield batch
                elif kind == "done":
                    reading.rejects.append(payload)
                    workers.pop(connection).join()
                else:  # "failed": the worker's own exception, re-raised as if read here
                    workers.pop(connection).join()
                    reading.errors.append(payload)
                    raise payload
    except GeneratorExit:  # the consumer stopped reading (its own error is the one to report)
        raise
    except BaseException as exc:
        if not reading.errors or reading.errors[-1] is not exc:
            reading.errors.append(exc)
        raise
    finally:
        for connection, worker in workers.items():
            worker.terminate()
            worker.join()
            connection.close()
        shutil.rmtree(spool, ignore_errors=True)


def _work(config: PIWebAPIConfig, web_ids: list[str], window: DayWindow, out: Connection,
          credit: "multiprocessing.synchronize.BoundedSemaphore", spool: str) -> None:
    """A worker process: the ordinary read of its tags, every validated chunk handed over as it is made.

    A chunk (~10 MB) goes through a memory-backed file, not the pipe: a pipe moves 64 KiB per hand-over, and on
    a busy machine each hand-over waits for a time slice (measured: the pipe made the run 60 % slower). The pipe
    carries only the file's name; `credit` bounds the chunks not yet consumed."""
    reading = Reading()
    try:
        for sequence, batch in enumerate(read_valid(config, web_ids, window, reading)):
            credit.acquire()
            path = f"{spool}-{sequence}.arrow"
            with pa.OSFile(path, "wb") as spooled:
                spooled.write(batch.serialize())  # Arrow IPC: no per-value work either side, read back mapped
            out.send(("batch", path))
        out.send(("done", reading.refused()))
    except BaseException as exc:  # noqa: BLE001 - sent to the parent, which raises it
        out.send(("failed", _sendable(exc)))
    finally:
        out.close()


def _sendable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a PlatformError carrying its one-line text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any unpicklable exception is replaced, never lost
        return PlatformError(f"{type(exc).__name__}: {exc}")


def _shared_limits(config: PIWebAPIConfig, processes: int) -> PIWebAPIConfig:
    """Each worker's config: the server-facing limits divided, so N workers load PI like one reader."""
    rate = config.max_requests_per_second
    return config.model_copy(update={
        "max_concurrency": max(1, config.max_concurrency // processes),
        "max_requests_per_second": rate / processes if rate else rate,
    })


def _parts(items: list[str], n: int) -> list[list[str]]:
    """n contiguous, near-equal parts (contiguous: a tag's rows come from one worker, in order)."""
    size, extra = divmod(len(items), n)
    bounds = [i * size + min(i, extra) for i in range(n + 1)]
    return [items[bounds[i]:bounds[i + 1]] for i in range(n)]
