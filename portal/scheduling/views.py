"""Calendar, booking and front-desk pages (being built: issue 3)."""
