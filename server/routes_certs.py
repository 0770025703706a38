"""Certificate delivery over plain HTTP (PROTOCOL.md "Certificate delivery").

Only anchors known to the store are ever served: URL parts are looked up, never joined to a
file-system path.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, request

from .activation import ANCHOR_URL_PREFIX
from .web import error_response, json_response

DER_TYPE = "application/x-x509-ca-cert"
blueprint = Blueprint("certificates", __name__)


def _host():
    return current_app.extensions["engage.host"]


# A Host header worth repeating to a lock: a host name, IPv4 or [IPv6] address, optional port.
HOST_HEADER = re.compile(r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
                         r"(?::(?P<port>[0-9]{1,5}))?")


def _base_url() -> str:
    """Where the lock should fetch the DER (always plain HTTP): the configured public URL, else
    the Host the lock used (over TLS with the HTTP listener's port), else the first configured
    host name or the address the connection arrived on, with the HTTP listener's port."""
    host = _host()
    if host.settings.public_base_url:
        return host.settings.public_base_url.rstrip("/")
    given = HOST_HEADER.fullmatch(request.environ.get("HTTP_HOST", ""))
    if given and given["port"] and not 0 < int(given["port"]) < 65536:
        given = None
    if given and request.scheme == "http":
        return f"http://{given[0]}"
    if given:
        name = given["name"]
    else:
        name = (host.settings.host_names or [request.environ.get("SERVER_NAME", "localhost")])[0]
        name = f"[{name}]" if ":" in name else name
    port = host.http_port()
    return f"http://{name}" if port == 80 else f"http://{name}:{port}"


def _der(der: bytes) -> Response:
    return Response(der, mimetype=DER_TYPE)


@blueprint.get("/swordfish/lock/certificates/current")
def current():
    active = _host().certificates.current()
    if active is None:
        return error_response(503, "no active certificate set on this host")
    return json_response({"cert_url": _base_url() + active.anchor_path, "hash": active.hash})


@blueprint.get(ANCHOR_URL_PREFIX + "<string:sha256>.der")
def anchor(sha256: str):
    der = _host().certificates.store.anchor_by_sha256(sha256)
    if der is None:
        return error_response(404, "no such certificate")
    return _der(der)


@blueprint.get("/static/Device_Certificates/<string:name>.der")
def legacy_anchor(name: str):
    """The path the Allegion sample served; answers the active anchor under its known names."""
    active = _host().certificates.current()
    if active is None or name not in active.cert_set.legacy_names:
        return error_response(404, "no such certificate")
    return _der(active.cert_set.anchor_der)
