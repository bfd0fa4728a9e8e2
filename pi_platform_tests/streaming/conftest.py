"""Streaming fixtures (helpers live in streaming_helpers.py); every process and server is stopped at teardown."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streaming_helpers import CollectorProcess, StallingProxy, WebhookSink


@pytest.fixture
def stalling_proxy() -> Iterator[Callable[[int], StallingProxy]]:
    proxies: list[StallingProxy] = []

    def make(port: int) -> StallingProxy:
        proxy = StallingProxy(port).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()


@pytest.fixture
def collector_process() -> Iterator[Callable[..., CollectorProcess]]:
    started: list[CollectorProcess] = []

    def make(state_dir: Path, delta_root: Path, url: str, extra: list[str]) -> CollectorProcess:
        process = CollectorProcess(state_dir, delta_root, url, extra)
        started.append(process)
        return process

    yield make
    for process in started:
        process.cleanup()


@pytest.fixture
def webhook() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    yield sink
    sink.stop()
