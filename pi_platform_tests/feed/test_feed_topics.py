"""MQTT topics: one per stream under the prefix, by tag name or by the AF attribute path read from the newest
`af_attributes` snapshot (a real Delta table), with `/`, `+`, `#` never leaking into a level; bad MQTT settings
are one line that never shows the password."""

from datetime import date

import pyarrow as pa
import pytest

from pi_platform import cli
from pi_platform.feed.topics import TopicMap, af_paths
from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import AF_ATTRIBUTES


def _attributes(plant, day: date, suffix: str = "") -> pa.Table:
    rows = [{"snapshot_date": day, "web_id": f"A{i}", "element_web_id": "E", "element_path": a.element.path,
             "name": a.name, "path": a.path + suffix, "point_web_id": a.point.web_id if a.point else None}
            for i, a in enumerate(plant.attributes)]
    columns = {f.name: pa.array([r.get(f.name) for r in rows], f.type) for f in AF_ATTRIBUTES.schema}
    return pa.table(columns, schema=AF_ATTRIBUTES.schema)


def test_topics_follow_the_newest_af_snapshot_and_fall_back_to_the_tag(plant, tmp_path):
    store = DeltaStore(str(tmp_path / "lake"))
    for day, suffix in ((date(2024, 6, 1), "Old"), (date(2024, 6, 2), "")):
        store.overwrite_range(AF_ATTRIBUTES.name, _attributes(plant, day, suffix), partition_column="snapshot_date",
                              start=day, end=date.fromordinal(day.toordinal() + 1))
    topics = TopicMap("site/pi", af_paths(store))
    referenced = {a.point.web_id: a.path for a in plant.attributes if a.point}
    for point in plant.points:
        topic = topics.topic(point.web_id, point.name)
        if point.web_id in referenced:
            expected = "site/pi/" + referenced[point.web_id].lstrip("\\").replace("\\", "/").replace("|", "/")
            assert topic == expected and "Old" not in topic
        else:
            assert topic == f"site/pi/{point.name}"
    assert len(referenced) > 0 and len(referenced) < len(plant.points)  # both kinds were checked


def test_wildcards_and_separators_never_leak_into_a_level():
    topics = TopicMap("/pi/")
    assert topics.topic("W1", "Line/1+Flow#") == "pi/Line_1_Flow_"
    assert TopicMap("").topic("W2", "") == "_"


@pytest.mark.parametrize(("environ", "expected"), [
    ({"PI_MQTT_URL": "http://broker:1883"}, "PI_MQTT_URL must look like mqtt://host:1883"),
    ({"PI_MQTT_URL": "mqtt://broker:18x3"}, "port that is not a number"),
    ({"PI_MQTT_URL": "mqtt://u:secret@broker:1883", "PI_MQTT_TOPIC_BY": "element"}, "PI_MQTT_TOPIC_BY='element'"),
    ({}, "no MQTT broker: set PI_MQTT_URL"),
])
def test_publish_settings_errors_are_one_line_without_secrets(environ, expected, monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("PI_MQTT_URL", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["publish", "--delta-root", str(tmp_path), "--state-dir", str(tmp_path / "mqtt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and "secret" not in err
