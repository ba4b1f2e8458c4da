"""[sandbox] A stand-in HL7 v2 lab: takes orders over MLLP (ORM^O01, OML^O21), acknowledges
them, and later sends ORU^R01 results to the portal's lab listener; a control API (HTTP,
loopback only) switches its faults and sends any message. README.md says how to run it.

It is the other side of the wire, written apart from the connector: framing and parsing
are python-hl7's (``hl7.mllp`` streams, ``hl7.parse``), not the portal's, so a bug in one
does not hide in the other. It imports nothing of the portal but the test catalog.
"""
