"""Immunizations: a patient's vaccines and refusals, an encounter's section, and marking one
entered in error."""
