"""Validation of a certificate set (DESIGN.md "Certificate sets", PROTOCOL.md "TLS limits"): one
module per family of rules, run in report order by :mod:`server.certcheck.rules`."""
