"""Audit trail: events with keyed MACs, the sealer's chain, checkpoints, verification, and the
report's queries. Its pages are the admins' (``portal/admin/audit_trail``)."""
