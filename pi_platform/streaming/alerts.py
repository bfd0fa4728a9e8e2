"""Alert hook: POST a JSON message to a webhook when a stream check turns ERROR.

Dagster OSS has no alert routing, so the sensor that evaluates the checks calls this directly. It fires on
the transition into ERROR (and again once the check has recovered and failed anew), not on every tick.
The body works as-is for Slack and Microsoft Teams incoming webhooks (`text`) and carries structured
fields for anything else. Set PI_PLATFORM_ALERT_WEBHOOK_URL (or the resource's alert_webhook_url).
"""

import logging
from typing import Any

import httpx

log = logging.getLogger(__name__)


def alert_payload(check_name: str, description: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "text": f"[pi_platform] stream_values check {check_name} is ERROR: {description}",
        "asset": "stream_values",
        "check": check_name,
        "severity": "ERROR",
        "description": description,
        "details": metadata,
    }


def send_alert(url: str, payload: dict[str, Any], timeout_s: float = 5.0) -> bool:
    """Deliver one alert; a failing webhook is logged, never allowed to break the sensor."""
    try:
        response = httpx.post(url, json=payload, timeout=timeout_s)
        response.raise_for_status()
        return True
    except httpx.HTTPError as exc:
        log.warning("alert webhook failed: %s", type(exc).__name__)  # the URL may embed a token: not logged
        return False
