"""Printing a signed prescription that was not (and will not be) sent electronically: after
a failed transmission, or when the clinic has no e-prescribing connector."""
