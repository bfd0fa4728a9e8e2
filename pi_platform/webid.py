"""PI Web API WebID 2.0 encoding and decoding.

Both sides need this: the simulator mints Full WebIDs exactly as a PI Web API 2017 R2+ server does, and the
client builds PathOnly WebIDs locally (one round trip saved per tag, and no dependency on the server's
WebIDType setting). The layout is `<Type><Version><Marker>[<Owner>]<payload>` with URL-safe unpadded
base64 payloads (see ../shared/reference/piwebapi-protocol.md §6).

Types (`webIdType`): `F` Full = IDs + path, `I` IDOnly = IDs, `P` PathOnly = path, and `L` LocalIDOnly /
`D` DefaultIDOnly = the object's own IDs without its server's GUID ("object ID only", reference §6.1; for a PI
point the Int32 point id alone), which the receiving server resolves against its own (default) asset or data
server — hence "not persistent or unique" across servers. UNCERTAIN: the exact L/D byte layout is not
published; this one follows the reference's wording and round-trips through `decode` + `with_server`.
"""

import base64
import struct
import uuid
from dataclasses import dataclass

# Marker -> (owner marker expected?, number of GUIDs in the ID part, trailing Int32 point id?), as in the
# WebIdInfo.cs of pidevguru's PI Web API client (a former OSIsoft developer's); see protocol reference §6.
_MARKERS: dict[str, tuple[bool, int, bool]] = {
    "RS": (False, 1, False),  # AssetServer
    "RD": (False, 2, False),  # AssetDatabase
    "Em": (False, 2, False),  # Element
    "ET": (False, 2, False),  # ElementTemplate
    "EC": (False, 2, False),  # ElementCategory
    "Ab": (True, 3, False),  # Attribute (owner E = element, F = event frame)
    "AT": (True, 3, False),  # AttributeTemplate (owner E = element template)
    "AC": (False, 2, False),  # AttributeCategory
    "Fm": (False, 2, False),  # EventFrame
    "DS": (False, 1, False),  # DataServer
    "DP": (False, 1, True),  # PI Point: data server GUID + Int32 point id
    "MS": (True, 2, False),  # EnumerationSet (owner R = AF, D = PI)
    "MV": (True, 3, False),  # EnumerationValue (owner as for its set): server, set, value GUIDs
    "Xs": (False, 2, False),  # Analysis
    "XR": (True, 3, False),  # AnalysisRule (owner X = analysis, T = analysis template)
    # UNCERTAIN: notification rules postdate the sources above; this marker is our simulator's choice.
    "Nr": (False, 2, False),  # NotificationRule
}

KINDS = {
    "RS": "AssetServer",
    "RD": "AssetDatabase",
    "Em": "Element",
    "ET": "ElementTemplate",
    "EC": "ElementCategory",
    "Ab": "Attribute",
    "AT": "AttributeTemplate",
    "AC": "AttributeCategory",
    "Fm": "EventFrame",
    "DS": "DataServer",
    "DP": "Point",
    "MS": "EnumerationSet",
    "MV": "EnumerationValue",
    "Xs": "Analysis",
    "XR": "AnalysisRule",
    "Nr": "NotificationRule",
}


class InvalidWebId(ValueError):
    """A string that is not a WebID this code understands; the message is what PI Web API says."""

    def __init__(self, web_id: str) -> None:
        super().__init__(f"Unknown or invalid WebID format: '{web_id}'.")
        self.web_id = web_id


@dataclass(frozen=True)
class WebId:
    """A decoded WebID. `ids` are the GUIDs in order; `point_id` only for PI points; `path` upper-cased."""

    type: str  # F, I, P, L, D
    marker: str
    owner: str
    ids: tuple[uuid.UUID, ...]
    point_id: int | None
    path: str | None

    @property
    def kind(self) -> str:
        return KINDS[self.marker]


def b64_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def b64_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _encode_path(path: str) -> str:
    return b64_encode(path.lstrip("\\").upper().encode("utf-8"))


def encode_full(marker: str, ids: tuple[uuid.UUID, ...], path: str, *, owner: str = "", point_id: int | None = None) -> str:
    """Full WebID: GUIDs (and point id) followed by the upper-cased path, as servers emit by default."""
    payload = "".join(b64_encode(g.bytes_le) for g in ids)
    if point_id is not None:
        payload += b64_encode(struct.pack("<i", point_id))
    return f"F1{marker}{owner}{payload}{_encode_path(path)}"


def encode_path_only(marker: str, path: str, *, owner: str = "") -> str:
    """PathOnly WebID a client can build without asking the server (`P1DP` + path for a PI point)."""
    return f"P1{marker}{owner}{_encode_path(path)}"


def point_path_webid(data_server: str, tag: str) -> str:
    return encode_path_only("DP", f"{data_server}\\{tag}")


TYPES = {"full": "F", "idonly": "I", "pathonly": "P", "localidonly": "L", "defaultidonly": "D"}
# Markers whose first GUID is the PI Data Archive's (the others start with the AF server's).
_DATA_SERVER_MARKERS = ("DS", "DP")


def _local_guids(marker: str, n_guids: int) -> int:
    """GUIDs an L/D WebID carries: all but the server's (a server's own WebID keeps its one GUID; a point none)."""
    if marker == "DP":
        return 0
    return n_guids - 1 if n_guids > 1 else n_guids


def convert(full_web_id: str, web_id_type: str) -> str:
    """A Full WebID in the form `webIdType` names (Full, IDOnly, PathOnly, LocalIDOnly, DefaultIDOnly, any case)."""
    kind = TYPES.get(web_id_type.lower())
    if kind is None:
        raise ValueError(web_id_type)
    if kind == "F":
        return full_web_id
    decoded = decode(full_web_id)
    if kind == "P":
        return encode_path_only(decoded.marker, decoded.path or "", owner=decoded.owner)
    ids = decoded.ids
    if kind in "LD":
        ids = ids[len(ids) - _local_guids(decoded.marker, len(ids)) :]
    payload = "".join(b64_encode(g.bytes_le) for g in ids)
    if decoded.point_id is not None:
        payload += b64_encode(struct.pack("<i", decoded.point_id))
    return f"{kind}1{decoded.marker}{decoded.owner}{payload}"


def with_server(decoded: WebId, asset_server: uuid.UUID, data_server: uuid.UUID) -> WebId:
    """An L/D WebID completed with the receiving server's GUID, so lookups treat it like an IDOnly one."""
    if decoded.type not in "LD":
        return decoded
    spec = _MARKERS[decoded.marker]
    missing = spec[1] - len(decoded.ids)
    if missing <= 0:
        return decoded
    on_data_server = decoded.marker in _DATA_SERVER_MARKERS or decoded.owner == "D"
    server = data_server if on_data_server else asset_server
    return WebId(decoded.type, decoded.marker, decoded.owner, (server,) + decoded.ids, decoded.point_id, None)


def decode(web_id: str) -> WebId:
    """Decode Full, IDOnly, PathOnly, LocalIDOnly and DefaultIDOnly WebIDs; raise InvalidWebId for anything else.
    L/D ones lack their server's GUID until `with_server` adds it."""
    if len(web_id) < 5 or web_id[1] != "1" or web_id[0] not in "FIPLD":
        raise InvalidWebId(web_id)
    kind, marker = web_id[0], web_id[2:4]
    spec = _MARKERS.get(marker)
    if spec is None:
        raise InvalidWebId(web_id)
    has_owner, n_guids, has_point = spec
    rest = web_id[4:]
    owner = ""
    if has_owner:
        owner, rest = rest[:1], rest[1:]
        if not owner:
            raise InvalidWebId(web_id)
    ids: list[uuid.UUID] = []
    point_id = None
    try:
        if kind in "FILD":
            for _ in range(n_guids if kind in "FI" else _local_guids(marker, n_guids)):
                chunk, rest = rest[:22], rest[22:]
                if len(chunk) != 22:
                    raise InvalidWebId(web_id)
                ids.append(uuid.UUID(bytes_le=b64_decode(chunk)))
            if has_point:
                chunk, rest = rest[:6], rest[6:]
                if len(chunk) != 6:
                    raise InvalidWebId(web_id)
                point_id = struct.unpack("<i", b64_decode(chunk))[0]
        path = None
        if kind in "FP":
            if not rest:
                raise InvalidWebId(web_id)
            path = b64_decode(rest).decode("utf-8")
        elif rest:
            raise InvalidWebId(web_id)
    except (ValueError, UnicodeDecodeError, struct.error) as exc:
        raise InvalidWebId(web_id) from exc
    return WebId(kind, marker, owner, tuple(ids), point_id, path)
