"""Lab results once filed: the prescribers' review inbox (and the shared pool), a result
opened with the patient's banner and previous values, signing off, overdue orders, the chart's
recent results, trends per analyte and critical-unreviewed flag, and the unmatched queue.
Routes on the labs blueprint (``portal.labs.bp``)."""
