"""A value against its limit as a text bar with the numbers in words beside it (never colour
alone): the chain's bytes against 4,096, the largest key against 2,048 bits."""

from __future__ import annotations

from rich.text import Text

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
