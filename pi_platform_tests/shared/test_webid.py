"""WebID 2.0 codec against the real WebIDs and PathOnly rules documented in the protocol reference (§6)."""

import uuid

import pytest

from pi_platform import webid


def test_decodes_a_captured_point_webid():
    decoded = webid.decode("F1DPEmoryo_bV0GzilxLXH31pgjowAAAQUJDX1BJX09QU1xBSUM2ODEwNTkuUFY")
    assert decoded.kind == "Point"
    assert decoded.ids == (uuid.UUID("ca2b6a12-db8f-4157-b38a-5c4b5c7df5a6"),)
    assert decoded.point_id == 35982
    assert decoded.path == "ABC_PI_OPS\\AIC681059.PV"


def test_full_webid_round_trips_byte_for_byte():
    original = "F1DPEmoryo_bV0GzilxLXH31pgjowAAAQUJDX1BJX09QU1xBSUM2ODEwNTkuUFY"
    decoded = webid.decode(original)
    assert webid.encode_full("DP", decoded.ids, decoded.path, point_id=decoded.point_id) == original


def test_decodes_a_captured_element_webid():
    decoded = webid.decode("F1EmMyvy4jYfVEyvgGiLVLmYvAe-IYOLTf7xGIoGBFvZT1mwVk0tVFMtUElcVElNRVNFRVJcUkVBQ1RPUlM")
    assert decoded.kind == "Element"
    assert len(decoded.ids) == 2
    assert decoded.path == "VM-TS-PI\\TIMESEER\\REACTORS"


@pytest.mark.parametrize(
    ("built", "expected"),
    [
        (webid.point_path_webid("MYPISERVER", "SINUSOID"), "P1DPTVlQSVNFUlZFUlxTSU5VU09JRA"),
        (webid.point_path_webid("myPIserver", "sinusoid"), "P1DPTVlQSVNFUlZFUlxTSU5VU09JRA"),
        (
            webid.encode_path_only("Ab", "\\\\MYAFSERVER\\MYDB\\PLANT\\PUMP01|TEMPERATURE", owner="E"),
            "P1AbETVlBRlNFUlZFUlxNWURCXFBMQU5UXFBVTVAwMXxURU1QRVJBVFVSRQ",
        ),
        (webid.encode_path_only("Em", "\\\\MYAFSERVER\\MYDB\\PLANT\\PUMP01"), "P1EmTVlBRlNFUlZFUlxNWURCXFBMQU5UXFBVTVAwMQ"),
        (webid.encode_path_only("DS", "MYPISERVER"), "P1DSTVlQSVNFUlZFUg"),
    ],
)
def test_path_only_webids_match_the_documented_rule(built, expected):
    assert built == expected


@pytest.mark.parametrize("junk", ["", "F1", "F1RDbogus", "X1DPabc", "F2DPabcdef", "F1ZZabcdefgh", "I1DP!!!!"])
def test_malformed_webids_raise_the_server_message(junk):
    with pytest.raises(webid.InvalidWebId, match=r"^Unknown or invalid WebID format: '.*'\.$"):
        webid.decode(junk)


@pytest.mark.parametrize("kind", ["Full", "IDOnly", "PathOnly", "LocalIDOnly", "DefaultIDOnly"])
@pytest.mark.parametrize(
    "full",
    [
        "F1DPEmoryo_bV0GzilxLXH31pgjowAAAQUJDX1BJX09QU1xBSUM2ODEwNTkuUFY",  # captured point
        "F1EmMyvy4jYfVEyvgGiLVLmYvAe-IYOLTf7xGIoGBFvZT1mwVk0tVFMtUElcVElNRVNFRVJcUkVBQ1RPUlM",  # captured element
    ],
)
def test_every_webid_type_converts_and_resolves_back(full, kind):
    original = webid.decode(full)
    converted = webid.convert(full, kind)
    decoded = webid.decode(converted)
    assert converted[0] == kind[0] and decoded.marker == original.marker
    if kind == "PathOnly":
        assert decoded.path == original.path and decoded.ids == ()
        return
    assert decoded.path == (original.path if kind == "Full" else None)
    server = original.ids[0]
    other = uuid.UUID(int=1)
    on_data_server = original.marker == "DP"
    completed = webid.with_server(decoded, other if on_data_server else server, server if on_data_server else other)
    assert (completed.ids, completed.point_id) == (original.ids, original.point_id)
    if kind in ("LocalIDOnly", "DefaultIDOnly"):  # the object's own ids only: its server's GUID is left out
        assert decoded.ids == original.ids[1:]
    with pytest.raises(ValueError):
        webid.convert(full, "Shortest")
