"""The control protocol: JSON lines over a Unix domain socket. Pure: framing and the commands.

Why JSON lines rather than HTTP over the socket: the standard library has both ends (``json``,
``socket``), a person can talk to a host with ``socat - UNIX-CONNECT:run/engage-console.sock``
or ``nc -U``, and there is nothing to negotiate. Each request is one line, a JSON object with
``cmd`` and the command's arguments; each gets exactly one reply line, ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``. ``follow`` is the one stream: after its reply the host sends
one line per message until either side closes. A line is at most ``MAX_LINE`` bytes.
"""

from __future__ import annotations

import json

MAX_LINE = 64 * 1024  # bytes of one request line, newline included; longer ones are refused

# command: (arguments as name -> (type, default), what it does). The README's table is this one.
COMMANDS: dict[str, tuple[dict[str, tuple[type, object]], str]] = {
    "status": ({}, "pid, start time, uptime, folder and paths, listeners, the newest "
                   "request-log event's number (log_seq), active set, notices, fleet"),
    "fleet": ({}, "lock counts per health state and the one-line summary"),
    "start": ({"listeners": (list, ["http", "tls"])}, "start listeners; their states"),
    "stop": ({"listeners": (list, ["http", "tls"])}, "stop listeners; their states"),
    "reload": ({}, "serve what certs/active.json names (as SIGHUP)"),
    "activate": ({"name": (str, None), "force": (bool, False), "cut_off_ok": (bool, False),
                  "by": (str, "control socket")},
                 "activate set NAME: the validation gate and the fleet preflight first"),
    "rollback": ({"force": (bool, False), "cut_off_ok": (bool, False),
                  "by": (str, "control socket")},
                 "activate the set active before the current one, checked the same way"),
    "preflight": ({"name": (str, "")},
                  "what activating set NAME (none: the rollback target) does to the known locks"),
    "migrate": ({"action": (str, None), "name": (str, ""), "force": (bool, False),
                 "by": (str, "control socket")},
                "ACTION start (to set NAME), finish or abort the staged migration, as `certs "
                "migrate` (finish: through the activation, its validation gate first)"),
    "follow": ({"from": (int, 0)},
               "stream: the request-log events after sequence number FROM still in the ring, "
               "then each new one; active-set changes; a reader that falls behind is dropped"),
}


class ProtocolError(ValueError):
    """A request line that is not a known command with valid arguments."""


def encode(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


def decode(line: bytes) -> dict:
    """One reply or stream line as a dict (what a client reads)."""
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(f"not a JSON line: {line[:80]!r}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    return message


def parse_request(line: bytes) -> tuple[str, dict]:
    """The command and its arguments (defaults filled in), or ProtocolError saying why not."""
    if len(line) > MAX_LINE:
        raise ProtocolError(f"request longer than {MAX_LINE // 1024} KiB: refused")
    request = decode(line)
    cmd = request.pop("cmd", None)
    if cmd not in COMMANDS:
        raise ProtocolError(f"unknown command {cmd!r}: known are {', '.join(COMMANDS)}")
    spec = COMMANDS[cmd][0]
    unknown = sorted(set(request) - set(spec))
    if unknown:
        raise ProtocolError(f"{cmd}: unknown argument(s) {', '.join(unknown)}")
    args = {}
    for name, (kind, default) in spec.items():
        value = request.get(name, default)
        if value is None:
            raise ProtocolError(f"{cmd}: argument {name} is required")
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ProtocolError(f"{cmd}: {name} must be a {kind.__name__}")
        args[name] = list(value) if kind is list else value
    return cmd, args


def request(cmd: str, **args) -> bytes:
    """One request line (what a client sends)."""
    return encode({"cmd": cmd, **args})
