"""Channels with Kerberos against a real KDC: the collector streams through a forced reconnect with a renewed
ticket and its table equals the plant's ground truth; a missing ticket is a logged, retried channel error that
heals once `kinit` runs, not the collector's end."""

import asyncio
import logging

import httpx

from pi_platform.bench.chaos import CollectorProcess, wait_until
from pi_platform.client.config import PIWebAPIConfig
from pi_platform.simulator.clock import to_us
from pi_platform.streaming.channel import ChannelConnection, ChannelOptions, channel_urls, handshake_headers
from pi_platform.streaming.errors import ChannelAuthError
from pi_platform.streaming.state import CURSORS_FILE, read_json, write_subscription
from pi_platform_tests.kerberos.support import assert_no_tokens, kerberos_url
from pi_platform_tests.streaming.streaming_helpers import mismatches


def service_tickets(realm, ccache) -> str:
    return realm.run("klist", "-c", f"FILE:{ccache}").stdout


def test_collector_streams_through_a_forced_reconnect_with_a_renewed_ticket(
    kerberos_simulator, ticket, realm, tmp_path, monkeypatch
):
    sim = kerberos_simulator(n_tags=6, values_per_minute=300)
    plant = sim.plant
    web_ids = [p.web_id for p in plant.points if not p.edge][:4]
    monkeypatch.setenv("PI_WEBAPI_AUTH", "kerberos")  # the subprocess inherits it with the realm's KRB5_* variables
    state_dir, delta_root = tmp_path / "state", tmp_path / "lake"
    write_subscription(state_dir, web_ids, start="*-2m")
    args = ["--heartbeat-rate", "1", "--batch-age", "0.3", "--dead-channel-timeout", "10"]
    collector = CollectorProcess(state_dir, delta_root, kerberos_url(sim), args).start()
    try:
        wait_until(lambda: (collector.status().get("commits") or 0) >= 2, 90, "first commits")
        channels = sim.app.channels
        opened, accepted = channels.opened_total, sim.app.negotiate.accepted[realm.user]

        realm.kinit(ticket)  # a renewed TGT replaces the cache (and its service ticket), as kinit in cron does
        assert httpx.post(f"{sim.admin_url}/channels/drop").json()["dropped"] >= 1
        # The simulator upgrades only authenticated sockets, and its acceptor's replay cache refuses a reused
        # token: a reopened channel is a fresh token accepted.
        wait_until(lambda: channels.opened_total > opened and channels.open_count >= 1, 90, "the channel reopened")
        assert sim.app.negotiate.accepted[realm.user] > accepted
        assert realm.spn in service_tickets(realm, ticket)  # the service ticket was fetched with the renewed TGT
        commits = collector.status().get("commits") or 0
        wait_until(lambda: (collector.status().get("commits") or 0) > commits, 90, "commits after the reconnect")

        frozen = plant.clock.now()  # freeze the plant: what PI holds becomes a constant to converge to
        httpx.post(f"{sim.admin_url}/clock", json={"now": frozen.isoformat()}).raise_for_status()
        since = {k: int(v) for k, v in read_json(state_dir / CURSORS_FILE).items()}
        windows = {w: (since[w], to_us(frozen)) for w in web_ids}
        wait_until(lambda: not mismatches(plant, delta_root, windows, frozen), 90, "convergence to ground truth")
        status = collector.status()
        assert collector.terminate() == 0
    finally:
        collector.cleanup()
    assert status["reconnects"] >= 1
    assert not [p for p in status.get("problems", []) if p.get("kind") == "auth"], status.get("problems")
    assert sim.app.negotiate.refused == 0
    assert_no_tokens(collector.log.read_text())


def test_channel_without_a_ticket_retries_and_heals_after_kinit(kerberos_simulator, ccache, realm, caplog):
    sim = kerberos_simulator(n_tags=2, values_per_minute=600)
    config = PIWebAPIConfig(url=kerberos_url(sim), auth="kerberos")
    options = ChannelOptions(heartbeat_rate=1, backoff_initial_s=0.1, auth_retry_s=0.2)
    ((web_ids, url),) = channel_urls(config.url, [sim.plant.points[0].web_id], options)
    errors: list[Exception] = []
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        async def on_message(source: str, payload: bytes) -> None: ...
        async def on_open(conn: ChannelConnection, source: str) -> None: ...
        async def on_error(conn: ChannelConnection, exc: Exception) -> None:
            errors.append(exc)

        conn = ChannelConnection("k", web_ids, url, options, handshake_headers(config), None, on_message, on_open,
                                 on_error)
        task = asyncio.create_task(conn.run())
        try:
            while not errors:
                await asyncio.sleep(0.05)
            assert not conn.opened.is_set()
            await asyncio.to_thread(realm.kinit, ccache)
            await asyncio.wait_for(conn.opened.wait(), 60)
            while conn.stats.heartbeats + conn.stats.messages == 0:  # data flows on the healed channel
                await asyncio.sleep(0.05)
        finally:
            task.cancel()

    asyncio.run(asyncio.wait_for(scenario(), 120))
    assert isinstance(errors[0], ChannelAuthError)
    assert str(errors[0]).startswith("Kerberos: no ticket") and "kinit" in str(errors[0])
    assert "\n" not in str(errors[0])
    assert any(r.levelno == logging.ERROR and "Kerberos: no ticket" in r.getMessage() for r in caplog.records)
    assert sim.app.negotiate.accepted[realm.user] >= 1
    assert_no_tokens(caplog.text)
