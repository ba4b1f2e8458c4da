"""Stand-ins for the vendors the portal talks to, each its own small app run beside the portal."""
