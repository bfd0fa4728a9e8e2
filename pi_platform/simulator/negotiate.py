"""Server side of Kerberos (`Authorization: Negotiate`), as IIS/Kestrel do it for PI Web API.

The acceptor holds the `HTTP/<host>` key from a keytab (`--keytab`, what `ktpass`/`kadmin ktadd` produce) and
runs GSS accept_sec_context on each token, over the same system GSS-API binding the client uses. Success
answers with the mutual-authentication token; a refused token answers 401 with `WWW-Authenticate: Negotiate`
and, when Kerberos produced one, the KRB-ERROR (clock skew, for example) so the client can say why.
Who authenticated, and whether they delegated, is counted (tests read it).
"""

import base64
import binascii
import logging
import threading
from collections import Counter
from dataclasses import dataclass

from pi_platform import gss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """`principal` is None when refused; `reply` is the token for `WWW-Authenticate: Negotiate <reply>`."""

    principal: str | None
    reply: bytes

    @property
    def header(self) -> str:
        return "Negotiate " + base64.b64encode(self.reply).decode("ascii") if self.reply else "Negotiate"


class NegotiateAcceptor:
    def __init__(self, keytab: str) -> None:
        self._credential = gss.Credential(None, "accept", {"keytab": keytab})
        self._lock = threading.Lock()
        self.accepted: Counter[str] = Counter()  # principal -> contexts accepted
        self.delegated = 0  # contexts that came with a forwarded ticket
        self.refused = 0

    def accept(self, credentials: str) -> Outcome:
        try:
            token = base64.b64decode(credentials.strip(), validate=True)
        except (binascii.Error, ValueError):
            return self._refuse("Negotiate credentials are not base64", b"")
        try:
            accepted = gss.accept(self._credential, token)
        except gss.AcceptFailed as exc:
            return self._refuse(exc.text, exc.reply)
        with self._lock:
            self.accepted[accepted.principal] += 1
            self.delegated += accepted.delegated
        return Outcome(accepted.principal, accepted.reply)

    def _refuse(self, why: str, reply: bytes) -> Outcome:
        with self._lock:
            self.refused += 1
        log.info("Negotiate refused: %s", why)
        return Outcome(None, reply)
