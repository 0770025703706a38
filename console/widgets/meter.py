"""A value against its limit as a text bar with the numbers in words beside it (never colour
alone): the chain's bytes against 4,096, the largest key against 2,048 bits."""

from __future__ import annotations

from rich.text import Text

from server.certcheck.keys import KEY_LIMIT_BITS
from server.certcheck.report import Report

WIDTH = 20


def meter(label: str, value: int | None, limit: int, unit: str) -> Text:
    """``label  ██████░░░░  1,234 of 4,096 bytes (30%)``; over the limit it says so."""
    text = Text(f"{label:<12}")
    if value is None:
        return text.append(f"{'?' * WIDTH}  unknown (limit {limit:,} {unit})", style="dim")
    filled = min(WIDTH, round(WIDTH * value / limit)) if limit else WIDTH
    over = value > limit
    text.append("█" * filled, style="bold red" if over else "green")
    text.append("░" * (WIDTH - filled), style="dim")
    text.append(f"  {value:,} of {limit:,} {unit} ({round(100 * value / limit)}%)"
                + (" OVER THE LIMIT" if over else ""), style="bold red" if over else "")
    return text


def meters(report: Report | None) -> Text:
    """The chain's bytes against its limit and the largest key against 2,048 bits, as bars."""
    if report is None:
        return Text("")
    return Text("\n").join([meter("Chain size", report.chain_bytes, report.chain_limit, "bytes"),
                            meter("Largest key", report.largest_key_bits, KEY_LIMIT_BITS,
                                  "bits")])
