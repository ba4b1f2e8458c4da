"""Build a drug catalog from an RxNorm release (the Rich Release Format files) so a clinic can
replace the shipped subset with the whole of NLM's "current prescribable content".

``flask rxnorm-load <folder>`` (portal/cli.py) calls ``load_into_instance``: it reads
RXNCONSO.RRF (names), RXNREL.RRF (relations) and RXNSAT.RRF (attributes) from the folder,
and writes ``drug_products.csv`` and ``drug_ingredients.csv`` in the data files' format into
the instance folder, where ``drugs.knowledge()`` prefers them to the shipped ones. Therapeutic
classes keep coming from the shipped ATC file: it is keyed by ingredient RxCUI, which RxNorm
keeps stable across releases.

What is read (the column layouts are NLM's, in the RxNorm technical documentation):

- products: concepts of term type SCD (clinical drug) and SBD (branded drug), source RXNORM,
  not suppressed; their names are the normalized RxNorm names;
- ingredients: IN concepts reached from a product through has_ingredient (directly or
  through the product's components, consists_of -> SCDC), or through a precise ingredient
  (PIN, form_of its IN); a branded drug takes its clinical drug's ingredients (tradename_of)
  and its brand name from the BN it has_ingredient;
- the dose form from has_dose_form (DF);
- the DEA schedule from the attribute DCSA ("CII" .. "CV"), the NDC from the attribute NDC
  (RxNorm's own normalized 11-digit codes, SAB=RXNORM).

Relations are taken whichever way a row states them (a release carries each with its
inverse): the term types at the two ends say which one is the ingredient, the form or the
brand, so the loader does not depend on reading RXCUI1/RXCUI2 in one direction.
"""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

CONSO_COLUMNS = [
    "RXCUI",
    "LAT",
    "TS",
    "LUI",
    "STT",
    "SUI",
    "ISPREF",
    "RXAUI",
    "SAUI",
    "SCUI",
    "SDUI",
    "SAB",
    "TTY",
    "CODE",
    "STR",
    "SRL",
    "SUPPRESS",
    "CVF",
]
REL_COLUMNS = [
    "RXCUI1",
    "RXAUI1",
    "STYPE1",
    "REL",
    "RXCUI2",
    "RXAUI2",
    "STYPE2",
    "RELA",
    "RUI",
    "SRUI",
    "SAB",
    "SL",
    "DIR",
    "RG",
    "SUPPRESS",
    "CVF",
]
SAT_COLUMNS = [
    "RXCUI",
    "LUI",
    "SUI",
    "RXAUI",
    "STYPE",
    "CODE",
    "ATUI",
    "SATUI",
    "ATN",
    "SAB",
    "ATV",
    "SUPPRESS",
    "CVF",
]

_KEPT_TTYS = {"SCD", "SBD", "IN", "PIN", "DF", "BN", "SCDC"}
_INGREDIENT_RELAS = {"has_ingredient", "ingredient_of"}
_COMPONENT_RELAS = {"consists_of", "constitutes"}
_FORM_RELAS = {"has_dose_form", "dose_form_of"}
_TRADENAME_RELAS = {"tradename_of", "has_tradename"}
_PRECISE_RELAS = {"has_precise_ingredient", "precise_ingredient_of"}
_PIN_RELAS = {"form_of", "has_form"}
_SCHEDULES = {"CII": 2, "CIII": 3, "CIV": 4, "CV": 5}
_STRENGTH = re.compile(r"(\d[\d.,]*\s+[A-Z%][A-Z%/]*(?:/[A-Z]+)?)$")

PRODUCT_COLUMNS = [
    "rxcui",
    "tty",
    "name",
    "brand",
    "strength",
    "dose_form",
    "route",
    "dea_schedule",
    "ingredient_rxcuis",
    "ndc",
    "common",
    "verified_by",
]


class RrfError(ValueError):
    """The folder is not an RxNorm release the loader can read."""


@dataclass(frozen=True)
class LoadReport:
    """What a load wrote, for the command to say."""

    products: int
    ingredients: int
    controlled: int
    skipped: int  # products left out: no ingredient or no dose form could be found
    products_file: Path
    ingredients_file: Path


def read_rrf(path: Path, columns: list[str]) -> Iterator[dict[str, str]]:
    """The rows of one RRF file as dicts: pipe-delimited, one trailing pipe per line."""
    with path.open(encoding="utf-8", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            fields = line.split("|")
            if fields and fields[-1] == "":
                fields = fields[:-1]
            if len(fields) != len(columns):
                raise RrfError(
                    f"{path.name} line {number}: {len(fields)} fields, expected {len(columns)}"
                )
            yield dict(zip(columns, fields, strict=True))


def _find(folder: Path, name: str) -> Path:
    """A release file by name, at any depth (releases unpack into rrf/ subfolders)."""
    direct = folder / name
    if direct.is_file():
        return direct
    for candidate in folder.rglob(name):
        if candidate.is_file():
            return candidate
    raise RrfError(f"{name} not found under {folder}")


def route_of(dose_form: str) -> str:
    """The route a dose form implies, in the words the SIG builder uses."""
    form = dose_form.lower()
    for words, route in (
        (("sublingual",), "sublingual"),
        (("buccal",), "buccal"),
        (("inhal",), "inhalation"),
        (("nasal",), "nasal"),
        (("ophthalmic",), "ophthalmic"),
        (("otic",), "otic"),
        (("rectal", "enema"), "rectal"),
        (("vaginal",), "vaginal"),
        (("transdermal",), "transdermal"),
        (("inject", "syringe", "pen ", "cartridge", "auto-injector"), "injection"),
        (("topical", "cream", "ointment", "lotion", "shampoo", "medicated patch"), "topical"),
    ):
        if any(word in form + " " for word in words):
            return route
    return "oral"


def strength_of(name: str, dose_form: str) -> str:
    """The strengths of an RxNorm product name, per ingredient ("5 MG / 325 MG")."""
    body = re.sub(r"\s*\[[^\]]*\]$", "", name)
    if dose_form and body.endswith(" " + dose_form):
        body = body[: -len(dose_form) - 1]
    parts = []
    for part in body.split(" / "):
        match = _STRENGTH.search(part.strip())
        if match:
            parts.append(match.group(1))
    return " / ".join(parts)


def _schedule(value: str) -> int | None:
    match = re.match(r"C(I{1,3}|IV|V)\b", (value or "").strip().upper())
    return _SCHEDULES.get("C" + match.group(1)) if match else None


def build_catalog(folder: Path) -> tuple[list[dict[str, str]], dict[str, str], int]:
    """(product rows, ingredient RxCUI -> name, products skipped) from a release folder."""
    conso, rel, sat = (
        _find(folder, "RXNCONSO.RRF"),
        _find(folder, "RXNREL.RRF"),
        _find(folder, "RXNSAT.RRF"),
    )
    tty: dict[str, str] = {}
    names: dict[str, str] = {}
    for row in read_rrf(conso, CONSO_COLUMNS):
        if row["SAB"] != "RXNORM" or row["TTY"] not in _KEPT_TTYS:
            continue
        if row["SUPPRESS"] not in ("", "N") or row["LAT"] not in ("", "ENG"):
            continue
        tty[row["RXCUI"]] = row["TTY"]
        names[row["RXCUI"]] = row["STR"]

    linked: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for row in read_rrf(rel, REL_COLUMNS):
        if row["SAB"] != "RXNORM" or not row["RELA"]:
            continue
        one, other = row["RXCUI1"], row["RXCUI2"]
        if one in tty and other in tty:
            linked[one].add((row["RELA"], other))
            linked[other].add((row["RELA"], one))

    schedules: dict[str, int] = {}
    ndcs: dict[str, list[str]] = defaultdict(list)
    for row in read_rrf(sat, SAT_COLUMNS):
        if row["SUPPRESS"] not in ("", "N") or row["RXCUI"] not in tty:
            continue
        if row["ATN"] == "DCSA":
            schedule = _schedule(row["ATV"])
            if schedule:
                schedules[row["RXCUI"]] = schedule
        elif row["ATN"] == "NDC" and row["SAB"] == "RXNORM":
            ndcs[row["RXCUI"]].append(row["ATV"])

    def neighbours(rxcui: str, relas: set[str], wanted_tty: str) -> set[str]:
        return {
            other for rela, other in linked[rxcui] if rela in relas and tty[other] == wanted_tty
        }

    def ingredients_of(scd: str) -> list[str]:
        found = set(neighbours(scd, _INGREDIENT_RELAS, "IN"))
        for component in neighbours(scd, _COMPONENT_RELAS, "SCDC"):
            direct = neighbours(component, _INGREDIENT_RELAS, "IN")
            found |= direct
            if not direct:
                for precise in neighbours(component, _PRECISE_RELAS, "PIN"):
                    found |= neighbours(precise, _PIN_RELAS, "IN")
        # in the order the name lists them (RxNorm names list ingredients alphabetically)
        return sorted(found, key=lambda rxcui: names[rxcui].lower())

    rows: list[dict[str, str]] = []
    ingredients: dict[str, str] = {}
    skipped = 0
    for rxcui, term_type in sorted(tty.items(), key=lambda item: names[item[0]].lower()):
        if term_type not in ("SCD", "SBD"):
            continue
        clinical = rxcui
        brand = ""
        if term_type == "SBD":
            clinical = next(iter(sorted(neighbours(rxcui, _TRADENAME_RELAS, "SCD"))), "")
            brand = next((names[b] for b in sorted(neighbours(rxcui, _INGREDIENT_RELAS, "BN"))), "")
        product_ingredients = ingredients_of(clinical) if clinical else []
        forms = sorted(neighbours(rxcui, _FORM_RELAS, "DF")) or (
            sorted(neighbours(clinical, _FORM_RELAS, "DF")) if clinical else []
        )
        if not product_ingredients or not forms:
            skipped += 1
            continue
        dose_form = names[forms[0]]
        schedule = schedules.get(rxcui) or schedules.get(clinical)
        for ingredient in product_ingredients:
            ingredients[ingredient] = names[ingredient].lower()
        rows.append(
            {
                "rxcui": rxcui,
                "tty": term_type,
                "name": names[rxcui],
                "brand": brand,
                "strength": strength_of(names[rxcui], dose_form),
                "dose_form": dose_form,
                "route": route_of(dose_form),
                "dea_schedule": str(schedule) if schedule else "",
                "ingredient_rxcuis": " ".join(product_ingredients),
                "ndc": sorted(ndcs[rxcui])[0] if ndcs.get(rxcui) else "",
                "common": "",
                "verified_by": "rxnorm-release",
            }
        )
    return rows, ingredients, skipped


def _write_atomically(path: Path, header: str, columns: list[str], rows: list[dict]) -> None:
    """Write beside the target, then rename: a reader never sees half a catalog."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8", newline="") as handle:
        handle.write(header)
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def load_into_instance(folder: Path, instance_path: Path) -> LoadReport:
    """Read the release in ``folder`` and write the catalog into ``instance_path``."""
    folder, instance_path = Path(folder), Path(instance_path)
    rows, ingredients, skipped = build_catalog(folder)
    if not rows:
        raise RrfError(f"no SCD or SBD products with ingredients and a dose form in {folder}")
    instance_path.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"# Built by `flask rxnorm-load` on {stamp} from the RxNorm release files "
        "(RXNCONSO.RRF, RXNREL.RRF, RXNSAT.RRF) of the folder given; source: U.S. National "
        "Library of Medicine, RxNorm. Replaces the shipped catalog while it is here; delete "
        "it (with drug_ingredients.csv) to return to the shipped one.\n"
    )
    ingredients_file = instance_path / "drug_ingredients.csv"
    products_file = instance_path / "drug_products.csv"
    # ingredients first: the products file is what makes knowledge() switch to this catalog
    _write_atomically(
        ingredients_file,
        header,
        ["rxcui", "name", "verified_by"],
        [
            {"rxcui": rxcui, "name": name, "verified_by": "rxnorm-release"}
            for rxcui, name in sorted(ingredients.items(), key=lambda item: item[1])
        ],
    )
    _write_atomically(products_file, header, PRODUCT_COLUMNS, rows)
    return LoadReport(
        products=len(rows),
        ingredients=len(ingredients),
        controlled=sum(1 for row in rows if row["dea_schedule"]),
        skipped=skipped,
        products_file=products_file,
        ingredients_file=ingredients_file,
    )
