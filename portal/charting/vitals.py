"""Vital signs: entry in the clinic's units, canonical storage, checks, flags (being built)."""


def encounter_vitals_context(encounter) -> dict:
    """What `charting/_encounter_vitals.html` needs to show and take an encounter's vitals."""
    return {}
