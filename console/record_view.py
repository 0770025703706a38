"""The devices screen's record pane: one lock's record as a structured view (identity,
health, network, firmware and battery, anchor trust with proof or inference, TLS failures,
the latest audits and alerts as tables) or as raw JSON. Everything wraps, so nothing is cut
at the pane's edge; built off the UI thread."""

from __future__ import annotations

import json
from pathlib import Path

from rich import box
from rich.console import Group, RenderableType
from rich.highlighter import JSONHighlighter
from rich.table import Table
from rich.text import Text

from .fleet_rows import Lock, state_text
from .format import due_in, fingerprint, relative

LIST_ITEMS_SHOWN = 5          # a long list in a record (3,000 users) shows its first items...
RECORD_CHARS_SHOWN = 20_000   # ...and the record view stops here: the file holds the rest
ENTRIES_SHOWN = 5             # audits and alerts in the structured view


def shown_path(path: Path) -> str:
    """A record's file as the operator would type it: relative to here when it is below."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (OSError, ValueError):
        return str(path)


def summarised(value, shortened: list[int]):
    """``value`` with each list longer than LIST_ITEMS_SHOWN cut to its first items and a line
    saying how many more there are; the length of each list cut is added to ``shortened``."""
    if isinstance(value, dict):
        return {key: summarised(item, shortened) for key, item in value.items()}
    if isinstance(value, list):
        shown = [summarised(item, shortened) for item in value[:LIST_ITEMS_SHOWN]]
        if len(value) > LIST_ITEMS_SHOWN:
            shortened.append(len(value))
            shown.append(f"... {len(value) - LIST_ITEMS_SHOWN:,} more of {len(value):,}")
        return shown
    return value


def record_parts(record: dict, where: str) -> list[Text]:
    """The record as highlighted JSON, bounded and wrapped, with notes on what was left out
    and where it is: a record of thousands of users would freeze the screen (highlighting and
    layout of megabytes) and tell the operator no more."""
    shortened: list[int] = []
    shown = json.dumps(summarised(record, shortened), indent=2, default=str, ensure_ascii=False)
    parts = []
    if shortened:
        parts.append(Text(f"Shortened: {len(shortened):,} long list(s) show their first "
                          f"{LIST_ITEMS_SHOWN} items. The whole record: {where}", style="bold"))
    rest = 0
    if len(shown) > RECORD_CHARS_SHOWN:
        cut = shown.rfind("\n", 0, RECORD_CHARS_SHOWN)
        cut = cut if cut > 0 else RECORD_CHARS_SHOWN
        shown, rest = shown[:cut], len(shown[cut:].encode())
    text = JSONHighlighter()(shown)
    text.overflow = "fold"  # a long value wraps inside the pane instead of being cut
    parts.append(text)
    if rest:
        parts.append(Text(f"truncated: {rest:,} more bytes - see {where}", style="bold"))
    return parts


def _section(title: str, rows: list[tuple[str, str | Text]]) -> Group:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(label, value if isinstance(value, Text) else Text(str(value)))
    return Group(Text(f"\n{title}", style="bold"), table)


def _as_text(value) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", ": "), default=str)
    return "-" if value in (None, "") else str(value)


def entries_table(title: str, entries: list[dict]) -> Group:
    """The latest audits or alerts: time, then the rest of each entry."""
    heading = Text(f"\n{title} ({len(entries)} latest)", style="bold")
    if not entries:
        return Group(heading, Text("none", style="dim"))
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, expand=True)
    table.add_column("time", overflow="fold", ratio=1)
    table.add_column("entry", overflow="fold", ratio=2)
    for entry in entries[-ENTRIES_SHOWN:]:
        time = entry.get("time") or entry.get("at") or entry.get("received") or "-"
        rest = {k: v for k, v in entry.items() if k not in ("time", "at", "received")}
        table.add_row(Text(str(time)), Text(", ".join(f"{k}={_as_text(v)}"
                                                      for k, v in rest.items())))
    return Group(heading, table)


def _trust_rows(record: dict, lock: Lock) -> list[tuple[str, str | Text]]:
    trusted, fetched = record.get("anchor_trusted"), record.get("anchor_fetched")
    rows: list[tuple[str, str | Text]] = []
    if isinstance(trusted, dict) and trusted.get("sha256"):
        rows += [("trusts", f"{fingerprint(trusted['sha256'])} ({lock.trust})"),
                 ("", f"proof: {trusted.get('proof', '-')}, at {trusted.get('at', '-')}")]
    else:
        rows.append(("trusts", "unknown: no handshake recorded"))
    if isinstance(fetched, dict) and fetched:
        what = ("ambiguous: shared with " + ", ".join(map(str, fetched.get("serials") or []))
                if fetched.get("inferred") == "ambiguous"
                else fingerprint(_as_text(fetched.get("sha256"))))
        rows += [("fetched", what),
                 ("", f"inferred {fetched.get('inferred', '-')} {fetched.get('address', '')}, "
                      f"at {fetched.get('at', '-')}")]
    else:
        rows.append(("fetched", "no download attributed"))
    return rows


def _failure_rows(record: dict) -> list[tuple[str, str | Text]]:
    failures = record.get("tls_failures")
    if not isinstance(failures, dict):
        return [("count", "0")]
    rows: list[tuple[str, str | Text]] = [
        ("count", f"{_as_text(failures.get('count'))} since the last good call-in")]
    for failure in failures.get("last") or []:
        if isinstance(failure, dict):
            rows.append((_as_text(failure.get("at")),
                         f"{_as_text(failure.get('reason'))} from "
                         f"{_as_text(failure.get('address'))}"))
    return rows


def structured(record: dict, lock: Lock, now) -> list[RenderableType]:
    """The record in sections, each a small label/value table."""
    s = lock.summary
    firmware, battery = record.get("firmware"), record.get("battery")
    return [
        _section("Identity", [("serial", s.serial), ("name", s.name or "-"),
                              ("model", s.model or "-"), ("listing", lock.listing)]),
        _section("Health", [("state", state_text(lock.state)),
                            ("last seen", relative(s.last_seen, now)),
                            ("", s.last_seen or "-"),
                            ("next call-in", due_in(s.next_callin, now) if s.last_seen else "-"),
                            ("first seen", _as_text(record.get("first_seen")))]),
        _section("Network", [("address", s.address or "-"),
                             ("listener", _as_text(record.get("listener"))),
                             ("network", _as_text(record.get("network")))]),
        _section("Firmware, battery", [("firmware", _as_text(firmware)),
                                       ("battery", _as_text(battery))]),
        _section("Anchor trust", _trust_rows(record, lock)),
        _section("TLS failures", _failure_rows(record)),
    ]


def record_view(lock: Lock | None, serial: str, record: dict | None, error: str, where: str,
                audits: list[dict], alerts: list[dict], now, raw: bool) -> RenderableType:
    """Everything the record pane shows for one lock: structured, or the raw JSON."""
    if record is None:
        corrupt = lock is not None and lock.summary.corrupt
        detail = lock.summary.error if corrupt and lock.summary.error else error
        parts: list[RenderableType] = [Text(
            f"{'CORRUPT record' if corrupt else 'No record'} for lock {serial}: {detail}\n"
            "The file is left untouched; fix or remove it by hand.", style="bold red")]
    elif raw or lock is None:
        parts = [*record_parts(record, where)]
    else:
        parts = structured(record, lock, now)
    return Group(*parts, entries_table("Audits", audits), entries_table("Alerts", alerts))
