"""Lock call-ins over TLS (PROTOCOL.md "Call-in over TLS"): filled in by the call-in issue."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("lock", __name__)
