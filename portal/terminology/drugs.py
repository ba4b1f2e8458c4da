"""Drug knowledge: the products a prescriber can pick, their ingredients, therapeutic classes
and allergy groups, behind one interface (``DrugKnowledge``) that the safety checks read.

Why one interface: the checks (prescriptions.safety) must not care where the knowledge comes
from. The shipped implementation reads the data files of ``data/`` (sources in each file's
header); a clinic that loads a full RxNorm release (``flask rxnorm-load``, rxnorm_rrf.py) gets
a replacement catalog in its instance folder, preferred when present; a licensed compendium
can later be another implementation of the same protocol.

Never fails open: when a data file cannot be read or parsed, ``knowledge()`` raises
``KnowledgeUnavailable`` instead of answering with less, so a check that depends on it can
refuse with a message rather than pass a prescription unchecked.
"""

from __future__ import annotations

import bisect
import csv
import heapq
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from flask import current_app, has_app_context

from portal.terminology.allergy_classes import (
    AllergyClass,
    CrossSensitivity,
    all_classes,
    cross_sensitivities,
)

DATA_DIR = Path(__file__).with_name("data")
PRODUCTS_FILE = DATA_DIR / "drug_products.csv"
INGREDIENTS_FILE = DATA_DIR / "drug_ingredients.csv"
CLASSES_FILE = DATA_DIR / "drug_classes.csv"
# What ``flask rxnorm-load`` writes into the instance folder; preferred over the shipped files.
INSTANCE_PRODUCTS = "drug_products.csv"
INSTANCE_INGREDIENTS = "drug_ingredients.csv"

# An allergy group is one of the existing allergy classes (same stable codes the allergy list
# records), so a recorded class allergy and a product's ingredients meet without translation.
AllergyGroup = AllergyClass

# Salt and ester words folded away when a vendor's or a user's ingredient name is matched to an
# RxNorm ingredient ("metformin hydrochloride" -> metformin).
_SALT_WORDS = frozenset(
    [
        "hydrochloride",
        "hcl",
        "sodium",
        "potassium",
        "calcium",
        "magnesium",
        "succinate",
        "tartrate",
        "besylate",
        "maleate",
        "bitartrate",
        "citrate",
        "sulfate",
        "phosphate",
        "mesylate",
        "fumarate",
        "bromide",
        "cypionate",
        "enanthate",
        "hyclate",
        "monohydrate",
        "hydrobromide",
        "acetate",
        "trihydrate",
        "dihydrate",
        "anhydrous",
        "xinafoate",
        "propionate",
        "furoate",
        "dipropionate",
        "valerate",
        "disodium",
        "medoxomil",
        "pamoate",
        "napsylate",
        "lactate",
        "gluconate",
        "dimesylate",
        "bisulfate",
        "estolate",
        "ethylsuccinate",
        "stearate",
        "axetil",
        "proxetil",
        "mononitrate",
        "dinitrate",
        "decanoate",
    ]
)
_TOKEN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
# Forms a prescriber means first when nothing else decides (pills before liquids before others).
_FORM_ORDER = (
    "Oral Tablet",
    "Oral Capsule",
    "Delayed Release Oral Capsule",
    "Delayed Release Oral Tablet",
    "Extended Release Oral Tablet",
    "Extended Release Oral Capsule",
    "Oral Solution",
    "Oral Suspension",
)


# What prescribers type for a release or a form, as the RxNorm names spell it.
_TYPED = {
    "er": "extended",
    "xr": "extended",
    "xl": "extended",
    "sr": "extended",
    "dr": "delayed",
    "ec": "delayed",
    "odt": "disintegrating",
    "tab": "tablet",
    "tabs": "tablet",
    "cap": "capsule",
    "caps": "capsule",
    "soln": "solution",
    "inj": "inject",
}


class KnowledgeUnavailable(RuntimeError):
    """The drug knowledge could not be read: checks that need it must refuse, not pass."""


@dataclass(frozen=True)
class DrugProduct:
    """A prescribable product: an RxNorm clinical (SCD) or branded (SBD) drug."""

    rxcui: str
    name: str
    strength: str
    dose_form: str
    route: str
    schedule: int | None  # DEA schedule 2..5, None when not controlled
    ingredient_rxcuis: tuple[str, ...]
    ingredient_names: tuple[str, ...]
    ndc: str | None
    tty: str  # "SCD" or "SBD"
    brand: str | None = None  # SBD only
    common: bool = False  # a usual primary-care strength: ranks first among equals

    @property
    def controlled(self) -> bool:
        return self.schedule is not None


@dataclass(frozen=True)
class TherapeuticClass:
    """A class an ingredient belongs to; duplicate-therapy checks compare ``code``."""

    code: str  # ATC level 4 ("C09AA")
    name: str  # "ACE inhibitors, plain"
    system: str = "ATC"
    catch_all: bool = False  # an "Other ..." group: members share little, not a duplicate


class DrugKnowledge(Protocol):
    """What the prescribing screens and the safety checks may ask of drug knowledge."""

    def product(self, rxcui: str) -> DrugProduct | None: ...

    def search(self, text: str, limit: int = 20) -> list[DrugProduct]: ...

    def classes_of(self, ingredient_rxcui: str) -> list[TherapeuticClass]: ...

    def allergy_groups_of(self, ingredient_rxcui: str) -> list[AllergyGroup]: ...

    def cross_sensitive_groups(self, group_code: str) -> list[AllergyGroup]: ...

    def ingredient_by_name(self, name: str) -> str | None: ...


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall((text or "").lower())


def _first_number(strength: str) -> float:
    match = re.search(r"\d+(?:\.\d+)?", strength or "")
    return float(match.group()) if match else 0.0


def _data_rows(path: Path) -> list[dict[str, str]]:
    """The CSV rows of a data file whose header lines start with '#'."""
    with path.open(encoding="utf-8", newline="") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    return list(csv.DictReader(lines))


class ShippedDrugKnowledge:
    """The drug knowledge of the data files: read once, then read-only (safe across threads)."""

    def __init__(self, products_file: Path, ingredients_file: Path, classes_file: Path):
        try:
            ingredient_rows = _data_rows(ingredients_file)
            product_rows = _data_rows(products_file)
            class_rows = _data_rows(classes_file)
            self._ingredient_names = {row["rxcui"]: row["name"] for row in ingredient_rows}
            self._ingredient_by_name = {
                row["name"].lower(): row["rxcui"] for row in ingredient_rows
            }
            self._products = {}
            for row in product_rows:
                product = self._product_of(row)
                self._products[product.rxcui] = product
            self._classes: dict[str, list[TherapeuticClass]] = {}
            for row in class_rows:
                found = self._classes.setdefault(row["ingredient_rxcui"], [])
                therapeutic_class = TherapeuticClass(
                    code=row["class_code"],
                    name=row["class_name"],
                    catch_all=row.get("catch_all") == "1",
                )
                if therapeutic_class not in found:
                    found.append(therapeutic_class)
            self._allergy_classes = all_classes()
            self._cross = cross_sensitivities()
        except (OSError, UnicodeDecodeError, KeyError, ValueError, csv.Error) as error:
            raise KnowledgeUnavailable(f"drug knowledge could not be read: {error}") from error
        if not self._products or not self._ingredient_names:
            raise KnowledgeUnavailable("drug knowledge is empty: no products or ingredients")
        self._build_search_index()

    def _product_of(self, row: dict[str, str]) -> DrugProduct:
        ingredients = tuple(row["ingredient_rxcuis"].split())
        unknown = [rxcui for rxcui in ingredients if rxcui not in self._ingredient_names]
        if not ingredients or unknown:
            # A product whose ingredients we cannot name cannot be checked: refuse the file.
            raise ValueError(f"product {row['rxcui']} has unknown ingredients {unknown}")
        schedule = row.get("dea_schedule") or ""
        return DrugProduct(
            rxcui=row["rxcui"],
            name=row["name"],
            strength=row["strength"],
            dose_form=row["dose_form"],
            route=row["route"],
            schedule=int(schedule) if schedule else None,
            ingredient_rxcuis=ingredients,
            ingredient_names=tuple(self._ingredient_names[rxcui] for rxcui in ingredients),
            ndc=row.get("ndc") or None,
            tty=row["tty"],
            brand=row.get("brand") or None,
            common=row.get("common") == "1",
        )

    def _build_search_index(self) -> None:
        """Search structures built once, so a query costs set operations, not a loop in
        Python over every matching product (a full RxNorm load holds tens of thousands, and
        the first keystroke matches thousands of them).

        Each product gets an integer id equal to its place in the order a prescriber wants
        when nothing in the query decides: single-ingredient products first, common strengths,
        clinical before branded, tablets and capsules before other forms, lower strengths
        first. A query then only sorts its matches into three bands (see ``search``), and
        within a band the smallest ids are the best: ``heapq.nsmallest`` on a set of ints.
        """

        def static_order(product: DrugProduct) -> tuple:
            form = (
                _FORM_ORDER.index(product.dose_form)
                if product.dose_form in _FORM_ORDER
                else len(_FORM_ORDER)
            )
            return (
                len(product.ingredient_rxcuis) > 1,
                not product.common,
                product.tty != "SCD",
                form,
                _first_number(product.strength),
                product.name.lower(),
            )

        self._ranked = sorted(self._products.values(), key=static_order)
        postings: dict[str, set[int]] = {}
        alone: dict[str, set[int]] = {}  # ingredient or brand name -> its single-ingredient ids
        within: dict[str, set[int]] = {}  # ingredient name -> every product id that has it
        for number, product in enumerate(self._ranked):
            words = _tokens(product.name) + _tokens(product.brand or "")
            for ingredient in product.ingredient_names:
                words += _tokens(ingredient)
                within.setdefault(ingredient.lower(), set()).add(number)
            for word in words:
                postings.setdefault(word, set()).add(number)
            if len(product.ingredient_names) == 1:
                alone.setdefault(product.ingredient_names[0].lower(), set()).add(number)
            if product.brand:
                alone.setdefault(product.brand.lower(), set()).add(number)
        self._tokens_sorted = sorted(postings)
        self._postings = [postings[token] for token in self._tokens_sorted]
        # The first keystroke ("a") unions hundreds of postings: do those unions once here.
        self._first_letter = {
            letter: frozenset(self._starting_with(letter, self._tokens_sorted, self._postings))
            for letter in {token[0] for token in self._tokens_sorted}
        }
        self._alone_names = sorted(alone)
        self._alone = [alone[name] for name in self._alone_names]
        self._within_names = sorted(within)
        self._within = [within[name] for name in self._within_names]

    @staticmethod
    def _starting_with(prefix: str, names: list[str], sets: list[set[int]]) -> set[int]:
        """The union of the sets whose (sorted) names start with ``prefix``."""
        start = bisect.bisect_left(names, prefix)
        end = bisect.bisect_left(names, prefix + "\uffff", lo=start)
        return set().union(*sets[start:end])

    # -- the DrugKnowledge protocol -------------------------------------------------------

    def product(self, rxcui: str) -> DrugProduct | None:
        return self._products.get((rxcui or "").strip())

    def search(self, text: str, limit: int = 20) -> list[DrugProduct]:
        """Products with a word starting with every word typed ("lis 10", "amox susp"),
        ranked in three bands by the first word: the ingredient alone or a brand name
        (amoxicillin, Prinivil), then combinations with that ingredient (amoxicillin /
        clavulanate), then products matched only by other words; within a band, the order
        of ``_build_search_index`` (common strengths, clinical drugs, pills, low strengths)."""
        words = [_TYPED.get(word, word) for word in _tokens(text)]
        if not words or limit <= 0:
            return []
        matched: set[int] | None = None
        for word in sorted(set(words), key=len, reverse=True):  # the rarest word first
            found = self._first_letter.get(word) if len(word) == 1 else None
            if found is None:
                found = self._starting_with(word, self._tokens_sorted, self._postings)
            matched = found if matched is None else matched & found
            if not matched:
                return []
        first = words[0]
        alone = matched & self._starting_with(first, self._alone_names, self._alone)
        combined = (matched & self._starting_with(first, self._within_names, self._within)) - alone
        rest = matched - alone - combined
        chosen: list[int] = []
        for band in (alone, combined, rest):
            if len(chosen) >= limit:
                break
            chosen += heapq.nsmallest(limit - len(chosen), band)
        return [self._ranked[number] for number in chosen]

    def classes_of(self, ingredient_rxcui: str) -> list[TherapeuticClass]:
        return list(self._classes.get(ingredient_rxcui, ()))

    def allergy_groups_of(self, ingredient_rxcui: str) -> list[AllergyGroup]:
        """The allergy classes the ingredient belongs to: by its RxCUI where the class lists
        one, else by its name (a member without a verified RxCUI still matches)."""
        name = self._ingredient_names.get(ingredient_rxcui, "").lower()
        groups = []
        for allergy_class in self._allergy_classes:
            rxcuis = {rxcui for _, rxcui in allergy_class.member_rxcuis}
            names = {member.lower() for member in allergy_class.members}
            if ingredient_rxcui in rxcuis or (name and name in names):
                groups.append(allergy_class)
        return groups

    def cross_sensitive_groups(self, group_code: str) -> list[AllergyGroup]:
        by_code = {c.code: c for c in self._allergy_classes}
        return [
            by_code[pair.classes[1] if pair.classes[0] == group_code else pair.classes[0]]
            for pair in self.cross_sensitivities(group_code)
        ]

    def cross_sensitivities(self, group_code: str) -> list[CrossSensitivity]:
        """The cross-sensitivity pairs that involve ``group_code`` (with severity, note and
        source, for the alert's evidence)."""
        return [pair for pair in self._cross if group_code in pair.classes]

    def ingredient_by_name(self, name: str) -> str | None:
        """The RxNorm ingredient a name means ("Metformin HCl" -> 6809), salts folded; a
        vendor's product name gives its first ingredient ("amoxicillin 500 MG Oral Capsule"
        -> 723). None when it is not a known ingredient (the caller then says checks are
        limited)."""
        words = _tokens(name) if name else []
        while words and (words[0][0].isdigit() or words[0] in ("hr", "ml")):
            words = words[1:]  # "24 HR metformin ...", "0.3 ML enoxaparin ..."
        strength = next((n for n, word in enumerate(words) if word[0].isdigit()), len(words))
        words = words[:strength]
        while words:
            found = self._ingredient_by_name.get(" ".join(words))
            if found:
                return found
            if words[-1] not in _SALT_WORDS:
                return None
            words = words[:-1]
        return None

    # -- beyond the protocol: helpers for screens and tests ---------------------------------

    def ingredient_name(self, rxcui: str) -> str | None:
        return self._ingredient_names.get(rxcui)

    def products(self) -> list[DrugProduct]:
        return list(self._products.values())

    def ingredients_in_class(self, class_code: str) -> list[str]:
        """The RxCUIs of the ingredients of a therapeutic class ("C09AA" -> lisinopril, ...)."""
        return sorted(
            rxcui
            for rxcui, classes in self._classes.items()
            if any(c.code == class_code for c in classes)
        )

    def ingredients(self) -> dict[str, str]:
        """Every known ingredient: RxCUI -> name."""
        return dict(self._ingredient_names)


_cache: dict[tuple[Path, Path, Path], ShippedDrugKnowledge] = {}
_lock = threading.Lock()


def _files() -> tuple[Path, Path, Path]:
    """The files to read: the instance folder's RxNorm load when there is one, else the
    shipped ones (classes always ship: they are keyed by ingredient RxCUI, stable across
    RxNorm releases)."""
    products, ingredients = PRODUCTS_FILE, INGREDIENTS_FILE
    if has_app_context():
        instance = Path(current_app.instance_path)
        if (instance / INSTANCE_PRODUCTS).exists() and (instance / INSTANCE_INGREDIENTS).exists():
            products, ingredients = instance / INSTANCE_PRODUCTS, instance / INSTANCE_INGREDIENTS
    return products, ingredients, CLASSES_FILE


def knowledge() -> ShippedDrugKnowledge:
    """The drug knowledge, loaded once per set of files and shared (it is read-only).

    Raises ``KnowledgeUnavailable`` when the files cannot be read; a later call tries again
    (nothing broken is cached)."""
    files = _files()
    found = _cache.get(files)
    if found is not None:
        return found
    with _lock:
        found = _cache.get(files)
        if found is None:
            found = ShippedDrugKnowledge(*files)
            _cache[files] = found
        return found


def forget_loaded() -> None:
    """Drop what was loaded (after ``rxnorm-load`` writes a new catalog, and in tests)."""
    with _lock:
        _cache.clear()
