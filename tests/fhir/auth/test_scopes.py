"""SMART system scopes: both spellings read, what a scope lets its holder do, and the
narrowing of what a client asks for to what it may have."""

from __future__ import annotations

import pytest

from portal.fhir import scopes


def _narrowed(asked: str, allowed: str) -> str:
    return scopes.spelled(scopes.intersect(scopes.parse_all(asked), scopes.parse_all(allowed)))


@pytest.mark.parametrize(
    ("text", "reads", "writes"),
    [
        ("system/Patient.read", True, False),
        ("system/Patient.write", False, True),
        ("system/Patient.*", True, True),
        ("system/Patient.rs", True, False),
        ("system/Patient.r", True, False),
        ("system/Patient.s", True, False),
        ("system/Patient.c", False, True),
        ("system/Patient.cruds", True, True),
        ("system/Patient.ud", False, False),  # changes existing ones: not the import's create
    ],
)
def test_what_a_scope_lets_its_holder_do(text, reads, writes):
    scope = scopes.parse(text)
    assert scope.covers("Patient", write=False) is reads
    assert scope.covers("Patient", write=True) is writes
    assert not scope.covers("Observation", write=False)


def test_a_wildcard_covers_every_type():
    assert scopes.allows(scopes.parse_all("system/*.read"), "Immunization")
    assert not scopes.allows(scopes.parse_all("system/*.read"), "Immunization", write=True)


@pytest.mark.parametrize(
    "text",
    [
        "patient/*.read",
        "user/Patient.read",
        "system/Patient",
        "system/Patient.rw",
        "system/Patient.sr",  # v2 letters come in the order c r u d s
        "system/Patient.rs?category=laboratory",
        "system/patient.read",
        "openid",
        "system/*.",
    ],
)
def test_scopes_this_server_never_grants_are_refused(text):
    with pytest.raises(scopes.InvalidScope):
        scopes.parse(text)


@pytest.mark.parametrize(
    ("asked", "allowed", "granted"),
    [
        ("system/*.read", "system/Patient.read", "system/Patient.read"),
        ("system/Patient.read", "system/*.read", "system/Patient.read"),
        ("system/*.*", "system/*.read", "system/*.read"),
        ("system/Patient.cruds", "system/*.read", "system/Patient.rs"),
        ("system/Patient.read system/Patient.rs", "system/*.read", "system/Patient.read"),
        ("system/*.read system/Patient.read", "system/*.read", "system/*.read"),
        ("system/Condition.read", "system/Patient.read", ""),
        ("system/*.write", "system/*.read", ""),
    ],
)
def test_asked_scopes_are_narrowed_to_the_allowed_ones(asked, allowed, granted):
    assert _narrowed(asked, allowed) == granted
