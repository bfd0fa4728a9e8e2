"""The collector as Dagster sees it: where its files are, how to start it, what it should subscribe.

Every default comes from pi_platform/settings.py, the same module the collector process reads, so the
collector a sensor starts writes where the checks look (lake root and storage options included).
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

import dagster as dg
import pyarrow.compute as pc
from pydantic import Field

from pi_platform import settings
from pi_platform.client import PIWebAPIClient, PIWebAPIConfig
from pi_platform.storage import DeltaStore
from pi_platform.storage.tables import STREAM_VALUES
from pi_platform.streaming.shards import Shard, all_shards
from pi_platform.streaming.staleness import INTERFACE_STATES, StalenessPolicy
from pi_platform.streaming.state import SUBSCRIPTION_FILE, read_status, write_subscription

class StreamCollectorResource(dg.ConfigurableResource):
    """Local mode: the sensor starts the collector and restarts it when its heartbeat stops.
    External mode: systemd/Kubernetes runs it; the sensor only watches and pushes the subscription."""

    mode: Literal["local", "external"] = Field(default_factory=settings.stream_mode,  # type: ignore[arg-type]
                                               description="who keeps the collector running (env PI_STREAM_MODE)")
    state_dir: str = Field(default_factory=settings.stream_state_dir,
                           description="collector state directory: WAL, status, subscription (env PI_STREAM_STATE_DIR)")
    delta_root: str = Field(default_factory=settings.delta_root, description="Delta root holding stream_values (env PI_DELTA_ROOT)")
    storage_options: dict[str, str] | None = Field(
        None, description="delta-rs storage options; default env PI_DELTA_STORAGE_OPTIONS (read at run time)")
    pi_url: str = Field(default_factory=settings.pi_url,
                        description="PI Web API URL a local collector connects to (env PI_WEBAPI_URL, else the simulator)")
    collector_name: str = Field("collector", description="the collector's Delta application id")
    shards: int = Field(default_factory=settings.stream_shards, ge=1,
                        description="collectors the subscription is split over, each owning the tags its WebID hash "
                        "gives it, with its own state directory and app id (env PI_STREAM_SHARDS)")
    heartbeat_timeout_s: float = Field(20.0, description="status older than this: the collector is dead")
    startup_grace_s: float = Field(60.0, description="after starting a collector, wait this long before judging it")
    startup_timeout_s: float = Field(
        180.0, description="a collector we started that is still alive but has not committed yet counts as starting "
        "(not restarted, silence only WARN) for up to this long: a loaded machine can take a while to come up")
    web_ids: list[str] = Field(default_factory=settings.stream_web_ids,
                               description="streams to subscribe explicitly (env PI_STREAM_WEB_IDS, comma-separated)")
    name_filter: str | None = Field(default_factory=settings.stream_name_filter,
                                    description="subscribe PI points whose name matches, glob e.g. 'SINUS*' (env PI_STREAM_NAME_FILTER)")
    use_pi_points: bool = Field(True, description="resolve name_filter against the latest pi_points snapshot")
    resolve_interval_s: float = Field(600.0, description="without pi_points, re-ask PI for name_filter this often")
    start: str = Field("*", description="where never-committed streams start (PI time)")
    collector_args: list[str] = Field(default_factory=list, description="extra `pi-platform stream` arguments")
    snapshot_interval_s: float = Field(30.0, description="the collector polls every tag's PI snapshot this often")
    snapshot_max_requests_per_s: float = Field(5.0, description="request rate bound of that snapshot poll")
    stale_tags: str = Field("*", description="tags the tags_fresh check judges (glob on the tag name)")
    stale_excmax_factor: float = Field(1.0, description="snapshot older than this x the point's excmax (+ margin): stale")
    stale_margin_s: float = Field(60.0, description="added to excmax: the scan carrying the exception, the poll period")
    stale_default_excmax_s: float | None = Field(None, description="excmax of points without one (None: no age rule)")
    stale_state_grace_excmax: float = Field(0.75, description="an interface system state must hold this share of excmax")
    stale_interface_states: list[str] = Field(default_factory=lambda: list(INTERFACE_STATES),
                                              description="system states that mean the interface stopped delivering")
    stale_channel_margin_s: float = Field(300.0, description="channel silent: snapshot this far past compmax + excmax")
    stale_poll_overdue_s: float = Field(300.0, description="snapshot poll older than this: ERROR (PI unreachable?)")
    stale_severity: Literal["ERROR", "WARN"] = Field("ERROR", description="of stopped snapshots, interface states, deleted tags")
    channel_silent_severity: Literal["ERROR", "WARN"] = Field("WARN", description="of channels silent while snapshots move")
    silent_after_s: float = Field(120.0, description="no new rows for this long: the whole stream is silent")
    report_interval_s: float = Field(
        60.0, ge=0, description="report stream_values to Dagster at most this often: one materialisation covering "
        "every commit since the last, and check evaluations when they change or at this cadence")
    alert_webhook_url: str | None = Field(None, description="POST target for ERROR alerts (default: env PI_PLATFORM_ALERT_WEBHOOK_URL)")

    # ------------------------------------------------------------------ locations
    @property
    def store(self) -> DeltaStore:
        options = settings.storage_options() if self.storage_options is None else self.storage_options
        return DeltaStore(self.delta_root, options)

    @property
    def table_uri(self) -> str:
        return self.store.uri(STREAM_VALUES.name)

    def staleness_policy(self) -> StalenessPolicy:
        return StalenessPolicy(
            excmax_factor=self.stale_excmax_factor,
            margin_s=self.stale_margin_s,
            default_excmax_s=self.stale_default_excmax_s,
            state_grace_excmax=self.stale_state_grace_excmax,
            channel_margin_s=self.stale_channel_margin_s,
            poll_stale_after_s=self.stale_poll_overdue_s,
            interface_states=tuple(self.stale_interface_states),
            stale_severity=self.stale_severity,
            channel_severity=self.channel_silent_severity,
        )

    def webhook_url(self) -> str | None:
        return self.alert_webhook_url or settings.alert_webhook_url()

    # ------------------------------------------------------------------ shards
    def shard_list(self) -> list[Shard]:
        return all_shards(self.shards)

    def shard_dir(self, shard: Shard) -> Path:
        return shard.state_dir(self.state_dir)

    def shard_states(self) -> list[tuple[str, Path, dict | None]]:
        """(label, state directory, status) per shard; the label is empty when unsharded, so messages read as before."""
        return [(shard.label if shard.sharded else "", self.shard_dir(shard), read_status(self.shard_dir(shard)))
                for shard in self.shard_list()]

    # ------------------------------------------------------------------ liveness
    def status(self, shard: Shard | None = None) -> dict | None:
        return read_status(self.shard_dir(shard or Shard(1, self.shards)))

    def is_alive(self, status: dict | None = None) -> bool:
        status = self.status() if status is None else status
        if not status or status.get("state") not in ("running", "stopping"):
            return False
        return time.time() - float(status.get("heartbeat_at") or 0) < self.heartbeat_timeout_s

    def start_collector(self, shard: Shard | None = None) -> int:
        """Start a detached collector process (its own session: it outlives the sensor tick)."""
        shard = shard or Shard(1, self.shards)
        state = Path(self.state_dir)
        self.shard_dir(shard).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PI_WEBAPI_URL": self.pi_url}
        if self.storage_options is not None:  # the child reads the lake's options through settings, like we do
            env["PI_DELTA_STORAGE_OPTIONS"] = json.dumps(self.storage_options)
        command = [sys.executable, "-m", "pi_platform.cli", "stream", "--state-dir", str(state),
                   "--delta-root", self.delta_root, "--name", self.collector_name, "--start", self.start,
                   "--snapshot-interval", str(self.snapshot_interval_s),
                   "--snapshot-rate", str(self.snapshot_max_requests_per_s), "--shard", shard.label,
                   *self.collector_args]
        with open(self.shard_dir(shard) / "collector.log", "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True, stdin=subprocess.DEVNULL)
        return process.pid

    def last_log_line(self, shard: Shard | None = None) -> str | None:
        """The last line a locally started collector logged (why it died, typically a one-line error)."""
        try:
            with open(self.shard_dir(shard or Shard(1, self.shards)) / "collector.log", "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 4096))
                lines = log.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return None
        return lines[-1] if lines else None

    @staticmethod
    def stop_collector(pid: int, *, graceful: bool = False) -> None:
        """Kill a hung collector we started (its heartbeat stopped, so SIGTERM may not be handled); `graceful`:
        SIGTERM a live one, which drains its WAL and commits before it exits (a re-shard needs that)."""
        try:
            os.killpg(pid, signal.SIGTERM if graceful else signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    # ------------------------------------------------------------------ subscription
    def desired_web_ids(self) -> list[str] | None:
        """Explicit WebIds plus, with a name filter, the matching points of the latest pi_points snapshot, or
        (no snapshot yet) of the PI server itself, asked at most every `resolve_interval_s`. None: keep the
        subscription as it is (nothing configured, or not time to ask PI again)."""
        web_ids = list(self.web_ids)
        if self.name_filter:
            matched = self._from_pi_points() if self.use_pi_points else None
            if matched is None:
                if not self._resolve_due():
                    return None
                matched = self._from_pi_server()
            web_ids += matched
        return list(dict.fromkeys(web_ids)) or None

    def _from_pi_points(self) -> list[str] | None:
        if not self.store.exists("pi_points"):
            return None
        points = self.store.read("pi_points", columns=["snapshot_date", "web_id", "name"])
        if points.num_rows == 0:
            return None
        points = points.filter(pc.equal(points["snapshot_date"], pc.max(points["snapshot_date"])))
        pattern = (self.name_filter or "*").upper()
        return [w for w, n in zip(points["web_id"].to_pylist(), points["name"].to_pylist(), strict=True)
                if fnmatchcase(n.upper(), pattern)]

    def _resolve_due(self) -> bool:
        path = self.shard_dir(Shard(1, self.shards)) / SUBSCRIPTION_FILE
        return not path.exists() or time.time() - path.stat().st_mtime > self.resolve_interval_s

    def _from_pi_server(self) -> list[str]:
        async def points() -> list[dict]:
            async with PIWebAPIClient(PIWebAPIConfig.from_settings(url=self.pi_url)) as client:
                server = await client.data_server()
                return await client.points(server["WebId"], name_filter=self.name_filter or "*")

        return [p["WebId"] for p in asyncio.run(points())]

    def push_subscription(self, web_ids: list[str]) -> bool:
        """Every shard gets the whole subscription and keeps the tags it owns (it resolves names and paths itself)."""
        changed = [write_subscription(self.shard_dir(shard), web_ids, start=self.start, source="dagster sensor")
                   for shard in self.shard_list()]
        return any(changed)
