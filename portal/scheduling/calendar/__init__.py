"""The calendar: the day and week views, laid out on a time grid."""
