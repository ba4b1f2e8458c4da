"""Cancelling a prescription the pharmacy holds: a cancel request through the e-prescribing
connector, answered by the pharmacy (cancelled, or cancel denied)."""
