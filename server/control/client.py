"""The client side of the control socket: what ``engage-console status``, ``certs activate``
and an attached console use to talk to the host running in a folder."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Iterator

from ..errors import EngageError
from . import protocol

TIMEOUT = 30.0  # seconds a reply may take (an activation builds a TLS context, a preflight
# reads every record)


class NoHost(EngageError):
    """No host answers on the control socket."""


class HostGone(EngageError):
    """The host closed the connection (it stopped, or was killed) before replying."""


class CommandFailed(EngageError):
    """The host answered ``ok: false``; ``reply`` holds the whole answer."""

    def __init__(self, reply: dict):
        self.reply = reply
        super().__init__(reply.get("error") or "the host refused the command")


class ControlClient:
    """One connection; ``call`` is safe from several threads (one request at a time)."""

    def __init__(self, path: Path, timeout: float = TIMEOUT):
        self.path = Path(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(self.path))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise NoHost(f"no host runs in this folder (nothing answers at {self.path})") from None
        except PermissionError:
            sock.close()
            raise NoHost(f"permission denied on {self.path}: the host runs as another user") \
                from None
        self._sock = sock
        self._reader = sock.makefile("rb")
        self._lock = threading.Lock()

    def call(self, cmd: str, **args) -> dict:
        """Send one command, return its reply; CommandFailed when the host refused it."""
        with self._lock:
            try:
                self._sock.sendall(protocol.request(cmd, **args))
                line = self._reader.readline()
            except OSError as exc:
                raise HostGone(f"lost the host at {self.path}: {exc}") from None
        if not line:
            raise HostGone(f"the host at {self.path} closed the connection")
        reply = protocol.decode(line)
        if not reply.get("ok"):
            raise CommandFailed(reply)
        return reply

    def follow(self, after: int = 0) -> Iterator[dict]:
        """The stream's messages (``event``, ``active``, ``dropped``, ``closing``) after the
        request-log event numbered ``after``; ends when the host closes it. The host is asked
        at once, so nothing recorded after this call is missed."""
        self.call("follow", **{"from": after})
        self._sock.settimeout(None)  # a quiet host is not a lost one
        return (protocol.decode(line) for line in self._reader)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._reader.close()
        self._sock.close()


def socket_path(settings) -> Path:
    return settings.path("control_socket")


def running_host(settings) -> ControlClient | None:
    """A connection to the host running in this folder, None when none runs."""
    try:
        return ControlClient(socket_path(settings))
    except NoHost:
        return None
