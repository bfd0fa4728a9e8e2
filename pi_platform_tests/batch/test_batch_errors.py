"""A PI server that is not there fails the step with one line naming the problem; nothing is written."""

import socket

from pi_platform.defs.resources import PIWebAPIResource
from pi_platform_tests.batch.conftest import Runner


def test_unreachable_pi_server_is_one_line(plain_simulator, tmp_path, instance):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    runner = Runner(plain_simulator, tmp_path / "lake", instance)
    runner.resources["pi_webapi"] = PIWebAPIResource(overrides={"url": f"http://127.0.0.1:{dead}/piwebapi"})
    result = runner.materialize(["pi_points"], raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.user_failure_data
    assert "\n" not in failure.description and f"127.0.0.1:{dead}" in failure.description
    assert not runner.store.exists("pi_points")
