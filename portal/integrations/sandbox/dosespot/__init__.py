"""A DoseSpot API v2 stand-in: the same paths, fields, envelopes and status codes as the
contract in DOSESPOT.md, served on its own port so the connector cannot tell it apart.

It is the vendor, not us: nothing here imports the portal's domains. Its own additions
(the control API under ``/_sandbox``, the webhook signature headers, ``?strict=1``) are
marked as such where they are defined.
"""
