"""HTTP/1.1 parsing and framing as functions of bytes, with no sockets: the head (request line,
target, header lines), how long the body is, and the lines of a chunked body."""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from werkzeug.exceptions import BadRequest

MAX_HEADER_BYTES = 16 * 1024  # a request line and headers longer than this are refused
HEAD_END = re.compile(rb"\r?\n\r?\n")  # the blank line that ends a header block
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,8})[ \t]*(?:;[^\r\n]*)?\r?\n")
QUOTED_SLASH = re.compile(r"(?i)%2f")
NOT_IN_TARGET = re.compile(r"[\x00-\x20\x7f]")
NOT_IN_VALUE = re.compile(rb"[\x00\r]")
TRAILER_LINE = re.compile(rb"[^\r\n]*\r?\n")


class Refused(Exception):
    """A request the server answers itself, without the application."""

    def __init__(self, status: str, message: str, method: str = "", target: str = ""):
        super().__init__(message)
        self.status, self.message, self.method, self.target = status, message, method, target


def take_head(buf: bytearray) -> tuple[str, str, str, bytes]:
    """Take the head (it ends with a blank line) off the start of ``buf``: the method, target
    and version of its request line, and its header lines."""
    found = HEAD_END.search(buf)
    line_end = buf.find(b"\n")
    if line_end < 0 or line_end > MAX_HEADER_BYTES:
        method, _, rest = bytes(buf[:MAX_HEADER_BYTES]).partition(b" ")
        raise Refused("414 Request-URI Too Long",
                      f"The request line exceeds {MAX_HEADER_BYTES} bytes.",
                      method[:20].decode("latin-1"), rest.decode("latin-1"))
    method, target, version = _request_line(bytes(buf[:line_end]).rstrip(b"\r"))
    if found is None or found.start() > MAX_HEADER_BYTES:
        raise Refused("431 Request Header Fields Too Large",
                      f"The request line and headers exceed {MAX_HEADER_BYTES} bytes.",
                      method, target)
    head = bytes(buf[line_end + 1:found.start()])
    del buf[:found.end()]
    return method, target, version, head


def _request_line(line: bytes) -> tuple[str, str, str]:
    parts = line.split(b" ")
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise Refused("400 Bad Request", "Malformed request line.",
                      target=line[:200].decode("latin-1"))
    method, target, version = (part.decode("latin-1") for part in parts)
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        if re.fullmatch(r"HTTP/\d\.\d", version):
            raise Refused("505 HTTP Version Not Supported", "Only HTTP/1.1 and HTTP/1.0.",
                          method, target)
        raise Refused("400 Bad Request", "Malformed request line.", method, target)
    return method, target, version


def path_and_query(target: str, method: str) -> tuple[str, str]:
    """PATH_INFO (percent-decoded, but an encoded '/' stays encoded) and QUERY_STRING."""
    if target.startswith(("http://", "https://")):  # absolute form: the path part only
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    if not target.startswith("/") or NOT_IN_TARGET.search(target):
        raise Refused("400 Bad Request", "Malformed request target.", method, target)
    path, _, query = target.partition("?")
    path = "%2F".join(unquote_to_bytes(part).decode("latin-1")
                      for part in QUOTED_SLASH.split(path))
    return path, query


def header_fields(head: bytes, method: str, target: str) -> list[tuple[str, str]]:
    """The header lines of ``head`` as (name, value) pairs, in the client's order and spelling."""
    headers = []
    for line in head.split(b"\n") if head else ():
        line = line[:-1] if line.endswith(b"\r") else line
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN.fullmatch(name) or NOT_IN_VALUE.search(value):
            raise Refused("400 Bad Request", "Malformed header line.", method, target)
        headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    return headers


def body_length(coding: str, length: str | None, method: str, target: str) -> int | None:
    """The body's length in bytes from the Transfer-Encoding (in lower case) and Content-Length
    (None when absent) headers, or None for a chunked body."""
    if coding:
        if coding != "chunked" or length is not None:
            raise Refused("400 Bad Request" if length is not None else "501 Not Implemented",
                          "Transfer-Encoding must be chunked, without Content-Length.",
                          method, target)
        return None
    if length is not None:
        if not (length.isascii() and length.isdigit()) or len(length) > 18:
            raise Refused("400 Bad Request", "Malformed Content-Length.", method, target)
        return int(length)
    return 0


def take_line(buf: bytearray, what: str) -> bytes | None:
    """Take the next line of a chunked body (with its newline) off ``buf``; None while it is
    not all there. A ``what`` line longer than 4096 bytes is a 400."""
    end = buf.find(b"\n")
    if end >= 0:
        line = bytes(buf[:end + 1])
        del buf[:end + 1]
        return line
    if len(buf) > 4096:
        raise BadRequest(f"malformed chunked body: {what} line too long")
    return None


def checked_line(line: bytes, pattern, what: str):
    """The match of ``line`` against ``pattern`` (b"": the line must be blank; None); a line
    that does not match is a 400."""
    if pattern == b"":
        if line.strip():
            raise BadRequest(f"malformed chunked body: data after a {what}")
        return None
    found = pattern.fullmatch(line)
    if not found:
        raise BadRequest(f"malformed chunked body: bad {what} line")
    return found


def chunked_end(buf: bytearray) -> bool:
    """Whether ``buf`` holds a whole chunked body (with its trailers), or one malformed so far
    that reading it will fail; False while more is to come."""
    pos = 0
    while True:
        end = buf.find(b"\n", pos)
        if end < 0:
            return len(buf) - pos > 4096  # a size line this long is refused by the read
        found = CHUNK_SIZE.fullmatch(buf, pos, end + 1)
        if not found:
            return True
        size, pos = int(found.group(1), 16), end + 1
        if not size:
            break
        end = buf.find(b"\n", pos + size)
        if end < 0:
            return len(buf) - pos - size > 4096
        if buf[pos + size:end + 1].strip():
            return True  # data after the chunk
        pos = end + 1
    while True:  # trailers, up to the blank line
        end = buf.find(b"\n", pos)
        if end < 0:
            return len(buf) - pos > 4096
        if not buf[pos:end + 1].strip():
            return True
        pos = end + 1
