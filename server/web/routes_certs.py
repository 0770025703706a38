"""Certificate delivery over plain HTTP (PROTOCOL.md "Certificate delivery").

Only anchors known to the store are ever served: URL parts are looked up, never joined to a
file-system path.

A fleet that re-enrolls fetches ``/current`` and the DER at every lock, so ``answer`` works on
the WSGI environ alone and ``web.create_app`` calls it for GETs before Flask: Flask's request
machinery cost more CPU than the rest of such a request, TLS handshake aside. The Flask routes
below give the same answers to HEAD, and make other methods a 405.
"""

from __future__ import annotations

import hashlib
import re

from flask import Blueprint, Response, current_app, request

from ..activation import ANCHOR_URL_PREFIX
from .responses import error_bytes, json_bytes

CURRENT_PATH = "/swordfish/lock/certificates/current"
LEGACY_PREFIX = "/static/Device_Certificates/"  # where the Allegion sample served its DER
JSON_TYPE = "application/json"
DER_TYPE = "application/x-x509-ca-cert"
blueprint = Blueprint("certificates", __name__)

# A Host header worth repeating to a lock: a host name, IPv4 or [IPv6] address, optional port.
HOST_HEADER = re.compile(r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
                         r"(?::(?P<port>[0-9]{1,5}))?")


def answer(host, environ) -> tuple[int, str, bytes] | None:
    """(status, content type, body) for a certificate-delivery path, None for any other."""
    path = environ.get("PATH_INFO", "")
    if path == CURRENT_PATH:
        active = host.migration.delivered()  # during a migration: the new anchor
        if active is None:
            return 503, JSON_TYPE, error_bytes(environ, 503,
                                               "no active certificate set on this host")
        cert_url = _base_url(host, environ) + active.anchor_path
        return 200, JSON_TYPE, json_bytes({"cert_url": cert_url, "hash": active.hash})
    if (sha256 := _der_name(path, ANCHOR_URL_PREFIX)) is not None:
        der = host.certificates.store.anchor_by_sha256(sha256)
    elif (name := _der_name(path, LEGACY_PREFIX)) is not None:
        # The sample's path answers the active anchor under its known names.
        active = host.migration.delivered()
        der = active.cert_set.anchor_der if active and name in active.cert_set.legacy_names \
            else None
    else:
        return None
    if der is None:
        return 404, JSON_TYPE, error_bytes(environ, 404, "no such certificate")
    host.migration.anchor_fetched(environ.get("REMOTE_ADDR", ""), hashlib.sha256(der).hexdigest())
    return 200, DER_TYPE, der


def _der_name(path: str, prefix: str) -> str | None:
    """NAME in ``prefix`` NAME ``.der``, NAME not empty and without a slash."""
    if path.startswith(prefix) and path.endswith(".der"):
        name = path[len(prefix):-len(".der")]
        if name and "/" not in name:
            return name
    return None


def _base_url(host, environ) -> str:
    """Where the lock should fetch the DER (always plain HTTP): the configured public URL, else
    the Host the lock used (over TLS with the HTTP listener's port), else the first configured
    host name or the address the connection arrived on, with the HTTP listener's port."""
    if host.settings.public_base_url:
        return host.settings.public_base_url.rstrip("/")
    given = HOST_HEADER.fullmatch(environ.get("HTTP_HOST", ""))
    if given and given["port"] and not 0 < int(given["port"]) < 65536:
        given = None
    if given and environ.get("wsgi.url_scheme") == "http":
        return f"http://{given[0]}"
    if given:
        name = given["name"]
    else:
        name = (host.settings.host_names or [environ.get("SERVER_NAME", "localhost")])[0]
        name = f"[{name}]" if ":" in name else name
    port = host.http_port()
    return f"http://{name}" if port == 80 else f"http://{name}:{port}"


@blueprint.get(CURRENT_PATH)
@blueprint.get(ANCHOR_URL_PREFIX + "<string:sha256>.der")
@blueprint.get(LEGACY_PREFIX + "<string:name>.der")
def delivery(**_) -> Response:
    status, content_type, body = answer(current_app.extensions["engage.host"], request.environ)
    return Response(body, status=status, content_type=content_type)
