"""The chart summary (a patient's front page) and the visit summary of an encounter (print
view and PDF)."""
