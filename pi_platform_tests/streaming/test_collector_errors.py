"""Errors that speak: bad tags named and isolated, refused credentials and unreachable hosts reported (never a
silent loop), a full WAL disk waited out without losing a message, damaged WAL records re-read from PI."""

import asyncio
import errno
import logging
import time
import uuid

import httpx
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from streaming_helpers import doubled_keys, mismatches, table_values, wait_until

from pi_platform import cli, webid
from pi_platform.bench.chaos import unknown_point
from pi_platform.client import PIWebAPIConfig
from pi_platform.defs.streaming.gap_checks import collector_problems
from pi_platform.defs.streaming.resources import StreamCollectorResource
from pi_platform.simulator.clock import to_us
from pi_platform.streaming.alerts import alert_payload, send_alert
from pi_platform.streaming.channel import ChannelOptions, ChannelSocket, channel_urls
from pi_platform.streaming.collector import Collector, CollectorConfig
from pi_platform.streaming.gaps import read_gaps
from pi_platform.streaming.identity import IDENTITIES_FILE
from pi_platform.streaming.messages import parse_records
from pi_platform.streaming.state import CURSORS_FILE, WAL_DIR, read_json, write_json, write_subscription
from pi_platform.streaming.wal import WalRecord, WriteAheadLog


def seed_identities(state_dir, refs: dict[str, str]) -> None:
    """What an earlier run resolved (ref -> canonical WebID): lets a test start with PI refusing REST calls."""
    write_json(state_dir / IDENTITIES_FILE, {ref: {"web_id": w, "name": ref, "path": ""} for ref, w in refs.items()})


def test_unknown_and_deleted_tags_are_named_and_isolated_while_their_neighbours_flow(
    make_simulator, collector_process, webhook, tmp_path
):
    sim = make_simulator(n_tags=8, values_per_minute=600)
    plant = sim.plant
    good = [p.web_id for p in plant.points if not p.name.startswith("EDGE.")][:3]
    never = unknown_point(plant, "NEVER.EXISTED")  # PI refuses it when it is first resolved
    deleted = unknown_point(plant, "DELETED.SINCE")  # resolved by an earlier run, gone now: the channel URL fails
    state_dir, lake = tmp_path / "state", tmp_path / "lake"
    seed_identities(state_dir, {deleted: deleted})
    write_subscription(state_dir, [good[0], deleted, good[1], never, good[2]], start="*-1m")  # one channel URL
    collector = collector_process(state_dir, lake, sim.base_url,
                                  ["--batch-age", "0.3", "--heartbeat-rate", "1", "--bad-tag-retry", "2"]).start()

    def both_isolated() -> bool:
        status = collector.status()
        return {b["ref"] for b in status.get("bad_tags", [])} == {never, deleted} and (status.get("commits") or 0) >= 3

    wait_until(both_isolated, 60, "both bad tags isolated and the good ones committing")
    status = collector.status()
    assert status["subscription"]["streams"] == 3
    assert all(c["state"] == "open" for c in status["connections"])
    bad = {b["ref"]: b for b in status["bad_tags"]}
    assert "404" in bad[never]["reason"] and bad[deleted]["web_id"] == deleted
    assert [p["kind"] for p in status["problems"] if p["severity"] == "ERROR"].count("bad_tag") == 2
    wait_until(lambda: "retrying 2 bad tags" in collector.log.read_text(), 20, "a logged bad-tag retry")
    log = collector.log.read_text()
    assert f"bad tag {never}" in log and deleted in log and "Traceback" not in log

    outcome = collector_problems(StreamCollectorResource(mode="external", state_dir=str(state_dir),
                                                         delta_root=str(lake)))
    assert outcome.is_error and never in outcome.description and deleted in outcome.description
    assert {b["web_id"] for b in outcome.metadata["bad_tags"].value} == {None, deleted}
    details = {k: getattr(v, "value", v) for k, v in outcome.metadata.items()}
    assert send_alert(webhook.url, alert_payload(outcome.check_name, outcome.description, details))
    assert deleted in webhook.received[0]["text"]

    frozen = plant.clock.now()
    httpx.post(f"{sim.admin_url}/clock", json={"now": frozen.isoformat()}).raise_for_status()
    since = {k: int(v) for k, v in read_json(state_dir / CURSORS_FILE).items()}
    windows = {w: (since[w], to_us(frozen)) for w in good}
    wait_until(lambda: not mismatches(plant, lake, windows, frozen), 60, "the good tags equal to ground truth")
    assert doubled_keys(lake) == 0
    assert collector.terminate() == 0


def test_refused_credentials_are_one_line_with_the_fix_retried_slowly(make_simulator, collector_process,
                                                                      tmp_path, monkeypatch, capsys):
    sim = make_simulator(n_tags=4, auth="basic")
    web_ids = [p.web_id for p in sim.plant.points[:2]]
    state_dir = tmp_path / "state"
    seed_identities(state_dir, {w: w for w in web_ids})
    monkeypatch.setenv("PI_WEBAPI_AUTH", "basic")
    monkeypatch.setenv("PI_WEBAPI_USERNAME", "pisim")
    monkeypatch.setenv("PI_WEBAPI_PASSWORD", "hunter2-wrong")
    args = [a for w in web_ids for a in ("--web-id", w)]
    collector = collector_process(state_dir, tmp_path / "lake", sim.base_url, args).start()

    def auth_problem() -> dict | None:
        return next((p for p in collector.status().get("problems", []) if p["kind"] == "auth"), None)

    problem = wait_until(auth_problem, 30, "the refused credentials in the status")
    assert problem["severity"] == "ERROR"
    assert "401" in problem["message"] and "PI_WEBAPI_USERNAME/PI_WEBAPI_PASSWORD" in problem["message"]
    time.sleep(3)
    lines = [line for line in collector.log.read_text().splitlines()
             if "streaming.channel" in line and "refused the credentials (401)" in line]
    assert len(lines) == 1 and " ERROR " in lines[0] and "retry 1 in" in lines[0]  # logged, then a slow retry
    assert "hunter2" not in collector.log.read_text()
    outcome = collector_problems(StreamCollectorResource(mode="external", state_dir=str(state_dir),
                                                         delta_root=str(tmp_path / "lake")))
    assert outcome.is_error and "401" in outcome.description
    assert cli.main(["stream", "--status", "--state-dir", str(state_dir)]) == 0
    assert "ERROR        PI Web API refused the credentials (401)" in capsys.readouterr().out
    assert collector.terminate() == 0


def test_unreachable_host_logs_every_backoff_step(collector_process, tmp_path):
    web_id = webid.encode_full("DP", (uuid.uuid4(),), "NOWHERE\\TAG", point_id=1)
    state_dir = tmp_path / "state"
    seed_identities(state_dir, {web_id: web_id})
    collector = collector_process(state_dir, tmp_path / "lake", "http://127.0.0.1:9/piwebapi", ["--web-id", web_id]).start()

    def steps() -> list[str]:
        return [line for line in collector.log.read_text().splitlines() if "cannot open channel to 127.0.0.1:9" in line]

    wait_until(lambda: len(steps()) >= 3, 30, "three logged backoff steps")
    assert [f"retry {n} in" in line for n, line in enumerate(steps()[:3], 1)] == [True] * 3
    problems = collector.status()["problems"]
    assert any(p["kind"] == "channel" and "127.0.0.1:9" in p["message"] for p in problems)
    assert collector.terminate() == 0


class _FullDisk:
    """The WAL's segment file, refusing writes with ENOSPC after writing part of them while `full` is set.

    No size-limited filesystem can be mounted in the test environment, so the fault is injected at the
    file-write boundary of a real WriteAheadLog; everything else (rollback, retry, replay) is real."""

    def __init__(self, file) -> None:
        self.file = file
        self.full = True
        self.refusals = 0

    def write(self, data: bytes) -> int:
        if self.full:
            self.file.write(data[: len(data) // 2])  # a partial frame reaches the disk before it fills up
            self.refusals += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.file.write(data)

    def __getattr__(self, name: str):
        return getattr(self.file, name)


def test_full_wal_disk_waits_with_one_line_and_loses_nothing(tmp_path, caplog):
    async def scenario() -> tuple[list[int], _FullDisk]:
        wal = WriteAheadLog(tmp_path)
        wal.open(0)
        disk = _FullDisk(wal._file)  # noqa: SLF001 - the injection point, see _FullDisk
        wal._file = disk  # noqa: SLF001
        appends = [asyncio.create_task(wal.append(i, "c1#1", f"message {i}".encode())) for i in range(5)]
        await asyncio.sleep(2.5)
        assert not any(a.done() for a in appends)  # held in memory, not failed
        assert disk.refusals >= 2 and "No space left on device" in (wal.write_error or "")
        disk.full = False
        ends = await asyncio.gather(*appends)
        assert wal.write_error is None
        wal.close()
        return ends, disk

    with caplog.at_level(logging.WARNING, logger="pi_platform.streaming.wal"):
        ends, disk = asyncio.run(scenario())
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "No space left on device" in errors[0].getMessage()  # one line, however long
    assert "\n" not in errors[0].getMessage() and errors[0].exc_info is None
    reopened = WriteAheadLog(tmp_path)
    replay = reopened.open(0)
    assert [r.payload for r in replay] == [f"message {i}".encode() for i in range(5)]  # each once, in order
    assert [r.end for r in replay] == ends and reopened.damages == []  # no partial frame was left behind


async def _capture(url: str, options: ChannelOptions, count: int) -> list[tuple[int, bytes]]:
    out = []
    async for payload in ChannelSocket(url, options, {}, None).messages():
        if b'"Items":[]' not in payload.replace(b" ", b""):
            out.append((time.time_ns(), payload))
        if len(out) == count:
            return out
    return out


def test_damaged_wal_record_is_reported_and_its_time_range_read_back_from_pi(make_simulator, tmp_path, caplog):
    sim = make_simulator(n_tags=6, values_per_minute=600)
    web_ids = [p.web_id for p in sim.plant.points if not p.name.startswith("EDGE.")][:3]
    started_us = int(time.time() * 1e6)
    options = ChannelOptions(heartbeat_rate=1)
    ((_, url),) = channel_urls(sim.base_url, web_ids, options)
    messages = asyncio.run(_capture(url, options, 3))

    state_dir, lake = tmp_path / "state", tmp_path / "lake"
    wal = WriteAheadLog(state_dir / WAL_DIR)
    wal.open(0)
    ends = wal.append_sync([(ns, "c1#1", payload) for ns, payload in messages])
    wal.close()
    (segment,) = (state_dir / WAL_DIR).glob("*.wal")
    data = bytearray(segment.read_bytes())
    data[ends[0] + 20] ^= 0xFF  # the second message is damaged
    segment.write_bytes(bytes(data))
    lost = parse_records([WalRecord(0, 0, "c1#1", messages[1][1])]).rows
    write_subscription(state_dir, web_ids)
    write_json(state_dir / CURSORS_FILE, {w: started_us - 60_000_000 for w in web_ids})

    async def run() -> None:
        collector = Collector(CollectorConfig(state_dir=state_dir, delta_root=str(lake), batch_max_age_s=0.2),
                              PIWebAPIConfig(url=sim.base_url))
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        while not collector.ready.is_set() or collector.ledger.gaps or collector._commits == 0:  # noqa: SLF001
            await asyncio.sleep(0.1)
        stop.set()
        await task

    with caplog.at_level(logging.INFO):
        asyncio.run(run())
    lines = [r.getMessage() for r in caplog.records]
    assert any(f"damaged record at byte offset {ends[0]}: skipped 1 record(s)" in line for line in lines)
    assert any(f"(damaged WAL record at byte {ends[0]})" in line and "opened" in line for line in lines)
    assert read_gaps(state_dir) == []  # closed: its read committed
    table = table_values(lake)
    keys = set(zip(table["web_id"].to_pylist(), table["timestamp"].cast(pa.int64()).to_pylist(), strict=True))
    wanted = set(zip(lost["web_id"].to_pylist(), lost["timestamp"].cast(pa.int64()).to_pylist(), strict=True))
    assert wanted and wanted <= keys  # the damaged message's values came back from PI
    assert pc.sum(pc.equal(table["web_id"], web_ids[0])).as_py() > 0
    assert orjson.loads(messages[1][1])["Items"]
