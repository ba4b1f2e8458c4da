"""Marking a chart row (a set of vital signs, an immunization) entered in error: the steps
and the confirmation form that vitals and immunizations share."""
