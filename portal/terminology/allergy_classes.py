"""Drug classes for allergies: penicillins, cephalosporins, sulfonamide antibiotics, NSAIDs,
opioids ... each with a stable code and the ingredient names that belong to it.

Source: ``data/allergy_classes.json``, which says where its codes come from (WHO ATC groups,
MED-RT classes where verified, project codes where no standard group fits). The allergy form
offers these names when the kind of substance is "Drug class"; prescriptions will check a
drug's ingredients against the members of the classes a patient is allergic to
(``classes_containing``, or by RxCUI through ``drugs.knowledge().allergy_groups_of``: each
class lists its members' RxNorm ingredient codes where verified, ``member_rxcuis``). The file
also holds the pairs of classes an allergy may cross between at a lower severity
(``cross_sensitivities``: penicillins with cephalosporins and carbapenems ...), each with its
source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA_FILE = Path(__file__).with_name("data") / "allergy_classes.json"


@dataclass(frozen=True)
class AllergyClass:
    """A drug class an allergy can name."""

    code: str  # stable: "ATC:J01C", "PORTAL:cephalosporins"
    name: str  # as the form offers it: "Penicillins"
    members: tuple[str, ...]  # ingredient names (RxNorm), lower case
    aliases: tuple[str, ...] = ()  # other names typed for it: "sulfa", "pcn"
    atc: tuple[str, ...] = ()
    med_rt_epc: str | None = None
    note: str | None = None
    # RxNorm ingredient (IN) concept of each member that has one in data/drug_ingredients.csv;
    # the drug knowledge (drugs.py) matches products by these, and by name for the rest.
    member_rxcuis: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CrossSensitivity:
    """Two classes an allergy may cross between, at a lower severity than within a class."""

    classes: tuple[str, str]  # the two classes' codes
    severity: str  # "moderate" or "low": always below a match within the allergic class
    note: str  # what the prescriber should know and do, in one or two sentences
    source: str  # the citation the note rests on


@cache
def all_classes() -> tuple[AllergyClass, ...]:
    """Every shipped class, in the file's order."""
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return tuple(
        AllergyClass(
            code=entry["code"],
            name=entry["name"],
            members=tuple(entry["members"]),
            aliases=tuple(entry.get("aliases", ())),
            atc=tuple(entry.get("atc", ())),
            med_rt_epc=entry.get("med_rt_epc"),
            note=entry.get("note"),
            member_rxcuis=tuple(entry.get("member_rxcuis", {}).items()),
        )
        for entry in data["classes"]
    )


@cache
def cross_sensitivities() -> tuple[CrossSensitivity, ...]:
    """The shipped cross-sensitivity pairs (symmetric: either class may be the allergy)."""
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return tuple(
        CrossSensitivity(
            classes=(entry["classes"][0], entry["classes"][1]),
            severity=entry["severity"],
            note=entry["note"],
            source=entry["source"],
        )
        for entry in data.get("cross_sensitivities", ())
    )


@cache
def _by_typed_name() -> dict[str, AllergyClass]:
    names: dict[str, AllergyClass] = {}
    for allergy_class in all_classes():
        for name in (allergy_class.name, *allergy_class.aliases):
            names[name.lower()] = allergy_class
    return names


def class_names() -> list[str]:
    """The classes' names, as the form suggests them (alphabetical)."""
    return sorted((c.name for c in all_classes()), key=str.lower)


def find_class(name: str) -> AllergyClass | None:
    """The class ``name`` names (its name or an alias, any case), else None."""
    return _by_typed_name().get(" ".join((name or "").split()).lower())


def by_code(code: str) -> AllergyClass | None:
    """The class with this stable code, else None."""
    return next((c for c in all_classes() if c.code == code), None)


def classes_containing(ingredient: str) -> list[AllergyClass]:
    """The classes an ingredient belongs to ("amoxicillin" -> [Penicillins])."""
    wanted = (ingredient or "").strip().lower()
    return [c for c in all_classes() if wanted in (m.lower() for m in c.members)]
