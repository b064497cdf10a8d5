"""The notify service: escalations and digests routed to the agencies, delivered and acknowledged."""
