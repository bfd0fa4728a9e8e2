"""`pi-platform tail`: print `stream_values` rows committed since a time, then new rows as they commit.

`--format jsonl` prints one JSON object per row (the WebSocket's row shape, `records.to_records`), for scripts;
`--format table` aligned columns for people. `--no-follow` stops once the replay is printed. The lake comes
from `PI_DELTA_ROOT` / `PI_DELTA_STORAGE_OPTIONS` (or `--delta-root`) through settings.
"""

import argparse
import os
import sys
from typing import TextIO

import orjson
import pyarrow as pa

from pi_platform.feed.follow import POLL_INTERVAL_S, Feed, release_arrow
from pi_platform.feed.records import to_records
from pi_platform.feed.source import stream_values_location

TABLE_HEADER = f"{'timestamp':<27}  {'tag':<32}  {'value':>20}  flags"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", default="*",
                        help="replay rows with timestamp >= this (ISO 8601 or PI time: *-10m, t, y+6h; "
                        "default *: none)")
    parser.add_argument("--tag", action="append", default=[],
                        help="tag name or WebID to print (repeatable; default every tag)")
    parser.add_argument("--format", choices=("jsonl", "table"), default="table", help="output format (default table)")
    parser.add_argument("--no-follow", action="store_true",
                        help="exit after the replay instead of following new commits")
    parser.add_argument("--delta-root", default=None, help="Delta lake root holding stream_values (env PI_DELTA_ROOT)")
    parser.add_argument("--poll-interval", type=float, default=POLL_INTERVAL_S,
                        help=f"seconds between looks for a new commit (default {POLL_INTERVAL_S})")


def run(args: argparse.Namespace) -> int:
    uri, options = stream_values_location(args.delta_root)
    feed = Feed(uri, options, args.since, args.tag, poll_interval_s=args.poll_interval)
    write = write_jsonl if args.format == "jsonl" else write_table
    out = sys.stdout
    batches = feed.batches()
    try:
        if args.format == "table":
            print(TABLE_HEADER, file=out, flush=True)
        for batch in batches:
            if batch.kind == "caught_up" and args.no_follow:
                return 0
            if batch.rows.num_rows:
                write(batch.rows, out)
                out.flush()
    except BrokenPipeError:  # `pi-platform tail | head`: the reader is done, so are we
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
    finally:
        release_arrow(batches)
    return 0


def write_jsonl(rows: pa.Table, out: TextIO) -> None:
    out.write("".join(orjson.dumps(record).decode() + "\n" for record in to_records(rows)))


def write_table(rows: pa.Table, out: TextIO) -> None:
    for record in to_records(rows):
        out.write(f"{record['timestamp']:<27}  {record['name']:<32}  {_shown(record):>20}  {_flags(record)}\n")


def _shown(record: dict) -> str:
    """What PI would display: the state name of a digital or system state, the text of a string, else the number."""
    if record.get("digital_state") is not None:
        return str(record["digital_state"])
    if record.get("value_str") is not None:
        return str(record["value_str"])
    return "" if record.get("value") is None else f"{record['value']:.6g}"


def _flags(record: dict) -> str:
    flags = [name for name in ("questionable", "substituted", "annotated") if record.get(name)]
    if not record.get("good", True):
        flags.insert(0, "bad")
    return ",".join(flags)
