"""The HL7 v2 lab connector: orders go out over MLLP (TLS optional) and the lab's ACK says
whether it took them; results come back through the labs listener (``portal.labs.listener``).

``connector`` is the class the registry knows (kind ``lab``, name ``hl7lab``), ``mllp`` the
blocking client side of the framing, ``acks`` reading the lab's acknowledgement, ``codes``
the clinic's map from our catalog's LOINC codes to the lab's own test codes.

Nothing here imports a domain of the portal: the labs domain hands over finished message
text and gets plain data back.
"""
