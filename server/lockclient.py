"""The lock's side of the protocol over real sockets, for tests, benchmarks and ``simulate``.

A :class:`SimulatedLock` behaves like a Wi-Fi lock: with no anchor it fetches ``/current`` over
plain HTTP, checks the hash with the site key (refusing a mismatch), downloads the DER and keeps
it as its only trust anchor. A call-in opens one TLS connection trusting only that anchor,
refuses a presented chain over 4096 bytes or a key over 2048 bits (a TLS connection error, as a
lock reports it), then sends ``PUT Config``, ``GET db`` and ``POST audit`` on that connection.
:func:`server.simfleet.run_fleet` runs many of them on a schedule.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import random
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

MAX_CHAIN_BYTES = 4096
MAX_KEY_BITS = 2048
MODELS = ("nde", "le", "mt20w", "cte", "be467", "ndeb", "leb")
AUDIT_CODES = (11111111, 12000000, 12010000, 13000000, 40010000, 40020000, 50000000)


class LockError(Exception):
    """A call-in step failed; ``reason`` is a short stable text for counting failures."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass
class CallIn:
    """Outcome of one call-in: ``statuses`` per request, ``latency`` in seconds."""

    serial: str
    ok: bool
    reason: str = ""
    latency: float = 0.0
    statuses: dict = field(default_factory=dict)
    error: str = ""
    anchor: str = ""  # SHA-256 of the anchor the handshake verified the chain to ("": none did)


def _tls_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS connection error: certificate not trusted"
    return "TLS connection error"


def _key_bits(cert: x509.Certificate) -> int:
    key = cert.public_key()
    if isinstance(key, (rsa.RSAPublicKey, dsa.DSAPublicKey, ec.EllipticCurvePublicKey)):
        return key.key_size
    return 0


def presented_chain(sock: ssl.SSLSocket) -> list[bytes]:
    """DER of every certificate the server sent (Python 3.13 has this as a public method)."""
    getter = getattr(sock, "get_unverified_chain", None)
    if getter is None:
        getter = sock._sslobj.get_unverified_chain  # type: ignore[attr-defined]
    chain = getter() or []
    return [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore
            for c in chain]


def check_chain_limits(chain: list[bytes], anchor_der: bytes) -> None:
    """What the locks enforce: the whole chain, anchor included, at most 4096 DER bytes, and
    no key over 2048 bits (PROTOCOL.md "TLS limits of the locks")."""
    certs = chain + ([anchor_der] if anchor_der not in chain else [])
    size = sum(len(der) for der in certs)
    if size > MAX_CHAIN_BYTES:
        raise LockError("TLS connection error: chain too long",
                        f"{size} bytes, locks accept at most {MAX_CHAIN_BYTES}")
    for der in certs:
        cert = x509.load_der_x509_certificate(der)
        bits = _key_bits(cert)
        if bits > MAX_KEY_BITS:
            raise LockError("TLS connection error: key too large",
                            f"{cert.subject.rfc4514_string()} has a {bits}-bit key, locks accept "
                            f"at most {MAX_KEY_BITS}")


class SimulatedLock:
    def __init__(self, serial: str, host: str, http_port: int, tls_port: int, hmac_key: bytes,
                 model: str = "nde", rng: random.Random | None = None, timeout: float = 10.0,
                 authorization: bool = True, source: str | None = None):
        self.serial = serial
        self.source = source  # the address it connects from (bound before connect), if given
        self.host = host
        self.http_port = http_port
        self.tls_port = tls_port
        self._hmac_key = hmac_key
        self.model = model
        self.rng = rng or random.Random()
        self.timeout = timeout
        self.authorization = authorization
        self.anchor: bytes | None = None
        self.db_version = "0"
        self.audit_id = 0
        self.users: list = []
        self.last_db: dict | None = None
        self.statuses: dict = {}
        self._context: tuple[bytes, ssl.SSLContext] | None = None
        self._chain_ok: list[bytes] | None = None
        self.busy = threading.Lock()  # a lock does one thing at a time: a call-in or a fetch

    # --- certificate delivery (plain HTTP) ---------------------------------------------------

    def fetch_anchor(self) -> bytes:
        """``/current`` then the DER at ``cert_url``; keep it only when the hash matches."""
        status, body = self._plain_get(self.host, self.http_port,
                                       "/swordfish/lock/certificates/current")
        if status != 200:
            raise LockError(f"/current answered {status}", body[:200].decode("utf-8", "replace"))
        try:
            answer = json.loads(body)
            url, expected = urlsplit(answer["cert_url"]), answer["hash"]
        except (ValueError, KeyError, TypeError) as exc:
            raise LockError("/current answer not understood", str(exc)) from None
        if url.scheme != "http":
            raise LockError("cert_url is not plain HTTP", answer["cert_url"])
        status, der = self._plain_get(url.hostname or self.host, url.port or 80,
                                      url.path + (f"?{url.query}" if url.query else ""))
        if status != 200:
            raise LockError(f"cert_url answered {status}")
        digest = base64.b64encode(hmac.new(self._hmac_key, der, hashlib.sha1).digest()).decode()
        if not hmac.compare_digest(digest.encode(), str(expected).encode("utf-8")):
            raise LockError("certificate hash mismatch",
                            "the hash does not match the site key: certificate refused")
        try:
            x509.load_der_x509_certificate(der)
        except ValueError:
            raise LockError("certificate not DER") from None
        self.anchor = der
        return der

    def _source(self) -> tuple[str, int] | None:
        return (self.source, 0) if self.source else None

    def _plain_get(self, host: str, port: int, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(host, port, timeout=self.timeout,
                                          source_address=self._source())
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except OSError as exc:
            raise LockError(f"connection error to {host}:{port}", str(exc)) from None
        finally:
            conn.close()

    # --- call-in (TLS) -----------------------------------------------------------------------

    def context(self) -> ssl.SSLContext:
        """Trusts only the installed anchor; built once per anchor, like a lock's trust store."""
        if self._context is None or self._context[0] != self.anchor:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(cadata=x509.load_der_x509_certificate(self.anchor)
                                      .public_bytes(Encoding.PEM).decode())
            self._context = (self.anchor, ctx)
        return self._context[1]

    def call_in(self, alert: bool = False) -> CallIn:
        """One call-in on one TLS connection; never raises: what a lock would report, and any
        reply it cannot make sense of, is a failed call-in with a reason."""
        with self.busy:
            return self._call_in(alert)

    def _call_in(self, alert: bool) -> CallIn:
        started = time.perf_counter()
        self.statuses = {}
        anchor = ""
        try:
            if self.anchor is None:
                self.fetch_anchor()
            conn = self._connect()
            anchor = hashlib.sha256(self.anchor).hexdigest()
            try:
                self._exchange(conn, "PUT", "/swordfish/lock/Config", self.config_body(), (200,))
                reply = self._exchange(conn, "GET", f"/swordfish/lock/db/{self.db_version}",
                                       None, (200,))
                self._apply_db(reply)
                self._exchange(conn, "POST", "/swordfish/lock/audit", self.audit_body(),
                               (201, 202))
                if alert:
                    self._exchange(conn, "POST", "/swordfish/lock/alert", self.alert_body(),
                                   (201, 202))
            finally:
                conn.close()
        except LockError as exc:
            return CallIn(self.serial, False, exc.reason, time.perf_counter() - started,
                          dict(self.statuses), str(exc), anchor)
        except Exception as exc:  # a reply no check above foresaw: report it, keep the fleet
            return CallIn(self.serial, False, "unexpected error",
                          time.perf_counter() - started, dict(self.statuses), repr(exc), anchor)
        return CallIn(self.serial, True, "", time.perf_counter() - started, dict(self.statuses),
                      anchor=anchor)

    def _connect(self) -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection(self.host, self.tls_port, timeout=self.timeout,
                                           context=self.context(),
                                           source_address=self._source())
        try:
            conn.connect()
        except ssl.SSLError as exc:
            conn.close()
            raise LockError(_tls_reason(exc), str(exc)) from None
        except OSError as exc:
            conn.close()
            raise LockError(f"connection error to {self.host}:{self.tls_port}", str(exc)) from None
        chain = presented_chain(conn.sock)
        if chain != self._chain_ok:  # the same chain as last time passed already
            try:
                check_chain_limits(chain, self.anchor)
            except LockError:
                conn.close()
                raise
            self._chain_ok = chain
        conn.auto_open = 0  # the whole call-in on this one connection, as a lock does
        return conn

    def _exchange(self, conn, method: str, path: str, body, expect: tuple) -> dict | None:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.authorization:
            headers["Authorization"] = "Device " + base64.b64encode(
                self.rng.randbytes(24)).decode()
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        name = f"{method} {path.rsplit('/', 1)[0] if '/db/' in path else path}"
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
        except http.client.NotConnected:
            raise LockError("host closed the connection", f"before {method} {path}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise LockError("connection error", f"{method} {path}: {exc}") from None
        self.statuses[name] = resp.status
        if resp.version != 11:
            raise LockError("host answered HTTP/1.0", f"{method} {path}")
        if resp.getheader("Content-Length") is None:
            raise LockError("no Content-Length", f"{method} {path}")
        if resp.status not in expect:
            raise LockError(f"{name} answered {resp.status}",
                            payload[:200].decode("utf-8", "replace"))
        if resp.will_close:
            conn.close()
        if not payload:
            return None
        try:
            return json.loads(payload)
        except ValueError:
            raise LockError(f"{name} answer not JSON") from None

    def _apply_db(self, reply) -> None:
        if not isinstance(reply, dict) or not isinstance(reply.get("nxtDbVerTS"), str) \
                or "dbDwnLdTm" not in reply:
            raise LockError("db answer not understood", str(reply)[:200])
        db = reply.get("db") or {}
        usr = (db.get("usrRcrd") or {}) if isinstance(db, dict) else None
        lists = [usr.get(key) or [] for key in ("delete", "update", "add")] \
            if isinstance(usr, dict) else None
        if lists is None or not all(isinstance(users, list) for users in lists):
            raise LockError("db answer not understood", f"db {str(db)[:200]}")
        delete, update, add = ([u for u in users if isinstance(u, dict)] for users in lists)
        if usr.get("deleteAll") == 1:
            self.users = []
        gone = {u.get("usrID") for u in delete}
        self.users = [u for u in self.users if u.get("usrID") not in gone] + update + add
        self.db_version = reply["nxtDbVerTS"]
        self.last_db = reply

    # --- bodies ------------------------------------------------------------------------------

    def config_body(self) -> dict:
        now = dt.datetime.now().strftime("%Y%m%d%H%M%S")
        return {
            "dvcProfile": {"baseType": self.model, "ext": [{"key": "dupAuditDet", "value": "1"}]},
            "battV": {"main": f"{self.rng.uniform(4.8, 6.2):.2f}",
                      "li": f"{self.rng.uniform(2.8, 3.2):.2f}"},
            "fwVer": {"main": "01.52.14", "credRdr": "02.07.00", "ble": "01.04.08",
                      "wifi": "03.01.11", "mainBl": "01.00.02", "credRdrBl": "01.00.01"},
            "wifiStngs": {"ssid": "site-wifi", "ip": f"10.44.{self.rng.randint(0, 255)}."
                          f"{self.rng.randint(1, 254)}", "dns": "10.44.0.1"},
            "lckPrmtrs": {"nm": f"Door {self.serial[-4:]}", "mdl": self.model.upper(),
                          "lckSn": self.serial, "mnSn": self.serial, "mfgDt": "20190412",
                          "hwVer": "2", "type": "wifi", "relock": 3, "doorProp": 0, "ada": 0,
                          "rtcTime": now, "dbDwnLdTm": now},
            "rdrPrmtrs": {"prox": 1, "smart": 1},
        }

    def _events(self, count: int) -> list[dict]:
        events, now = [], dt.datetime.now()
        for _ in range(count):
            self.audit_id += 1
            when = now - dt.timedelta(seconds=self.rng.randint(0, 600))
            events.append({"event": self.rng.choice(AUDIT_CODES),
                           "time": int(when.strftime("%Y%m%d%H%M%S")),
                           "auditId": self.audit_id})
        return events

    def audit_body(self) -> dict:
        return {"asyncEvents": self._events(self.rng.randint(1, 5)),
                "nxtDbVerTS": self.db_version}

    def alert_body(self) -> dict:
        return {"asyncEvents": self._events(1), "nxtDbVerTS": self.db_version}
