"""The WSGI side of a request: the environ built from its head, and the response the
application gives ``start_response``, turned into the head of the reply."""

from __future__ import annotations

import email.utils
import sys
import time

from .connection import Body, Connection
from .parse import Refused, header_fields, path_and_query, take_head

FAILED_ENVIRON_KEY = "engage.failed"  # set when the app's response could not be sent
TLS_CONTEXT_ENVIRON_KEY = "engage.tls_context"  # the SSLContext the connection handshook with
CLIENT_CERT_ENVIRON_KEY = "engage.client_cert"  # the TLS client certificate (DER), if any
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding"})


def request_environ(conn: Connection, connection_key: str, timeout: float) -> tuple[dict, bool]:
    """Parse the head at the start of ``conn.buf`` (and take it off): the WSGI environ and
    whether the connection may stay open."""
    method, target, version, head = take_head(conn.buf)
    environ = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "SERVER_PROTOCOL": version,
        "REMOTE_ADDR": conn.address[0], "REMOTE_PORT": str(conn.address[1]),
        "wsgi.version": (1, 0), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": False, "wsgi.input_terminated": True,
        connection_key: conn.id,
    }
    environ["PATH_INFO"], environ["QUERY_STRING"] = path_and_query(target, method)
    if conn.local is None:
        conn.local = conn.sock.getsockname()[:2]
    environ["SERVER_NAME"], environ["SERVER_PORT"] = conn.local[0], str(conn.local[1])
    if conn.tls_version:
        environ.update({"wsgi.url_scheme": "https", "HTTPS": "on",
                        "SSL_PROTOCOL": conn.tls_version,
                        TLS_CONTEXT_ENVIRON_KEY: conn.sock.context})
        if conn.peer_cert:
            environ[CLIENT_CERT_ENVIRON_KEY] = conn.peer_cert
    else:
        environ["wsgi.url_scheme"] = "http"
    headers = header_fields(head, method, target)
    environ["engage.headers"] = headers
    for name, value in headers:
        if "_" in name:  # would pass for a header with '-' in its place: dropped
            continue
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if key in environ and environ[key] != value:
                raise Refused("400 Bad Request", f"Conflicting {name} headers.", method, target)
        else:
            key = "HTTP_" + key
            if key in environ:
                if key == "HTTP_HOST":
                    raise Refused("400 Bad Request", "More than one Host header.", method, target)
                value = environ[key] + ", " + value
        environ[key] = value
    environ["wsgi.input"] = Body.of(conn, environ, method, target, timeout)
    if version == "HTTP/1.1" and "HTTP_HOST" not in environ:
        raise Refused("400 Bad Request", "An HTTP/1.1 request needs a Host header "
                      "(RFC 9112 section 3.2).", method, target)
    tokens = environ.get("HTTP_CONNECTION", "").lower()
    keep = version == "HTTP/1.1" and "close" not in tokens
    return environ, keep


class Response:
    """What the application gave ``start_response``."""

    __slots__ = ("status", "headers", "written", "closes")

    def __init__(self):
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        self.written: list[bytes] = []
        self.closes = False

    def start(self, status: str, headers: list, exc_info=None):
        if exc_info and self.status:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status, self.headers = status, headers
        return self.written.append

    def head(self, length: int, keep: bool) -> bytes:
        lines = [f"HTTP/1.1 {self.status}\r\n"]
        has_length = has_date = False
        for name, value in self.headers:
            lower = name.lower()
            if lower in HOP_BY_HOP:
                self.closes = self.closes or (lower == "connection" and "close" in value.lower())
                continue
            has_length = has_length or lower == "content-length"
            has_date = has_date or lower == "date"
            lines.append(f"{name}: {value}\r\n")
        if not has_length:
            lines.append(f"Content-Length: {length}\r\n")
        if not has_date:
            lines.append(f"Date: {_http_date()}\r\n")
        if not keep or self.closes:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")


def close_result(result) -> None:
    """Close what the application returned, if it can be closed (PEP 3333), sent or not."""
    if hasattr(result, "close"):
        result.close()


_date_cache = [0, ""]


def _http_date() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[:] = [now, email.utils.formatdate(now, usegmt=True)]
    return _date_cache[1]
