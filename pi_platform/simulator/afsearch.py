"""AF search query strings (`query=` of elements/search, attributes/search, eventframes/search).

The AFSearch syntax, the subset clients send: `Field:value` terms separated by spaces (all must match), values
quoted with ' or " when they contain spaces, `*`/`?` wildcards, comparison operators after the colon
(`Start:>=*-1d`, `Severity:<>Minor`), a bare value meaning `Name:value`, and a nested query in braces
(`Element:{Name:'Pump*' Template:Pump}`) for the owner of attributes. An unknown field answers PI's 400.
"""

import re
from dataclasses import dataclass

from pi_platform.simulator.api import ApiError
from pi_platform.simulator.catalog import wildcard

_TOKEN = re.compile(
    r"\s*(?:(?P<field>[A-Za-z]+)\s*:)?\s*(?P<op><>|>=|<=|=|<|>)?\s*(?P<value>\{|'[^']*'|\"[^\"]*\"|[^\s{}]+)"
)


@dataclass(frozen=True)
class Term:
    field: str  # lower-case; "name" for a bare value
    op: str  # "=", "<>", "<", "<=", ">", ">="
    value: "str | tuple[Term, ...]"  # a nested query for `Field:{...}`

    def matches_text(self, text: str) -> bool:
        """Wildcard, case-insensitive comparison of a text field (= and <> only)."""
        assert isinstance(self.value, str)
        pattern = wildcard(self.value)
        found = pattern is None or pattern.match(text) is not None
        return found if self.op == "=" else not found


def parse(query: str | None, allowed: tuple[str, ...]) -> tuple[Term, ...]:
    """The terms of `query`; fields outside `allowed` (lower-case) -> 400 naming the field and the choices."""
    terms, _ = _parse(query or "", 0, allowed, nested=False)
    return terms


def _parse(text: str, index: int, allowed: tuple[str, ...], nested: bool) -> tuple[tuple[Term, ...], int]:
    terms: list[Term] = []
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            if nested:
                raise ApiError(400, f"The query '{text}' has an unclosed '{{'.")
            return tuple(terms), index
        if text[index] == "}":
            if not nested:
                raise ApiError(400, f"The query '{text}' has an unmatched '}}'.")
            return tuple(terms), index + 1
        match = _TOKEN.match(text, index)
        if match is None:
            raise ApiError(400, f"The query '{text}' cannot be parsed near '{text[index:]}'.")
        field = (match.group("field") or "name").lower()
        if field not in allowed:
            choices = ", ".join(allowed)
            raise ApiError(400, f"The query field '{match.group('field')}' is not supported here; use {choices}.")
        op = match.group("op") or "="
        raw = match.group("value")
        index = match.end()
        if raw == "{":
            inner, index = _parse(text, index, allowed, nested=True)
            terms.append(Term(field, op, inner))
            continue
        if raw[0] in "'\"":
            raw = raw[1:-1]
        terms.append(Term(field, op, raw))
