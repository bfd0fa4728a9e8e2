"""The collector as Dagster sees it: where its files are, how to start it, what it should subscribe."""

import asyncio
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

from pi_platform.client import PIWebAPIClient, PIWebAPIConfig
from pi_platform.defs.resources import DEFAULT_PI_WEBAPI_URL
from pi_platform.storage import DeltaStore
from pi_platform.streaming.health import StalenessPolicy
from pi_platform.streaming.sink import STREAM_TABLE
from pi_platform.streaming.state import SUBSCRIPTION_FILE, read_status, write_subscription

ALERT_WEBHOOK_ENV = "PI_PLATFORM_ALERT_WEBHOOK_URL"


class StreamCollectorResource(dg.ConfigurableResource):
    """Local mode: the sensor starts the collector and restarts it when its heartbeat stops.
    External mode: systemd/Kubernetes runs it; the sensor only watches and pushes the subscription."""

    mode: Literal["local", "external"] = Field("local", description="who keeps the collector running")
    state_dir: str = Field(".pi_platform/stream", description="collector state directory (WAL, status, subscription)")
    delta_root: str = Field(".pi_platform/lake", description="Delta root holding stream_values")
    pi_url: str = Field(
        default_factory=lambda: os.environ.get("PI_WEBAPI_URL") or DEFAULT_PI_WEBAPI_URL,
        description="PI Web API URL a local collector connects to (default: env PI_WEBAPI_URL, else the simulator)",
    )
    collector_name: str = Field("collector", description="the collector's Delta application id")
    heartbeat_timeout_s: float = Field(20.0, description="status older than this: the collector is dead")
    startup_grace_s: float = Field(60.0, description="after starting a collector, wait this long before judging it")
    web_ids: list[str] = Field(default_factory=list, description="streams to subscribe explicitly")
    name_filter: str | None = Field(None, description="subscribe PI points whose name matches (glob, e.g. 'SINUS*')")
    use_pi_points: bool = Field(True, description="resolve name_filter against the latest pi_points snapshot")
    resolve_interval_s: float = Field(600.0, description="without pi_points, re-ask PI for name_filter this often")
    start: str = Field("*", description="where never-committed streams start (PI time)")
    collector_args: list[str] = Field(default_factory=list, description="extra `pi-platform stream` arguments")
    stale_warn_factor: float = Field(3.0, description="WARN when a tag is silent this many usual intervals")
    stale_error_factor: float = Field(10.0, description="ERROR when a tag is silent this many usual intervals")
    stale_min_interval_s: float = Field(1.0, description="floor of a tag's usual interval")
    stale_default_interval_s: float = Field(60.0, description="usual interval for tags with < 2 recent values")
    silent_after_s: float = Field(120.0, description="no new rows for this long: the whole stream is silent")
    alert_webhook_url: str | None = Field(None, description=f"POST target for ERROR alerts (default: env {ALERT_WEBHOOK_ENV})")

    # ------------------------------------------------------------------ locations
    @property
    def store(self) -> DeltaStore:
        return DeltaStore(self.delta_root)

    @property
    def table_uri(self) -> str:
        return self.store.uri(STREAM_TABLE)

    def policy(self) -> StalenessPolicy:
        return StalenessPolicy(
            warn_factor=self.stale_warn_factor,
            error_factor=self.stale_error_factor,
            min_interval_s=self.stale_min_interval_s,
            default_interval_s=self.stale_default_interval_s,
            silent_after_s=self.silent_after_s,
        )

    def webhook_url(self) -> str | None:
        return self.alert_webhook_url or os.environ.get(ALERT_WEBHOOK_ENV) or None

    # ------------------------------------------------------------------ liveness
    def status(self) -> dict | None:
        return read_status(self.state_dir)

    def is_alive(self, status: dict | None = None) -> bool:
        status = self.status() if status is None else status
        if not status or status.get("state") not in ("running", "stopping"):
            return False
        return time.time() - float(status.get("heartbeat_at") or 0) < self.heartbeat_timeout_s

    def start_collector(self) -> int:
        """Start a detached collector process (its own session: it outlives the sensor tick)."""
        state = Path(self.state_dir)
        state.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PI_WEBAPI_URL": self.pi_url}
        command = [sys.executable, "-m", "pi_platform.cli", "stream", "--state-dir", str(state),
                   "--delta-root", self.delta_root, "--name", self.collector_name, "--start", self.start,
                   *self.collector_args]
        with open(state / "collector.log", "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True, stdin=subprocess.DEVNULL)
        return process.pid

    def last_log_line(self) -> str | None:
        """The last line a locally started collector logged (why it died, typically a one-line error)."""
        try:
            with open(Path(self.state_dir) / "collector.log", "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 4096))
                lines = log.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return None
        return lines[-1] if lines else None

    @staticmethod
    def stop_collector(pid: int) -> None:
        """Kill a hung collector we started (its heartbeat stopped, so SIGTERM may not be handled)."""
        try:
            os.killpg(pid, signal.SIGKILL)
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
        path = Path(self.state_dir) / SUBSCRIPTION_FILE
        return not path.exists() or time.time() - path.stat().st_mtime > self.resolve_interval_s

    def _from_pi_server(self) -> list[str]:
        async def points() -> list[dict]:
            async with PIWebAPIClient(PIWebAPIConfig.from_env(url=self.pi_url)) as client:
                server = await client.data_server()
                return await client.points(server["WebId"], name_filter=self.name_filter or "*")

        return [p["WebId"] for p in asyncio.run(points())]

    def push_subscription(self, web_ids: list[str]) -> bool:
        return write_subscription(self.state_dir, web_ids, start=self.start, source="dagster sensor")
