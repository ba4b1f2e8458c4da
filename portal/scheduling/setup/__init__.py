"""Set-up (admins): appointment types, rooms, weekly templates, time off, closures."""
