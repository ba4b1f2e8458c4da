"""Drug-drug interaction rules shipped with the product, keyed by RxNorm ingredient (RxCUI).

Source: ``data/drug_interactions.json``, whose ``about`` says where each list comes from: the
ONC high-priority interactions (Phansalkar et al., 2012: interruptive, severity "high"), the
ONC list of interactions that should be non-interruptive (Phansalkar et al., 2013: severity
"moderate" or "low"), and the project's own additions, each rule naming its source and row.

A rule has two sides; a side is a named list of ingredients, or a group (a drug class) defined
once in the file's ``groups``. Both carry ingredient RxCUIs, so the file stands alone and
does not depend on how any drug catalog classifies drugs. ``interactions_between`` answers in
either order: which rules join an ingredient of one drug to an ingredient of the other.

The file is validated when it is loaded (every RxCUI a string of digits, every group a rule
names defined, known severities, unique ids): a file that does not pass raises
``InteractionDataError``, and the prescription checks turn that into a blocking alert rather
than check nothing (they never fail open).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA_FILE = Path(__file__).with_name("data") / "drug_interactions.json"

# Highest first. "high" interrupts: the prescriber gives an override reason to sign; the
# others are shown with the prescription and need nothing (the 2013 list exists to keep them
# from interrupting).
SEVERITIES = ("high", "moderate", "low")


class InteractionDataError(RuntimeError):
    """The interaction rules cannot be read or do not pass validation."""


@dataclass(frozen=True)
class Ingredient:
    name: str
    rxcui: str


@dataclass(frozen=True)
class Side:
    """One side of a rule: a class (``group`` is its id in the file) or named ingredients."""

    name: str
    group: str | None
    members: tuple[Ingredient, ...]

    @property
    def rxcuis(self) -> frozenset[str]:
        return frozenset(member.rxcui for member in self.members)

    def name_of(self, rxcui: str) -> str:
        return next((m.name for m in self.members if m.rxcui == rxcui), rxcui)


@dataclass(frozen=True)
class InteractionRule:
    id: str
    a: Side
    b: Side
    severity: str
    mechanism: str
    management: str
    source: str


@dataclass(frozen=True)
class Interaction:
    """A rule found between two drugs: ``ingredient`` is the first drug's ingredient that
    matched, ``other_ingredient`` the second's (RxCUIs), with the rule's names for them."""

    rule: InteractionRule
    ingredient: str
    ingredient_name: str
    other_ingredient: str
    other_ingredient_name: str


@dataclass(frozen=True)
class InteractionRules:
    """The loaded rules and an index from each ingredient to the rule sides it is on."""

    version: str
    rules: tuple[InteractionRule, ...]
    index: dict[str, tuple[tuple[InteractionRule, str], ...]]

    def between(
        self, ingredients_a: Iterable[str], ingredients_b: Iterable[str]
    ) -> list[Interaction]:
        """Every rule joining an ingredient of A to an ingredient of B, in either direction,
        once per (rule, pair of ingredients); an ingredient never interacts with itself."""
        wanted_b = {str(code) for code in ingredients_b}
        found: dict[tuple[str, str, str], Interaction] = {}
        for code_a in dict.fromkeys(str(code) for code in ingredients_a):
            for rule, side in self.index.get(code_a, ()):
                mine, other = (rule.a, rule.b) if side == "a" else (rule.b, rule.a)
                for code_b in sorted(other.rxcuis & wanted_b):
                    key = (rule.id, code_a, code_b)
                    if code_b == code_a or key in found:
                        continue
                    found[key] = Interaction(
                        rule=rule,
                        ingredient=code_a,
                        ingredient_name=mine.name_of(code_a),
                        other_ingredient=code_b,
                        other_ingredient_name=other.name_of(code_b),
                    )
        return sorted(found.values(), key=lambda i: (SEVERITIES.index(i.rule.severity), i.rule.id))


def _ingredients(entries, where: str) -> tuple[Ingredient, ...]:
    if not isinstance(entries, list) or not entries:
        raise InteractionDataError(f"{where}: no ingredients")
    members = []
    for entry in entries:
        name, rxcui = entry.get("name"), entry.get("rxcui")
        if not isinstance(name, str) or not name.strip():
            raise InteractionDataError(f"{where}: an ingredient without a name")
        # A code is a string of digits: a number would lose nothing today, but a code read
        # as a number elsewhere (leading zeros, JSON floats) is how codes silently change.
        if not isinstance(rxcui, str) or not rxcui.isdigit():
            raise InteractionDataError(f"{where}: {name!r} has no RxCUI of digits")
        members.append(Ingredient(name=name, rxcui=rxcui))
    return tuple(members)


def _side(entry, groups: dict[str, Side], where: str) -> Side:
    if not isinstance(entry, dict):
        raise InteractionDataError(f"{where}: not an object")
    if "group" in entry:
        group = groups.get(entry["group"])
        if group is None:
            raise InteractionDataError(f"{where}: group {entry['group']!r} is not defined")
        return group
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InteractionDataError(f"{where}: no name")
    return Side(name=name, group=None, members=_ingredients(entry.get("ingredients"), where))


def parse(data: dict) -> InteractionRules:
    """Validate the file's content and build the rules (``InteractionDataError`` if it does
    not pass)."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise InteractionDataError("no rules")
    groups = {
        group_id: Side(
            name=str(entry.get("name") or group_id),
            group=group_id,
            members=_ingredients(entry.get("members"), f"group {group_id}"),
        )
        for group_id, entry in (data.get("groups") or {}).items()
    }
    rules: list[InteractionRule] = []
    seen: set[str] = set()
    for entry in data["rules"]:
        rule_id = entry.get("id")
        if not isinstance(rule_id, str) or not rule_id or rule_id in seen:
            raise InteractionDataError(f"rule id {rule_id!r} missing or repeated")
        seen.add(rule_id)
        if entry.get("severity") not in SEVERITIES:
            raise InteractionDataError(
                f"rule {rule_id}: unknown severity {entry.get('severity')!r}"
            )
        for field in ("mechanism", "management", "source"):
            if not isinstance(entry.get(field), str) or not entry[field].strip():
                raise InteractionDataError(f"rule {rule_id}: no {field}")
        rules.append(
            InteractionRule(
                id=rule_id,
                a=_side(entry.get("a"), groups, f"rule {rule_id} side a"),
                b=_side(entry.get("b"), groups, f"rule {rule_id} side b"),
                severity=entry["severity"],
                mechanism=entry["mechanism"],
                management=entry["management"],
                source=entry["source"],
            )
        )
    index: dict[str, list[tuple[InteractionRule, str]]] = {}
    for rule in rules:
        for label, side in (("a", rule.a), ("b", rule.b)):
            for code in side.rxcuis:
                index.setdefault(code, []).append((rule, label))
    return InteractionRules(
        version=str(data.get("version") or ""),
        rules=tuple(rules),
        index={code: tuple(entries) for code, entries in index.items()},
    )


def load(path: Path = DATA_FILE) -> InteractionRules:
    """Read and validate a rules file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InteractionDataError(
            f"cannot read {Path(path).name}: {type(error).__name__}"
        ) from error
    return parse(data)


@cache
def shipped_rules() -> InteractionRules:
    """The shipped rules, read once per process (a failure is not cached: the next call
    tries again)."""
    return load(DATA_FILE)


def interactions_between(
    ingredients_a: Iterable[str], ingredients_b: Iterable[str]
) -> list[Interaction]:
    """The shipped rules joining an ingredient RxCUI of A to one of B, most severe first."""
    return shipped_rules().between(ingredients_a, ingredients_b)
