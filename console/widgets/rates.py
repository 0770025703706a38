"""The dashboard's pictures: requests, errors and TLS handshake failures per 10 seconds over
the last 10 minutes (Textual ``Sparkline``), counted from the request-log events the
dashboard drains; memory is bounded (60 buckets)."""

from __future__ import annotations

import collections
import datetime as dt

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from server.events import Event

BUCKET_SECONDS, BUCKETS = 10, 60  # 10 minutes
SERIES = (("requests", "requests"), ("errors", "errors"), ("handshakes", "TLS fails"))


class RateBuckets:
    """Counts per series per bucket, the newest ``BUCKETS`` buckets only."""

    def __init__(self) -> None:
        self.buckets: collections.OrderedDict[int, dict[str, int]] = collections.OrderedDict()

    @staticmethod
    def bucket_of(now: dt.datetime) -> int:
        return int(now.timestamp()) // BUCKET_SECONDS

    def add(self, events: list[Event], now: dt.datetime) -> None:
        """Count ``events`` (arrived at ``now``): a request, a failed request (status >= 400
        or an error), a failed TLS handshake."""
        if not events:
            return
        counts = self.buckets.setdefault(self.bucket_of(now), dict.fromkeys(
            (name for name, _ in SERIES), 0))
        for event in events:
            if event.kind == "handshake":
                counts["handshakes"] += 1
            elif event.kind == "request":
                counts["requests"] += 1
                counts["errors"] += event.failed
        while len(self.buckets) > BUCKETS:
            self.buckets.popitem(last=False)

    def series(self, name: str, now: dt.datetime) -> list[int]:
        """The last 10 minutes of ``name``, oldest first, a zero for each quiet bucket."""
        last = self.bucket_of(now)
        return [self.buckets.get(b, {}).get(name, 0) for b in range(last - BUCKETS + 1, last + 1)]


class Words(Widget):
    """A line of words that repaints without a layout pass (updated with every batch of
    events: a layout pass each time would move the lock log under the operator)."""

    text: reactive[str] = reactive("", layout=False)

    def render(self) -> Text:
        return Text(self.text, no_wrap=True, overflow="ellipsis")


class Rates(Horizontal):
    """One line: each series' 10-minute total in words, then its sparkline."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.counts = RateBuckets()

    def compose(self) -> ComposeResult:
        yield Static("10 min:", classes="rate-label")
        for name, _ in SERIES:
            yield Words(id=f"rate-{name}", classes="rate-label")
            yield Sparkline([0] * BUCKETS, summary_function=max, id=f"spark-{name}")

    def on_mount(self) -> None:
        self.show(self.app.now())  # the words from the start, not only after the first event

    def add(self, events: list[Event], now: dt.datetime) -> None:
        self.counts.add(events, now)
        self.show(now)

    def show(self, now: dt.datetime) -> None:
        for name, words in SERIES:
            data = self.counts.series(name, now)
            self.query_one(f"#rate-{name}", Words).text = f" {words} {sum(data):,}"
            self.query_one(f"#spark-{name}", Sparkline).data = data
