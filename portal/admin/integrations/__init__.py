"""The integrations console for admins: connectors' settings, health, the message log,
replays and vendors' clinician ids. Its routes are on the admin blueprint, under
/admin/integrations (endpoints ``admin.integration...``)."""
