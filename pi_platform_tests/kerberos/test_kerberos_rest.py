"""REST with Kerberos against a real KDC: a Dagster batch day from a Kerberos-only simulator equals the plant's
ground truth, and a service account authenticates from its keytab with mutual authentication and delegation;
no token or key material reaches a log."""

import asyncio
import logging
from datetime import timedelta

import dagster as dg
import httpx
import pytest

from pi_platform.client import PIWebAPIClient, PIWebAPIConfig
from pi_platform.defs.resources import PIWebAPIResource
from pi_platform.value_columns import sort_values
from pi_platform_tests.batch import truth
from pi_platform_tests.batch.conftest import DAY, NOW, Runner, day_bounds
from pi_platform_tests.client.support import ground_truth
from pi_platform_tests.kerberos.support import assert_no_tokens, kerberos_url

def kerberos_runner(sim, tmp_path, instance) -> Runner:
    """The real code location's assets against `sim` by its SPN's host name; PI_WEBAPI_AUTH comes from the env."""
    runner = Runner(sim, tmp_path / "lake", instance)
    runner.resources["pi_webapi"] = PIWebAPIResource(
        overrides={"url": kerberos_url(sim), "max_requests_per_second": "1000"})
    return runner


def test_batch_day_with_kerberos_equals_ground_truth(kerberos_simulator, ticket, realm, tmp_path, monkeypatch, caplog):
    sim = kerberos_simulator(n_tags=20, now=NOW, edge_tags=False)
    monkeypatch.setenv("PI_WEBAPI_AUTH", "kerberos")  # as a deployment sets it; the resource reads it in the run
    caplog.set_level(logging.DEBUG)
    with dg.instance_for_test() as instance:
        runner = kerberos_runner(sim, tmp_path, instance)
        result = runner.materialize(("pi_points", "recorded_values"))
        assert result.success
        run_log = "\n".join(str(entry.user_message) for entry in instance.all_logs(result.run_id))

    start, end = day_bounds(DAY)
    expected = truth.recorded(sim.plant, start, end)
    got = sort_values(runner.store.read_range("recorded_values", "event_date", start.date(), end.date())
                      .select(expected.schema.names))
    assert got.num_rows == expected.num_rows > 0
    assert got.equals(expected)
    points = runner.table("pi_points")
    assert {(r["web_id"], r["name"], r["point_type"], r["zero"], r["span"], r["engineering_units"],
             r["digital_set"] or None) for r in points.to_pylist()} == truth.points(sim.plant)
    # Every request was authenticated by the acceptor as the user, none refused after the first challenge.
    negotiate = sim.app.negotiate
    assert negotiate.accepted[realm.user] >= 3 and set(negotiate.accepted) == {realm.user}
    assert negotiate.refused == 0
    assert_no_tokens(caplog.text + run_log)


def test_dagster_run_without_a_ticket_fails_with_the_doctor_line(kerberos_simulator, ccache, tmp_path, monkeypatch):
    sim = kerberos_simulator(n_tags=4, now=NOW, edge_tags=False)
    monkeypatch.setenv("PI_WEBAPI_AUTH", "kerberos")
    with dg.instance_for_test() as instance:
        runner = kerberos_runner(sim, tmp_path, instance)
        result = runner.materialize(["pi_points"], raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.user_failure_data
    assert failure.description.startswith("Kerberos: no ticket") and "\n" not in failure.description
    assert failure.metadata["error"].value == "KerberosError"
    assert not runner.store.exists("pi_points")


def test_service_account_keytab_mutual_auth_and_delegation(kerberos_simulator, ccache, realm, monkeypatch, caplog):
    """No kinit at all: the keytab and principal come from PI_WEBAPI_KEYTAB / PI_WEBAPI_PRINCIPAL, tickets live
    in the process's memory cache (the user's cache stays untouched), the server must prove itself, and the
    ticket is forwarded as an unconstrained-delegation setup needs."""
    sim = kerberos_simulator(n_tags=6)
    monkeypatch.setenv("PI_WEBAPI_AUTH", "kerberos")
    monkeypatch.setenv("PI_WEBAPI_KEYTAB", str(realm.user_keytab))
    monkeypatch.setenv("PI_WEBAPI_PRINCIPAL", realm.user)
    monkeypatch.setenv("PI_WEBAPI_MUTUAL_AUTH", "required")
    monkeypatch.setenv("PI_WEBAPI_DELEGATE", "true")
    config = PIWebAPIConfig.from_env(url=kerberos_url(sim), max_requests_per_second=None)
    points = [p for p in sim.plant.points if not p.edge][:3]
    end = sim.plant.clock.now() - timedelta(hours=1)
    start = end - timedelta(hours=2)
    caplog.set_level(logging.DEBUG)

    async def read():
        async with PIWebAPIClient(config) as pi:
            return await pi.recorded_table([p.web_id for p in points], start, end)

    table = asyncio.run(read())
    assert sort_values(table).equals(ground_truth(sim.plant, [p.web_id for p in points], start, end))
    assert sim.app.negotiate.accepted[realm.user] >= 1
    assert sim.app.negotiate.delegated == sum(sim.app.negotiate.accepted.values())
    assert not ccache.exists()  # the service account's tickets never touched the default cache
    assert_no_tokens(caplog.text)


def test_keytab_that_does_not_exist_is_one_line(tmp_path):
    from pi_platform.errors import ConfigError

    with pytest.raises(ConfigError, match=r"keytab .* is not a file"):
        PIWebAPIConfig(url="http://localhost/piwebapi", auth="kerberos", keytab=str(tmp_path / "missing.keytab"))


def test_basic_alongside_kerberos_serves_both_and_offers_both(kerberos_simulator, ticket, realm):
    sim = kerberos_simulator(n_tags=4, auth="basic,kerberos")
    url = kerberos_url(sim)
    challenge = httpx.get(f"{url}/system")
    assert challenge.status_code == 401
    assert sorted(challenge.headers.get_list("www-authenticate")) == ["Basic realm=\"PISIM\"", "Negotiate"]

    async def product(config: PIWebAPIConfig) -> str:
        async with PIWebAPIClient(config) as pi:
            return (await pi.system())["ProductTitle"]

    basic = PIWebAPIConfig(url=url, auth="basic", username="pisim", password="pisim")
    assert asyncio.run(product(basic)) == asyncio.run(product(PIWebAPIConfig(url=url, auth="kerberos")))
    assert sim.app.negotiate.accepted[realm.user] == 1
