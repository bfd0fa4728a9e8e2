"""`selectedFields`: which parts of a response the caller wants, as PI Web API reads the parameter.

The value is semicolon-separated dotted paths from the response root (`Items.Timestamp;Items.Value`,
`Items.Items.Value` for stream sets, `WebId;Name`); arrays are transparent (a path continues inside every
item), a path that ends on an object keeps the whole object, unknown names are ignored, and everything not
named — `Links` included — is dropped. Names match case-insensitively, like every PI Web API parameter.

A selection is a tree: a dict from lower-case field name to its sub-tree, `ALL` where a path ended. The router
filters any JSON body with it (`select`), so every route honours the parameter, including routes added later;
the value-list routes instead ask `sub` which TimedValue fields to render and render only those (cheap on
the hot path), then say so on the Reply.
"""

import orjson

Selection = dict[str, "Selection | None"]
ALL = None  # a path ended here: keep the whole node


def parse(raw: str | None) -> Selection | None:
    """The tree of a `selectedFields` value; None when the parameter is absent or empty (keep everything)."""
    if not raw or not raw.strip():
        return None
    tree: Selection = {}
    for path in raw.split(";"):
        names = [n.strip().lower() for n in path.split(".") if n.strip()]
        if not names:
            continue
        node = tree
        for depth, name in enumerate(names):
            last = depth == len(names) - 1
            if name in node and node[name] is ALL:
                break  # a shorter path already keeps this whole node
            if last:
                node[name] = ALL
            else:
                node = node.setdefault(name, {})  # type: ignore[assignment]
    return tree


def sub(selection: Selection | None, *names: str) -> "Selection | None | bool":
    """The selection below `names` (lower-case): ALL (None) to keep everything there, a tree, or False when
    nothing below is selected."""
    node: Selection | None = selection
    for name in names:
        if node is ALL:
            return ALL
        if name not in node:
            return False
        node = node[name]
    return node


def select(document: object, selection: Selection | None) -> object:
    """`document` with only the selected fields (arrays are transparent; scalars under a path are kept)."""
    if selection is ALL:
        return document
    if isinstance(document, dict):
        out = {}
        for key, value in document.items():
            lowered = key.lower()
            if lowered in selection:
                out[key] = select(value, selection[lowered])
        return out
    if isinstance(document, list):
        return [select(item, selection) for item in document]
    return document


def select_body(body: bytes, selection: Selection) -> bytes:
    """A JSON text filtered by `selection` (for bodies a handler already serialised)."""
    return orjson.dumps(select(orjson.loads(body), selection))


def field_names(selection: "Selection | None | bool", names: tuple[str, ...]) -> tuple[str, ...]:
    """Of an object's field `names` (in the order PI writes them), those a sub-selection keeps."""
    if selection is ALL:
        return names
    if selection is False:
        return ()
    return tuple(n for n in names if n.lower() in selection)  # type: ignore[operator]
