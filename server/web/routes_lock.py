"""Lock call-ins (PROTOCOL.md "Call-in over TLS"): PUT Config, GET db, POST audit and alert.

HTTP details live here; what a call-in changes lives in :mod:`server.devices.callin`.

Which lock is calling [inferred]: ``PUT Config`` names it in its body. The db, audit and alert
requests carry no documented serial, so they take one from the query (``lckSn``, ``mnSn`` or
``serial``) or else from the ``PUT Config`` sent earlier on the same connection (a lock sends its
call-in on one persistent connection). A connection is known by the id the listener gives it
(never reused, unlike an address and port), for as long as the listener would keep it open
(``connection_timeout`` after its last request). A ``PUT Config`` that fails forgets the serial.
"""

from __future__ import annotations

import collections
import json
import math
import threading
import time

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from ..devices.errors import (BadRequest, CorruptRecord, DeviceError, IdentityMismatch,
                              NotListed, UnknownLock)
from ..devices.logs import ALERT, AUDIT
from ..devices.serials import normalise_serial, serial_from_config
from ..http.wsgi import CLIENT_CERT_ENVIRON_KEY, TLS_CONTEXT_ENVIRON_KEY
from ..listeners import CONNECTION_ENVIRON_KEY, PROVISION_ENVIRON_KEY
from .responses import error_response, json_response, note_serial

blueprint = Blueprint("lock", __name__)
QUERY_SERIAL_FIELDS = ("lckSn", "mnSn", "serial")
MAX_CONNECTIONS = 100_000
MAX_JSON_DEPTH = 64  # a lock's bodies nest a few levels; far deeper could not be stored


class ConnectionSerials:
    """Serial named by PUT Config, per open connection, forgotten after the idle timeout."""

    def __init__(self, ttl: float):
        self.ttl = ttl
        self._serials: collections.OrderedDict[tuple, tuple[str, float]] = \
            collections.OrderedDict()
        self._lock = threading.Lock()

    def remember(self, key: tuple, serial: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._serials[key] = (serial, now)
            self._serials.move_to_end(key)
            while self._serials:
                oldest_key, (_, used) = next(iter(self._serials.items()))
                if now - used <= self.ttl and len(self._serials) <= MAX_CONNECTIONS:
                    break
                del self._serials[oldest_key]

    def forget(self, key: tuple) -> None:
        with self._lock:
            self._serials.pop(key, None)

    def get(self, key: tuple) -> str | None:
        now = time.monotonic()
        with self._lock:
            found = self._serials.get(key)
            if found is None or now - found[1] > self.ttl:
                return None
            self._serials[key] = (found[0], now)
            self._serials.move_to_end(key)
            return found[0]


def _host():
    return current_app.extensions["engage.host"]


def _connections() -> ConnectionSerials:
    ext = current_app.extensions
    if "engage.lock_connections" not in ext:
        ext.setdefault("engage.lock_connections",
                       ConnectionSerials(_host().settings.connection_timeout))
    return ext["engage.lock_connections"]


def _connection_key() -> tuple:
    """The listener's connection id; without one (an app not behind our listeners), the
    client's address and port."""
    env = request.environ
    if CONNECTION_ENVIRON_KEY in env:
        return (env[CONNECTION_ENVIRON_KEY],)
    return (request.scheme, env.get("REMOTE_ADDR", ""), env.get("REMOTE_PORT", ""))


def _body():
    """The request's JSON; BadRequest for an empty body or anything that is not JSON.
    A body over ``max_body_bytes`` raises 413 (app.py answers it): a ``Content-Length`` over
    it before reading, a chunked body once one byte more than the limit has arrived (werkzeug
    would cut it at the limit)."""
    limit = request.max_content_length
    if limit is None:
        data = request.get_data(cache=False)
    else:
        data = get_input_stream(request.environ, max_content_length=limit + 1).read()
        if len(data) > limit:
            raise RequestEntityTooLarge()
    if not data:
        raise BadRequest("the body is empty; expected JSON")
    return parse_json(data)


def parse_json(data: bytes):
    """Standard JSON only (no NaN or Infinity, which would make the audit logs invalid JSON)
    nested at most MAX_JSON_DEPTH levels; BadRequest otherwise."""
    try:
        value = json.loads(data, parse_constant=_not_a_number, parse_float=_finite)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(f"the body nests deeper than {MAX_JSON_DEPTH} levels") from None
    brackets = data.count(b"[") + data.count(b"{")  # fewer cannot nest deeper: skip the walk
    if brackets > MAX_JSON_DEPTH and _nests_deeper(value, MAX_JSON_DEPTH):
        raise BadRequest(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def _not_a_number(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _nests_deeper(value, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` levels (without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in
                         (item.values() if isinstance(item, dict) else item))
    return False


def _serial() -> str:
    for name in QUERY_SERIAL_FIELDS:
        if request.args.get(name):
            serial = normalise_serial(request.args[name], name)
            if _host().devices.mutual_tls:  # a serial bound to the connection was checked
                _host().devices.check_client(serial, request.environ.get(CLIENT_CERT_ENVIRON_KEY))
            return serial
    serial = _connections().get(_connection_key())
    if serial is None:
        raise BadRequest("missing lock serial: send PUT Config first on this connection, or "
                         "name the lock with ?lckSn=")
    return serial


def _anchor() -> str | None:
    """SHA-256 of the anchor whose chain this TLS connection's handshake accepted."""
    context = request.environ.get(TLS_CONTEXT_ENVIRON_KEY)
    return None if context is None else _host().certificates.anchor_of(context)


def _refused():
    """Plain-HTTP call-ins when the site serves them over TLS only."""
    if request.scheme != "https" and _host().settings.callins_tls_only:
        return error_response(403, "lock call-ins are served over TLS only on this host "
                                   "(setting callins_tls_only)")
    return None


def _failure(exc: DeviceError):
    if isinstance(exc, (NotListed, IdentityMismatch)):  # West's provision events, flagged
        request.environ[PROVISION_ENVIRON_KEY] = f"refused: {exc}"
        return error_response(403, str(exc))
    if isinstance(exc, CorruptRecord):
        # The lock learns nothing of our files; the operator's request-log event gets the path.
        response = error_response(500, "record unreadable")
        request.environ["engage.error"] = str(exc)
        return response
    return error_response(404 if isinstance(exc, UnknownLock) else 400, str(exc))


@blueprint.put("/swordfish/lock/Config")
def config():
    _connections().forget(_connection_key())  # whatever this PUT's outcome, not the old lock
    if (refused := _refused()) is not None:
        return refused
    try:
        body = _body()
        if isinstance(body, dict):
            note_serial(serial_from_config(body))
        notes: dict = {}
        try:
            serial, _ = _host().devices.config_callin(
                body, address=request.environ.get("REMOTE_ADDR", ""),
                listener="tls" if request.scheme == "https" else "http",
                auth_present="HTTP_AUTHORIZATION" in request.environ,
                client_cert=request.environ.get(CLIENT_CERT_ENVIRON_KEY), notes=notes,
                anchor_sha256=_anchor())
        finally:
            request.environ[PROVISION_ENVIRON_KEY] = notes.get("provision", "")
            request.environ["engage.client_cert_label"] = notes.get("client_cert", "")
    except DeviceError as exc:
        return _failure(exc)
    _connections().remember(_connection_key(), serial)
    return json_response({})


@blueprint.get("/swordfish/lock/db/<string:version>")
def database(version: str):
    if (refused := _refused()) is not None:
        return refused
    try:
        serial = _serial()
        note_serial(serial)
        reply = _host().devices.db_reply(serial, version,
                                         record_it=request.method != "HEAD",  # Flask adds HEAD
                                         anchor_sha256=_anchor())
    except DeviceError as exc:
        return _failure(exc)
    return json_response(reply)


def _events(kind: str):
    if (refused := _refused()) is not None:
        return refused
    try:
        serial = _serial()
        note_serial(serial)
        added = _host().devices.append_events(serial, kind, _body())
    except DeviceError as exc:
        return _failure(exc)
    response = Response(b"", status="201 Created" if added.first else "202 Accepted")
    del response.headers["Content-Type"]
    return response


@blueprint.post("/swordfish/lock/audit")
def audit():
    return _events(AUDIT)


@blueprint.post("/swordfish/lock/alert")
def alert():
    return _events(ALERT)
