"""The clinic itself: its name, address, phone, time zone and locations."""
