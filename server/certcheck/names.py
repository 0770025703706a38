"""The host-name rule: the names locks use (the ``host_names`` setting) against the server
certificate's subjectAltName. With no ``host_names`` setting, the names are not compared (an
info finding says so)."""

from __future__ import annotations

from collections.abc import Iterator

from .context import Context
from .report import ERROR, INFO, Finding
from .x509util import san_covers, san_of, san_text, short_name


def host_names(ctx: Context, earlier: frozenset[str]) -> Iterator[Finding]:
    san = san_of(ctx.leaf)
    hosts = list(ctx.settings.host_names or [])
    if san is None:
        yield ctx.finding("host.no_san", ERROR, f"the server certificate {short_name(ctx.leaf)} "
                          "has no subjectAltName: TLS clients check the host name against it; "
                          "reissue it with the names locks use"
                          + (f" ({', '.join(hosts)})" if hosts else ""), ctx.leaf)
        return
    if not hosts:
        yield ctx.finding("host.unchecked", INFO, "no host_names setting: the server "
                          f"certificate's names ({san_text(san)}) were not compared with the "
                          "names locks use")
        return
    missing = [h for h in hosts if not san_covers(san, h)]
    if missing:
        yield ctx.finding("host.mismatch", ERROR, "the server certificate does not cover "
                          f"{', '.join(missing)} (its names: {san_text(san)}): locks calling in "
                          "at that name reject it; reissue it with those names (engage-console "
                          "certs renew) or correct the host_names setting", ctx.leaf)
