"""Connectors to outside systems (e-prescribing, labs): to come.

The registry of connectors (built-ins plus the entry-point group ``portal.connectors``) and
the transactional outbox will live here; the worker (``portal/worker.py``) will deliver it.
"""
