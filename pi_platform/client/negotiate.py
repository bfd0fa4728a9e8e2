"""Kerberos for PI Web API: a fresh SPNEGO (`Negotiate`) token per request or channel handshake, and the
one-line errors a Windows-domain admin recognises.

Credentials come from the user's ticket cache (`kinit`, or the Windows logon on a domain-joined host via a
KRB5CCNAME the admin set up), or from a keytab named in config: then MIT krb5 gets and renews the tickets
itself, in a per-process memory cache, which is what a service account running Dagster and the collector
needs. The credential is re-acquired for every token, so a ticket renewed or replaced outside the process
(k5start, kinit in cron) is picked up and an expired one is reported instead of being used.

GSS-API reports failures as a generic major status plus the Kerberos library's message; MIT's mechanism
glue renumbers the minor codes, so the messages of MIT's error table (stable since krb5 1.x) are what the
causes are recognised by.
"""

import base64
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from pi_platform import gss
from pi_platform.client.errors import AuthError

MutualAuth = Literal["required", "optional", "disabled"]


class KerberosError(AuthError):
    """Kerberos could not authenticate us (no ticket, expired, unknown SPN, clock skew, not offered, refused)."""


def offered_schemes(challenges: Iterable[str]) -> tuple[str, ...]:
    """Auth schemes named in WWW-Authenticate headers (possibly several, or comma-joined challenges)."""
    schemes: list[str] = []
    for header in challenges:
        for part in header.split(","):
            token = part.strip().split(" ", 1)[0]
            if token and "=" not in token and token not in schemes:
                schemes.append(token)
    return tuple(schemes)


def negotiate_token(challenges: Iterable[str]) -> bytes | None:
    """The server's token in `WWW-Authenticate: Negotiate <base64>` (mutual auth reply or KRB-ERROR), if any."""
    for header in challenges:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "negotiate" and value.strip():
            try:
                return base64.b64decode(value.strip(), validate=True)
            except ValueError:
                return None
    return None


@dataclass
class Negotiator:
    """How this process authenticates to one PI Web API host with Kerberos."""

    host: str
    spn: str | None = None  # "HTTP/host" when the SPN registered differs from the URL's host (an alias, a VIP)
    keytab: str | None = None
    principal: str | None = None
    mutual: MutualAuth = "optional"
    delegate: bool = False
    # A keytab's tickets live in a memory cache of this process: never mixed into (or over) the user's cache.
    _memory_cache: str = field(init=False, default_factory=lambda: f"MEMORY:pi_platform-{uuid.uuid4().hex}")

    @property
    def service(self) -> str:
        """The SPN as setspn writes it, e.g. HTTP/pi.example.com."""
        return self.spn or f"HTTP/{self.host}"

    def start(self) -> tuple[gss.Initiator, str]:
        """A new security context and its `Authorization` header value; a failure is a `KerberosError`."""
        try:
            credential = self._credential()
            service, _, host = self.service.partition("/")
            flags = (gss.MUTUAL_FLAG if self.mutual != "disabled" else 0) | (gss.DELEG_FLAG if self.delegate else 0)
            initiator = gss.Initiator(gss.Name.service(service, host), credential, flags)
            token = initiator.step(None)
        except gss.GSSUnavailable as exc:
            raise KerberosError(str(exc)) from None
        except gss.GSSError as exc:
            raise self.explain(exc) from None
        return initiator, "Negotiate " + base64.b64encode(token).decode("ascii")

    def finish(self, initiator: gss.Initiator, challenges: list[str], where: str) -> None:
        """Check the server's proof of identity on a successful answer, as `mutual` asks."""
        token = negotiate_token(challenges)
        if token is None:
            if self.mutual == "required":
                raise KerberosError(
                    f"{where} answered without proving its identity (no Negotiate token) while mutual authentication "
                    "is required; set PI_WEBAPI_MUTUAL_AUTH=optional if the server is known not to sign its replies")
            return
        if self.mutual == "disabled":
            return
        try:
            initiator.step(token)
            if not initiator.complete:
                raise gss.GSSError("gss_init_sec_context", gss.FAILURE << 16, 0, "the exchange did not complete")
        except gss.GSSError as exc:
            raise KerberosError(
                f"{where} failed mutual authentication ({exc.text}); the reply did not come from {self.service}: "
                "check that the URL points at the PI Web API server itself") from None

    def refused(self, initiator: gss.Initiator, challenges: list[str], where: str) -> KerberosError:
        """Why a 401 answered our ticket: the server's KRB-ERROR when it sent one, else what it offers."""
        schemes = offered_schemes(challenges)
        if not any(s.lower() == "negotiate" for s in schemes):
            return self.not_offered(schemes, where)
        token, said = negotiate_token(challenges), ""
        if token is not None:  # the server's KRB-ERROR: clock skew is ours to fix, anything else is the server's
            try:
                initiator.step(token)
            except gss.GSSError as exc:
                if "clock skew" in exc.text.lower():
                    return self.explain(exc)
                said = f": {exc.text.split('; ')[-1]}"
        return KerberosError(
            f"{where} refused the Kerberos ticket for {self.service} (401{said}); PI Web API's keytab is out of date "
            f"or the SPN is registered to another account than its service account (setspn -Q {self.service} lists "
            "every account holding it)", schemes=schemes)

    def not_offered(self, schemes: tuple[str, ...], where: str) -> KerberosError:
        offered = ", ".join(schemes) if schemes else "nothing"
        return KerberosError(
            f"{where} does not offer Kerberos (WWW-Authenticate offers: {offered}); set PI_WEBAPI_AUTH to one it "
            "offers, or ask the PI admin to add Kerberos to PI Web API's AuthenticationMethods", schemes=schemes)

    def explain(self, exc: gss.GSSError) -> KerberosError:
        """The one line for a GSS failure: the cause in domain terms and the fix."""
        text = exc.text.lower()
        who = self.principal or "this account"
        fetch = (f"check PI_WEBAPI_KEYTAB {self.keytab} holds keys for {who}" if self.keytab else
                 f"run `kinit {self.principal or 'user@REALM'}` as the account that runs this, or set PI_WEBAPI_KEYTAB "
                 "(and PI_WEBAPI_PRINCIPAL) to a keytab")
        if "clock skew" in text:
            return KerberosError(
                "Kerberos: clock skew too great between this machine and the domain controller or PI Web API server "
                "(5 minutes allowed by default); synchronise this machine's clock with the domain (NTP/chrony)")
        if exc.routine == gss.CREDENTIALS_EXPIRED or "expired" in text:
            whose = f" of {self.principal}" if self.principal else ""
            return KerberosError(f"Kerberos: the ticket{whose} has expired; {fetch} (`kinit -R` renews a "
                                 "renewable ticket; a keytab is renewed automatically)")
        if "not found in kerberos database" in text and "server" in text:
            return KerberosError(
                f"Kerberos: the service principal {self._spn_name(exc.text)} is not registered in the domain; "
                f"register it for PI Web API's service account (setspn -S {self.service} DOMAIN\\<service account>), "
                "or use the host name the SPN was registered for in PI_WEBAPI_URL (or set PI_WEBAPI_SPN)")
        if "preauthentication failed" in text or "password incorrect" in text:
            return KerberosError(f"Kerberos: the KDC refused the key of {who} ({exc.text}); the account's password "
                                 "changed since its keytab was exported: export PI_WEBAPI_KEYTAB again")
        if "not found in kerberos database" in text or "key table" in text or "keytab" in text:
            return KerberosError(f"Kerberos: cannot get a ticket for {who} ({exc.text}); {fetch}")
        if exc.routine in (gss.NO_CRED, gss.DEFECTIVE_CREDENTIAL) or "credentials cache" in text:
            return KerberosError(f"Kerberos: no ticket ({exc.text}); {fetch}")
        if "cannot contact any kdc" in text or "cannot find kdc" in text:
            return KerberosError(f"Kerberos: no domain controller (KDC) reachable ({exc.text}); check the realm's KDC "
                                 "in krb5.conf (KRB5_CONFIG) and that port 88 is open")
        return KerberosError(f"Kerberos failed: {exc.text}")

    def _credential(self) -> gss.Credential:
        name = gss.Name.principal(self.principal) if self.principal else None
        store = {"client_keytab": self.keytab, "ccache": self._memory_cache} if self.keytab else None
        credential = gss.Credential(name, "initiate", store)
        credential.lifetime()  # raises CREDENTIALS_EXPIRED for an expired ticket: say so rather than fail later
        return credential

    def _spn_name(self, text: str) -> str:
        """The full principal (HTTP/host@REALM) as the KDC named it ("Server X not found in Kerberos database")."""
        found = re.search(r"server (\S+) not found", text, re.IGNORECASE)
        return found.group(1) if found else self.service
