"""List endpoints page with startIndex until a short page; frames helpers type what they return."""

import asyncio

import httpx
import pyarrow as pa

from pi_platform.client import PIWebAPIClient, PIWebAPIConfig
from pi_platform.client.objects import attributes_table, elements_table, event_frames_table, points_table, to_pandas
from pi_platform.value_columns import sort_values
from pi_platform_tests.client.support import ground_truth, run


def _config(sim, **kwargs) -> PIWebAPIConfig:
    return PIWebAPIConfig(url=sim.base_url, max_requests_per_second=None, **kwargs)


def test_points_and_elements_page_without_loss_or_duplicates(simulator) -> None:
    plant = simulator.plant

    async def go():
        async with PIWebAPIClient(_config(simulator, list_page_size=7)) as pi:
            server = await pi.data_server()
            points = await pi.points(server["WebId"])
            database = (await pi.asset_databases((await pi.asset_servers())[0]["WebId"]))[0]
            elements = await pi.elements(database["WebId"])
            equipment = next(e for e in plant.elements if any(a.point for a in e.attributes))
            attributes = await pi.attributes(equipment.web_id)
            return points, elements, equipment, attributes, pi.transport.stats.attempts

    points, elements, equipment, attributes, attempts = run(go())
    assert sorted(p["WebId"] for p in points) == sorted(p.web_id for p in plant.points)
    assert sorted(e["WebId"] for e in elements) == sorted(e.web_id for e in plant.elements)
    assert attempts > len(plant.points) / 7  # it really paged
    table = points_table(points)
    assert table.num_rows == len(plant.points) and table.schema.field("span").type == pa.float64()
    assert elements_table(elements).column("path").to_pylist() == [e["Path"] for e in elements]
    attrs = attributes_table(attributes)
    linked = [w for w in attrs.column("point_web_id").to_pylist() if w]
    assert sorted(linked) == sorted(a.point.web_id for a in equipment.attributes if a.point)


def test_event_frames_with_open_frames_and_annotations(simulator) -> None:
    async def go():
        async with PIWebAPIClient(_config(simulator, list_page_size=5)) as pi:
            database = (await pi.asset_databases((await pi.asset_servers())[0]["WebId"]))[0]
            frames = await pi.event_frames(database["WebId"], "*-3d", "*")
            annotated = [f for f in frames if f.get("IsAnnotated")]
            notes = await pi.annotations(annotated[0]["WebId"]) if annotated else []
            return frames, notes

    frames, notes = run(go())
    assert frames, "the simulator plant has event frames in the last 3 days"
    table = event_frames_table(frames)
    assert table.num_rows == len(frames) == len({f["WebId"] for f in frames})
    assert all(r["end_time"] is None or r["end_time"] >= r["start_time"] for r in table.to_pylist())
    assert table.column("start_time").to_pylist()[0].tzinfo is not None
    assert notes and all("Value" in n for n in notes)


def test_open_event_frames_have_no_fake_end_time() -> None:
    frames = [{"WebId": "F1Fm1", "StartTime": "2024-05-01T10:02:11Z", "EndTime": "9999-12-31T23:59:59Z",
               "AcknowledgedDate": "1970-01-01T00:00:00Z", "Severity": "Major", "CategoryNames": ["Alarm"]},
              {"WebId": "F1Fm2", "StartTime": "2024-05-01T10:02:11.1234567Z", "EndTime": "2024-05-01T11:00:00Z"}]
    rows = event_frames_table(frames).to_pylist()
    assert [r["is_open"] for r in rows] == [True, False]
    assert rows[0]["end_time"] is None and rows[1]["end_time"].hour == 11
    assert rows[1]["start_time"].microsecond == 123456 and rows[0]["category_names"] == ["Alarm"]


def test_batch_post_sends_the_csrf_header(simulator) -> None:
    point = simulator.plant.points[0]

    async def go():
        async with PIWebAPIClient(_config(simulator)) as pi:
            return await pi.batch({
                "point": {"Method": "GET", "Resource": f"{simulator.base_url}/points/{point.web_id}"},
                "end": {"Method": "GET", "Resource": f"{simulator.base_url}/streams/{{0}}/end",
                        "Parameters": ["$.point.Content.WebId"], "ParentIds": ["point"]},
            })

    answer = run(go())
    assert answer["point"]["Status"] == 200 and answer["point"]["Content"]["Name"] == point.name
    assert answer["end"]["Status"] == 200 and "Timestamp" in answer["end"]["Content"]


def test_pi_time_expressions_are_accepted(simulator) -> None:
    plant = simulator.plant
    web_ids = [p.web_id for p in plant.points[:5]]

    async def go():
        async with PIWebAPIClient(_config(simulator)) as pi:
            return await pi.recorded_table(web_ids, "y", "y+6h")

    table = run(go())
    assert sort_values(table).equals(ground_truth(plant, web_ids, "y", "y+6h"))
    assert table.num_rows > 5 * 300


def test_client_rate_limit_keeps_the_server_from_answering_429(make_simulator) -> None:
    # 12 requests per 1 s window, like PI's RateLimitMaxRequests; a 5/s bucket sends at most 10 in any second.
    sim = make_simulator(rate_limit=12)
    sim.set_faults(retry_after_s=0)

    async def hammer(config: PIWebAPIConfig):
        async with PIWebAPIClient(config) as pi:
            for _ in range(2):
                await asyncio.gather(*(pi.system() for _ in range(8)))
            return pi.transport.stats

    limited = run(hammer(PIWebAPIConfig(url=sim.base_url, max_requests_per_second=5, max_concurrency=8)))
    assert limited.retries["429"] == 0 and limited.attempts == 16
    unlimited = run(hammer(PIWebAPIConfig(url=sim.base_url, max_requests_per_second=None, max_concurrency=8,
                                          max_retries=20, backoff_base_s=0.05)))
    assert unlimited.retries["429"] > 0  # without the client limit the same burst does trip the server
    served = httpx.get(f"{sim.admin_url}/stats").json()["requests"]
    assert served == unlimited.attempts + limited.attempts  # the server saw exactly what the client counted


def test_pandas_view_keeps_time_zones_and_nullable_columns() -> None:
    frames = [{"WebId": "F1Fm1", "StartTime": "2024-05-01T10:02:11Z", "EndTime": "9999-12-31T23:59:59Z"}]
    df = to_pandas(event_frames_table(frames))
    assert str(df["start_time"].dtype).startswith("timestamp[us, tz=UTC]")
    assert df["end_time"].isna().all() and df["is_open"].tolist() == [True]
