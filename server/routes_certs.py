"""Certificate delivery over plain HTTP (PROTOCOL.md "Certificate delivery").

Only anchors known to the store are ever served: URL parts are looked up, never joined to a
file-system path.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from .activation import ANCHOR_URL_PREFIX
from .web import error_response, json_response

DER_TYPE = "application/x-x509-ca-cert"
blueprint = Blueprint("certificates", __name__)


def _host():
    return current_app.extensions["engage.host"]


def _base_url() -> str:
    """Where the lock should fetch the DER: the configured public URL, else the Host the lock
    used. ``cert_url`` is always plain HTTP; a request that came over TLS gets the Host name
    with the HTTP listener's port."""
    host = _host()
    if host.settings.public_base_url:
        return host.settings.public_base_url.rstrip("/")
    name = request.host or f"{request.environ.get('SERVER_NAME', 'localhost')}"
    if request.scheme == "https":
        hostname = name.rsplit(":", 1)[0] if not name.endswith("]") else name
        port = host.http_port()
        name = hostname if port == 80 else f"{hostname}:{port}"
    return f"http://{name}"


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
