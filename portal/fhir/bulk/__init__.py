"""Bulk data for the FHIR API: asynchronous ``$export`` to NDJSON files (run by the worker)
and the import of ``transaction`` / ``batch`` Bundles. Its routes live on the ``fhir``
blueprint (``portal.fhir.bp``), so the API keeps one URL prefix and one set of error answers.
"""
