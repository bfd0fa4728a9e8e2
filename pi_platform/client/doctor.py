"""`pi-platform doctor`: can we reach this PI Web API, are we allowed in, and what is there?

Prints what it found (product version, data servers with point counts, asset servers with databases) or
one line per problem (DNS, refused, TLS, 401 with the schemes the server offers, 403, timeout; for Kerberos
the cause in domain terms from `negotiate`: no ticket, expired, unregistered SPN, clock skew, not offered)
and exits 1. Settings come from flags, else from PI_WEBAPI_* env vars; passwords are best given by env var, since
command lines are visible to other users of the machine.
"""

import argparse
import asyncio
import sys
from typing import TextIO

from pi_platform.client.client import PIWebAPIClient
from pi_platform.client.config import PIWebAPIConfig
from pi_platform.client.errors import AuthError, ConnectError, PIWebAPIError, RequestTimeout


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="PI Web API base URL (env PI_WEBAPI_URL)")
    parser.add_argument("--auth", choices=["anonymous", "basic", "bearer", "kerberos"], help="env PI_WEBAPI_AUTH")
    parser.add_argument("--username", help="env PI_WEBAPI_USERNAME")
    parser.add_argument("--password", help="prefer env PI_WEBAPI_PASSWORD: command lines are visible to others")
    parser.add_argument("--token", help="bearer token; prefer env PI_WEBAPI_TOKEN")
    parser.add_argument("--keytab", help="kerberos: a service account's keytab (env PI_WEBAPI_KEYTAB)")
    parser.add_argument("--principal", help="kerberos: whose tickets, e.g. svc-pi@EXAMPLE.COM (PI_WEBAPI_PRINCIPAL)")
    parser.add_argument("--ca-bundle", dest="ca_bundle", help="PEM CA bundle (env PI_WEBAPI_CA_BUNDLE)")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (testing only)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per request (default 15)")
    parser.add_argument("--retries", type=int, default=None, help="retries per request (default 1)")


def run(args: argparse.Namespace) -> int:
    config = PIWebAPIConfig.from_env(
        url=args.url, auth=args.auth, username=args.username, password=args.password, token=args.token,
        keytab=args.keytab, principal=args.principal,
        ca_bundle=args.ca_bundle, verify_tls=False if args.insecure else None,
        timeout_s=args.timeout if args.timeout is not None else 15.0,
        max_retries=args.retries if args.retries is not None else 1,
    )
    return asyncio.run(diagnose(config))


async def diagnose(config: PIWebAPIConfig, out: TextIO | None = None) -> int:
    """Run the checks, print findings; return 0 when everything answered, 1 otherwise."""
    out = out or sys.stdout
    problems = await find_problems(config, out)
    for problem in problems:
        print(f"problem: {problem}", file=out)
    print("OK" if not problems else f"{len(problems)} problem(s) found", file=out)
    return 1 if problems else 0


async def find_problems(config: PIWebAPIConfig, out: TextIO) -> list[str]:
    """The checks themselves: findings go to `out`, problems (one line each) are returned. `pi-platform up`
    runs them as its preflight, with a short timeout and its findings discarded."""
    problems: list[str] = []
    reachable = True
    print(f"PI Web API {config.url} (auth: {config.auth}, TLS verify: {config.verify_tls})", file=out)
    async with PIWebAPIClient(config) as pi:
        try:
            system = await pi.system()
            print(f"  product: {system.get('ProductTitle', '?')} {system.get('ProductVersion', '?')}", file=out)
            await _identity(pi, out)
        except (ConnectError, AuthError, RequestTimeout) as exc:
            problems.append(str(exc))  # nothing else can work: stop here with the one line that matters
            reachable = False
        except PIWebAPIError as exc:
            problems.append(f"system: {exc}")
        if reachable:
            await _data_servers(pi, out, problems)
            await _asset_servers(pi, out, problems)
    return problems


async def _identity(pi: PIWebAPIClient, out: TextIO) -> None:
    """Who the server thinks we are: the first thing to check when reads come back 403 or empty."""
    try:
        user = await pi.get("system/userinfo")
    except PIWebAPIError:
        return  # older servers lack this endpoint; not a problem worth reporting
    if isinstance(user, dict):
        print(f"  identity: {user.get('Name') or 'anonymous'} ({user.get('IdentityType', '?')}, "
              f"authenticated: {user.get('IsAuthenticated')})", file=out)


async def _data_servers(pi: PIWebAPIClient, out: TextIO, problems: list[str]) -> None:
    try:
        servers = await pi.data_servers()
    except PIWebAPIError as exc:
        problems.append(f"data servers: {exc}")
        return
    if not servers:
        problems.append("data servers: none visible to this identity; check PI Web API's PI Data Archive list")
    for server in servers:
        name = server.get("Name", "?")
        try:
            count = len(await pi.points(server["WebId"], selected_fields="Items.WebId"))
        except PIWebAPIError as exc:
            problems.append(f"data server {name}: {exc}")
            continue
        state = "connected" if server.get("IsConnected", True) else "NOT connected"
        print(f"  data server {name} ({state}, version {server.get('ServerVersion', '?')}): {count} points", file=out)


async def _asset_servers(pi: PIWebAPIClient, out: TextIO, problems: list[str]) -> None:
    try:
        servers = await pi.asset_servers()
    except PIWebAPIError as exc:
        problems.append(f"asset servers: {exc}")
        return
    for server in servers:
        name = server.get("Name", "?")
        try:
            databases = await pi.asset_databases(server["WebId"])
        except PIWebAPIError as exc:
            problems.append(f"asset server {name}: {exc}")
            continue
        names = ", ".join(db.get("Name", "?") for db in databases) or "no databases"
        print(f"  asset server {name}: {names}", file=out)
