"""Vital signs: a patient's sets, an encounter's section, trend charts and sparklines."""
