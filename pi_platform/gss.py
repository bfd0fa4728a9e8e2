"""GSS-API (Kerberos through SPNEGO) over the system's `libgssapi_krb5.so.2`, with ctypes.

Why ctypes: the PyPI `gssapi` package ships no wheel and needs libkrb5-dev and a compiler to build, while
the MIT runtime library (Debian `libgssapi-krb5-2`) is already on Debian/Ubuntu base images. Only what
Negotiate needs is bound: names, credentials (default ticket cache, or a keytab / ccache through
`gss_acquire_cred_from`'s credential store), one initiator step and one acceptor step. It sits in the ground
layer because both the client (initiator) and the simulator (acceptor) use it.

Every failure raises `GSSError` carrying GSS's major and Kerberos' minor status codes, so callers can
translate them into advice (`pi_platform.client.negotiate`); the text never contains a token.
"""

import ctypes
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from pi_platform.errors import PlatformError

LIBRARY = "libgssapi_krb5.so.2"
DEBIAN_PACKAGE = "libgssapi-krb5-2"

# OIDs as DER content bytes (RFC 2743 / RFC 4178 / RFC 1964).
SPNEGO = b"\x2b\x06\x01\x05\x05\x02"  # 1.3.6.1.5.5.2
NT_HOSTBASED_SERVICE = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x01\x04"  # 1.2.840.113554.1.2.1.4
NT_KRB5_PRINCIPAL = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02\x01"  # 1.2.840.113554.1.2.2.1

DELEG_FLAG, MUTUAL_FLAG = 1, 2
_INITIATE, _ACCEPT = 1, 2
_GSS_CODE, _MECH_CODE = 1, 2
COMPLETE, CONTINUE_NEEDED = 0, 1

# Routine errors (major status >> 16), RFC 2744 section 3.9.1.
NO_CRED, DEFECTIVE_CREDENTIAL, CREDENTIALS_EXPIRED, FAILURE = 7, 10, 11, 13

OM_uint32 = ctypes.c_uint32


class _Buffer(ctypes.Structure):
    _fields_ = [("length", ctypes.c_size_t), ("value", ctypes.c_void_p)]


class _OID(ctypes.Structure):
    _fields_ = [("length", OM_uint32), ("elements", ctypes.c_void_p)]


class _KeyValue(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char_p), ("value", ctypes.c_char_p)]


class _KeyValueSet(ctypes.Structure):
    _fields_ = [("count", OM_uint32), ("elements", ctypes.POINTER(_KeyValue))]


class GSSError(PlatformError):
    """A GSS-API call failed: `major` (routine error, see the constants above) and `minor` (a Kerberos code)."""

    def __init__(self, call: str, major: int, minor: int, text: str) -> None:
        super().__init__(f"{call} failed: {text}")
        self.call, self.major, self.minor, self.text = call, major, minor, text

    @property
    def routine(self) -> int:
        return (self.major >> 16) & 0xFF


class GSSUnavailable(PlatformError):
    """The MIT GSS-API runtime is not installed."""


@cache
def _lib() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(LIBRARY)
        lib.gss_acquire_cred_from  # MIT krb5 1.11+; older or non-MIT builds lack the credential store
    except (OSError, AttributeError):
        raise GSSUnavailable(
            f"Kerberos needs the MIT GSS-API library {LIBRARY}: install the Debian package {DEBIAN_PACKAGE} "
            "(apt-get install -y libgssapi-krb5-2) or your distribution's MIT krb5 runtime") from None
    p, u32p = ctypes.c_void_p, ctypes.POINTER(OM_uint32)
    buf, oid = ctypes.POINTER(_Buffer), ctypes.POINTER(_OID)
    signatures = {
        "gss_import_name": [u32p, buf, oid, ctypes.POINTER(p)],
        "gss_display_name": [u32p, p, buf, ctypes.POINTER(oid)],
        "gss_release_name": [u32p, ctypes.POINTER(p)],
        "gss_acquire_cred_from": [u32p, p, OM_uint32, p, ctypes.c_int,
                                  ctypes.POINTER(_KeyValueSet), ctypes.POINTER(p), p, u32p],
        "gss_inquire_cred": [u32p, p, ctypes.POINTER(p), u32p, ctypes.POINTER(ctypes.c_int), p],
        "gss_release_cred": [u32p, ctypes.POINTER(p)],
        "gss_init_sec_context": [u32p, p, ctypes.POINTER(p), p, oid, OM_uint32, OM_uint32, p, buf,
                                 p, buf, u32p, u32p],
        "gss_accept_sec_context": [u32p, ctypes.POINTER(p), p, buf, p, ctypes.POINTER(p), p, buf, u32p, u32p,
                                   ctypes.POINTER(p)],
        "gss_delete_sec_context": [u32p, ctypes.POINTER(p), p],
        "gss_release_buffer": [u32p, buf],
        "gss_display_status": [u32p, OM_uint32, ctypes.c_int, oid, u32p, buf],
    }
    for function, argtypes in signatures.items():
        getattr(lib, function).argtypes = argtypes
        getattr(lib, function).restype = OM_uint32
    return lib


def available() -> bool:
    try:
        _lib()
    except GSSUnavailable:
        return False
    return True


class _OIDConst:
    """An OID kept alive with its bytes (ctypes holds only a pointer to them)."""

    def __init__(self, der: bytes) -> None:
        self._bytes = ctypes.create_string_buffer(der, len(der))
        self.oid = _OID(len(der), ctypes.cast(self._bytes, ctypes.c_void_p))


@cache
def _oid(der: bytes) -> _OIDConst:
    return _OIDConst(der)


def _status_text(code: int, kind: int) -> list[str]:
    lib, messages, context = _lib(), [], OM_uint32(0)
    while True:
        minor, out = OM_uint32(0), _Buffer()
        if lib.gss_display_status(ctypes.byref(minor), code, kind, None, ctypes.byref(context), ctypes.byref(out)):
            break
        messages.append(ctypes.string_at(out.value, out.length).decode("utf-8", "replace"))
        lib.gss_release_buffer(ctypes.byref(minor), ctypes.byref(out))
        if context.value == 0:
            break
    return messages


def _check(call: str, major: int, minor: OM_uint32) -> int:
    if major & 0xFFFF0000:  # a calling or routine error; the low 16 bits are informational
        parts = [m for m in _status_text(major & 0xFFFF0000, _GSS_CODE) if m]
        if minor.value:
            parts += [m for m in _status_text(minor.value, _MECH_CODE) if m]
        raise GSSError(call, major, minor.value, "; ".join(parts) or f"major {major:#x}, minor {minor.value}")
    return major


def _take(out: _Buffer) -> bytes:
    data = ctypes.string_at(out.value, out.length) if out.length else b""
    if out.value:
        _lib().gss_release_buffer(ctypes.byref(OM_uint32(0)), ctypes.byref(out))
    return data


class Name:
    """An imported GSS name (`HTTP@host` service or `user@REALM` principal), released when collected."""

    def __init__(self, text: str, kind: bytes) -> None:
        self.handle = ctypes.c_void_p()
        raw = text.encode()
        value = ctypes.create_string_buffer(raw, len(raw))
        minor = OM_uint32(0)
        given = _Buffer(len(raw), ctypes.cast(value, ctypes.c_void_p))
        major = _lib().gss_import_name(ctypes.byref(minor), ctypes.byref(given), ctypes.byref(_oid(kind).oid),
                                       ctypes.byref(self.handle))
        _check("gss_import_name", major, minor)

    @classmethod
    def service(cls, service: str, host: str) -> "Name":
        return cls(f"{service}@{host}", NT_HOSTBASED_SERVICE)

    @classmethod
    def principal(cls, text: str) -> "Name":
        return cls(text, NT_KRB5_PRINCIPAL)

    def __del__(self) -> None:
        if self.handle:
            _lib().gss_release_name(ctypes.byref(OM_uint32(0)), ctypes.byref(self.handle))


def display_name(handle: ctypes.c_void_p) -> str:
    minor, out = OM_uint32(0), _Buffer()
    _check("gss_display_name", _lib().gss_display_name(ctypes.byref(minor), handle, ctypes.byref(out), None), minor)
    return _take(out).decode("utf-8", "replace")


class Credential:
    """Initiator or acceptor credentials; `store` is MIT's credential store (ccache, client_keytab, keytab)."""

    def __init__(self, name: Name | None, usage: str, store: Mapping[str, str] | None = None) -> None:
        self.handle = ctypes.c_void_p()
        items = [(k.encode(), v.encode()) for k, v in (store or {}).items()]
        array = (_KeyValue * max(len(items), 1))(*[_KeyValue(k, v) for k, v in items])
        store_set = _KeyValueSet(len(items), array)
        minor = OM_uint32(0)
        major = _lib().gss_acquire_cred_from(
            ctypes.byref(minor), name.handle if name else None, 0, None,  # every mechanism: SPNEGO wraps Kerberos
            {"initiate": _INITIATE, "accept": _ACCEPT}[usage], ctypes.byref(store_set) if items else None,
            ctypes.byref(self.handle), None, None)
        _check("gss_acquire_cred_from", major, minor)

    def lifetime(self) -> tuple[str, int]:
        """(principal, seconds left): 0 seconds means the tickets have expired."""
        minor, name, seconds = OM_uint32(0), ctypes.c_void_p(), OM_uint32(0)
        major = _lib().gss_inquire_cred(ctypes.byref(minor), self.handle, ctypes.byref(name), ctypes.byref(seconds),
                                        None, None)
        _check("gss_inquire_cred", major, minor)
        try:
            return display_name(name), seconds.value
        finally:
            _lib().gss_release_name(ctypes.byref(OM_uint32(0)), ctypes.byref(name))

    def __del__(self) -> None:
        if self.handle:
            _lib().gss_release_cred(ctypes.byref(OM_uint32(0)), ctypes.byref(self.handle))


class _Context:
    """A security context handle, deleted when collected."""

    def __init__(self) -> None:
        self.handle = ctypes.c_void_p()

    def __del__(self) -> None:
        if self.handle:
            _lib().gss_delete_sec_context(ctypes.byref(OM_uint32(0)), ctypes.byref(self.handle), None)


class Initiator:
    """The client side of one SPNEGO exchange: `step(None)` makes the first token, `step(reply)` checks the
    server's answer (the mutual-authentication token, or a KRB-ERROR such as clock skew)."""

    def __init__(self, target: Name, credential: Credential | None, flags: int) -> None:
        self.target, self.credential, self.flags = target, credential, flags
        self._context = _Context()
        self.complete = False

    def step(self, token: bytes | None) -> bytes:
        minor, out = OM_uint32(0), _Buffer()
        data = ctypes.create_string_buffer(token, len(token)) if token else None
        given = _Buffer(len(token), ctypes.cast(data, ctypes.c_void_p)) if token else None
        credential = self.credential.handle if self.credential else None
        major = _lib().gss_init_sec_context(
            ctypes.byref(minor), credential, ctypes.byref(self._context.handle), self.target.handle, ctypes.byref(_oid(SPNEGO).oid), self.flags, 0, None,
            ctypes.byref(given) if given else None, None, ctypes.byref(out), None, None)
        produced = _take(out)
        _check("gss_init_sec_context", major, minor)
        self.complete = major & 0xFFFF == COMPLETE
        return produced


@dataclass(frozen=True)
class Accepted:
    """What the acceptor learned: who the client is, whether it delegated, and the reply token to send."""

    principal: str
    delegated: bool
    reply: bytes


class AcceptFailed(GSSError):
    """accept_sec_context refused the token; `reply` may carry a KRB-ERROR for the client (e.g. clock skew)."""

    def __init__(self, error: GSSError, reply: bytes) -> None:
        super().__init__(error.call, error.major, error.minor, error.text)
        self.reply = reply


def accept(credential: Credential, token: bytes) -> Accepted:
    """One acceptor step; Kerberos through SPNEGO completes in one round trip, so anything else is an error."""
    lib, context = _lib(), _Context()
    minor, out, source, flags, delegated = OM_uint32(0), _Buffer(), ctypes.c_void_p(), OM_uint32(0), ctypes.c_void_p()
    data = ctypes.create_string_buffer(token, len(token))
    given = _Buffer(len(token), ctypes.cast(data, ctypes.c_void_p))
    major = lib.gss_accept_sec_context(
        ctypes.byref(minor), ctypes.byref(context.handle), credential.handle, ctypes.byref(given), None,
        ctypes.byref(source), None, ctypes.byref(out), ctypes.byref(flags), None, ctypes.byref(delegated))
    reply = _take(out)
    try:
        _check("gss_accept_sec_context", major, minor)
        if major & 0xFFFF == CONTINUE_NEEDED:
            raise GSSError("gss_accept_sec_context", FAILURE << 16, 0, "SPNEGO needs another round trip; "
                           "only Kerberos (one round trip) is accepted")
    except GSSError as exc:
        raise AcceptFailed(exc, reply) from None
    try:
        return Accepted(display_name(source), bool(delegated.value), reply)
    finally:
        lib.gss_release_name(ctypes.byref(OM_uint32(0)), ctypes.byref(source))
        if delegated.value:
            lib.gss_release_cred(ctypes.byref(OM_uint32(0)), ctypes.byref(delegated))
