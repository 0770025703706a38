"""``sd_notify`` with the standard library: one datagram to ``$NOTIFY_SOCKET``, so a systemd
unit with ``Type=notify`` knows when the host is ready (and when it stops). Without the
variable (not under systemd) it does nothing."""

from __future__ import annotations

import os
import socket
from typing import Mapping


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``READY=1``); whether a service manager was there to tell."""
    address = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(state.encode(), address)
        except OSError:
            return False
    return True
