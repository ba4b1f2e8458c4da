"""HL7 v2 for the labs, pure (no database, no sockets): reading results (``oru``), what we
answer (``ack``) and the order we send (``orm``). Built on python-hl7 (``hl7``), which
parses any v2 message with the separators its MSH declares."""
