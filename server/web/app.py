"""The Flask application factory and the HTTP rules locks depend on.

Every response is HTTP/1.1 with a ``Content-Length:`` header (never chunked) and compact JSON
whose keys keep insertion order (PROTOCOL.md "HTTP rules"). Routes live in blueprints per
concern; decisions live in the host services they call.
"""

from __future__ import annotations

from http import HTTPStatus

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from . import routes_certs, routes_lock
from .responses import error_response


def create_app(host):
    """The WSGI app for a :class:`server.host.Host` (or anything with the same services):
    certificate-delivery GETs answered directly (``routes_certs.answer``), all else by Flask."""
    app = Flask("engage-console", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = host.settings.max_body_bytes
    app.extensions["engage.host"] = host
    app.register_blueprint(routes_certs.blueprint)
    app.register_blueprint(routes_lock.blueprint)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        messages = {404: "no such resource", 405: f"method {request.method} not allowed here",
                    413: f"body larger than {host.settings.max_body_bytes} bytes"}
        response = error_response(exc.code or 500, messages.get(exc.code, exc.description or ""))
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unhandled error")
        return error_response(500, f"internal error: {exc.__class__.__name__}")

    @app.after_request
    def content_length(response: Response) -> Response:
        if response.is_streamed:
            response.direct_passthrough = False
            data = response.get_data()
            response.set_data(data)
        if "Content-Length" not in response.headers:
            response.headers["Content-Length"] = str(len(response.get_data()))
        return response

    def wsgi(environ, start_response):
        if environ["REQUEST_METHOD"] == "GET" \
                and (found := routes_certs.answer(host, environ)) is not None:
            status, content_type, body = found
            start_response(f"{status} {HTTPStatus(status).phrase}",
                           [("Content-Type", content_type), ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)

    return wsgi
