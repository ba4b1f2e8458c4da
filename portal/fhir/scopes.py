"""SMART system scopes: what an API client may be given and what a token lets it do.

Backend services act for the clinic, not for a person or a patient, so only ``system/``
scopes exist here (``patient/`` and ``user/`` need a person's launch, which this API does
not offer). Both spellings of SMART are read:

- v1: ``system/Patient.read``, ``system/*.write``, ``system/Observation.*``;
- v2: ``system/Patient.rs``, ``system/*.cruds`` (letters in that order: create, read,
  update, delete, search).

Internally a scope is a resource type (or ``*``) and a set of those letters, so v1 ``read``
is ``rs`` and ``write`` is ``cud``. The API asks only "may it read" (``r`` or ``s``: reading
one resource and searching serve the same data) and "may it write" (``c``: the import
creates). v2's finer scopes with a query (``?category=...``) are refused rather than
widened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LETTERS = "cruds"
READ_LETTERS = frozenset("rs")
WRITE_LETTERS = frozenset("cud")
V1_LETTERS = {"read": READ_LETTERS, "write": WRITE_LETTERS, "*": frozenset(LETTERS)}

_SCOPE = re.compile(r"^system/(\*|[A-Z][A-Za-z]{1,63})\.(read|write|\*|c?r?u?d?s?)$")


class InvalidScope(ValueError):
    """A scope this server does not understand or never grants."""


@dataclass(frozen=True, order=True)
class Scope:
    resource_type: str  # a FHIR type name, or "*"
    letters: frozenset[str]
    v1: bool = True  # spelled the v1 way when it came in (and is spelled back so)

    def spelled(self) -> str:
        """The scope as text, in the spelling it came in when that still says it exactly."""
        if self.v1:
            for word, letters in V1_LETTERS.items():
                if letters == self.letters:
                    return f"system/{self.resource_type}.{word}"
        return f"system/{self.resource_type}." + "".join(c for c in LETTERS if c in self.letters)

    def covers(self, resource_type: str, *, write: bool) -> bool:
        if self.resource_type not in ("*", resource_type):
            return False
        return "c" in self.letters if write else bool(self.letters & READ_LETTERS)


def parse(text: str) -> Scope:
    """One scope, or ``InvalidScope``."""
    match = _SCOPE.match(text)
    if match is None or not match.group(2):
        raise InvalidScope(text)
    resource_type, permission = match.groups()
    if permission in V1_LETTERS:
        return Scope(resource_type, V1_LETTERS[permission], v1=True)
    return Scope(resource_type, frozenset(permission), v1=False)


def parse_all(text: str | None) -> list[Scope]:
    """Every scope of a space-separated list (``InvalidScope`` on the first bad one)."""
    return [parse(part) for part in (text or "").split()]


def intersect(requested: list[Scope], allowed: list[Scope]) -> list[Scope]:
    """What a token may be given: each requested scope narrowed to what the client is
    allowed (a request for ``system/*.read`` by a client allowed ``system/Patient.read``
    gets ``system/Patient.read``; the reverse too). Empty when nothing overlaps."""
    granted: set[Scope] = set()
    for want in requested:
        for have in allowed:
            if want.resource_type == "*":
                resource_type = have.resource_type
            elif have.resource_type in ("*", want.resource_type):
                resource_type = want.resource_type
            else:
                continue
            letters = want.letters & have.letters
            if letters:
                granted.add(Scope(resource_type, frozenset(letters), v1=want.v1))
    return _without_covered(granted)


def _without_covered(scopes: set[Scope]) -> list[Scope]:
    """One scope per (type, letters), the v1 spelling preferred; then drop a scope another
    one already holds (``Patient.read`` beside ``*.read``)."""
    unique: dict[tuple[str, frozenset[str]], Scope] = {}
    for scope in sorted(scopes, key=lambda s: not s.v1):
        unique.setdefault((scope.resource_type, scope.letters), scope)
    kept = [
        scope
        for key, scope in unique.items()
        if not any(
            other_key != key
            and other.resource_type in ("*", scope.resource_type)
            and scope.letters <= other.letters
            for other_key, other in unique.items()
        )
    ]
    return sorted(kept, key=lambda s: (s.resource_type != "*", s.resource_type, s.spelled()))


def spelled(scopes: list[Scope]) -> str:
    return " ".join(scope.spelled() for scope in scopes)


def allows(scopes: list[Scope], resource_type: str, *, write: bool = False) -> bool:
    """Whether any of ``scopes`` lets its holder read (or write) ``resource_type``."""
    return any(scope.covers(resource_type, write=write) for scope in scopes)
