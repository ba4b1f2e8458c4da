"""Availability: when providers work, and "find next available" open slots."""
