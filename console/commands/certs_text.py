"""How the certs verbs print a validation report: findings in openssl-verify style, the chain,
and how the active set is flagged (a forced activation stays flagged)."""

from __future__ import annotations

from server.certstore import CertStore


def active_flag(store: CertStore, name: str) -> str:
    """Empty for a set that is not active; else "active", or for a forced activation the
    store's label ("active with errors (forced on DATE by WHO)")."""
    if store.active_name() != name:
        return ""
    forced = store.forced_activation()
    return forced.label if forced else "active"


def format_report(report, store: CertStore | None = None) -> str:
    """Findings in openssl-verify style: severity, id, depth and subject, then the sentence."""
    flag = active_flag(store, report.set_name) if store is not None else ""
    expiry = "" if report.days_to_expiry is None else f", expires in {report.days_to_expiry} days"
    lines = [f"Set {report.set_name}{f' ({flag})' if flag else ''}: {report.verdict}  (chain "
             f"{report.chain_bytes:,} of {report.chain_limit:,} bytes, largest key "
             f"{report.largest_key_bits} bits{expiry})"]
    for f in report.findings:
        where = f" [depth {f.depth}: {f.subject}]" if f.depth is not None else ""
        lines.append(f"  {f.severity.upper():<8} {f.id}{where}: {f.message}")
    return "\n".join(lines)


def format_chain(report) -> str:
    lines = ["Chain (server first):"]
    for c in report.chain:
        lines.append(f"  {c.depth} {c.role:<12} {c.subject}  {c.bytes:,} bytes  {c.key}  "
                     f"valid {c.not_before[:10]} to {c.not_after[:10]}  {c.signature}")
    return "\n".join(lines)
