"""The status bar under every screen: the active certificate set (flagged when it has
errors), its anchor fingerprint, the hash the locks receive and the days to expiry, or why the
TLS listener cannot start."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

from ..format import days_to_expiry, expiry_words, fingerprint


def active_errors(host) -> list[str]:
    """The validation errors of the set being served (there are some after a forced
    activation): the one place the console asks, for the status bar and the certificates
    list. Asks the activation gate, the same validation that refused the set."""
    active = host.certificates.current()
    if active is None:
        return []
    try:
        return host.certificates.gate(active.cert_set)
    except Exception as exc:  # a validator's bug must not take the status bar down
        return [f"the active set cannot be checked: {exc}"]


NO_ACTIVE_SET = ("Active set: NONE - the TLS listener cannot start until a set is activated "
                 "(Certificates, key a)")


@dataclass(frozen=True)
class ActiveLine:
    """What the status bar says about the active set."""

    name: str
    demo: bool
    anchor_sha256: str
    hash: str
    days: int | None
    errors: int = 0

    def text(self, width: int) -> str:
        """One line of at most ``width`` when it can be: the fingerprint shortens first, then
        the set name; the hash and the days to expiry are always whole. Too narrow for that
        (under ~100 columns), two lines: the set and its expiry, then the hash and the anchor
        (the set name cut to fit: the certificates screen has it whole)."""
        demo = (" (DEMO)" if self.demo else "") + (
            f" WITH {self.errors} ERROR{'S' if self.errors > 1 else ''}" if self.errors else "")
        for groups in (6, 4):
            tail = (f" | anchor {fingerprint(self.anchor_sha256, groups)} | hash {self.hash} | "
                    f"expires in {expiry_words(self.days)}")
            line = f"Active: {self.name}{demo}{tail}"
            if len(line) <= width:
                return line
        room = width - len(f"Active: …{demo}{tail}")
        if room >= 12:
            return f"Active: {self.name[:room]}…{demo}{tail}"
        expires = f"{demo} | expires in {expiry_words(self.days)}"
        name = self.name
        if len(f"Active: {name}{expires}") > width:
            name = name[:max(1, width - len(f"Active: …{expires}"))] + "…"
        return (f"Active: {name}{expires}\n"
                f"hash {self.hash} | anchor {fingerprint(self.anchor_sha256, 4)}")


class StatusBar(Widget):
    """Active set, anchor fingerprint, the hash the locks receive, days to expiry: on one line
    at 120 columns whatever the set's name."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.active: ActiveLine | None = None

    def show_active(self, active, now) -> None:
        if active is None:
            self.active = None
        else:
            cert_set = active.cert_set
            self.active = ActiveLine(cert_set.name, cert_set.demo, cert_set.anchor_sha256,
                                     active.hash,
                                     days_to_expiry([*cert_set.chain, cert_set.anchor], now),
                                     len(active_errors(self.app.host)))
        self.refresh(layout=True)

    def line(self, width: int) -> str:
        return NO_ACTIVE_SET if self.active is None else self.active.text(width)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(Text(self.line(width)).wrap(self.app.console, max(width, 1)))

    def render(self) -> Text:
        return Text(self.line(self.content_size.width))
