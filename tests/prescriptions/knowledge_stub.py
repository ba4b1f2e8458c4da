"""A small drug knowledge for the safety checks' tests, shaped like the ``DrugKnowledge``
protocol of ``portal.terminology.drugs`` (rxdrugs' shipped catalog implements the same
interface). Ingredient codes are real RxNorm ingredient RxCUIs (IN), so the tests can switch
to the shipped knowledge; product ids are marked ``test:`` because they are not RxNorm's.
Allergy groups are the shipped allergy classes (``terminology/allergy_classes.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from portal.terminology import allergy_classes

INGREDIENTS = {
    "amoxicillin": "723",
    "bupropion": "42347",
    "meropenem": "29561",
    "trazodone": "10737",
    "ampicillin": "733",
    "atorvastatin": "83367",
    "carbamazepine": "2002",
    "cephalexin": "2231",
    "citalopram": "2556",
    "clarithromycin": "21212",
    "hydrochlorothiazide": "5487",
    "ibuprofen": "5640",
    "lisinopril": "29046",
    "naproxen": "7258",
    "phenytoin": "8183",
    "pravastatin": "42463",
    "simvastatin": "36567",
    "spironolactone": "9997",
    "sulfamethoxazole": "10180",
    "trimethoprim": "10829",
    "warfarin": "11289",
}
NAMES = {code: name for name, code in INGREDIENTS.items()}

# WHO ATC level 4 (chemical subgroup) of each ingredient: the grain at which two drugs are
# "the same class" for duplicate therapy.
CLASSES = {
    "29046": ("C09AA", "ACE inhibitors, plain"),
    "5487": ("C03AA", "Thiazides, plain"),
    "9997": ("C03DA", "Aldosterone antagonists"),
    "36567": ("C10AA", "HMG CoA reductase inhibitors"),
    "83367": ("C10AA", "HMG CoA reductase inhibitors"),
    "42463": ("C10AA", "HMG CoA reductase inhibitors"),
    "723": ("J01CA", "Penicillins with extended spectrum"),
    "733": ("J01CA", "Penicillins with extended spectrum"),
    "2231": ("J01DB", "First-generation cephalosporins"),
    "5640": ("M01AE", "Propionic acid derivatives"),
    "7258": ("M01AE", "Propionic acid derivatives"),
    "21212": ("J01FA", "Macrolides"),
    "2556": ("N06AB", "Selective serotonin reuptake inhibitors"),
    "11289": ("B01AA", "Vitamin K antagonists"),
    "29561": ("J01DH", "Carbapenems"),
}
# WHO's "Other ..." groups gather drugs that share little (catch_all): no duplicate therapy.
CATCH_ALL = {
    "42347": ("N06AX", "Other antidepressants"),
    "10737": ("N06AX", "Other antidepressants"),
}

CROSS = {
    "ATC:J01C": ("PORTAL:cephalosporins", "ATC:J01DH"),
    "PORTAL:cephalosporins": ("ATC:J01C",),
    "ATC:J01DH": ("ATC:J01C",),
}
# What each crossing pair says, as rxdrugs' knowledge gives it through ``cross_sensitivities``
# (beyond the protocol): a carbapenem crosses a penicillin allergy more weakly.
PAIR_SEVERITY = {frozenset({"ATC:J01C", "PORTAL:cephalosporins"}): "moderate"}
PAIR_SEVERITY[frozenset({"ATC:J01C", "ATC:J01DH"})] = "low"


@dataclass(frozen=True)
class Product:
    rxcui: str
    name: str
    strength: str
    dose_form: str
    route: str
    schedule: int | None
    ingredient_rxcuis: tuple[str, ...]
    ingredient_names: tuple[str, ...]
    ndc: str | None = None
    tty: str = "SCD"


@dataclass(frozen=True)
class TherapeuticClass:
    code: str
    name: str
    system: str = "ATC"
    catch_all: bool = False


@dataclass(frozen=True)
class CrossSensitivity:
    classes: tuple[str, str]
    severity: str
    note: str
    source: str


@dataclass(frozen=True)
class AllergyGroup:
    code: str
    name: str
    note: str | None = None


def product(name: str, *ingredients: str, strength: str = "", form: str = "Oral Tablet") -> Product:
    """A product made of the named ingredients."""
    codes = tuple(INGREDIENTS[i] for i in ingredients)
    return Product(
        rxcui=f"test:{name.lower().replace(' ', '-')}",
        name=name,
        strength=strength,
        dose_form=form,
        route="oral",
        schedule=None,
        ingredient_rxcuis=codes,
        ingredient_names=tuple(ingredients),
    )


LISINOPRIL = product("lisinopril 10 MG Oral Tablet", "lisinopril", strength="10 MG")
LISINOPRIL_HCTZ = product(
    "hydrochlorothiazide 12.5 MG / lisinopril 10 MG Oral Tablet",
    "hydrochlorothiazide",
    "lisinopril",
)
CEPHALEXIN = product("cephalexin 500 MG Oral Capsule", "cephalexin", form="Oral Capsule")
AMPICILLIN = product("ampicillin 500 MG Oral Capsule", "ampicillin", form="Oral Capsule")
IBUPROFEN = product("ibuprofen 400 MG Oral Tablet", "ibuprofen")
SIMVASTATIN = product("simvastatin 20 MG Oral Tablet", "simvastatin")
PRAVASTATIN = product("pravastatin 20 MG Oral Tablet", "pravastatin")
CLARITHROMYCIN = product("clarithromycin 500 MG Oral Tablet", "clarithromycin")
SMX_TMP = product(
    "sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet", "sulfamethoxazole", "trimethoprim"
)
PHENYTOIN = product("phenytoin 100 MG Extended Release Oral Capsule", "phenytoin")
MEROPENEM = product("meropenem 1000 MG Injection", "meropenem", form="Injection")
BUPROPION = product("bupropion 150 MG Extended Release Oral Tablet", "bupropion")
PRODUCTS = {
    p.rxcui: p
    for p in (
        LISINOPRIL,
        LISINOPRIL_HCTZ,
        CEPHALEXIN,
        AMPICILLIN,
        IBUPROFEN,
        SIMVASTATIN,
        PRAVASTATIN,
        CLARITHROMYCIN,
        SMX_TMP,
        PHENYTOIN,
        MEROPENEM,
        BUPROPION,
    )
}


@dataclass
class StubKnowledge:
    """The protocol's six reads over the tables above; ``broken`` makes every read fail, as
    an unreadable catalog would."""

    broken: bool = False
    calls: list = field(default_factory=list)

    def _read(self, what):
        self.calls.append(what)
        if self.broken:
            raise OSError("catalog unreadable")

    def product(self, rxcui):
        self._read("product")
        return PRODUCTS.get(rxcui)

    def search(self, text, limit=20):
        self._read("search")
        return [p for p in PRODUCTS.values() if text.lower() in p.name.lower()][:limit]

    def classes_of(self, ingredient_rxcui):
        self._read("classes_of")
        found = CLASSES.get(ingredient_rxcui)
        if found:
            return [TherapeuticClass(*found)]
        other = CATCH_ALL.get(ingredient_rxcui)
        return [TherapeuticClass(*other, catch_all=True)] if other else []

    def allergy_groups_of(self, ingredient_rxcui):
        self._read("allergy_groups_of")
        name = NAMES.get(ingredient_rxcui)
        if name is None:
            return []
        return [
            AllergyGroup(c.code, c.name, c.note) for c in allergy_classes.classes_containing(name)
        ]

    def cross_sensitive_groups(self, group_code):
        self._read("cross_sensitive_groups")
        groups = []
        for code in CROSS.get(group_code, ()):
            found = allergy_classes.by_code(code)
            groups.append(
                AllergyGroup(found.code, found.name, "Cross-reactivity is low (about 1-2%).")
            )
        return groups

    def cross_sensitivities(self, group_code):
        self._read("cross_sensitivities")
        return [
            CrossSensitivity(
                classes=(group_code, other),
                severity=PAIR_SEVERITY[frozenset({group_code, other})],
                note=f"Test note: {group_code} and {other} cross rarely.",
                source="Test source for the pair.",
            )
            for other in CROSS.get(group_code, ())
        ]

    def ingredient_by_name(self, name):
        self._read("ingredient_by_name")
        return INGREDIENTS.get((name or "").strip().lower())
