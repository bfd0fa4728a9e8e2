"""`pi-platform doctor` against the real simulator: what it finds, and one line per problem."""

import io

from pi_platform import cli
from pi_platform.client import PIWebAPIConfig
from pi_platform.client.doctor import diagnose
from pi_platform_tests.client.support import run


def test_doctor_reports_inventory(simulator) -> None:
    out = io.StringIO()
    code = run(diagnose(PIWebAPIConfig(url=simulator.base_url), out))
    text = out.getvalue()
    plant = simulator.plant
    assert code == 0, text
    assert "product: PI Web API" in text and "identity: " in text
    assert f"data server {plant.data_server_name}" in text and f": {len(plant.points)} points" in text
    assert f"asset server {plant.asset_server_name}: {plant.database_name}" in text
    assert text.rstrip().endswith("OK")


def test_doctor_names_the_auth_problem(make_simulator) -> None:
    sim = make_simulator(auth="basic", username="piuser", password="right")
    out = io.StringIO()
    config = PIWebAPIConfig(url=sim.base_url, auth="basic", username="piuser", password="wrong-pw-123")
    code = run(diagnose(config, out))
    problems = [line for line in out.getvalue().splitlines() if line.startswith("problem:")]
    assert code == 1 and len(problems) == 1
    assert "401" in problems[0] and "server offers: Basic" in problems[0]
    assert "wrong-pw-123" not in out.getvalue()


def test_doctor_cli_uses_env_and_exits_nonzero(monkeypatch, capsys) -> None:
    monkeypatch.setenv("PI_WEBAPI_URL", "http://pi-server.invalid/piwebapi")
    assert cli.main(["doctor", "--retries", "0"]) == 1
    out = capsys.readouterr().out
    assert "problem: cannot resolve host 'pi-server.invalid' (DNS)" in out

    monkeypatch.delenv("PI_WEBAPI_URL")
    assert cli.main(["doctor"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["pi-platform doctor: no PI Web API URL: set PI_WEBAPI_URL or pass --url https://host/piwebapi"]


def test_doctor_reports_a_timeout_in_one_line(simulator) -> None:
    simulator.set_faults(stall_rate=1.0, stall_seconds=2)
    out = io.StringIO()
    code = run(diagnose(PIWebAPIConfig(url=simulator.base_url, timeout_s=0.3, max_retries=0), out))
    problems = [line for line in out.getvalue().splitlines() if line.startswith("problem:")]
    assert code == 1 and len(problems) == 1 and "did not answer within 0.3s" in problems[0]
