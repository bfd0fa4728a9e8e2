"""Is a tag stale? Judged on PI's own semantics: the snapshot, system states, excmax and compmax.

PI's exception and compression reporting keep a healthy flat tag's *archive* (and so its channel) silent for
up to compmax (8 h by default), while its *snapshot* still moves at least every excmax as long as the
interface is alive (§9 of the protocol reference). Counting silence against "k x the usual interval" of
archived values therefore cries wolf on every flat tag; these rules use what PI itself says instead. Per
tag, at PI's time T of the snapshot poll, with S its snapshot time, C the newest value time the collector
committed for it (never older than the first snapshot seen, so a fresh start is not judged on history):

- unreadable (ERROR): PI could not read the snapshot (deleted point, no permission).
- interface state (ERROR): the snapshot is an interface system state (I/O Timeout, Comm Fail, Scan Off,
  Shutdown, ...) that has held for T - S > state_grace_excmax x excmax (a transient one is replaced at the
  interface's next exception, which a healthy interface sends within excmax).
- snapshot stopped (ERROR): T - S > excmax_factor x excmax + margin_s (the margin covers the scan that
  carries the excmax exception and the poll period).
- channel silent (WARN): S - C > compmax + excmax + channel_margin_s (compmax 0 when the point does not
  compress): the snapshot moved past the point where compression must have archived an event, and the
  channel delivered none.

Pure: everything comes from the published snapshot document (`snapshots.py`) and an injected `now`.
"""

import time
from dataclasses import dataclass, field
from typing import Any

# System states an interface writes when it cannot deliver values (§3 of the protocol reference).
INTERFACE_STATES = ("I/O Timeout", "Comm Fail", "Scan Off", "Shutdown", "Intf Shut", "Failed", "Configure",
                    "Pt Created", "No Data", "Arc Off-line", "Scan Timeout")
STOPPED, INTERFACE_STATE, UNREADABLE, CHANNEL_SILENT = "snapshot stopped", "interface state", "unreadable", \
    "channel silent"


@dataclass(frozen=True)
class StalenessPolicy:
    excmax_factor: float = 1.0  # interfaces that do not honour excmax exactly: allow this many excmax
    margin_s: float = 60.0  # plus the scan that carries the excmax exception and the poll period
    default_excmax_s: float | None = None  # points without excmax (non-classic): None = no snapshot-age rule
    default_compmax_s: float = 28_800.0  # points without compmax: PI's default
    state_grace_excmax: float = 0.75  # an interface state must hold this share of excmax
    default_state_grace_s: float = 600.0  # ... or this long where excmax is unknown
    channel_margin_s: float = 300.0  # channel delivery and commit latency on top of compmax + excmax
    poll_stale_after_s: float = 300.0  # the snapshot poll itself is overdue after this long
    interface_states: tuple[str, ...] = INTERFACE_STATES
    stale_severity: str = "ERROR"  # of unreadable / interface state / snapshot stopped
    channel_severity: str = "WARN"  # of channel silent


@dataclass(frozen=True)
class Verdict:
    web_id: str
    name: str
    path: str
    pointsource: str | None
    reason: str  # one of STOPPED, INTERFACE_STATE, UNREADABLE, CHANNEL_SILENT
    severity: str
    age_s: float | None  # of the snapshot at T (of the channel's newest value for CHANNEL_SILENT)
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "pointsource": self.pointsource, "reason": self.reason,
                "age_s": None if self.age_s is None else round(self.age_s, 1), "detail": self.detail}


@dataclass(frozen=True)
class StalenessReport:
    judged_at: float | None  # PI time T the tags were judged at
    tags: int  # judged
    verdicts: list[Verdict] = field(default_factory=list)
    poll_problem: str | None = None  # no snapshot poll yet (WARN), or polls overdue (ERROR)
    poll_overdue: bool = False

    def at(self, severity: str) -> list[Verdict]:
        return [v for v in self.verdicts if v.severity == severity]

    @property
    def severity(self) -> str | None:
        if self.poll_overdue or self.at("ERROR"):
            return "ERROR"
        return "WARN" if self.verdicts or self.poll_problem else None


def judge_tag(web_id: str, tag: dict, now: float, policy: StalenessPolicy) -> Verdict | None:
    """One tag's verdict at PI time `now` from its entry in the published document (None: healthy)."""
    attributes = tag.get("attributes") or {}
    excmax = _seconds(attributes.get("excmax")) or policy.default_excmax_s

    def verdict(reason: str, age: float | None, detail: str) -> Verdict:
        severity = policy.channel_severity if reason == CHANNEL_SILENT else policy.stale_severity
        return Verdict(web_id, tag.get("name") or web_id, tag.get("path") or "", attributes.get("pointsource"),
                       reason, severity, age, detail)

    if tag.get("error"):
        return verdict(UNREADABLE, None, str(tag["error"]))
    snapshot = tag.get("snapshot")
    if snapshot is None:
        return None
    age = now - snapshot
    state = tag.get("state")
    if state and state.lower() in {s.lower() for s in policy.interface_states}:
        grace = policy.state_grace_excmax * excmax if excmax else policy.default_state_grace_s
        if age > grace:
            return verdict(INTERFACE_STATE, age, f"snapshot is '{state}' for {age:.0f}s (> {grace:.0f}s)")
    if excmax and age > policy.excmax_factor * excmax + policy.margin_s:
        off = " (point is off scan: scan=0)" if attributes.get("scan") in (0, "0") else ""
        return verdict(STOPPED, age, f"snapshot {age:.0f}s old > {policy.excmax_factor:g} x excmax {excmax:.0f}s "
                                     f"+ {policy.margin_s:.0f}s{off}")
    channel = max(c for c in (tag.get("channel_last"), tag.get("first_snapshot"), float("-inf")) if c is not None)
    compressing = attributes.get("compressing") not in (0, "0", False)
    compmax = (_seconds(attributes.get("compmax")) or policy.default_compmax_s) if compressing else 0.0
    bound = compmax + (excmax or 0.0) + policy.channel_margin_s
    if snapshot - channel > bound:
        return verdict(CHANNEL_SILENT, now - channel,
                       f"snapshot moved {snapshot - channel:.0f}s past the newest channel value "
                       f"(> compmax {compmax:.0f}s + excmax {excmax or 0:.0f}s + {policy.channel_margin_s:.0f}s)")
    return None


def judge(published: dict | None, policy: StalenessPolicy, *, now: float | None = None) -> StalenessReport:
    """Judge every tag of the collector's published snapshot document (`tags.json`) at local time `now`.

    Tags are judged at PI's time of the last poll while polls keep coming (so a document a few seconds old
    ages nothing); once polls are overdue that is an ERROR of its own and ages run on from the last poll.
    """
    now = time.time() if now is None else now
    published = published or {}
    tags: dict = published.get("tags") or {}
    polled_at = published.get("polled_at")
    if polled_at is None:  # overdue once the poller has been trying for long enough
        why = published.get("last_error") or "the collector has not published one yet"
        overdue = now - float(published.get("started_at") or now) > policy.poll_stale_after_s
        return StalenessReport(None, 0, [], f"no snapshot poll yet: {why}", overdue)
    late = now - polled_at
    overdue = late > policy.poll_stale_after_s
    at = float(published["server_time"]) + (late if overdue else 0.0)
    error = published.get("last_error") or "no error"
    problem = f"snapshots last polled {late:.0f}s ago ({error})" if overdue else None
    verdicts = [v for w, tag in tags.items() if (v := judge_tag(w, tag, at, policy)) is not None]
    return StalenessReport(at, len(tags), verdicts, problem, overdue)


def combine(reports: list[tuple[str, StalenessReport]]) -> StalenessReport:
    """One report over sharded collectors (each judged its own tags.json): every verdict, the earliest judging
    time, and poll problems named by shard (an empty label: unsharded, the report as it is)."""
    if len(reports) == 1:
        return reports[0][1]
    times = [r.judged_at for _, r in reports if r.judged_at is not None]
    problems = [f"shard {label}: {r.poll_problem}" for label, r in reports if r.poll_problem]
    return StalenessReport(min(times, default=None), sum(r.tags for _, r in reports),
                           [v for _, r in reports for v in r.verdicts], "; ".join(problems) or None,
                           any(r.poll_overdue for _, r in reports))


def _seconds(value: Any) -> float | None:
    """A PI time attribute in seconds (numbers, or numeric strings as some servers send); None if absent or 0."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None
