"""The write-ahead log keeps every acknowledged record across crashes, and only those."""

import asyncio
import os

import logging

from pi_platform.streaming.wal import WriteAheadLog


def _payloads(n: int) -> list[bytes]:
    return [f'{{"Items":[{i}]}}'.encode() * (1 + i % 7) for i in range(n)]


def test_replay_after_crash_returns_exactly_the_uncommitted_records(tmp_path):
    wal = WriteAheadLog(tmp_path, segment_bytes=300)  # tiny segments: many rotations
    assert wal.open(committed=0) == []
    payloads = _payloads(50)
    ends = wal.append_sync([(i, f"c1#{i % 3}", p) for i, p in enumerate(payloads)])
    wal.close()  # no graceful anything: the process "dies" here
    assert len(list(tmp_path.glob("*.wal"))) > 3

    committed = ends[19]
    reopened = WriteAheadLog(tmp_path, segment_bytes=300)
    replay = reopened.open(committed=committed)
    assert [r.payload for r in replay] == payloads[20:]
    assert [r.source for r in replay] == [f"c1#{i % 3}" for i in range(20, 50)]
    assert [r.received_at_ns for r in replay] == list(range(20, 50))
    assert [r.end for r in replay] == ends[20:]


def test_torn_tail_is_cut_and_new_appends_follow_it(tmp_path):
    wal = WriteAheadLog(tmp_path)
    wal.open(0)
    ends = wal.append_sync([(1, "a", b"first"), (2, "a", b"second")])
    wal.close()
    segment = next(tmp_path.glob("*.wal"))
    with open(segment, "ab") as fh:  # a crash in the middle of writing a third record
        fh.write(b"\x40\x00\x00\x00\x01\x02")
    wal = WriteAheadLog(tmp_path)
    assert [r.payload for r in wal.open(0)] == [b"first", b"second"]
    assert os.path.getsize(segment) == ends[-1]
    wal.append_sync([(3, "b", b"third")])
    wal.close()
    assert [r.payload for r in WriteAheadLog(tmp_path).records()] == [b"first", b"second", b"third"]


def test_damage_before_the_tail_is_skipped_with_a_warning_naming_offset_and_count(tmp_path, caplog):
    """A bad block in the middle of the log costs the records in it, not everything after it."""
    wal = WriteAheadLog(tmp_path, segment_bytes=1 << 20)
    wal.open(0)
    ends = wal.append_sync([(1000 + i, "a", bytes([65 + i]) * 30) for i in range(5)])
    wal.close()
    (segment,) = tmp_path.glob("*.wal")
    data = bytearray(segment.read_bytes())
    data[ends[1] + 12] ^= 0xFF  # inside the body of the third record
    segment.write_bytes(bytes(data))

    reopened = WriteAheadLog(tmp_path, segment_bytes=1 << 20)
    with caplog.at_level(logging.WARNING, logger="pi_platform.streaming.wal"):
        replay = reopened.open(0)
    assert [r.payload[:1] for r in replay] == [b"A", b"B", b"D", b"E"]  # only the damaged one is gone
    (damage,) = reopened.damages
    assert (damage.offset, damage.bytes, damage.records, damage.exact) == (ends[1], ends[2] - ends[1], 1, True)
    assert (damage.after_ns, damage.before_ns) == (1001, 1003)  # the receive times to re-read from PI
    (line,) = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert f"byte offset {ends[1]}" in line and "skipped 1 record(s)" in line
    assert os.path.getsize(segment) == ends[-1]  # valid records after the damage were not cut off


def test_wiped_log_restarts_above_the_committed_offset(tmp_path):
    """Versions must keep growing, or new batches would look already committed and be skipped."""
    wal = WriteAheadLog(tmp_path)
    assert wal.open(committed=5000) == []
    (end,) = wal.append_sync([(1, "a", b"new")])
    assert end > 5000


def test_truncate_keeps_uncommitted_segments(tmp_path):
    wal = WriteAheadLog(tmp_path, segment_bytes=50)
    wal.open(0)
    ends = wal.append_sync([(i, "a", b"y" * 40) for i in range(6)])
    assert wal.truncate_before(ends[2]) >= 1
    assert [r.end for r in wal.records(after=ends[2])] == ends[3:]


def test_async_appends_group_commit_and_apply_back_pressure(tmp_path):
    async def scenario() -> tuple[list[int], int, int]:
        wal = WriteAheadLog(tmp_path, max_buffer_bytes=100)
        wal.open(0)
        first = await asyncio.gather(*(wal.append(i, "s", b"z" * 30) for i in range(3)))
        blocked = asyncio.create_task(wal.append(9, "s", b"z" * 30))  # tail is at 90 bytes: still room
        await blocked
        stuck = asyncio.create_task(wal.append(10, "s", b"w" * 30))  # 120 bytes buffered: must wait
        await asyncio.sleep(0.05)
        waited = not stuck.done()
        taken = wal.take(1 << 20)
        await stuck
        wal.close()
        return [*first, blocked.result()], len(taken), int(waited)

    ends, taken, waited = asyncio.run(scenario())
    assert ends == sorted(ends) and len(set(ends)) == 4
    assert taken == 4
    assert waited == 1
