"""DocumentReference: signed notes and their addenda, as text (US Core DocumentReference,
category clinical-note).

Only what was signed leaves the clinic: a draft note is not served at all (it may still
change, and nobody has vouched for it). A signed note is ``final``, or ``amended`` once it
has addenda; each addendum is a DocumentReference of its own (id ``add-<addendum id>``) that
``appends`` to its note. The text is the attachment's ``data`` (base64 of its UTF-8), exactly
as signed; the author and the signer (``authenticator``) are Practitioners, ``date`` is when
it was signed.
"""

from __future__ import annotations

import base64
import re

from sqlalchemy import exists, or_, select, true

from portal.auth.models import User
from portal.charting.models import Encounter, Note, NoteAddendum
from portal.extensions import db
from portal.fhir import params
from portal.fhir.resources import RESOURCE_TYPES
from portal.fhir.resources.base import (
    Source,
    TableSpec,
    concept,
    instant,
    prune,
    reference,
)
from portal.ids import parse_id

LOINC = "http://loinc.org"
CATEGORY_SYSTEM = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"
STATUS_SYSTEM = "http://hl7.org/fhir/document-reference-status"
# What the attachment is, in the words of IHE's format codes (US Core asks for a format).
FORMAT = {
    "system": "urn:oid:1.3.6.1.4.1.19376.1.2.3",
    "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient",
    "display": "mimeType Sufficient",
}
TYPE_OF_KIND = {
    "provider": ("11506-3", "Progress note"),
    "nursing": ("34746-8", "Nurse Note"),
}
KINDS_OF_TYPE = {code: [kind] for kind, (code, _display) in TYPE_OF_KIND.items()}
CLINICAL_NOTE = concept(CATEGORY_SYSTEM, "clinical-note", "Clinical Note")
_ADDENDUM_ID = re.compile(r"^add-(\d{1,10})$")


def _names(user_ids) -> dict[int, str]:
    """Who wrote and signed, by id, in one query for a chunk."""
    ids = {found for found in user_ids if found is not None}
    if not ids:
        return {}
    return dict(db.session.execute(select(User.id, User.full_name).where(User.id.in_(ids))).all())


def _attachment(text: str, signed_at) -> dict:
    return {
        "contentType": "text/plain; charset=utf-8",
        "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
        "creation": instant(signed_at),
    }


def _common_condition(criterion, zone, *, kind_column, signed_column, encounter_column):
    name = criterion.name
    if name == "date":
        return params.date_condition(criterion, signed_column, zone=zone)
    if name == "status":
        match = params.code_in(kind_column, {"current": true()})
        return params.token_condition(criterion, {None: match, STATUS_SYSTEM: match})
    if name == "type":
        return params.token_condition(
            criterion, {LOINC: params.code_in(kind_column, KINDS_OF_TYPE)}
        )
    if name == "category":
        match = params.code_in(kind_column, {"clinical-note": true()})
        return params.token_condition(criterion, {CATEGORY_SYSTEM: match})
    if name == "encounter":
        return params.reference_condition(criterion, encounter_column, "Encounter")
    return None


def _document(
    *,
    fhir_id,
    patient_id,
    kind,
    text,
    signed_at,
    author_id,
    signer_id,
    names,
    encounter_id,
    occurred_at,
    doc_status,
    relates_to=None,
) -> dict:
    code, display = TYPE_OF_KIND.get(kind, TYPE_OF_KIND["provider"])
    return prune(
        {
            "resourceType": "DocumentReference",
            "id": fhir_id,
            "status": "current",
            "docStatus": doc_status,
            "type": concept(LOINC, code, display),
            "category": [CLINICAL_NOTE],
            "subject": reference("Patient", patient_id),
            "date": instant(signed_at),
            "author": [reference("Practitioner", author_id, names.get(author_id))],
            "authenticator": reference("Practitioner", signer_id, names.get(signer_id)),
            "relatesTo": relates_to,
            "content": [{"attachment": _attachment(text, signed_at), "format": FORMAT}],
            "context": {
                "encounter": [reference("Encounter", encounter_id)],
                "period": {"start": instant(occurred_at)},
            },
        }
    )


class SignedNotes(Source):
    name = "n"
    key_columns = (Note.id,)
    patient_column = Note.patient_id
    changed_column = Note.signed_at

    def select(self):
        return (
            select(
                Note.id,
                Note.patient_id,
                Note.encounter_id,
                Note.author_id,
                Note.signed_by_id,
                Note.kind,
                Note.text,
                Note.signed_at,
                Encounter.occurred_at,
            )
            .join(Encounter, Encounter.id == Note.encounter_id)
            .where(Note.signed_at.is_not(None))
        )

    def changed_since(self, since):
        # A note's first addendum makes it "amended".
        return or_(
            Note.signed_at >= since,
            exists().where(NoteAddendum.note_id == Note.id, NoteAddendum.signed_at >= since),
        )

    def id_condition(self, fhir_id):
        found = parse_id(fhir_id)
        return Note.id == found if found is not None and str(found) == fhir_id else None

    def condition(self, criterion, zone):
        found = _common_condition(
            criterion,
            zone,
            kind_column=Note.kind,
            signed_column=Note.signed_at,
            encounter_column=Note.encounter_id,
        )
        return found if found is not None else super().condition(criterion, zone)

    def build(self, rows):
        ids = [row.id for row in rows]
        amended = set(
            db.session.scalars(
                select(NoteAddendum.note_id).where(NoteAddendum.note_id.in_(ids)).distinct()
            )
        )
        names = _names([row.author_id for row in rows] + [row.signed_by_id for row in rows])
        return [
            (
                (row.id,),
                _document(
                    fhir_id=str(row.id),
                    patient_id=row.patient_id,
                    kind=row.kind,
                    text=row.text,
                    signed_at=row.signed_at,
                    author_id=row.author_id,
                    signer_id=row.signed_by_id,
                    names=names,
                    encounter_id=row.encounter_id,
                    occurred_at=row.occurred_at,
                    doc_status="amended" if row.id in amended else "final",
                ),
            )
            for row in rows
        ]


class Addenda(Source):
    name = "ad"
    key_columns = (NoteAddendum.id,)
    patient_column = Note.patient_id
    changed_column = NoteAddendum.signed_at

    def select(self):
        return (
            select(
                NoteAddendum.id,
                NoteAddendum.note_id,
                NoteAddendum.author_id,
                NoteAddendum.text,
                NoteAddendum.signed_at,
                Note.patient_id,
                Note.encounter_id,
                Note.kind,
                Encounter.occurred_at,
            )
            .join(Note, Note.id == NoteAddendum.note_id)
            .join(Encounter, Encounter.id == Note.encounter_id)
        )

    def id_condition(self, fhir_id):
        match = _ADDENDUM_ID.match(fhir_id)
        found = parse_id(match.group(1)) if match else None
        return NoteAddendum.id == found if found is not None else None

    def condition(self, criterion, zone):
        found = _common_condition(
            criterion,
            zone,
            kind_column=Note.kind,
            signed_column=NoteAddendum.signed_at,
            encounter_column=Note.encounter_id,
        )
        return found if found is not None else super().condition(criterion, zone)

    def build(self, rows):
        names = _names([row.author_id for row in rows])
        return [
            (
                (row.id,),
                _document(
                    fhir_id=f"add-{row.id}",
                    patient_id=row.patient_id,
                    kind=row.kind,
                    text=row.text,
                    signed_at=row.signed_at,
                    author_id=row.author_id,
                    # An addendum is signed by its author when written.
                    signer_id=row.author_id,
                    names=names,
                    encounter_id=row.encounter_id,
                    occurred_at=row.occurred_at,
                    doc_status="final",
                    relates_to=[
                        {
                            "code": "appends",
                            "target": reference("DocumentReference", row.note_id),
                        }
                    ],
                ),
            )
            for row in rows
        ]


class DocumentReferenceSpec(TableSpec):
    type = "DocumentReference"
    search_params = {
        "patient": "reference",
        "subject": "reference",
        "date": "date",
        "status": "token",
        "type": "token",
        "category": "token",
        "encounter": "reference",
    }
    includes = {
        "DocumentReference:patient": "Patient",
        "DocumentReference:subject": "Patient",
        "DocumentReference:encounter": "Encounter",
        "DocumentReference:author": "Practitioner",
    }
    sources = (SignedNotes(), Addenda())


RESOURCE_TYPES["DocumentReference"] = DocumentReferenceSpec()
