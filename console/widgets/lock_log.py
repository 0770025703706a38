"""The live lock log: a bounded list of request events, drawn one visible line at a time.

It follows the newest line (at the bottom) by default; scrolling up, moving the cursor or ``p``
pauses following and counts the lines waiting below, as toolong does for a growing file. While
paused the cursor stays on a line on screen: Enter shows that event, ``y``/``Y`` copy its lock
serial or the whole event. Events arrive in batches from the console's drain timer, never one
message per request.
"""

from __future__ import annotations

import json

from rich.segment import Segment
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from server.events import Event

from ..log_filter import parse_filter


STRIP_CACHE = 1000  # drawn lines kept: a few screens' worth
COMPACT_BELOW = 110  # columns under which every line has the compact time and state columns


def marker(event: Event) -> str:
    """The state of an event in words, so it never depends on colour."""
    if event.kind == "handshake":
        return "TLS FAIL"
    return "FAIL" if event.failed else "ok"


def middle_cut(text: str, length: int) -> str:
    """``text`` in at most ``length`` characters, its middle replaced by an ellipsis."""
    if len(text) <= length:
        return text
    head = max(1, (length - 1) // 2)
    return text[:head] + "…" + text[len(text) - max(1, length - 1 - head):]


def event_text(event: Event, width: int | None = None) -> Text:
    """One log line: time, listener, client, state, then what happened. Under
    ``COMPACT_BELOW`` columns every line has the compact columns (no milliseconds, a narrow
    state), so the columns stay aligned; a line still too long for ``width`` loses its
    duration, then its bytes, then the middle of its path, so that the status and the lock
    serial stay. The whole event is a key away."""
    if width is None:
        return _line(event)
    for short in range(3 if width < COMPACT_BELOW else 0, 4):
        text = _line(event, short)
        if text.cell_len <= width:
            return text
    target = _target(event)
    return _line(event, 3, max(8, len(target) - (text.cell_len - width)))


def _target(event: Event) -> str:
    return event.path + (f"?{event.query}" if event.query else "")


def _line(event: Event, short: int = 0, target_room: int | None = None) -> Text:
    """The line with its ``short`` least needed parts left out (duration, bytes, ms)."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{event.time[11:23 if short < 3 else 19]:<{12 if short < 3 else 8}} ",
                style="dim")
    text.append(f"{event.listener:<4} {event.client:<15} ")
    state = marker(event)
    if event.kind == "handshake":
        text.append(f"{state:<8}", style="bold reverse red")
        said = " TLS handshake failed:" if short < 3 else ""  # TLS FAIL says it too
        text.append(f"{said} {event.error}", style="bold red")
        return text
    if event.kind == "chain":  # a migration's choice of chain, said when it broke a tie
        text.append(f"{'chain':<8} TLS chain: {event.note}", style="yellow")
        return text
    text.append(f"{state:<8}" if short < 3 else f"{state:<4}",
                style="bold red" if event.failed else "green")
    target = _target(event)
    text.append(f" {event.method} {middle_cut(target, target_room or len(target))} ")
    text.append(str(event.status), style="bold red" if event.status >= 400 else "")
    sizes = [f"{event.bytes}B", f"{event.duration_ms:.1f}ms"][:max(0, 2 - short)]
    if sizes:
        text.append(" " + " ".join(sizes), style="dim")
    if event.serial:
        text.append(f" lock={event.serial}", style="bold")
    if event.error:
        text.append(f" error={event.error}", style="red")
    return text


def copy_serial(app, event: Event | None) -> None:
    """Put the event's lock serial on the clipboard (OSC 52), or say why there is none."""
    if event is None or not event.serial:
        app.notify("No lock serial in this event (the lock was not identified)",
                   severity="warning", timeout=4)
        return
    app.copy_to_clipboard(event.serial)
    app.notify(f"Copied lock serial {event.serial}", timeout=3)


def copy_event(app, event: Event | None) -> None:
    """Put the whole event, as JSON, on the clipboard (OSC 52)."""
    if event is None:
        app.notify("No event to copy: the log is empty", severity="warning", timeout=4)
        return
    app.copy_to_clipboard(json.dumps(event.to_dict(), indent=2))
    app.notify(f"Copied event #{event.seq} as JSON", timeout=3)


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
        Binding("p", "pause", "Pause", id="log.pause",
                tooltip="Pause following (new lines are counted, not shown), or follow again"),
        Binding("enter", "show_event", "Show event", show=False, id="log.show_event",
                tooltip="Show the whole event under the cursor"),
        Binding("y", "copy_serial", "Copy serial", show=False, id="log.copy_serial",
                tooltip="Copy the lock serial of the event under the cursor (OSC 52)"),
        Binding("Y", "copy_event", "Copy event", show=False, id="log.copy_event",
                tooltip="Copy the whole event under the cursor as JSON (OSC 52)"),
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
        self._passes = parse_filter("")
        self._steering = False  # True while the log scrolls itself (following, the cursor)
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
            matched = [e for e in events if self._passes(e)]
            added = len(matched)
            self._shown.extend(matched)
            removed = self._trim(self._shown)
        if not self.follow:
            self.pending += added
        self._lines_changed(removed)

    def set_filter(self, term: str) -> None:
        """Show only the events that pass the query (see log_filter); raises FilterError for
        a word it cannot read, and then shows what it showed before."""
        term = term.strip()
        if term == self.filter_text:
            return
        passes = parse_filter(term)
        self.filter_text, self._passes = term, passes
        self._shown = [e for e in self._all if passes(e)] if term else self._all
        self.cursor = -1
        self.pending = 0
        self.follow = True
        self._lines_changed(0)

    def selected_event(self) -> Event | None:
        """The event under the cursor, or the newest one while following."""
        if 0 <= self.cursor < len(self._shown):
            return self._shown[self.cursor]
        return self._shown[-1] if self._shown else None

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
        """The operator scrolled (the wheel, the scroll bar): away from the bottom pauses and
        keeps the cursor on a line on screen; back at the bottom follows again."""
        super().watch_scroll_y(old_value, new_value)
        if self._steering:
            return
        if new_value >= self.max_scroll_y:
            self.follow = True
        else:
            self.follow = False
            self._cursor_on_screen()

    def _cursor_on_screen(self) -> None:
        if not self._shown:
            return
        top = int(self.scroll_y)
        bottom = min(len(self._shown), top + self.scrollable_content_region.height) - 1
        cursor = self.cursor if self.cursor >= 0 else len(self._shown) - 1
        self.cursor = max(top, min(bottom, cursor))

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

    def action_pause(self) -> None:
        """Pause following where the log is (the cursor on the newest line shown), or follow."""
        if self.follow:
            self.follow = False
            self._cursor_on_screen()
        else:
            self.action_follow()

    def action_show_event(self) -> None:
        event = self.selected_event()
        if event is not None:
            self.post_message(self.Selected(event))

    def action_copy_serial(self) -> None:
        copy_serial(self.app, self.selected_event())

    def action_copy_event(self) -> None:
        copy_event(self.app, self.selected_event())

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
        self._steering = True
        try:
            self.scroll_to(y=y, animate=False, immediate=True, force=True)
        finally:
            self._steering = False

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
            text = event_text(event, width)
            if index == self.cursor:
                text.stylize(self.get_component_rich_style("lock-log--cursor"))
            segments = Segment.apply_style(text.render(self.app.console, end=""), style)
            strip = Strip(list(segments)).crop_extend(0, width, style)
            if len(self._strips) > STRIP_CACHE:
                self._strips.clear()
            self._strips[key] = strip
        return strip
