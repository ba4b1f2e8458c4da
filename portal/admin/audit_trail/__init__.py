"""The audit trail's report for admins: filters, sorting, keyset pages, the CSV export."""
