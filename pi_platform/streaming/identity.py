"""One canonical key per stream, however it was named: the server's Full WebID.

A tag can be subscribed by name (`--tag SINUSOID`), by path (`\\\\SERVER\\SINUSOID`) or by any WebID type
(Full, IDOnly, PathOnly). PI answers channels and `recorded` with the Full WebID whatever the request
said, so anything else keyed by the name given (high-water marks, data starts, the gap ledger) would not
match the rows. Every reference is resolved once through PI (one POST batch for all of them) and the
mapping is kept in `<state_dir>/identities.json`, so a restart keys everything the same way even while
PI's REST side is down.

A reference PI answers 400/404 for is a bad tag (unknown, deleted, malformed), 403 a forbidden one:
reported by name and WebID and kept out of the channels, never allowed to block the others.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from pi_platform import webid
from pi_platform.client import PIWebAPIClient
from pi_platform.streaming import state
from pi_platform.streaming.errors import StreamingError

log = logging.getLogger(__name__)

IDENTITIES_FILE = "identities.json"
_BAD_STATUS = {400: "unknown or malformed", 404: "unknown or deleted", 403: "forbidden to this identity",
               409: "not a stream"}


@dataclass(frozen=True)
class BadTag:
    ref: str  # as the user or the sensor named it
    web_id: str | None  # the canonical WebID when it was known (a tag deleted after it was resolved)
    name: str | None
    reason: str

    def label(self) -> str:
        who = self.name or self.ref
        return f"{who} ({self.web_id or self.ref}): {self.reason}"


def ref_kind(ref: str) -> str:
    """'webid' | 'path' | 'name'."""
    if ref.startswith("\\"):
        return "path"
    try:
        webid.decode(ref)
    except webid.InvalidWebId:
        return "name"
    return "webid"


def _resource(ref: str, data_server: str | None) -> str:
    kind = ref_kind(ref)
    if kind == "webid":
        marker = webid.decode(ref).marker
        collection = "attributes" if marker == "Ab" else "points"
        return f"{collection}/{quote(ref, safe='')}?webIdType=Full"
    path = ref if kind == "path" else f"\\\\{data_server}\\{ref}"
    collection = "attributes" if kind == "path" and "|" in ref else "points"
    return f"{collection}?path={quote(path, safe='')}&webIdType=Full"


class Identities:
    """ref -> {"web_id", "name", "path"} as PI answered it, persisted in the state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / IDENTITIES_FILE
        data = state.read_json(self.path)
        self.known: dict[str, dict[str, str]] = data if isinstance(data, dict) else {}

    def canonical(self, ref: str) -> str | None:
        entry = self.known.get(ref)
        return entry["web_id"] if entry else None

    def name_of(self, web_id: str) -> str | None:
        return next((e.get("name") for e in self.known.values() if e["web_id"] == web_id), None)

    async def resolve(self, client: PIWebAPIClient, refs: list[str]) -> list[BadTag]:
        """Resolve the refs not known yet; returns those PI refused. Raises on PI being unreachable."""
        todo = [r for r in dict.fromkeys(refs) if r not in self.known]
        if not todo:
            return []
        server = None
        if any(ref_kind(r) == "name" for r in todo):
            server = (await client.data_server())["Name"]
        answers = await client.batch({str(i): {"Method": "GET", "Resource": _resource(r, server)}
                                      for i, r in enumerate(todo)})
        bad: list[BadTag] = []
        for i, ref in enumerate(todo):
            answer = answers.get(str(i)) or {}
            status = int(answer.get("Status") or 0)
            content = answer.get("Content") if isinstance(answer.get("Content"), dict) else {}
            if status == 200 and content.get("WebId"):
                self.known[ref] = {"web_id": content["WebId"], "name": content.get("Name") or "",
                                   "path": content.get("Path") or ""}
            elif status in _BAD_STATUS:
                bad.append(BadTag(ref, None, None, f"{_BAD_STATUS[status]} ({status})"))
            else:  # 5xx and friends: PI is unwell, not the tag; the caller retries the whole resolution
                raise ResolveFailed(f"PI Web API answered {status or 'nothing'} resolving {ref!r}")
        state.write_json(self.path, self.known)
        return bad

    def forget(self, refs: list[str]) -> None:
        if any(self.known.pop(r, None) is not None for r in refs):
            state.write_json(self.path, self.known)


async def probe(client: PIWebAPIClient, web_ids: list[str], names: dict[str, str]) -> list[BadTag]:
    """Which of these canonical WebIDs PI refuses now (a channel URL holding one fails as a whole)."""
    answers = await client.batch({str(i): {"Method": "GET", "Resource": f"streams/{quote(w, safe='')}/value"}
                                  for i, w in enumerate(web_ids)})
    bad = []
    for i, web_id in enumerate(web_ids):
        status = int((answers.get(str(i)) or {}).get("Status") or 0)
        if status in _BAD_STATUS:
            bad.append(BadTag(names.get(web_id) or web_id, web_id, names.get(web_id), f"{_BAD_STATUS[status]} ({status})"))
    return bad


class ResolveFailed(StreamingError):
    """PI could not answer a resolution right now (not the tags' fault); retried."""

