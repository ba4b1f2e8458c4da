"""The DoseSpot API v2 connector (the contract is DOSESPOT.md): the HTTP client, the single
sign-on launch, the patient payload and its data rules, the status tables, the webhook checks,
and the connector class that ties them together.

Nothing here imports a domain of the portal: it is handed plain dicts and answers plain data.
"""
