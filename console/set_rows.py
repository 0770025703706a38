"""The certificate sets as the certificates screen lists them: each set with its validation
report (or why it cannot be read), the cells of its row, and its report in words. Plain
functions over the host, no widgets."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from server.certcheck.report import Report
from server.certcheck.rules import check_set
from server.certstore import CertSet
from server.errors import CertificateError

from .format import expiry_words

SEVERITY_WORDS = {"error": "ERROR", "warning": "WARNING", "info": "INFO"}
SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "dim"}


@dataclass
class SetRow:
    """One set as listed: its report, or why it cannot be read."""

    name: str
    cert_set: CertSet | None
    report: Report | None
    error: str = ""

    @property
    def verdict(self) -> str:
        return self.report.verdict if self.report else "ERROR"


def report_for(host, cert_set: CertSet, now) -> Report:
    active = host.certificates.current()
    return check_set(cert_set, host.site_key, host.settings,
                     active=active.cert_set if active else None, now=now)


def scan_rows(host, now) -> list[SetRow]:
    rows = []
    for name, item in host.store.scan().items():
        if isinstance(item, CertificateError):
            rows.append(SetRow(name, None, None, str(item)))
        else:
            rows.append(SetRow(name, item, report_for(host, item, now)))
    return rows


def row_cells(row: SetRow, active_name: str | None, active_flawed: bool) -> dict[str, str]:
    report = row.report
    demo = " (DEMO)" if row.cert_set is not None and row.cert_set.demo else ""
    return {
        "name": row.name + demo,
        "active": ("ACTIVE WITH ERRORS" if active_flawed else "ACTIVE")
        if row.name == active_name else "",
        "verdict": row.verdict,
        "chain": f"{report.chain_bytes:,} / {report.chain_limit:,}" if report else "-",
        "key": f"{report.largest_key_bits} bits" if report and report.largest_key_bits else "-",
        "expiry": expiry_words(report.days_to_expiry) if report else "-",
    }


def report_text(row: SetRow) -> Text:
    """Verdict, findings and hash of one set, in words (severity never by colour alone)."""
    text = Text()
    if row.report is None:
        text.append(f"{row.name}: ERROR\n", style="bold red")
        text.append(f"This set cannot be read: {row.error}\n")
        return text
    report = row.report
    text.append(f"{row.name}: {report.verdict}\n", style="bold")
    if not report.findings:
        text.append("No findings.\n")
    for finding in report.findings:
        where = f" [depth {finding.depth}]" if finding.depth is not None else ""
        text.append(f"{SEVERITY_WORDS.get(finding.severity, finding.severity.upper()):<8}",
                    style=SEVERITY_STYLE.get(finding.severity, ""))
        text.append(f" {finding.id}{where}: {finding.message}\n")
    text.append(f"\nHash the locks receive (y copies): {report.hash}\n", style="bold")
    text.append(f"Anchor SHA-256: {report.anchor_sha256}\n")
    return text
