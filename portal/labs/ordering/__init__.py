"""Ordering labs: the prescriber's draft, the catalog search, signing (the send in the
outbox), cancelling, the requisition PDF, and delivering the order to the lab (the worker's
side, ``delivery``). Its routes are on the labs blueprint (``views``)."""
