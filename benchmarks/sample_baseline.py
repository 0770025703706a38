"""The baseline the delivery benchmark compares against: a server that behaves like the
Allegion sample scripts integrators run today - a bare Flask app on werkzeug's development
server (``app.run(..., threaded=True)``, with ``ssl_context=(chain, key)`` for TLS) answering
``/current`` with a fixed JSON and the DER download with fixed bytes held in memory.

Run in its own process: ``python -m benchmarks.sample_baseline --port N --der FILE
--cert-url URL --hash HASH [--tls CHAIN KEY]``. Bound to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flask import Flask, Response, jsonify

CURRENT_PATH = "/swordfish/lock/certificates/current"
DER_PATH = "/static/Device_Certificates/partner_CA.der"


def create_app(der: bytes, cert_url: str, hmac_hash: str) -> Flask:
    app = Flask(__name__)

    @app.route(CURRENT_PATH)
    def current():
        return jsonify({"cert_url": cert_url, "hash": hmac_hash})

    @app.route(DER_PATH)
    def anchor():
        return Response(der, mimetype="application/x-x509-ca-cert")

    return app


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--der", type=Path, required=True, help="anchor certificate (DER)")
    parser.add_argument("--cert-url", required=True, help="cert_url answered by /current")
    parser.add_argument("--hash", required=True, help="hash answered by /current")
    parser.add_argument("--tls", nargs=2, metavar=("CHAIN", "KEY"),
                        help="serve TLS with this chain and key, as the sample's ssl_context=")
    args = parser.parse_args(argv)
    app = create_app(args.der.read_bytes(), args.cert_url, args.hash)
    app.run(host="127.0.0.1", port=args.port, threaded=True,
            ssl_context=tuple(args.tls) if args.tls else None)


if __name__ == "__main__":
    main()
