"""The extracting process of `bench batch`: one `extract_recorded` call, measured from inside.

A fresh process per run so its peak RSS (VmHWM, which never goes down) belongs to this extraction alone,
which is what "flat in the number of tags" has to be judged on. Prints one JSON line of figures.

    python -m pi_platform.bench.extract_worker --url U --delta-root D --day 2026-01-01 --web-ids FILE
"""

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from datetime import date, timedelta

from pi_platform.bench.procstat import RssSampler, children_cpu, self_cpu, self_peak_rss_bytes, self_rss_bytes
from pi_platform.client.config import DEFAULT_PAGE_SIZE


class WarningCounter(logging.Handler):
    """Counts the client's warnings (retries: broken responses, 5xx, 429...) so a fast run with retries shows them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter = Counter()
        self.first: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.counts[message.split(": ", 1)[-1].split(";", 1)[0]] += 1
        self.first = self.first or message


def exit_with_parent() -> None:
    """The benchmark holds our stdin open; EOF means it died, and an orphaned extraction must not go on loading
    the machine (the worker runs in its own session, so no signal reaches it)."""

    def watch() -> None:
        sys.stdin.read()
        os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pi_platform.bench.extract_worker")
    parser.add_argument("--url", required=True)
    parser.add_argument("--delta-root", required=True)
    parser.add_argument("--day", required=True, type=date.fromisoformat)
    parser.add_argument("--web-ids", required=True, help="file with one WebID per line")
    parser.add_argument("--max-concurrency", type=int, default=8)
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    parser.add_argument("--max-requests-per-second", type=float, default=0.0, help="0: no client-side limit")
    parser.add_argument("--processes", type=int, default=1,
                        help="processes the extraction uses: N-1 read PI, this one validates and writes "
                             "(extract_recorded's `processes`)")
    parser.add_argument("--exit-with-parent", action="store_true", help="exit when stdin closes (the benchmark died)")
    args = parser.parse_args(argv)
    if args.exit_with_parent:
        exit_with_parent()

    from pi_platform.client import PIWebAPIConfig
    from pi_platform.batch.window import DayWindow
    from pi_platform.batch.recorded import extract_recorded
    from pi_platform.storage import DeltaStore

    with open(args.web_ids) as lines:
        web_ids = [line.strip() for line in lines if line.strip()]
    config = PIWebAPIConfig(url=args.url, max_concurrency=args.max_concurrency, page_size=args.page_size,
                            max_requests_per_second=args.max_requests_per_second or None)
    store = DeltaStore(args.delta_root)
    window = DayWindow(args.day, args.day + timedelta(days=1))

    warnings = WarningCounter()
    logging.getLogger("pi_platform.client").addHandler(warnings)
    rss_before = self_rss_bytes()
    cpu_before, children_before = self_cpu(), children_cpu()
    started = time.perf_counter()
    with RssSampler() as memory:
        extracted = extract_recorded(config, store, web_ids, window, run_id="bench", processes=args.processes)
    wall = time.perf_counter() - started
    cpu = self_cpu() - cpu_before + (children_cpu() - children_before)  # the reader processes' work is the client's
    print(json.dumps({
        "tags": len(web_ids),
        "rows": extracted.rows,
        "quarantined": extracted.quarantined,
        "quarantine_reasons": extracted.quarantine_reasons,
        "wall_s": wall,
        "cpu_user_s": cpu.user_s,
        "cpu_system_s": cpu.system_s,
        "rss_before_bytes": rss_before,
        "client_warnings": dict(warnings.counts),
        "first_client_warning": warnings.first,
        "peak_rss_bytes": self_peak_rss_bytes() + memory.total_bytes,
        "writer_peak_rss_bytes": self_peak_rss_bytes(),
        "reader_peak_rss_bytes": sorted(memory.peaks.values()),
        "writer_rss_timeline": memory.timeline(),
        "processes": args.processes,
        "delta": {"uri": extracted.info.uri, "version": extracted.info.version, "files": extracted.info.num_files,
                  "bytes": extracted.info.size_bytes},
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
