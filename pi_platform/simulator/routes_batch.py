"""POST batch: dict of sub-requests in, dict of {Status, Headers, Content} out, status 207.

Semantics follow the vendor docs and what clients observed on real servers: ParentIds order execution;
a child of a failed (or not executed) parent gets 409; `Parameters` are JsonPaths into earlier
responses substituted into `{0}`, `{1}`... of the Resource; with `RequestTemplate` each selected token
makes one sub-request and the outer Content is `{"Total", "Items"}` with Status 207; a JsonPath that
selects nothing gives 400 "Some JSON paths did not select any tokens."
"""

import re
from urllib.parse import urlsplit

import orjson

from pi_platform.simulator.api import ApiError, Ctx, Reply, Router

_JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
_TOKEN = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\*|\d+|'[^']*'|\"[^\"]*\")\]|\.\*|\.(\d+)")


def jsonpath(document: object, path: str) -> list[object]:
    """The subset of JsonPath PI Web API batch callers use: `$.a.b`, `$.1.Content.Items[*].WebId`, `['k']`."""
    if not path.startswith("$"):
        raise ApiError(400, f"'{path}' is not a JSON path.")
    nodes, rest = [document], path[1:]
    while rest:
        match = _TOKEN.match(rest)
        if match is None:
            raise ApiError(400, f"'{path}' is not a supported JSON path.")
        rest = rest[match.end() :]
        name, bracket, digits = match.group(1), match.group(2), match.group(3)
        out: list[object] = []
        for node in nodes:
            if match.group(0) == ".*" or bracket == "*":
                out.extend(node.values() if isinstance(node, dict) else node if isinstance(node, list) else [])
            elif bracket is not None and bracket[0] in "'\"":
                key = bracket[1:-1]
                if isinstance(node, dict) and key in node:
                    out.append(node[key])
            else:
                key = name if name is not None else (digits if digits is not None else bracket)
                if isinstance(node, dict) and key in node:
                    out.append(node[key])
                elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                    out.append(node[int(key)])
        nodes = out
    return nodes


def _token_text(token: object) -> str:
    return token if isinstance(token, str) else orjson.dumps(token).decode()


class _Run:
    def __init__(self, ctx: Ctx, requests: dict) -> None:
        self.ctx = ctx
        self.requests = requests
        self.results: dict[str, dict] = {}  # also the document Parameters' JsonPaths select from
        self.values = 0  # time-series values served by sub-requests (server statistics)
        self._visiting: set[str] = set()

    def run(self) -> dict:
        for key in self.requests:
            self._execute(key)
        return {key: self.results[key] for key in self.requests}

    def _execute(self, key: str) -> None:
        if key in self.results:
            return
        request = self.requests[key]
        if not isinstance(request, dict):
            self._finish(key, 400, {"Errors": [f"Request '{key}' is not an object."]})
            return
        if key in self._visiting:
            self._finish(key, 400, {"Errors": [f"Request '{key}' depends on itself through ParentIds."]})
            return
        self._visiting.add(key)
        parents = request.get("ParentIds") or []
        for parent in parents:
            if parent not in self.requests:
                self._finish(key, 400, {"Errors": [f"The parent request '{parent}' does not exist."]})
                return
            self._execute(parent)
        failed = [p for p in parents if not 200 <= self.results[p]["Status"] < 300]
        if failed:
            self._finish(
                key, 409, {"Errors": [f"The request was not executed because parent request(s) {failed} failed."]}
            )
            return
        try:
            self._run_request(key, request)
        except ApiError as exc:
            self._finish(key, exc.status, {"Errors": [exc.message]})

    def _finish(self, key: str, status: int, content: object) -> None:
        self.results[key] = {"Status": status, "Headers": dict(_JSON_HEADERS), "Content": content}

    def _run_request(self, key: str, request: dict) -> None:
        method = str(request.get("Method") or "GET").upper()
        params = request.get("Parameters") or []
        selections = [jsonpath(self.results, p) for p in params]
        if any(not s for s in selections):
            raise ApiError(400, "Some JSON paths did not select any tokens.")
        template = request.get("RequestTemplate")
        if template:
            resource = template.get("Resource")
            if not isinstance(resource, str):
                raise ApiError(400, "RequestTemplate.Resource is required.")
            lengths = {len(s) for s in selections}
            if len(lengths) > 1:
                raise ApiError(400, "Template parameters must select the same number of tokens.")
            count = lengths.pop() if lengths else 1
            subs = []
            for i in range(count):
                reply = self._call(method, resource.format(*[_token_text(s[i]) for s in selections]), request)
                subs.append({"Status": reply.status, "Headers": dict(_JSON_HEADERS), "Content": _content(reply)})
            self._finish(key, 207, {"Total": len(subs), "Items": subs})
            return
        resource = request.get("Resource")
        if not isinstance(resource, str) or not resource:
            raise ApiError(400, f"Request '{key}' has no Resource.")
        if resource.startswith("$"):
            selected = jsonpath(self.results, resource)
            if len(selected) != 1 or not isinstance(selected[0], str):
                raise ApiError(400, "Some JSON paths did not select any tokens.")
            resource = selected[0]
        if selections:
            resource = resource.format(*[_token_text(s[0]) for s in selections])
        reply = self._call(method, resource, request)
        self._finish(key, reply.status, _content(reply))

    def _call(self, method: str, resource: str, request: dict) -> Reply:
        parts = urlsplit(resource)
        path = parts.path
        marker = path.lower().find("/piwebapi")
        if marker >= 0:
            path = path[marker + len("/piwebapi") :]
        elif parts.scheme:
            raise ApiError(400, f"The resource '{resource}' is not a PI Web API URL.")
        content = request.get("Content")
        body = content.encode() if isinstance(content, str) else b""
        if method != "GET":
            raise ApiError(405, f"The simulator's batch only runs GET sub-requests (got {method}).")
        headers = {**self.ctx.headers, **{str(k).lower(): str(v) for k, v in (request.get("Headers") or {}).items()}}
        assert self.ctx.redispatch is not None, "batch runs inside the app"
        reply = self.ctx.redispatch(self.ctx.base, method, path, parts.query.encode(), body, headers)
        self.values += reply.values
        return reply


def _content(reply: Reply) -> object:
    raw = reply.content()
    return orjson.loads(raw) if raw else None


def execute(ctx: Ctx) -> Reply:
    try:
        requests = orjson.loads(ctx.body or b"null")
    except orjson.JSONDecodeError:
        raise ApiError(400, "The batch request body is not valid JSON.") from None
    if not isinstance(requests, dict) or not requests:
        raise ApiError(400, "The batch request body must be a JSON object of named requests.")
    run = _Run(ctx, requests)
    results = run.run()
    return Reply(207, results, values=run.values)


def register(router: Router) -> None:
    router.add("POST", "batch", execute)
