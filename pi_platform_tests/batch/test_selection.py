"""recorded_values reads exactly the configured tags: explicit list, name filter, AF template, attribute
category; an unknown tag is one clear line."""

import pyarrow.compute as pc
import pytest


def selected_names(runner, **config) -> set[str]:
    result = runner.materialize(["recorded_values"], run_config={"ops": {"recorded_values": {"config": config}}})
    assert result.success
    return set(pc.unique(runner.store.read("recorded_values")["name"]).to_pylist())


@pytest.fixture
def plant(plain_simulator):
    return plain_simulator.plant


@pytest.fixture
def sel_runner(make_runner, plain_simulator):
    return make_runner(plain_simulator, "lake")


def test_explicit_tags_and_name_filter(sel_runner, plant):
    names = [p.name for p in plant.points[:3]]
    assert selected_names(sel_runner, tags=names) == set(names)
    pattern = plant.points[0].name.split(".")[0] + ".*"
    expected = {p.name for p in plant.points if p.name.startswith(pattern[:-1])}
    assert expected and selected_names(sel_runner, name_filter=pattern) == expected
    assert selected_names(sel_runner, name_filter="NO.SUCH.*") == set()  # matching nothing empties the day


def test_af_template_and_category(sel_runner, plant):
    expected = {a.point.name for a in plant.attributes if a.point and a.element.template == "Pump"}
    assert expected and selected_names(sel_runner, af_template="Pump") == expected
    expected = {a.point.name for a in plant.attributes if a.point and "Status" in a.categories}
    assert expected and selected_names(sel_runner, attribute_category="Status") == expected


def test_unknown_tag_is_one_clear_line(sel_runner, plant):
    result = sel_runner.materialize(
        ["recorded_values"], run_config={"ops": {"recorded_values": {"config": {"tags": ["NO.SUCH.TAG", plant.points[0].name]}}}},
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data
    assert failure.user_failure_data.metadata["error"].value == "ConfigError"
    line = failure.user_failure_data.description
    assert "\n" not in line and "NO.SUCH.TAG" in line and "fix the 'tags' config" in line
