"""Diagnoses in words a patient uses, for what the patient takes home (the after-visit
summary). ICD-10-CM's titles are written for coders ("Essential (primary) hypertension");
a patient reads "High blood pressure".

The common primary-care diagnoses have a plain name here, matched by the longest code prefix
(``E11`` covers every type 2 diabetes code). Others fall back to the official title without
its coder's qualifiers in parentheses or brackets, which is still better than a code.
"""

from __future__ import annotations

import re

# Code prefix (without the dot) -> what the patient reads.
PLAIN_NAMES: dict[str, str] = {
    "I10": "High blood pressure",
    "I11": "Heart disease caused by high blood pressure",
    "I25": "Coronary artery disease (narrowed heart arteries)",
    "I48": "Irregular heartbeat (atrial fibrillation)",
    "I50": "Heart failure",
    "E11": "Type 2 diabetes",
    "E10": "Type 1 diabetes",
    "R7303": "Prediabetes",
    "E78": "High cholesterol or other blood fats",
    "E039": "Underactive thyroid (hypothyroidism)",
    "E66": "Overweight or obesity",
    "E559": "Low vitamin D",
    "D649": "Anemia (low red blood cells)",
    "D50": "Anemia from low iron",
    "J00": "Common cold",
    "J069": "Cold or other infection of the nose and throat",
    "J02": "Sore throat",
    "J020": "Strep throat",
    "J01": "Sinus infection",
    "J20": "Chest cold (acute bronchitis)",
    "J18": "Pneumonia (lung infection)",
    "J45": "Asthma",
    "J44": "COPD (long-term lung disease)",
    "J30": "Hay fever or other nasal allergy",
    "R05": "Cough",
    "R509": "Fever",
    "R51": "Headache",
    "G43": "Migraine",
    "H66": "Middle ear infection",
    "H1010": "Pink eye from allergy",
    "H10": "Pink eye (conjunctivitis)",
    "N390": "Urinary tract infection",
    "N18": "Chronic kidney disease",
    "K21": "Acid reflux (GERD)",
    "K5900": "Constipation",
    "A09": "Stomach or bowel infection (gastroenteritis)",
    "K529": "Inflammation of the stomach or bowel",
    "M545": "Low back pain",
    "M542": "Neck pain",
    "M255": "Joint pain",
    "M17": "Arthritis of the knee",
    "M19": "Arthritis",
    "L03": "Skin infection (cellulitis)",
    "L20": "Eczema",
    "L70": "Acne",
    "B349": "Viral infection",
    "F32": "Depression",
    "F33": "Depression (recurring)",
    "F411": "Anxiety (generalized anxiety disorder)",
    "F41": "Anxiety",
    "G47": "Sleep problem",
    "F17": "Tobacco use (nicotine dependence)",
    "Z00": "Routine check-up",
    "Z23": "Vaccination",
    "Z71": "Counselling",
}

_QUALIFIERS = re.compile(r"\s*[(\[][^)\]]*[)\]]")


def plain_diagnosis(code: str | None, title: str | None) -> str:
    """What a patient reads for a diagnosis: its plain name, else its title without the
    coder's qualifiers, else the code."""
    key = (code or "").replace(".", "").upper()
    for length in range(len(key), 2, -1):
        name = PLAIN_NAMES.get(key[:length])
        if name:
            return name
    cleaned = _QUALIFIERS.sub("", title or "").strip(" ,")
    if cleaned:
        return cleaned[0].upper() + cleaned[1:]
    return code or ""
