"""Outbound networking helpers: the egress (SSRF) guard for user-configured URLs."""
