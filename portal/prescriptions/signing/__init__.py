"""Signing a prescription composed in the portal (two factors, the checks again, the digest),
putting its send in the outbox, and what the send reports back; routes on the prescriptions
blueprint."""
