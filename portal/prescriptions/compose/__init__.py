"""Composing a prescription in the portal's own screens: a server-side draft under the
patient's banner, drug search (the vendor's when a connector is enabled, else the shipped
catalog), the SIG builder, the details, the pharmacy, the safety panel, favourites and
renewals. Signing and sending are the signing step's (``prescriptions.sign``)."""
