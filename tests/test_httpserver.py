"""The HTTP/1.1 server under the listeners, driven with raw bytes over real sockets: framing,
bodies, persistent connections, what it refuses itself, and clients that stall."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from werkzeug.exceptions import HTTPException

from server.httpserver import MAX_HEADER_BYTES, Server


def echo_app(environ, start_response):
    """Answers what it was sent: method, path, query, body and the headers as received; an
    HTTP error raised while reading the body is answered as werkzeug would."""
    try:
        body = environ["wsgi.input"].read() if environ["PATH_INFO"] != "/ignore-body" else b""
    except HTTPException as exc:
        return exc(environ, start_response)
    answer = json.dumps({"method": environ["REQUEST_METHOD"], "path": environ["PATH_INFO"],
                         "query": environ["QUERY_STRING"], "body": body.decode("latin-1"),
                         "headers": environ["engage.headers"],
                         "connection": environ["engage.connection"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [answer]


@pytest.fixture
def served():
    """A server on an ephemeral port with a 1 s timeout, and what it refused."""
    refused = []
    server = Server(("127.0.0.1", 0), echo_app, threads=2, timeout=1.0,
                    on_refused=lambda *args: refused.append(args))
    server.bind()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    server.refused = refused
    yield server
    server.stop()
    thread.join(5)


class Client:
    """One raw connection that reads responses by their Content-Length."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.data = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> tuple[bytes, dict[bytes, bytes], bytes]:
        while b"\r\n\r\n" not in self.data:
            self._more()
        head, self.data = self.data.split(b"\r\n\r\n", 1)
        status, *lines = head.split(b"\r\n")
        headers = dict(line.split(b": ", 1) for line in lines)
        length = int(headers[b"Content-Length"])
        while len(self.data) < length:
            self._more()
        body, self.data = self.data[:length], self.data[length:]
        return status, headers, body

    def closed(self) -> bool:
        """Whether the server closes the connection (after anything still unread)."""
        try:
            while chunk := self.sock.recv(65536):
                self.data += chunk
        except ConnectionResetError:
            pass
        return True

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, "server closed the connection"
        self.data += chunk

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def client(served):
    c = Client(served.port)
    yield c
    c.close()


def test_pipelined_requests_are_answered_in_order_on_one_connection(client):
    client.send(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 3\r\n\r\nabcGET /c?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    answers = [json.loads(client.response()[2]) for _ in range(3)]
    assert [(a["path"], a["body"], a["query"]) for a in answers] == \
        [("/a", "", ""), ("/b", "abc", ""), ("/c", "", "q=1")]
    assert len({a["connection"] for a in answers}) == 1


def test_a_body_sent_after_the_head_is_read_from_the_socket(client):
    client.send(b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
    time.sleep(0.05)  # the rest comes in a later segment, as from a lock on slow Wi-Fi
    client.send(b"56789")
    assert json.loads(client.response()[2])["body"] == "0123456789"


def test_chunked_body_is_decoded_and_the_connection_goes_on(client):
    client.send(b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nTrailer: t\r\n\r\n"
                b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    assert json.loads(client.response()[2])["body"] == "Wikipedia "
    assert json.loads(client.response()[2])["path"] == "/next"


def test_headers_keep_the_clients_spelling_and_repeated_ones_are_joined(client):
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-LOCK-id: 7\r\nAccept: a\r\nAccept: b\r\n\r\n")
    answer = json.loads(client.response()[2])
    assert ["X-LOCK-id", "7"] in answer["headers"]


def test_percent_decoded_path_keeps_an_encoded_slash(client):
    client.send(b"GET /a%20b/..%2fc?x=%20 HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = json.loads(client.response()[2])
    assert (answer["path"], answer["query"]) == ("/a b/..%2Fc", "x=%20")


def test_absolute_form_target_is_served_by_its_path(client):
    client.send(b"GET http://lock.example/swordfish?a=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = json.loads(client.response()[2])
    assert (answer["path"], answer["query"]) == ("/swordfish", "a=1")


def test_http10_gets_an_http11_answer_and_the_connection_closes(client):
    client.send(b"GET / HTTP/1.0\r\n\r\n")
    status, headers, _ = client.response()
    assert status == b"HTTP/1.1 200 OK" and headers[b"Connection"] == b"close"
    assert client.closed()


def test_connection_close_from_the_client_is_honoured(client):
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert client.response()[1][b"Connection"] == b"close"
    assert client.closed()


def test_expect_100_continue_gets_the_go_ahead_before_the_body(client):
    client.send(b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    while b"\r\n\r\n" not in client.data:
        client._more()
    assert client.data.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    client.data = client.data[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
    client.send(b"ok")
    assert json.loads(client.response()[2])["body"] == "ok"


def test_an_unread_small_body_is_skipped_and_the_connection_goes_on(client):
    client.send(b"POST /ignore-body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
    client.response()
    assert json.loads(client.response()[2])["path"] == "/after"


@pytest.mark.parametrize("request_bytes, status", [
    (b"GARBAGE\r\n\r\n", b"400"),
    (b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
    (b"GET relative HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", b"505"),
    (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", b"400"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", b"400"),
    (b"POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", b"400"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", b"501"),
    (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", b"400"),
    (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", b"400"),
    (b"GET /" + b"a" * MAX_HEADER_BYTES + b" HTTP/1.1\r\n\r\n", b"414"),
    (b"GET / HTTP/1.1\r\nX: " + b"v" * MAX_HEADER_BYTES + b"\r\n\r\n", b"431"),
])
def test_malformed_requests_are_refused_with_content_length_and_reported(served, client,
                                                                         request_bytes, status):
    client.send(request_bytes)
    line, headers, body = client.response()
    assert line.split(b" ")[:2] == [b"HTTP/1.1", status] and len(body) == int(
        headers[b"Content-Length"])
    assert headers[b"Connection"] == b"close" and client.closed()
    assert served.refused and served.refused[-1][1].startswith(status.decode())


def test_a_body_that_stalls_past_the_timeout_is_a_408_and_the_connection_closes(client):
    client.send(b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123")
    status, headers, _ = client.response()
    assert status.startswith(b"HTTP/1.1 408") and headers[b"Connection"] == b"close"
    assert client.closed()


def test_a_malformed_chunked_body_is_a_400_and_the_connection_closes(client):
    client.send(b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    status, headers, _ = client.response()
    assert status.startswith(b"HTTP/1.1 400") and headers[b"Connection"] == b"close"
    assert client.closed()


def test_an_application_that_raises_gets_a_500_and_is_reported():
    def broken_app(environ, start_response):
        raise RuntimeError("bug")

    refused = []
    server = Server(("127.0.0.1", 0), broken_app, threads=1,
                    on_refused=lambda *args: refused.append(args))
    server.bind()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    c = Client(server.port)
    try:
        c.send(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.response()[0].startswith(b"HTTP/1.1 500")
        assert refused[0][1:4] == ("500 Internal Server Error", "GET", "/boom")
    finally:
        c.close()
        server.stop()
        thread.join(5)


def test_a_new_connection_that_never_sends_gets_408_after_the_timeout(served):
    c = Client(served.port)
    started = time.monotonic()
    try:
        assert c.response()[0].startswith(b"HTTP/1.1 408")
        assert 0.7 < time.monotonic() - started < 3.0
    finally:
        c.close()


def test_an_idle_kept_alive_connection_is_closed_quietly_after_the_timeout(client):
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    client.response()
    client.sock.settimeout(3)
    assert client.sock.recv(100) == b""  # closed, with nothing said


def test_stop_cuts_a_request_that_outlives_the_grace_period():
    entered, release = threading.Event(), threading.Event()

    def slow_app(environ, start_response):
        entered.set()
        release.wait(10)
        start_response("200 OK", [])
        return [b""]

    server = Server(("127.0.0.1", 0), slow_app, threads=1, timeout=5.0, grace=0.2)
    server.bind()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    port = server.port
    c = Client(port)
    try:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert entered.wait(5)
        started = time.monotonic()
        server.stop()
        thread.join(5)
        assert time.monotonic() - started < 1.0
        assert c.closed()  # the request in flight was cut after the grace period
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        release.set()
        c.close()
