"""Real-server behaviour: authentication, CSRF, rate limits and injected faults (set at start and at run time)."""

import base64

import httpx
import orjson
import pytest


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_401_with_challenge_then_200(make_simulator):
    sim = make_simulator(auth="basic", username="DOMAIN\\alice", password="s3cret")
    with httpx.Client(base_url=sim.base_url + "/") as http:
        missing = http.get("dataservers")
        assert missing.status_code == 401
        assert missing.headers.get_list("www-authenticate") == ['Basic realm="PISIM"']
        assert missing.json() == {"Errors": ["Authorization has been denied for this request."]}
        assert http.get("dataservers", headers=_basic("DOMAIN\\alice", "wrong")).status_code == 401
        ok = http.get("dataservers", headers=_basic("DOMAIN\\alice", "s3cret"))
        assert ok.status_code == 200 and ok.json()["Items"][0]["Name"] == "PISIM"
        me = http.get("system/userinfo", headers=_basic("DOMAIN\\alice", "s3cret")).json()
        assert me["Name"] == "DOMAIN\\alice" and me["IsAuthenticated"] is True
    assert "s3cret" not in repr(sim.config)


def test_bearer_and_both_schemes(make_simulator):
    sim = make_simulator(auth="basic,bearer", token="tok-123")
    with httpx.Client(base_url=sim.base_url + "/") as http:
        refused = http.get("system", headers={"Authorization": "Bearer nope"})
        assert refused.status_code == 401
        assert refused.headers.get_list("www-authenticate") == ['Basic realm="PISIM"', 'Bearer realm="PISIM"']
        assert http.get("system", headers={"Authorization": "Bearer tok-123"}).status_code == 200
        assert http.get("system", headers=_basic("pisim", "pisim")).status_code == 200


def test_post_requires_x_requested_with(simulator):
    body = {"1": {"Method": "GET", "Resource": simulator.base_url + "/system"}}
    with httpx.Client(base_url=simulator.base_url + "/") as http:
        refused = http.post("batch", json=body)
        assert refused.status_code == 403 and "X-Requested-With" in refused.json()["Errors"][0]
        assert http.post("batch", json=body, headers={"X-Requested-With": "XMLHttpRequest"}).status_code == 207


def test_rate_limit_gives_429_with_retry_after(make_simulator):
    sim = make_simulator(rate_limit=3, rate_limit_window_s=60)
    with httpx.Client(base_url=sim.base_url + "/") as http:
        statuses = [http.get("system").status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
        limited = http.get("system")
        assert limited.headers["retry-after"] == "1" and limited.json() == {"Errors": ["Rate limit was reached"]}


def test_faults_set_at_start(make_simulator):
    sim = make_simulator(faults={"error_rate": 1.0})
    with httpx.Client(base_url=sim.base_url + "/") as http:
        response = http.get("system")
        assert response.status_code in (500, 502, 503) and response.json()["Errors"]
        assert httpx.get(sim.admin_url + "/faults").json()["error_rate"] == 1.0  # admin API is never faulted


def test_faults_changed_at_run_time_through_admin(simulator):
    admin = simulator.admin_url
    point = simulator.plant.points[0]
    with httpx.Client(base_url=simulator.base_url + "/") as http:
        assert http.get("system").status_code == 200
        assert httpx.post(admin + "/faults", json={"status_429_rate": 1}).json()["status_429_rate"] == 1
        limited = http.get("system")
        assert limited.status_code == 429 and "retry-after" in limited.headers
        httpx.post(admin + "/faults", json={"reset": True, "malformed_json_rate": 1})
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(http.get("system").content)
        httpx.post(admin + "/faults", json={"reset": True, "truncated_rate": 1})
        with pytest.raises(httpx.RemoteProtocolError):
            http.get("system")
        httpx.post(admin + "/faults", json={"reset": True, "web_exception_rate": 1})
        body = http.get(f"streams/{point.web_id}/recorded", params={"startTime": "*-1d"}).json()
        assert body["WebException"] == {"Errors": ["An error has occurred."], "StatusCode": 500}
        httpx.post(admin + "/faults", json={"reset": True, "value_error_rate": 1})
        items = http.get(f"streams/{point.web_id}/recorded", params={"startTime": "*-1h"}).json()["Items"]
        assert items and all(i["Errors"][0]["FieldName"] == "Value" for i in items)
        httpx.post(admin + "/faults", json={"reset": True})
        assert http.get("system").status_code == 200
    bad = httpx.post(admin + "/faults", json={"no_such_fault": 1})
    assert bad.status_code == 400 and "no_such_fault" in bad.json()["error"]


def test_set_faults_method_and_latency(simulator):
    simulator.set_faults(latency_ms=50, stall_rate=1, stall_seconds=5)
    with httpx.Client(base_url=simulator.base_url + "/", timeout=1) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.get("system")
    simulator.set_faults(stall_rate=0)
    assert httpx.get(simulator.base_url + "/system").status_code == 200


def test_auth_is_named_like_the_client(monkeypatch):
    """`anonymous` (the client's PI_WEBAPI_AUTH word) is the default; the old `none` is refused, not aliased."""
    import argparse

    from pi_platform.errors import ConfigError
    from pi_platform.simulator.config import SimulatorConfig, add_arguments, from_args

    assert SimulatorConfig().auth == "anonymous" and SimulatorConfig().auth_schemes == []
    with pytest.raises(ConfigError, match="anonymous"):
        SimulatorConfig(auth="none")
    monkeypatch.setenv("PISIM_AUTH", "bearer")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert from_args(parser.parse_args([])).auth_schemes == ["bearer"]
    assert from_args(parser.parse_args(["--auth", "anonymous"])).auth == "anonymous"
    with pytest.raises(SystemExit):
        parser.parse_args(["--auth", "none"])
