"""Calendar feeds: providers' schedules as iCalendar at secret addresses."""
