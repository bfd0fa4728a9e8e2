"""httpx authentication for each configured method; Kerberos is an optional extra imported only when used."""

import httpx

from pi_platform.client.config import PIWebAPIConfig
from pi_platform.errors import ConfigError


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
        return _kerberos_auth()
    return None


def _kerberos_auth() -> httpx.Auth:
    """SPNEGO/Negotiate via httpx-gssapi (needs a ticket from `kinit` or a keytab)."""
    try:
        from httpx_gssapi import OPTIONAL, HTTPSPNEGOAuth  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError(
            "auth=kerberos needs the optional extra: pip install 'pi_platform[kerberos]' (httpx-gssapi)"
        ) from None
    # PI Web API does not always sign its reply; REQUIRED mutual auth would reject a valid server.
    return HTTPSPNEGOAuth(mutual_authentication=OPTIONAL)
