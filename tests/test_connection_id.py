"""The listeners give every connection an id, never reused, in the WSGI environ."""

from __future__ import annotations

import http.client

import pytest

from server.events import RequestLog
from server.listeners import CONNECTION_ENVIRON_KEY, Listener


def echo_connection(environ, start_response):
    body = str(environ.get(CONNECTION_ENVIRON_KEY)).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def port():
    listener = Listener("http", echo_connection, RequestLog(), "127.0.0.1", 0, "--http-port")
    assert listener.start().state == "RUNNING"
    yield listener.bound_port
    listener.stop()


def ids_on_one_connection(port: int, requests: int) -> list[str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        out = []
        for _ in range(requests):
            conn.request("GET", "/")
            out.append(conn.getresponse().read().decode())
        return out
    finally:
        conn.close()


def test_requests_on_one_connection_share_its_id(port):
    first, second, third = ids_on_one_connection(port, 3)
    assert first == second == third and first.isdigit()


def test_each_new_connection_gets_a_new_id(port):
    ids = [ids_on_one_connection(port, 1)[0] for _ in range(5)]
    assert len(set(ids)) == 5
