"""Encounters: starting a visit from an appointment or ad hoc, and the encounter page, which
composes the sections of the other charting topics (notes, vitals, immunizations, lists)."""
