"""Rules on the anchor as the locks see it: the hash they receive for it (HMAC with the site
key), its fingerprint, whether it is an intermediate rather than a root, and whether
activating the set changes it."""

from __future__ import annotations

from collections.abc import Iterator

from .context import Context
from .report import INFO, WARNING, Finding
from .x509util import fingerprint, is_ca, issuer_label, short_name


def identity(ctx: Context, earlier: frozenset[str]) -> Iterator[Finding]:
    if ctx.hash is None:
        yield ctx.finding("hash.unavailable", WARNING, "the hash locks receive is unavailable: "
                          f"{ctx.no_hash_reason} (activating this set needs the site key)",
                          ctx.anchor)
    else:
        yield ctx.finding("hash", INFO, f"locks receive hash {ctx.hash} (HMAC-SHA1 of the "
                          "anchor's DER with the site key)", ctx.anchor)
    yield ctx.finding("anchor.fingerprint", INFO, f"anchor {short_name(ctx.anchor)}, SHA-256 "
                      f"{fingerprint(ctx.set.anchor_der)}", ctx.anchor)


def position(ctx: Context, earlier: frozenset[str]) -> Iterator[Finding]:
    """Anchoring at an intermediate is allowed (PROTOCOL.md), but a forgotten root leads there
    silently: say so."""
    cert = ctx.anchor
    if cert.issuer == cert.subject or not is_ca(cert):
        return
    yield ctx.finding("anchor.intermediate", WARNING, "the anchor is an intermediate CA "
                      f"({short_name(cert)}, issued by {cert.issuer.rfc4514_string()}); the "
                      "locks will trust it as their anchor; add the root "
                      f"{issuer_label(cert)} if you meant to anchor there", cert)


def change(ctx: Context, earlier: frozenset[str]) -> Iterator[Finding]:
    if ctx.active is None:
        return
    if ctx.active.anchor_sha256 == ctx.set.anchor_sha256:
        if ctx.active.name != ctx.set.name:
            yield ctx.finding("anchor.same", INFO, "same anchor as the active set "
                              f"{ctx.active.name}: locks need nothing to accept this set",
                              ctx.anchor)
        return
    yield ctx.finding("anchor.changes", WARNING, "activating this set changes the anchor from "
                      f"{short_name(ctx.active.anchor)} to {short_name(ctx.anchor)}: every lock "
                      "keeps the old anchor and fails TLS until it fetches the new one "
                      "(commissioning or a manual start from the ENGAGE app), a fleet-wide "
                      "change; a server certificate renewed under the same anchor avoids it",
                      ctx.anchor)
