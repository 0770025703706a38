"""Rules on each certificate from the server certificate to the anchor: its validity dates
against the time of the check, and a SHA-1 signature (reported in the same pass, so each
certificate's findings stay together)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from .context import Context
from .report import ERROR, WARNING, Finding
from .x509util import short_name, signature_hash

EXPIRY_WARNING_DAYS = 30


def dates(ctx: Context, earlier: frozenset[str]) -> Iterator[Finding]:
    for cert in dict.fromkeys(ctx.path + [ctx.anchor]):
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        role = "the anchor" if cert == ctx.anchor else short_name(cert)
        if end < ctx.now:
            yield ctx.finding("cert.expired", ERROR, f"{role} expired on "
                              f"{end:%Y-%m-%d %H:%M} UTC: " + _renew_hint(cert == ctx.anchor),
                              cert)
        elif start > ctx.now:
            yield ctx.finding("cert.not_yet_valid", ERROR, f"{role} is not valid before "
                              f"{start:%Y-%m-%d %H:%M} UTC: check this machine's clock, or wait",
                              cert)
        elif end - ctx.now < dt.timedelta(days=EXPIRY_WARNING_DAYS):
            days = (end - ctx.now).days
            yield ctx.finding("cert.expiring", WARNING, f"{role} expires in {days} days "
                              f"({end:%Y-%m-%d}): " + _renew_hint(cert == ctx.anchor), cert)
        if cert != ctx.anchor and signature_hash(cert) == "sha1":
            yield ctx.finding("cert.sha1", WARNING, f"{short_name(cert)} is signed with SHA-1, "
                              "which TLS clients increasingly refuse: reissue it with SHA-256",
                              cert)


def _renew_hint(anchor: bool) -> str:
    if anchor:
        return ("a new anchor must reach every lock (a fleet-wide change): plan it before this "
                "date")
    return "renew it (engage-console certs renew NAME, or import a new certificate from its CA)"
