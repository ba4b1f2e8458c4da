"""What a renewal stands in for.

A renewal ("Renew", or the approval of a pharmacy's renewal request) is a new prescription
of the same drug, made to continue it: ``Prescription.renews_prescription_id`` names the
prescription it renews. Two things follow, both here so the safety checks and signing agree:

- the safety checks leave the renewed prescription out of the patient's active drugs, and the
  medication-list entry standing for it, or the renewal raises "duplicate therapy" against
  the very drug it continues (every other active drug is still checked, as are allergies);
- signing links the renewal to that medication-list entry instead of listing the drug twice.

Only while the draft is still the renewed product (same RxCUI; uncoded, the same name and
strength): a renewal whose drug was changed is a new therapy beside the old one, checked
against it like any other. And only while the entry still stands for the drug (active, of the
patient, coded as the product or one of its ingredients, or named as it): an entry edited into
another drug is checked like any other. And the entry stays in the checks while it also
stands for another open prescription not renewed since (a prescription renewed twice: the
second renewal duplicates the first; ``safety.draft_context``). When in doubt nothing is
left out: the checks never fail open.
"""

from __future__ import annotations

from dataclasses import dataclass

from portal.charting.models import Medication
from portal.extensions import db
from portal.prescriptions.models import Prescription


@dataclass(frozen=True)
class Renewed:
    """The prescription a draft renews, and the active medication-list entry standing for
    it (None when it has none)."""

    prescription: Prescription
    medication_id: int | None


def _words(text: str | None) -> str:
    return " ".join((text or "").lower().split())


def same_product(draft: Prescription, renewed: Prescription) -> bool:
    """Whether the draft still prescribes the renewed prescription's product."""
    if draft.rxcui or renewed.rxcui:
        return draft.rxcui == renewed.rxcui
    return bool(_words(draft.drug)) and (
        (_words(draft.drug), _words(draft.strength))
        == (_words(renewed.drug), _words(renewed.strength))
    )


def _stands_for(medication: Medication | None, rx: Prescription) -> bool:
    """Whether the medication-list entry linked to ``rx`` is still that drug, as it is now."""
    if medication is None or medication.patient_id != rx.patient_id:
        return False
    if medication.status != "active":
        return False
    ingredients = {code for code in (rx.ingredient_rxcuis or "").split(",") if code}
    code = medication.rxnorm_code
    if code and (code == rx.rxcui or code in ingredients):
        return True
    # The list re-codes an entry from its name when it is edited: the name still says it.
    return bool(_words(medication.drug)) and _words(medication.drug) == _words(rx.drug)


def renewed_by(draft: Prescription) -> Renewed | None:
    """What ``draft`` renews and still stands in for (see the module's docstring), or None."""
    if draft.renews_prescription_id is None:
        return None
    renewed = db.session.get(Prescription, draft.renews_prescription_id)
    if renewed is None or renewed.id == draft.id or renewed.patient_id != draft.patient_id:
        return None
    if not same_product(draft, renewed):
        return None
    medication = (
        db.session.get(Medication, renewed.medication_id) if renewed.medication_id else None
    )
    return Renewed(renewed, medication.id if _stands_for(medication, renewed) else None)
