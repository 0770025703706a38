"""Request framing checked against an independent implementation: for each vector the listener's
accept/reject decision, and the body it hands the application, agree with ``h11`` on the same
bytes (RFC 9112). Where we are deliberately stricter than h11 the table says why.

The vectors are request-smuggling classics (Content-Length beside Transfer-Encoding, duplicate,
signed or hex lengths, coding lists, odd chunk sizes), line-ending and header-syntax tricks, and
the rules on Host and Connection. Each is sent on a fresh connection, followed by the client's
end of stream, so an incomplete request is a rejection on both sides.
"""

from __future__ import annotations

import json
import socket

import h11
import pytest

from .test_http import served  # noqa: F401  (the echo server fixture)

H = b"Host: x\r\n"

# name -> the raw bytes of one request (possibly followed by more bytes).
VECTORS: dict[str, bytes] = {
    # plain, accepted everywhere
    "get": b"GET / HTTP/1.1\r\n" + H + b"\r\n",
    "post with length": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello",
    "length zero": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n",
    "chunked": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    "chunked with an extension": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                                 b"5;name=value\r\nhello\r\n0\r\n\r\n",
    "chunked with a trailer": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                              b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n",
    "chunked coding in capitals": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: Chunked\r\n\r\n"
                                  b"2\r\nhi\r\n0\r\n\r\n",
    "upper-case hex chunk size": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                                 b"A\r\n0123456789\r\n0\r\n\r\n",
    "http/1.0 without host": b"GET / HTTP/1.0\r\n\r\n",
    "http/1.0 keep-alive": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "http/1.0 with a length": b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
    "connection close on 1.1": b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n",
    "connection list on 1.1": b"GET / HTTP/1.1\r\n" + H + b"Connection: keep-alive, close\r\n\r\n",
    "absolute-form target": b"GET http://x/a?b=1 HTTP/1.1\r\n" + H + b"\r\n",
    "lower-case method": b"get / HTTP/1.1\r\n" + H + b"\r\n",
    "white space around a value": b"GET / HTTP/1.1\r\nHost:   x  \r\nX-A:\tb\t\r\n\r\n",
    "empty header value": b"GET / HTTP/1.1\r\n" + H + b"X-Empty:\r\n\r\n",
    "pipelined after a short length": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\n"
                                      b"abcGET /smuggled HTTP/1.1\r\n" + H + b"\r\n",
    # Host (RFC 9112 section 3.2)
    "http/1.1 without host": b"GET / HTTP/1.1\r\n\r\n",
    "two host headers": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    # Content-Length
    "length and transfer-encoding": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 4\r\n"
                                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "transfer-encoding and length": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
                                    b"Content-Length: 4\r\n\r\n0\r\n\r\n",
    "two different lengths": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1\r\n"
                             b"Content-Length: 2\r\n\r\nab",
    "two equal lengths": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n"
                         b"Content-Length: 2\r\n\r\nab",
    "length list": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 2, 2\r\n\r\nab",
    "signed length": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +2\r\n\r\nab",
    "negative length": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n",
    "hex length": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x2\r\n\r\nab",
    "length with inner space": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1 2\r\n\r\nab",
    "empty length": b"POST / HTTP/1.1\r\n" + H + b"Content-Length:\r\n\r\n",
    "body shorter than its length": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 9\r\n\r\nab",
    # Transfer-Encoding
    "coding list ending in chunked": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, "
                                     b"chunked\r\n\r\n0\r\n\r\n",
    "chunked twice": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n"
                     b"0\r\n\r\n",
    "unknown coding": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n",
    "identity coding": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n",
    "chunked misspelt": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n"
                        b"0\r\n\r\n",
    "space before the colon of transfer-encoding": b"POST / HTTP/1.1\r\n" + H +
                                                   b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "vertical tab before chunked": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:\x0bchunked"
                                   b"\r\n\r\n0\r\n\r\n",
    "chunked on http/1.0": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"2\r\nhi\r\n0\r\n\r\n",
    # chunk sizes
    "chunk size with a plus": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                              b"+2\r\nhi\r\n0\r\n\r\n",
    "chunk size in 0x form": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                             b"0x2\r\nhi\r\n0\r\n\r\n",
    "chunk size after a space": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                                b" 2\r\nhi\r\n0\r\n\r\n",
    "chunk size overflowing": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                              b"1000000000000000000002\r\nhi\r\n0\r\n\r\n",
    "chunk longer than its size": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
                                  b"\r\n2\r\nhello\r\n0\r\n\r\n",
    "no last chunk": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                     b"2\r\nhi\r\n",
    "empty chunk size": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                        b"\r\nhi\r\n0\r\n\r\n",
    # line endings and header syntax
    "bare LF line endings": b"GET / HTTP/1.1\nHost: x\n\n",
    "obs-fold": b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n",
    "space before a colon": b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    "space in a header name": b"GET / HTTP/1.1\r\n" + H + b"X A: b\r\n\r\n",
    "empty header name": b"GET / HTTP/1.1\r\n" + H + b": b\r\n\r\n",
    "header line without a colon": b"GET / HTTP/1.1\r\n" + H + b"X-A\r\n\r\n",
    "control character in a value": b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x01b\r\n\r\n",
    "NUL in a value": b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n",
    "NUL in the target": b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n",
    "two spaces in the request line": b"GET  / HTTP/1.1\r\n" + H + b"\r\n",
    "tab in the request line": b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n",
    "request line without a version": b"GET /\r\n" + H + b"\r\n",
    "HTTP/0.9": b"GET /\r\n\r\n",
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "HTTP/1.2": b"GET / HTTP/1.2\r\n" + H + b"\r\n",
    "lower-case version": b"GET / http/1.1\r\n" + H + b"\r\n",
}

# Where we refuse what h11 accepts, and why (none may go the other way).
STRICTER = {
    "length and transfer-encoding": "both framings in one request are refused (RFC 9112 "
                                    "section 6.1 allows it); h11 lets chunked win",
    "transfer-encoding and length": "the same, in the other order",
    "length list": "a Content-Length list is refused even when its values agree (RFC 9110 "
                   "section 8.6 allows either); h11 takes the one value",
    "HTTP/1.2": "HTTP/1.0 and 1.1 only (505); h11 treats any 1.x as 1.1",
    "HTTP/2 preface": "an HTTP/2 preface gets 505; h11 parses it as a request for '*'",
    "obs-fold": "obs-fold is refused (RFC 9112 section 5.2 allows a 400); h11 unfolds it",
}


def h11_decision(data: bytes) -> tuple[bool, bytes]:
    """(accepted, body) of the first request in ``data`` as h11 reads it, then end of stream."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    conn.receive_data(b"")
    body = b""
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return True, body
            elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return False, b""
    except h11.RemoteProtocolError:
        return False, b""


def our_decision(port: int, data: bytes) -> tuple[bool, bytes, bytes]:
    """(accepted, body the application was handed, status line) from the real listener."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
            head, sep, rest = received.partition(b"\r\n\r\n")
            if sep and len(rest) >= _length(head):
                break
    if not received:
        return False, b"", b"(closed without an answer)"
    head, _, rest = received.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if not status.startswith(b"HTTP/1.1 200 "):
        return False, b"", status
    return True, json.loads(rest[:_length(head)])["body"].encode("latin-1"), status


def _length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_the_table_has_at_least_forty_vectors_and_only_known_exceptions():
    assert len(VECTORS) >= 40 and set(STRICTER) <= set(VECTORS)


@pytest.mark.parametrize("name", VECTORS)
def test_listener_and_h11_agree_on_framing(served, name):  # noqa: F811
    data = VECTORS[name]
    theirs, their_body = h11_decision(data)
    ours, our_body, status = our_decision(served.port, data)
    if name in STRICTER:
        assert theirs and not ours, f"{name}: no longer stricter than h11 ({status!r})"
        return
    assert ours == theirs, f"{name}: h11 {'accepts' if theirs else 'refuses'}, we answered {status!r}"
    assert our_body == their_body
