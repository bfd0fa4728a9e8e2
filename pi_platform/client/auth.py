"""httpx authentication for each configured method; Kerberos through `negotiate` (SPNEGO over system GSS-API)."""

import logging
import re
from collections.abc import Generator

import httpx

from pi_platform.client.config import PIWebAPIConfig
from pi_platform.client.negotiate import Negotiator, offered_schemes


_CREDENTIAL = re.compile(r"\b(Negotiate|Basic|Bearer) [A-Za-z0-9+/=._~-]{8,}")


class RedactCredentials(logging.Filter):
    """HTTP libraries log headers at DEBUG (httpcore the response's, websockets the handshake's both ways), tokens
    included: keep the scheme, drop the value. Filters run only for enabled records, so this costs nothing at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _CREDENTIAL.sub(r"\1 [redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def redact_credentials(*loggers: str) -> None:
    for name in loggers:
        logging.getLogger(name).addFilter(RedactCredentials())


redact_credentials("httpcore.http11", "httpcore.http2")


class BearerAuth(httpx.Auth):
    """`Authorization: Bearer <token>` with a repr that does not show the token."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request):  # type: ignore[override]
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(token=**********)"


def build_auth(config: PIWebAPIConfig) -> httpx.Auth | None:
    if config.auth == "basic":
        assert config.username is not None and config.password is not None  # validated by the config
        return httpx.BasicAuth(config.username, config.password.get_secret_value())
    if config.auth == "bearer":
        assert config.token is not None
        return BearerAuth(config.token.get_secret_value())
    if config.auth == "kerberos":
        return NegotiateAuth(negotiator(config))
    return None


def negotiator(config: PIWebAPIConfig) -> Negotiator:
    """The Kerberos side of a config, shared by REST (`NegotiateAuth`) and channel handshakes."""
    return Negotiator(config.host, spn=config.spn, keytab=config.keytab, principal=config.principal,
                      mutual=config.mutual_auth, delegate=config.delegate)


class NegotiateAuth(httpx.Auth):
    """`Authorization: Negotiate <token>`, the way browsers and requests-kerberos talk to IIS/PI Web API.

    The first request goes out without credentials so a server that does not offer Negotiate is named as
    such (with what it offers) instead of looking like a ticket problem; once the server has asked for
    Negotiate, every request carries a fresh token up front, saving the 401 round trip. Each token comes
    from a new security context: PI Web API authenticates every request, and a fresh context picks up a
    renewed ticket.
    """

    def __init__(self, negotiator: Negotiator) -> None:
        self._negotiator = negotiator
        self._asked = False

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        where = "PI Web API " + str(request.url).split("?", 1)[0]
        if not self._asked:
            response = yield request
            if response.status_code != 401:
                return  # anonymous is allowed here (PI: enabled Anonymous overrides every other method)
            challenges = response.headers.get_list("www-authenticate")
            if not any(s.lower() == "negotiate" for s in offered_schemes(challenges)):
                raise self._negotiator.not_offered(offered_schemes(challenges), where)
            self._asked = True
        initiator, request.headers["Authorization"] = self._negotiator.start()
        response = yield request
        challenges = response.headers.get_list("www-authenticate")
        if response.status_code == 401:
            raise self._negotiator.refused(initiator, challenges, where)
        self._negotiator.finish(initiator, challenges, where)

    def __repr__(self) -> str:
        return f"NegotiateAuth(service={self._negotiator.service!r})"
