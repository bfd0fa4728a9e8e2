"""Alarm KPIs computed independently of `pi_platform.batch.alarm_kpis`: plain Python over the simulator's
ground-truth event frames, with the definitions written out again from ISA-18.2 / EEMUA 191 as the
platform documents them (10-minute windows from the day's midnight in its zone, flood > 10, top 10 bad actors, chattering = a
burst of 3 starts within 60 s counted on the day it begins, standing = active at day end and raised 24 h
or more before it, time to acknowledge from valid acknowledgements only)."""

import json
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from pi_platform.pitime import from_us
from pi_platform.simulator.plant import Plant


@dataclass(frozen=True)
class Alarm:
    source: str
    start: datetime
    end: datetime | None  # None while active
    acknowledged: bool
    time_to_ack_s: float | None  # None unless acknowledged at or after the start


def midnight(day: date, zone: tzinfo = timezone.utc) -> datetime:
    """`day` begins at its midnight in `zone` (a DST day is 23 or 25 hours long)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(timezone.utc)


def alarms(plant: Plant, day: date, zone: tzinfo = timezone.utc) -> list[Alarm]:
    """Every alarm PI holds at the plant's now that can matter to `day` (it and its neighbours)."""
    events, now = plant.events, plant.clock.now_us()
    start = midnight(day, zone)
    out = []
    for f in events.frames(start - timedelta(days=1), start + timedelta(days=2)):
        if not f.template.can_be_acknowledged:
            continue
        acked = f.is_acknowledged(now)
        delay = (f.ack_us - f.start_us) / 1e6 if acked and f.ack_us is not None else None
        out.append(
            Alarm(
                f"{f.template.name} @ {f.element.path}",
                f.start,
                None if f.is_open(now) else from_us(f.end_us),
                acked,
                delay if delay is not None and delay >= 0 else None,
            )
        )
    return out


def kpis(all_alarms: list[Alarm], day: date, zone: tzinfo = timezone.utc) -> dict:
    start, end = midnight(day, zone), midnight(day + timedelta(days=1), zone)
    raised = [a for a in all_alarms if start <= a.start < end]
    windows = [0] * int((end - start).total_seconds() // 600)
    for a in raised:
        windows[int((a.start - start).total_seconds() // 600)] += 1
    floods = sum(1 for n in windows if n > 10)
    per_source = Counter(a.source for a in raised)
    top = sorted(per_source.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    times = sorted(a.time_to_ack_s for a in raised if a.acknowledged and a.time_to_ack_s is not None)
    standing = [a for a in all_alarms if (a.end is None or a.end > end) and a.start <= end - timedelta(hours=24)]
    chattering = _chattering(all_alarms, start, end)
    return {
        "event_date": day,
        "alarm_count": len(raised),
        "avg_per_10min": len(raised) / len(windows),
        "peak_per_10min": max(windows),
        "flood_windows": floods,
        "flood_share": floods / len(windows),
        "top_bad_actors": [{"source": s, "alarms": n} for s, n in top],
        "top_bad_actor_share": sum(n for _, n in top) / len(raised) if raised else None,
        "chattering_sources": chattering,
        "chattering_count": len(chattering),
        "standing_count": len(standing),
        "acknowledged_count": sum(1 for a in raised if a.acknowledged),
        "median_time_to_ack_s": statistics.median(times) if times else None,
        "p90_time_to_ack_s": _p90(times) if times else None,
    }


def _chattering(all_alarms: list[Alarm], start: datetime, end: datetime) -> list[str]:
    starts: dict[str, list[datetime]] = defaultdict(list)
    for a in all_alarms:
        starts[a.source].append(a.start)
    found = set()
    for source, times in starts.items():
        times.sort()
        triples = [i for i in range(len(times) - 2) if times[i + 2] - times[i] <= timedelta(seconds=60)]
        for i in triples:
            joins_earlier = (i - 1) in triples or (i - 2) in triples
            if not joins_earlier and start <= times[i] < end:
                found.add(source)
    return sorted(found)


def _p90(values: list[float]) -> float:
    """Linear interpolation between the closest ranks (the usual definition, as in numpy's default)."""
    position = 0.9 * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def stored(row: dict) -> dict:
    """A stored alarm_kpis row with its JSON columns parsed, comparable with `kpis`."""
    return {
        **row,
        "top_bad_actors": json.loads(row["top_bad_actors"]),
        "chattering_sources": json.loads(row["chattering_sources"]),
    }
