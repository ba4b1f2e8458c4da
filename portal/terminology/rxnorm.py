"""RxNorm drug ingredients: common ingredients with their concept ids (RxCUI, term type IN).

Source: the U.S. National Library of Medicine's RxNorm (ingredient concepts, TTY=IN), copied
into a small, fixed table: enough to code the allergies and medications a clinic records
most often (antibiotics, analgesics, anticonvulsants ...). Forms suggest these names as the
user types; a name typed exactly as listed is coded with its RxCUI, any other is not.
"""

from __future__ import annotations

DRUG_INGREDIENTS: dict[str, str] = {
    "acetaminophen": "161",
    "allopurinol": "519",
    "amoxicillin": "723",
    "ampicillin": "733",
    "aspirin": "1191",
    "atorvastatin": "83367",
    "azithromycin": "18631",
    "carbamazepine": "2002",
    "cefazolin": "2180",
    "ceftriaxone": "2193",
    "cephalexin": "2231",
    "celecoxib": "140587",
    "chlorhexidine": "2358",
    "ciprofloxacin": "2551",
    "clarithromycin": "21212",
    "clindamycin": "2582",
    "codeine": "2670",
    "diclofenac": "3355",
    "doxycycline": "3640",
    "erythromycin": "4053",
    "fentanyl": "4337",
    "heparin": "5224",
    "hydrocodone": "5489",
    "hydromorphone": "3423",
    "ibuprofen": "5640",
    "ketorolac": "35827",
    "lamotrigine": "28439",
    "levofloxacin": "82122",
    "lidocaine": "6387",
    "lisinopril": "29046",
    "meperidine": "6754",
    "metformin": "6809",
    "metronidazole": "6922",
    "morphine": "7052",
    "naproxen": "7258",
    "nitrofurantoin": "7454",
    "ondansetron": "26225",
    "oxycodone": "7804",
    "penicillin G": "7980",
    "penicillin V": "7984",
    "phenytoin": "8183",
    "promethazine": "8745",
    "simvastatin": "36567",
    "sulfamethoxazole": "10180",
    "tetracycline": "10395",
    "tramadol": "10689",
    "trimethoprim": "10829",
    "vancomycin": "11124",
    "warfarin": "11289",
}

DRUG_INGREDIENT_NAMES = sorted(DRUG_INGREDIENTS, key=str.lower)  # as the forms suggest them
_BY_LOWER = {name.lower(): (name, rxcui) for name, rxcui in DRUG_INGREDIENTS.items()}


def coded_ingredient(name: str) -> tuple[str, str] | None:
    """(the listed name, its RxCUI) when ``name`` is one of the table's ingredients."""
    return _BY_LOWER.get((name or "").strip().lower())
