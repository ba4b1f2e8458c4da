"""The FHIR API clients' pages for admins: register a client, disable or enable it, rotate
its secret. Its routes are on the admin blueprint, under /admin/api-clients (endpoints
``admin....api_client...``); the work is ``portal.fhir.clients``'."""
