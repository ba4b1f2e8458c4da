"""Problems, allergies, medications and their history (being built)."""


def encounter_lists_context(encounter) -> dict:
    """What the encounter page's problem and medication sections need."""
    return {}
