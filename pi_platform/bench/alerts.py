"""`pi-platform bench alerts`: false alarms and detection delays of the stale-tag rules over a simulated day.

Alerts that cry wolf get muted, and alerts that come late are useless; this measures both. A healthy plant
(continuous tags plus flat, setpoint-like tags whose archive is silent up to compmax while the snapshot moves
every excmax) gets failures scheduled through `SimulatorConfig.failures`, so their times are ground truth:
an interface dying silently, an interface writing I/O Timeout, a stuck tag, a deleted tag. The judge
(`streaming/staleness.py`) runs every `step_s`, two ways:

- the whole span in process: at each step every tag's snapshot is what the Plant's snapshot function gives at
  that time (its last exception event; unreadable once deleted), computed per tag from the Plant's exception
  series; the channel is ideal (its newest value is the newest archive event);
- a slice over HTTP: the simulator clock is frozen and moved step by step (`POST /admin/clock`) and the
  collector's own `SnapshotWatch` polls it; its verdicts must equal the in-process ones at every step,
  which is what makes the in-process figures the figures of the real path.

Targets: 0 false ERROR and at most 1 false WARN per 1,000 tag-days; every injected failure detected, each
tag within max(2 x its excmax, 5 min).
"""

import asyncio
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import numpy as np

from pi_platform.client import PIWebAPIClient, PIWebAPIConfig
from pi_platform.errors import ConfigError
from pi_platform.pitime import format_time, to_us
from pi_platform.simulator.catalog import SYSTEM_STATES, Point
from pi_platform.simulator.config import SimulatorConfig
from pi_platform.simulator.plant import Plant
from pi_platform.simulator.server import SimulatorServer
from pi_platform.simulator.values import K_SYSTEM
from pi_platform.streaming.snapshots import SnapshotOptions, SnapshotWatch
from pi_platform.streaming.staleness import StalenessPolicy, StalenessReport, judge

DAY0 = datetime(2024, 5, 2, tzinfo=timezone.utc)
_LOOKBACK_US = 86_400_000_000  # a day before the span: every tag has an exception and archive event in it
FAILURE_HOURS = 1.5  # each failure lasts this long: longer than any detection bound (2 x excmax <= 40 min)


@dataclass(frozen=True)
class AlertSettings:
    tags: int = 1000
    hours: float = 24.0
    step_s: float = 30.0  # the snapshot poll interval
    flat_fraction: float = 0.5
    values_per_minute: float = 1.0
    http_minutes: float = 60.0  # the HTTP slice, starting at the io_timeout interface failure
    seed: int = 42


@dataclass(frozen=True)
class Injected:
    kind: str  # interface-silent | interface-io_timeout | stuck | deleted
    target: str
    start: float
    end: float | None
    tags: list[str]  # WebIDs it hits


@dataclass
class Series:
    """What each poll would see for one tag over the span, in step order."""

    point: Point
    snapshot: np.ndarray  # seconds
    state: list[str | None]
    channel: np.ndarray  # seconds (NaN: no archive event yet)
    deleted_at: float | None


def schedule(plant: Plant, start: datetime) -> tuple[list[dict], list[tuple[str, str, Point | None]]]:
    """Failures one after another, each FAILURE_HOURS long, with an hour of health in between."""
    sources = [s for s in plant.interfaces() if s != "EDGE"]
    if len(sources) < 2:
        raise ConfigError("the alerts benchmark needs at least two interfaces (--tags 200 or more)")
    regular = [p for p in plant.points if not p.edge]
    stuck = next(p for p in regular if p.flat and p.pointsource == sources[0])
    deleted = next(p for p in reversed(regular) if not p.flat)
    at = [start + timedelta(hours=1 + k * (FAILURE_HOURS + 1)) for k in range(4)]
    span = timedelta(hours=FAILURE_HOURS)
    specs = [
        {"kind": "interface", "target": sources[0], "mode": "silent", "at": format_time(at[0]),
         "until": format_time(at[0] + span)},
        {"kind": "interface", "target": sources[1], "mode": "io_timeout", "at": format_time(at[1]),
         "until": format_time(at[1] + span)},
        {"kind": "tag", "target": stuck.name, "mode": "silent", "at": format_time(at[2]),
         "until": format_time(at[2] + span)},
        {"kind": "delete", "target": deleted.name, "at": format_time(at[3])},
    ]
    labels = [("interface-silent", sources[0], None), ("interface-io_timeout", sources[1], None),
              ("stuck", stuck.name, stuck), ("deleted", deleted.name, deleted)]
    return specs, labels


def injected(plant: Plant, labels: list[tuple[str, str, Point | None]]) -> list[Injected]:
    out = []
    for failure, (kind, target, point) in zip(plant.failures(), labels, strict=True):
        hit = plant.interfaces()[target] if point is None else [point]
        out.append(Injected(kind, target, failure.start_us / 1e6, None if failure.is_open else failure.end_us / 1e6,
                            [p.web_id for p in hit]))
    return out


def series(plant: Plant, point: Point, steps_us: np.ndarray) -> Series:
    """The Plant's snapshot (last exception event <= t) and newest archive event at every step, vectorised."""
    start, end = int(steps_us[0]) - _LOOKBACK_US, int(steps_us[-1])
    events = plant.exceptions(point, start, end, now_us=end)
    index = np.searchsorted(events.ts, steps_us, side="right") - 1
    snapshot = np.where(index >= 0, events.ts[np.maximum(index, 0)], steps_us) / 1e6  # none: No Data at now
    system = events.kind == K_SYSTEM
    state = [("No Data" if i < 0 else SYSTEM_STATES.get(int(events.code[i])) if system[i] else None) for i in index]
    archive = plant.block(point, start, end, now_us=end).ts
    last = np.searchsorted(archive, steps_us, side="right") - 1
    channel = np.where(last >= 0, archive[np.maximum(last, 0)] / 1e6, np.nan)
    deleted = plant.failure_log.deleted_at(point)
    return Series(point, snapshot, state, channel, None if deleted is None else deleted / 1e6)


def documents(all_series: list[Series], attributes: dict[str, dict], steps_us: np.ndarray) -> Iterator[dict]:
    """The document SnapshotWatch would publish at each step (a watch started at the first step)."""
    first = {s.point.web_id: float(s.snapshot[0]) for s in all_series}
    for k, t_us in enumerate(steps_us):
        t = t_us / 1e6
        tags = {}
        for s in all_series:
            info = attributes.get(s.point.web_id, {})
            gone = s.deleted_at is not None and s.deleted_at <= t
            tags[s.point.web_id] = {
                "name": s.point.name, "path": info.get("path") or s.point.path,
                "attributes": info.get("attributes", {}),
                "snapshot": None if gone else float(s.snapshot[k]), "state": None if gone else s.state[k],
                "error": "deleted (404)" if gone else None, "first_snapshot": first[s.point.web_id],
                "channel_last": None if np.isnan(s.channel[k]) else float(s.channel[k]),
            }
        yield {"started_at": steps_us[0] / 1e6, "polled_at": t, "server_time": t, "tags": tags}


def _verdict_keys(report: StalenessReport) -> set[tuple[str, str]]:
    return {(v.web_id, v.reason) for v in report.verdicts}


@dataclass
class Tally:
    """False alarms as alert episodes (a tag entering a false verdict) and detection per injected failure."""

    failures: list[Injected]
    steps: int = 0
    false_error: int = 0
    false_warn: int = 0
    false_error_steps: int = 0
    false_warn_steps: int = 0

    def __post_init__(self) -> None:
        self._windows: dict[str, list[tuple[float, float]]] = {}
        for f in self.failures:
            for w in f.tags:
                self._windows.setdefault(w, []).append((f.start, np.inf if f.end is None else f.end))
        self._false_before: set[tuple[str, str]] = set()
        self.examples: list[dict[str, Any]] = []  # the first false alarms, to look into
        self.detected: dict[tuple[int, str], float] = {}  # (failure, WebID) -> first ERROR time

    def explained(self, web_id: str, since: float, t: float) -> bool:
        return any(start <= t and end > since for start, end in self._windows.get(web_id, ()))

    def add(self, document: dict, report: StalenessReport) -> None:
        t = float(document["server_time"])
        self.steps += 1
        false_now: set[tuple[str, str]] = set()
        details = {}
        for v in report.verdicts:
            tag = document["tags"][v.web_id]
            since = min(x for x in (tag["snapshot"], tag["channel_last"], t) if x is not None)
            if self.explained(v.web_id, since, t):
                if v.severity == "ERROR":
                    for i, f in enumerate(self.failures):
                        if v.web_id in f.tags and f.start <= t:
                            self.detected.setdefault((i, v.web_id), t)
                continue
            false_now.add((v.web_id, v.severity))
            details[(v.web_id, v.severity)] = {"at": format_time(_dt(int(t * 1e6))), **v.as_dict()}
        for key in false_now - self._false_before:
            if len(self.examples) < 20:
                self.examples.append(details[key])
            if key[1] == "ERROR":
                self.false_error += 1
            else:
                self.false_warn += 1
        self.false_error_steps += sum(1 for k in false_now if k[1] == "ERROR")
        self.false_warn_steps += sum(1 for k in false_now if k[1] == "WARN")
        self._false_before = false_now

    def detection(self, excmax: dict[str, float]) -> list[dict[str, Any]]:
        out = []
        for i, f in enumerate(self.failures):
            delays = {w: self.detected[(i, w)] - f.start for w in f.tags if (i, w) in self.detected}
            late = [w for w, d in delays.items() if d > max(2 * excmax.get(w, 600.0), 300.0)]
            missed = [w for w in f.tags if w not in delays]
            values = sorted(delays.values())
            out.append({
                "failure": f.kind, "target": f.target, "tags": len(f.tags), "detected": len(delays),
                "delay_s_median": None if not values else round(float(np.median(values)), 1),
                "delay_s_max": None if not values else round(values[-1], 1),
                "target_s_max": round(max(max(2 * excmax.get(w, 600.0), 300.0) for w in f.tags), 1),
                "late": len(late), "missed": len(missed),
            })
        return out


async def _http_slice(sim: SimulatorServer, all_series: list[Series], steps_us: np.ndarray,
                      policy: StalenessPolicy) -> list[tuple[dict, StalenessReport]]:
    """The real poll against the real simulator, its clock moved to each step."""
    k = 0

    def channel_last() -> dict[str, int]:
        return {s.point.web_id: int(s.channel[k] * 1e6) for s in all_series if not np.isnan(s.channel[k])}

    watch = SnapshotWatch(PIWebAPIConfig(url=sim.base_url), SnapshotOptions(max_requests_per_s=1000.0,
                                                                            max_concurrency=4),
                          lambda: [s.point.web_id for s in all_series], channel_last)
    out = []
    async with PIWebAPIClient(watch.pi) as client, httpx.AsyncClient() as admin:
        for k in range(len(steps_us)):
            response = await admin.post(f"{sim.admin_url}/clock", json={"now": format_time(_dt(steps_us[k]))})
            response.raise_for_status()
            document = await watch.poll(client)
            copy = {**document, "tags": {w: dict(t) for w, t in document["tags"].items()}}
            out.append((copy, judge(copy, policy, now=copy["polled_at"])))
    return out


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, tz=timezone.utc)


def run_alerts(settings: AlertSettings, policy: StalenessPolicy | None = None) -> dict[str, Any]:
    policy = policy or StalenessPolicy()
    start = DAY0
    end = start + timedelta(hours=settings.hours)
    probe = Plant(settings.seed, settings.tags, settings.values_per_minute, edge_tags=False,
                  flat_fraction=settings.flat_fraction, now=end, event_frames=False)
    if start + timedelta(hours=1 + 4 * (FAILURE_HOURS + 1)) > end:
        raise ConfigError(f"--hours {settings.hours:g} is too short for the four failures (at least 11 h)")
    specs, labels = schedule(probe, start)
    config = SimulatorConfig(seed=settings.seed, n_tags=settings.tags, values_per_minute=settings.values_per_minute,
                             edge_tags=False, event_frames=False, flat_fraction=settings.flat_fraction, now=start,
                             failures=specs)  # attributes are read at the start, before the deleted tag is gone
    wall = time.perf_counter()
    with SimulatorServer(config) as sim:
        plant = sim.plant
        failures = injected(plant, labels)
        points = [p for p in plant.points if not p.edge]
        steps_us = np.arange(to_us(start), to_us(end) + 1, int(settings.step_s * 1e6), dtype=np.int64)
        attributes = asyncio.run(_attributes(sim.base_url, [p.web_id for p in points]))
        excmax = {w: float(a["attributes"].get("excmax") or 600.0) for w, a in attributes.items()}
        all_series = [series(plant, p, steps_us) for p in points]
        tally = Tally(failures)
        for document in documents(all_series, attributes, steps_us):
            tally.add(document, judge(document, policy, now=document["polled_at"]))
        in_process_s = time.perf_counter() - wall
        http = _compare_http(sim, all_series, attributes, steps_us, failures, settings, policy)
    tag_days = len(points) * settings.hours / 24
    detection = tally.detection(excmax)
    return {
        "benchmark": "alerts",
        "settings": asdict(settings),
        "policy": {k: v for k, v in asdict(policy).items() if k != "interface_states"},
        "method": "full span: staleness.judge on the Plant's snapshot function at every step (in process, ideal "
                  "channel); HTTP slice: SnapshotWatch polling the simulator over HTTP with its clock moved per step, "
                  "verdicts compared step by step with the in-process ones",
        "span": {"start": format_time(start), "end": format_time(end), "steps": len(steps_us)},
        "tags": len(points),
        "flat_tags": sum(p.flat for p in points),
        "tag_days": round(tag_days, 3),
        "false_error": tally.false_error,
        "false_warn": tally.false_warn,
        "false_error_per_1000_tag_days": round(1000 * tally.false_error / tag_days, 3),
        "false_warn_per_1000_tag_days": round(1000 * tally.false_warn / tag_days, 3),
        "false_error_tag_steps": tally.false_error_steps,
        "false_warn_tag_steps": tally.false_warn_steps,
        "false_alarm_examples": tally.examples,
        "failures": detection,
        "missed_failures": sum(1 for d in detection if d["missed"] or d["late"]),
        "http_slice": http,
        "in_process_s": round(in_process_s, 1),
        "wall_s": round(time.perf_counter() - wall, 1),
    }


def _compare_http(sim: SimulatorServer, all_series: list[Series], attributes: dict[str, dict], steps_us: np.ndarray,
                  failures: list[Injected], settings: AlertSettings, policy: StalenessPolicy) -> dict[str, Any]:
    """The HTTP slice starting at the io_timeout failure, against the in-process judge over the same steps."""
    begin = int(np.searchsorted(steps_us, int(failures[1].start * 1e6)))
    count = max(1, int(settings.http_minutes * 60 / settings.step_s))
    window = steps_us[begin:begin + count]
    local = [Series(s.point, s.snapshot[begin:begin + count], s.state[begin:begin + count],
                    s.channel[begin:begin + count], s.deleted_at) for s in all_series]
    expected = [_verdict_keys(judge(d, policy, now=d["polled_at"])) for d in documents(local, attributes, window)]
    wall = time.perf_counter()
    observed = asyncio.run(_http_slice(sim, local, window, policy))
    mismatches = [format_time(_dt(int(window[i]))) for i, (_, report) in enumerate(observed)
                  if _verdict_keys(report) != expected[i]]
    return {
        "start": format_time(_dt(int(window[0]))), "steps": len(window), "wall_s": round(time.perf_counter() - wall, 1),
        "verdicts": sum(len(e) for e in expected), "mismatched_steps": len(mismatches),
        "first_mismatches": mismatches[:5],
    }


async def _attributes(url: str, web_ids: list[str]) -> dict[str, dict]:
    async with PIWebAPIClient(PIWebAPIConfig(url=url, max_requests_per_second=None)) as client:
        found, _ = await client.point_attributes(web_ids)
    return found


def format_report(result: dict[str, Any]) -> str:
    lines = [
        f"{result['tags']} tags ({result['flat_tags']} flat) x {result['span']['steps']} polls every "
        f"{result['settings']['step_s']:g}s = {result['tag_days']} tag-days",
        f"false ERROR {result['false_error']} ({result['false_error_per_1000_tag_days']} per 1,000 tag-days), "
        f"false WARN {result['false_warn']} ({result['false_warn_per_1000_tag_days']} per 1,000 tag-days)",
    ]
    for d in result["failures"]:
        lines.append(f"  {d['failure']:<21} {d['target']:<24} {d['detected']}/{d['tags']} tags detected, delay median "
                     f"{d['delay_s_median']}s max {d['delay_s_max']}s (target <= {d['target_s_max']}s), "
                     f"late {d['late']}, missed {d['missed']}")
    http = result["http_slice"]
    lines.append(f"HTTP slice from {http['start']}: {http['steps']} polls, {http['verdicts']} verdicts, "
                 f"{http['mismatched_steps']} steps differing from the in-process judge ({http['wall_s']}s)")
    lines.append(f"method: {result['method']}")
    return "\n".join(lines)


def targets_met(result: dict[str, Any]) -> bool:
    return (result["false_error"] == 0 and result["false_warn_per_1000_tag_days"] <= 1.0
            and result["missed_failures"] == 0 and result["http_slice"]["mismatched_steps"] == 0)
