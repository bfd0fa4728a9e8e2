"""After a crash, what the WAL holds beyond the committed offset is committed exactly once on restart."""

import asyncio
from datetime import datetime, timezone

import orjson
import pyarrow.compute as pc
from streaming_helpers import table_values

from pi_platform import cli
from pi_platform.client import PIWebAPIConfig
from pi_platform.streaming.channel import ChannelOptions, ChannelSocket, channel_urls
from pi_platform.streaming.collector import Collector, CollectorConfig
from pi_platform.streaming.messages import parse_records
from pi_platform.storage import DeltaStore
from pi_platform.streaming.sink import StreamSink
from pi_platform.streaming.state import WAL_DIR, write_subscription
from pi_platform.streaming.wal import WriteAheadLog
from pi_platform.value_columns import VALUE_SCHEMA, sort_values


async def _capture(url: str, options: ChannelOptions, count: int) -> list[bytes]:
    out = []
    async for payload in ChannelSocket(url, options, {}, None).messages():
        out.append(payload)
        if len(out) == count:
            return out
    return out


async def _run_until_idle(collector: Collector) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    while collector.wal.buffered_records or collector._commits == 0:  # noqa: SLF001 - test observes progress
        await asyncio.sleep(0.05)
    stop.set()
    await task


def _initial_messages(sim) -> list[bytes]:
    """Each channel's first message from a frozen plant: the initial values, deterministic (no correction can
    sneak in)."""
    web_ids = [p.web_id for p in sim.plant.points]
    options = ChannelOptions(include_initial_values=True, heartbeat_rate=0)
    return [m for _, url in channel_urls(sim.base_url, web_ids, options)
            for m in asyncio.run(_capture(url, options, 1))]


def _crashed_with(state_dir, records: list[tuple[int, str, bytes]]) -> None:
    """A state directory whose WAL holds `records`, none committed, subscribed to nothing any more."""
    wal = WriteAheadLog(state_dir / WAL_DIR)
    wal.open(0)
    wal.append_sync(records)
    wal.close()
    write_subscription(state_dir, [])


def test_uncommitted_wal_records_are_committed_once_after_a_crash(make_simulator, tmp_path):
    sim = make_simulator(n_tags=12, now=datetime(2024, 5, 1, 12, tzinfo=timezone.utc))
    messages = _initial_messages(sim)
    # The state a kill -9 leaves: messages fsync'd to the WAL, nothing committed, nothing subscribed any more.
    state_dir, lake = tmp_path / "state", tmp_path / "lake"
    _crashed_with(state_dir, [(1_000 + i, f"c1#{i}", m) for i, m in enumerate(messages)])
    config = CollectorConfig(state_dir=state_dir, delta_root=str(lake), batch_max_age_s=0.1)
    pi = PIWebAPIConfig(url=sim.base_url)

    asyncio.run(_run_until_idle(Collector(config, pi)))
    expected = sort_values(parse_records(wal_records(state_dir)).rows.select(VALUE_SCHEMA.names))
    committed = sort_values(table_values(lake))
    assert committed.num_rows == expected.num_rows > 0
    assert committed.equals(expected.cast(committed.schema))
    assert pc.sum(pc.equal(committed["position"], 0)).as_py() == len(sim.plant.points)  # one current group per stream
    assert pc.max(committed["position"]).as_py() >= 1  # EDGE.SameTs: the whole group, not just one value

    # A second restart finds nothing to replay: the committed offset is in the table.
    second = Collector(config, pi)
    asyncio.run(_run_until_idle_or_nothing(second))
    assert sort_values(table_values(lake)).equals(committed)


def wal_records(state_dir):
    return list(WriteAheadLog(state_dir / WAL_DIR).records())


async def _run_until_idle_or_nothing(collector: Collector) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    await asyncio.sleep(1.0)
    assert collector.wal.buffered_records == 0 and collector._commits == 0  # noqa: SLF001
    stop.set()
    await task


def test_status_command_reads_what_the_collector_wrote(make_simulator, tmp_path, capsys):
    sim = make_simulator(n_tags=4, values_per_minute=600)
    state_dir, lake = tmp_path / "state", tmp_path / "lake"
    write_subscription(state_dir, [p.web_id for p in sim.plant.points[:3]])
    config = CollectorConfig(state_dir=state_dir, delta_root=str(lake), batch_max_age_s=0.1)
    asyncio.run(_run_until_idle(Collector(config, PIWebAPIConfig(url=sim.base_url))))

    assert cli.main(["stream", "--status", "--state-dir", str(state_dir)]) == 0
    out = capsys.readouterr().out
    assert "stopped" in out and "subscription 3 streams" in out and "last commit  Delta v0" in out
    assert "corrections  0 late groups waiting" in out and "(each read once 30s old)" in out  # the default settle
    assert cli.main(["stream", "--status", "--json", "--state-dir", str(state_dir)]) == 0
    assert orjson.loads(capsys.readouterr().out)["commits"] >= 1

    assert cli.main(["stream", "--status", "--state-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no collector status" in err


def test_unusable_items_go_to_quarantine_once_and_good_values_still_land(tmp_path):
    good = {"Timestamp": "2024-05-01T00:00:01Z", "Value": 1.5, "Good": True, "Questionable": False,
            "Substituted": False, "Annotated": False}
    broken = {"Timestamp": "2024-05-01T00:00:02Z", "Errors": [{"FieldName": "Value", "Message": ["PI Point not found"]}]}
    message = orjson.dumps({"Links": {}, "Items": [{"WebId": "W1", "Name": "T1", "Links": {}, "Items": [good, broken]}]})
    state_dir, lake = tmp_path / "state", tmp_path / "lake"
    wal = WriteAheadLog(state_dir / WAL_DIR)
    wal.open(0)
    wal.append_sync([(1, "c1#1", message), (2, "c1#1", b'{"Links":{},"Items":[{"WebId":')])  # second: truncated
    wal.close()
    write_subscription(state_dir, [])
    config = CollectorConfig(state_dir=state_dir, delta_root=str(lake), batch_max_age_s=0.1)
    pi = PIWebAPIConfig(url="http://127.0.0.1:9/piwebapi")  # never contacted: nothing is late or subscribed

    asyncio.run(_run_until_idle(Collector(config, pi)))
    values = table_values(lake)
    assert values["value"].to_pylist() == [1.5] and values["name"].to_pylist() == ["T1"]
    store = DeltaStore(str(lake))
    quarantined = store.read("quarantine")
    reasons = sorted(quarantined["reason"].to_pylist())
    assert len(reasons) == 2
    assert reasons[0].startswith("PI reported per-value Errors") and "PI Point not found" in reasons[0]
    assert reasons[1].startswith("unreadable channel message")
    assert set(quarantined["table_name"].to_pylist()) == {"stream_values"}

    # Replaying the same records (as after a crash between the quarantine write and the commit) adds nothing.
    StreamSink(store, config.app_id).quarantine(quarantined.select(["web_id", "reason", "raw"]))
    assert store.read("quarantine").num_rows == 2



def test_a_stop_behind_a_backlog_leaves_the_rest_to_the_next_start(make_simulator, tmp_path):
    """With `stop_drain_s`, a stop commits for at most that long: the rest stays in the WAL and the next start (which
    drains everything, the default) commits it, once."""
    sim = make_simulator(n_tags=12, now=datetime(2024, 5, 1, 12, tzinfo=timezone.utc))
    messages = _initial_messages(sim)
    state_dir, lake = tmp_path / "state", tmp_path / "lake"
    # a backlog: the same messages received again and again over separate sockets, one record per micro-batch
    _crashed_with(state_dir, [(1_000 + i, f"c{i}#0", m) for i in range(6) for m in messages])
    pi = PIWebAPIConfig(url=sim.base_url)
    tiny = max(len(m) for m in messages)  # a batch takes what reached its size limit: one message
    hasty = CollectorConfig(state_dir=state_dir, delta_root=str(lake), batch_max_age_s=0.1, batch_max_bytes=tiny,
                            stop_drain_s=0.0)

    async def stop_after_first_commit(collector: Collector) -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        while collector._commits == 0:  # noqa: SLF001 - test observes progress
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 30)
        return collector.wal.buffered_records

    left = asyncio.run(stop_after_first_commit(Collector(hasty, pi)))
    assert left > 0  # it stopped without draining the backlog
    assert 0 < StreamSink(DeltaStore(str(lake)), hasty.app_id).committed_offset() < wal_records(state_dir)[-1].end

    patient = CollectorConfig(state_dir=state_dir, delta_root=str(lake), batch_max_age_s=0.1)
    asyncio.run(_run_until_idle(Collector(patient, pi)))
    expected = sort_values(parse_records(wal_records(state_dir)[: len(messages)]).rows.select(VALUE_SCHEMA.names))
    committed = sort_values(table_values(lake))
    assert committed.num_rows == expected.num_rows > 0  # the repeats neither lost nor doubled anything
    assert committed.equals(expected.cast(committed.schema))
    assert StreamSink(DeltaStore(str(lake)), patient.app_id).committed_offset() == wal_records(state_dir)[-1].end
