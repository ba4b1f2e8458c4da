"""Admins' scheduling set-up: appointment types, rooms, weekly templates, exceptions, closures
(being built: issue 3)."""
