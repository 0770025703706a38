"""``engage-console status``: the state of the host running in this folder, asked on its
control socket (pid, uptime, listeners, active set, fleet summary).

Exit 0 ok; 1 a listener FAILED; 3 no host runs in this folder. ``devices status`` is the
other one: lock counts from the records on disk, whether or not a host runs.
"""

from __future__ import annotations

from server.control.client import running_host

from ..format import duration
from .common import EXIT_FINDINGS, EXIT_NO_HOST, EXIT_OK, fail, print_json


def register(sub, parent) -> None:
    p = sub.add_parser("status", parents=[parent], help="the running host's state (exit 3: none)",
                       description=__doc__)
    p.add_argument("--json", action="store_true", help="JSON for monitoring")
    p.set_defaults(func=show_status)


def show_status(args, settings) -> int:
    client = running_host(settings)
    if client is None:
        return fail(args, "no host runs in this folder (start one with engage-console "
                          "--headless, or engage-console)", EXIT_NO_HOST)
    try:
        state = client.call("status")
    finally:
        client.close()
    state.pop("ok")
    if args.json:
        print_json(state)
    else:
        print("\n".join(status_lines(state)))
    failed = any(s["state"] == "FAILED" for s in state["listeners"].values())
    return EXIT_FINDINGS if failed else EXIT_OK


def status_lines(state: dict) -> list[str]:
    lines = [f"host pid {state['pid']}, up {duration(state['uptime'])} (since "
             f"{state['started']}), in {state['folder']}"]
    for s in state["listeners"].values():
        line = f"  {s['name']:<4} {s['state']:<8} {s['address']}:{s['port']}"
        line += f"  {s['requests']:,} requests, {s['errors']:,} errors"
        if s["last_error"]:
            line += f"; last error: {s['last_error']}"
        lines.append(line)
    active = state["active"]
    lines.append("active set: " + (f"{active['name']}" + (" (DEMO)" if active["demo"] else "")
                                   + f", hash {active['hash']}, anchor "
                                   f"{active['anchor_sha256'][:16]}…" if active else "none"))
    lines.append(f"fleet: {state['fleet']['line']}")
    lines.extend(f"notice: {n}" for n in state["notices"])
    return lines
