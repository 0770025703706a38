"""What the confirmation of an activation or a rollback says changes: the server certificate
(subject, expiry), the anchor (same, or a different fingerprint and what that costs the
locks), the hash, the findings of the set to be served, and the fleet preflight (which known
locks a new anchor cuts off, ``server.fleet``)."""

from __future__ import annotations

from collections import Counter

from rich.text import Text

from server.certcheck.report import Report
from server.certstore import CertSet
from server.fleet import CUT_OFF_EFFECT, Preflight

from ..format import fingerprint


def server_words(cert_set: CertSet | None) -> str:
    if cert_set is None or not cert_set.chain:
        return "none"
    leaf = cert_set.chain[0]
    return f"{leaf.subject.rfc4514_string()}, expires {leaf.not_valid_after_utc:%Y-%m-%d}"


def findings_words(report: Report) -> str:
    counts = Counter(f.severity for f in report.findings)
    return ", ".join(f"{counts[s]} {s}{'s' if counts[s] != 1 else ''}"
                     for s in ("error", "warning", "info"))


def switch_body(verb: str, cert_set: CertSet, report: Report, active, fleet: Preflight) -> Text:
    """The question and what changes; ``active`` is the set served now (or None)."""
    old = active.cert_set if active else None
    body = Text()
    body.append(f"{verb} set {cert_set.name} (verdict {report.verdict})?\n\n", style="bold")
    body.append(f"Active now:  {old.name if old else 'none'}\n")
    body.append("Server certificate\n")
    body.append(f"  now:       {server_words(old)}\n")
    body.append(f"  becomes:   {server_words(cert_set)}\n")
    if old is not None and old.anchor_sha256 == cert_set.anchor_sha256:
        body.append(f"Anchor:      SAME ({fingerprint(cert_set.anchor_sha256)})\n")
    else:
        body.append(f"Anchor:      CHANGES {fingerprint(old.anchor_sha256 if old else '')} -> "
                    f"{fingerprint(cert_set.anchor_sha256)}\n", style="bold")
    body.append(f"Hash:        {active.hash if active else '-'} -> {report.hash}\n")
    body.append(f"Findings:    {findings_words(report)}; chain {report.chain_bytes:,} of "
                f"{report.chain_limit:,} bytes\n")
    body.append("\nLocks\n", style="bold")
    body.append(fleet.text() + "\n")
    return body


def switch_warning(cert_set: CertSet, report: Report, active, fleet: Preflight) -> str:
    warnings = []
    if fleet.blocking:
        warnings.append(f"{len(fleet.cut_off)} of {fleet.locks} known locks will be cut off: "
                        f"{CUT_OFF_EFFECT}")
    elif active is not None and active.cert_set.anchor_sha256 != cert_set.anchor_sha256:
        warnings.append("the anchor changes: locks holding the old anchor will fail TLS with "
                        "this server until they are re-commissioned (fetch the new anchor over "
                        "HTTP)")
    if report.errors:
        warnings.append(f"this set has {len(report.errors)} error(s) and will be served anyway")
    return "; ".join(warnings)
