"""The day of a visit: status changes, check-in, undo, and the flow board."""
