"""The waitlist: patients who want an earlier slot, and matches for a freed one."""
