"""Clients that act as a lock would, over real sockets (stdlib only)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


def http_get(port: int, path: str, method: str = "GET", body: bytes | None = None,
             headers: dict | None = None, host: str = "127.0.0.1"):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def raw_exchange(port: int, request: bytes, tls: ssl.SSLContext | None = None,
                 server_hostname: str = "localhost") -> bytes:
    """Send raw bytes, return everything the server sends until it closes or goes quiet."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if tls:
        sock = tls.wrap_socket(sock, server_hostname=server_hostname)
    with sock:
        sock.sendall(request)
        chunks = []
        sock.settimeout(1.0)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        except (socket.timeout, TimeoutError):
            pass
    return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return len(body) >= int(value.strip())
    return True


def lock_hash(site_key_raw: bytes, der: bytes) -> str:
    return base64.b64encode(hmac.new(site_key_raw, der, hashlib.sha1).digest()).decode()


def anchor_context(anchor_der: bytes) -> ssl.SSLContext:
    """A TLS client context that trusts only this anchor, as a lock does after delivery."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=x509.load_der_x509_certificate(anchor_der)
                              .public_bytes(Encoding.PEM).decode())
    return ctx


@dataclass
class Site:
    host: object
    site_key: object

    @property
    def http_port(self) -> int:
        return self.host.listeners["http"].bound_port

    @property
    def tls_port(self) -> int:
        return self.host.listeners["tls"].bound_port

    def fetch_anchor(self) -> tuple[dict, bytes]:
        """What a lock does on plain HTTP: /current, then the DER at cert_url."""
        status, headers, body = http_get(self.http_port, "/swordfish/lock/certificates/current")
        assert status == 200, body
        answer = json.loads(body)
        url = urlsplit(answer["cert_url"])
        status, headers, der = http_get(url.port or 80, url.path)
        assert status == 200, der
        return answer, der

    def tls_get(self, anchor_der: bytes, path: str, method: str = "GET", body=None,
                headers=None):
        conn = http.client.HTTPSConnection("localhost", self.tls_port, timeout=10,
                                           context=anchor_context(anchor_der))
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()


def wait_for_event(log, predicate, timeout: float = 5.0) -> list:
    """Events already in the log, or arriving within ``timeout``, that match ``predicate``."""
    import time

    deadline = time.monotonic() + timeout
    sub = log.subscribe()
    try:
        found = [e for e in log.recent() if predicate(e)]
        while not found and time.monotonic() < deadline:
            sub.ready.wait(0.2)
            found = [e for e in sub.drain() if predicate(e)]
    finally:
        sub.close()
    assert found, "no matching event in the request log"
    return found


def until(condition, timeout: float = 5.0) -> bool:
    """Whether ``condition()`` became true within ``timeout`` (polled every 10 ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
