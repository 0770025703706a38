"""JSON answers as the locks expect them, shared by the app factory and every blueprint.

Compact JSON whose keys keep insertion order (PROTOCOL.md "HTTP rules"); error answers carry
their message to the request-log event too.
"""

from __future__ import annotations

import json

from flask import Response, request

from ..listeners import SERIAL_ENVIRON_KEY


def json_bytes(obj) -> bytes:
    """Compact JSON in insertion order, as the locks expect."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_response(obj, status: int = 200) -> Response:
    return Response(json_bytes(obj), status=status, mimetype="application/json")


def error_bytes(environ, status: int, message: str) -> bytes:
    """The JSON body of an error answer; the request-log event of ``environ`` gets the message."""
    environ["engage.error"] = message
    return json_bytes({"error": message, "status": status})


def error_response(status: int, message: str) -> Response:
    return Response(error_bytes(request.environ, status, message), status=status,
                    mimetype="application/json")


def note_serial(serial: str) -> None:
    """Tag this request's log event with the lock's serial."""
    request.environ[SERIAL_ENVIRON_KEY] = serial
