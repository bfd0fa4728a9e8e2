"""Storage slower than the sockets: the in-memory buffer stays within its budget and nothing is lost."""

import asyncio

from streaming_helpers import table_values

from pi_platform.client import PIWebAPIConfig
from pi_platform.bench.stream import _templates
from pi_platform.streaming.collector import Collector, CollectorConfig
from pi_platform.streaming.state import write_subscription

_BUDGET = 1 << 20


def test_buffer_is_bounded_while_a_fast_feeder_outruns_delta(tmp_path):
    templates = _templates(streams=200, values_per_stream=10, count=30)  # 30 messages of 2,000 values
    largest = max(len(t) for t in templates)
    config = CollectorConfig(state_dir=tmp_path / "state", delta_root=str(tmp_path / "lake"),
                             max_buffer_bytes=_BUDGET, batch_max_bytes=_BUDGET // 2, batch_max_age_s=0.2)
    write_subscription(config.state_dir, [])

    async def scenario() -> tuple[int, int, int]:
        collector = Collector(config, PIWebAPIConfig(url="http://127.0.0.1:9/piwebapi"))  # PI is not needed
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        await collector.ready.wait()
        peak = 0
        fed = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, collector.wal.buffered_bytes)
                await asyncio.sleep(0.001)

        watcher = asyncio.create_task(watch())
        for template in templates * 2:  # 120,000 values as fast as the collector takes them
            hour = fed // (30 * 2000)
            await collector._on_message("s#1", template.replace(b"2020-01-01T00", f"2020-01-01T{hour:02d}".encode()))  # noqa: SLF001
            fed += 2000
        watcher.cancel()
        stop.set()
        await task
        return peak, fed, collector.metrics.total_rows

    peak, fed, committed = asyncio.run(scenario())
    assert peak >= _BUDGET  # the feeder did outrun storage: back-pressure engaged
    assert peak <= _BUDGET + largest  # one message may land while the budget is reached, never more
    assert committed == fed == table_values(tmp_path / "lake").num_rows
