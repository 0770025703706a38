"""The notices panel (demo material, a set that cannot load): one line per notice, so that a
few long ones never push the listeners and the log off an 80x24 screen. A notice too long for
its line is cut with a pointer to ``n``, which shows them all whole."""

from __future__ import annotations

from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

MORE = "… (n: whole notice)"


def notice_line(notice: str, width: int) -> str:
    """``NOTICE: ...`` in at most ``width`` characters, cut with a pointer to ``n``."""
    line = f"NOTICE: {notice}"
    if len(line) <= width or width <= len(MORE) + 8:
        return line
    return line[:width - len(MORE)].rstrip() + MORE


class Notices(Widget):
    def __init__(self, notices: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.notices = notices

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.notices)

    def render(self) -> Text:
        width = self.content_size.width
        return Text("\n".join(notice_line(n, width) for n in self.notices), no_wrap=True,
                    overflow="ellipsis")
