"""Connectors to outside systems (e-prescribing, labs).

Empty for now: later issues add the registry of connectors (built-ins plus the entry-point
group ``portal.connectors``), the transactional outbox and the worker.
"""
