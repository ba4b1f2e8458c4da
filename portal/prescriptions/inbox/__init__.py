"""The prescriber's Rx inbox (issue 11, section 6): pharmacies' renewal and change requests
pulled from the e-prescribing vendor, failed transmissions and cancel responses, each answered
or acknowledged from one page."""
