"""The registry of validation rules, in report order, and the two ways to run them: the full
report for a set and the activation gate.

Each rule takes the shared :class:`~server.certcheck.context.Context` and the ids found by the
rules before it (path validation stays quiet when an earlier finding explains a broken path)
and yields its findings. The report lists them by severity; within one severity, in the order
the rules run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable

from cryptography import x509

from . import anchor, chain, keys, names, validity
from .context import Context
from .report import ERROR, INFO, WARNING, CertInfo, Finding, Report
from .x509util import der, key_bits, key_label, signature_hash

Rule = Callable[[Context, frozenset[str]], Iterable[Finding]]
RULES: tuple[Rule, ...] = (
    keys.key_file, anchor.identity, anchor.position, chain.size, keys.sizes, keys.match,
    chain.order, chain.links, chain.ca_flags, validity.dates, names.host_names, chain.path_validation, anchor.change,
)
_SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}


def check_set(cert_set, site_key, settings, active=None, now: dt.datetime | None = None) -> Report:
    """Every finding for ``cert_set`` (a certstore.CertSet); ``active`` is the active CertSet
    to compare anchors with. ``site_key`` is a SiteKey, or the SiteKeyError saying why there is
    none (the report then has no hash and a ``hash.unavailable`` warning instead). Fast: runs
    as the console's cursor moves."""
    ctx = Context(cert_set, site_key, settings, active, now or dt.datetime.now(dt.timezone.utc))
    findings: list[Finding] = []
    for rule in RULES:
        findings += rule(ctx, frozenset(f.id for f in findings))
    findings.sort(key=lambda f: _SEVERITY_ORDER[f.severity])
    return _report(ctx, findings)


def gate(site_key, settings):
    """The activation gate for :class:`server.activation.Certificates`: the error sentences
    that forbid activating a set."""
    def errors(cert_set) -> list[str]:
        return [f"{f.id}: {f.message}" for f in check_set(cert_set, site_key, settings).errors]
    return errors


def _report(ctx: Context, findings: list[Finding]) -> Report:
    path = ctx.path + ([] if ctx.reached else [ctx.anchor])
    infos = [_info(c, i, "anchor" if c == ctx.anchor else "server" if i == 0
                   else "intermediate") for i, c in enumerate(path)]
    infos += [_info(c, len(path) + i, "extra") for i, c in enumerate(ctx.extras)]
    certs = ctx.all_certs()
    ends = [c.not_valid_after_utc for c in dict.fromkeys(ctx.path + [ctx.anchor])]
    return Report(
        set_name=ctx.set.name, findings=findings,
        hash=ctx.hash, anchor_sha256=ctx.set.anchor_sha256,
        chain_bytes=ctx.chain_bytes(),
        largest_key_bits=max(key_bits(c.public_key()) for c in certs),
        days_to_expiry=(min(ends) - ctx.now).days, chain=infos)


def _info(cert: x509.Certificate, depth: int, role: str) -> CertInfo:
    data = der(cert)
    return CertInfo(depth=depth, role=role, subject=cert.subject.rfc4514_string(),
                    issuer=cert.issuer.rfc4514_string(), bytes=len(data),
                    not_after=cert.not_valid_after_utc.isoformat(),
                    key=key_label(cert.public_key()), sha256=hashlib.sha256(data).hexdigest(),
                    not_before=cert.not_valid_before_utc.isoformat(),
                    signature=signature_hash(cert))
