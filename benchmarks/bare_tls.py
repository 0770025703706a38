"""A reference for the TLS delivery rows: about the least any server can do per request on this
machine - a full handshake with the same chain, key and context settings as ours, then one fixed
reply - on eight blocking threads, with no HTTP parsing, application or request log. Its rate
over the sample's is the highest ratio the TLS target could be met with here.

Run in its own process: ``python -m benchmarks.bare_tls --port N --chain FILE --key FILE``.
Bound to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import socket
import threading
from pathlib import Path

from server.tlscontext import build_server_context

REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
         b"Connection: close\r\n\r\n{}")
THREADS = 8
IO_TIMEOUT = 5.0


def serve(listener: socket.socket, context) -> None:
    while True:
        sock, _ = listener.accept()
        try:
            sock.settimeout(IO_TIMEOUT)
            with context.wrap_socket(sock, server_side=True) as tls:
                tls.recv(65536)
                tls.sendall(REPLY)
        except OSError:  # a client that went away; ssl.SSLError is an OSError too
            pass
        finally:
            sock.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chain", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    args = parser.parse_args(argv)
    context = build_server_context(args.chain, args.key)
    listener = socket.create_server(("127.0.0.1", args.port), backlog=1024)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threads = [threading.Thread(target=serve, args=(listener, context), daemon=True)
               for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
