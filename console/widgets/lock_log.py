"""The live lock log: a bounded list of request events, drawn one visible line at a time.

It follows the newest line (at the bottom) by default; scrolling up or moving the cursor pauses
following and counts the lines waiting below, as toolong does for a growing file. Events arrive
in batches from the console's drain timer, never one message per request.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from server.events import Event


STRIP_CACHE = 1000  # drawn lines kept: a few screens' worth


def matches(event: Event, term: str) -> bool:
    """Does the event's path, client address, lock serial or status contain ``term``?"""
    term = term.lower()
    return (term in event.path.lower() or term in event.client
            or term in event.serial.lower() or (bool(event.status) and term in str(event.status)))


def marker(event: Event) -> str:
    """The state of an event in words, so it never depends on colour."""
    if event.kind == "handshake":
        return "TLS FAIL"
    return "FAIL" if event.failed else "ok"


def event_text(event: Event) -> Text:
    """One log line: time, listener, client, state, then what happened."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{event.time[11:23]:<12} ", style="dim")
    text.append(f"{event.listener:<4} {event.client:<15} ")
    state = marker(event)
    if event.kind == "handshake":
        text.append(f"{state:<8}", style="bold reverse red")
        text.append(f" TLS handshake failed: {event.error}", style="bold red")
        return text
    if event.kind == "chain":  # a migration's choice of chain, said when it broke a tie
        text.append(f"{'chain':<8} TLS chain: {event.note}", style="yellow")
        return text
    text.append(f"{state:<8}", style="bold red" if event.failed else "green")
    target = event.path + (f"?{event.query}" if event.query else "")
    text.append(f" {event.method} {target} ")
    text.append(str(event.status), style="bold red" if event.status >= 400 else "")
    text.append(f" {event.bytes}B {event.duration_ms:.1f}ms", style="dim")
    if event.serial:
        text.append(f" lock={event.serial}", style="bold")
    if event.error:
        text.append(f" error={event.error}", style="red")
    return text


class LockLog(ScrollView, can_focus=True):
    """Request events, newest at the bottom; bounded to ``max_lines``."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Previous line", show=False, id="log.previous"),
        Binding("down,j", "cursor(1)", "Next line", show=False, id="log.next"),
        Binding("pageup", "cursor_page(-1)", "Page up", show=False, id="log.page_up"),
        Binding("pagedown", "cursor_page(1)", "Page down", show=False, id="log.page_down"),
        Binding("home", "oldest", "Oldest line", show=False, id="log.oldest"),
        Binding("end,f", "follow", "Follow newest", show=False, id="log.follow",
                tooltip="Jump to the newest line and keep following"),
        Binding("enter", "show_event", "Show event", show=False, id="log.show_event",
                tooltip="Show the whole event under the cursor"),
    ]
    COMPONENT_CLASSES = {"lock-log--cursor"}
    DEFAULT_CSS = """
    LockLog { overflow-x: hidden; }
    LockLog > .lock-log--cursor { background: $accent 40%; text-style: bold; }
    LockLog:focus > .lock-log--cursor { background: $accent; }
    """

    follow: reactive[bool] = reactive(True)
    pending: reactive[int] = reactive(0)
    cursor: reactive[int] = reactive(-1, always_update=True)

    class Selected(Message):
        """The operator asked to see one whole event."""

        def __init__(self, event: Event) -> None:
            super().__init__()
            self.event = event

    class Changed(Message):
        """Following, waiting lines, filter or line count changed (for the status line)."""

    def __init__(self, max_lines: int = 10_000, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_lines = max(1, max_lines)
        self._all: list[Event] = []
        self._shown: list[Event] = self._all
        self.filter_text = ""
        self._strips: dict[tuple, Strip] = {}  # drawn lines by (seq, width, cursor)
        self._base_style = None

    # --- data ----------------------------------------------------------------------------

    @property
    def shown(self) -> list[Event]:
        return self._shown

    @property
    def total(self) -> int:
        return len(self._all)

    def add_events(self, events: list[Event]) -> None:
        """Append one drained batch; trims the oldest lines beyond ``max_lines``."""
        if not events:
            return
        self._all.extend(events)
        added = len(events)
        removed = self._trim(self._all)
        if self._shown is not self._all:
            matched = [e for e in events if matches(e, self.filter_text)]
            added = len(matched)
            self._shown.extend(matched)
            removed = self._trim(self._shown)
        if not self.follow:
            self.pending += added
        self._lines_changed(removed)

    def set_filter(self, term: str) -> None:
        term = term.strip()
        if term == self.filter_text:
            return
        self.filter_text = term
        self._shown = [e for e in self._all if matches(e, term)] if term else self._all
        self.cursor = -1
        self.pending = 0
        self.follow = True
        self._lines_changed(0)

    def selected_event(self) -> Event | None:
        if 0 <= self.cursor < len(self._shown):
            return self._shown[self.cursor]
        return None

    def _trim(self, lines: list[Event]) -> int:
        excess = len(lines) - self.max_lines
        if excess > 0:
            del lines[:excess]
            return excess
        return 0

    def _lines_changed(self, removed: int) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, len(self._shown))
        if self.follow:
            self._jump(self.max_scroll_y)
        elif removed:
            if self.cursor >= 0:
                self.cursor = max(0, self.cursor - removed)
            self._jump(max(0, self.scroll_y - removed))
        self.refresh()
        self.post_message(self.Changed())

    # --- following -----------------------------------------------------------------------

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        at_bottom = new_value >= self.max_scroll_y
        if at_bottom != self.follow and (not at_bottom or self.cursor < 0):
            self.follow = at_bottom

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.cursor = -1
            self.pending = 0
            self._jump(self.max_scroll_y)
        self.post_message(self.Changed())

    def watch_pending(self) -> None:
        self.post_message(self.Changed())

    def on_resize(self) -> None:
        self._lines_changed(0)

    # --- actions ---------------------------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        if not self._shown:
            return
        start = self.cursor if self.cursor >= 0 else len(self._shown) - (1 if delta < 0 else 0)
        if self.cursor < 0 and delta < 0:
            delta = 0  # the first press selects the newest line
        self.follow = False
        self.cursor = max(0, min(len(self._shown) - 1, start + delta))
        self._scroll_cursor_into_view()

    def action_cursor_page(self, direction: int) -> None:
        self.action_cursor(direction * max(1, self.scrollable_content_region.height - 1))

    def action_oldest(self) -> None:
        if self._shown:
            self.follow = False
            self.cursor = 0
            self._scroll_cursor_into_view()

    def action_follow(self) -> None:
        self.follow = True
        self.cursor = -1

    def action_show_event(self) -> None:
        event = self.selected_event() or (self._shown[-1] if self._shown else None)
        if event is not None:
            self.post_message(self.Selected(event))

    def on_click(self, event) -> None:
        offset = event.get_content_offset(self)  # None on the border
        if offset is None:
            return
        index = int(self.scroll_y) + offset.y
        if 0 <= index < len(self._shown):
            self.follow = False
            self.cursor = index
            self.post_message(self.Selected(self._shown[index]))

    def _jump(self, y: float) -> None:
        """Scroll now, without animation, even before the scrollbar has appeared."""
        self.scroll_to(y=y, animate=False, immediate=True, force=True)

    def _scroll_cursor_into_view(self) -> None:
        height = self.scrollable_content_region.height
        top = int(self.scroll_y)
        if self.cursor < top:
            self._jump(self.cursor)
        elif self.cursor >= top + height:
            self._jump(self.cursor - height + 1)

    def watch_cursor(self) -> None:
        self.refresh()

    # --- drawing -----------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def render_lines(self, crop):
        self._base_style = self.rich_style  # once per frame, not once per line
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = int(self.scroll_y) + y
        style = self._base_style or self.rich_style
        if not 0 <= index < len(self._shown):
            return Strip.blank(width, style)
        event = self._shown[index]
        key = (event.seq, width, index == self.cursor)
        strip = self._strips.get(key)
        if strip is None:
            text = event_text(event)
            if index == self.cursor:
                text.stylize(self.get_component_rich_style("lock-log--cursor"))
            segments = Segment.apply_style(text.render(self.app.console, end=""), style)
            strip = Strip(list(segments)).crop_extend(0, width, style)
            if len(self._strips) > STRIP_CACHE:
                self._strips.clear()
            self._strips[key] = strip
        return strip
