"""Lookups by path (`points?path=`, `elements?path=`, `attributes?path=`, `eventframes?path=`): found objects
come back whole, unknown paths get PI's 404 with the kind of object named."""

import httpx
import pytest


@pytest.mark.parametrize(
    ("resource", "kind", "bogus"),
    [
        ("points", "point", "\\\\PISIM\\NoSuchTag"),
        ("elements", "element", "\\\\PISIM-AF\\PISIM\\NoSuchElement"),
        ("attributes", "attribute", "\\\\PISIM-AF\\PISIM\\NoSuchElement|Nothing"),
        ("eventframes", "event frame", "\\\\PISIM-AF\\PISIM\\EventFrames[NoSuchFrame]"),
    ],
)
def test_unknown_paths_are_404_naming_the_kind(simulator, resource, kind, bogus):
    response = httpx.get(f"{simulator.base_url}/{resource}", params={"path": bogus})
    assert response.status_code == 404
    assert response.json() == {"Errors": [f"The specified {kind} was not found: '{bogus}'."]}


def test_known_paths_return_the_object(simulator):
    point = next(p for p in simulator.plant.points if not p.name.startswith("EDGE."))
    element = simulator.plant.elements[0]
    attribute = next(a for e in simulator.plant.elements for a in e.attributes)
    for resource, obj in (("points", point), ("elements", element), ("attributes", attribute)):
        response = httpx.get(f"{simulator.base_url}/{resource}", params={"path": obj.path})
        assert response.status_code == 200, (resource, response.text)
        assert response.json()["WebId"] == obj.web_id
