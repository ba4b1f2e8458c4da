"""Booking: one appointment or a recurring series, rescheduling, cancelling."""
