"""Lock call-ins over the real listeners: PUT Config, GET db, POST audit and alert."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import threading
import zoneinfo

import pytest

from server.lockclient import SimulatedLock
from server.simfleet import make_fleet

from .helpers import anchor_context, http_get, wait_for_event

CONFIG = "/swordfish/lock/Config"
AUDIT = "/swordfish/lock/audit"
ALERT = "/swordfish/lock/alert"
SERIAL = "00A1B2C3D4E5F607"


def config_body(serial=SERIAL, **extra) -> dict:
    return {"dvcProfile": {"baseType": "nde", "ext": []}, "battV": {"main": "5.90", "li": "3.01"},
            "fwVer": {"main": "01.52.14"}, "wifiStngs": {"ssid": "site", "ip": "10.0.0.7"},
            "lckPrmtrs": {"nm": "Front door", "mdl": "NDE", "lckSn": serial, "mnSn": serial},
            **extra}


def request_bytes(method: str, path: str, body: bytes | None = None, headers=()) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class RawConnection:
    """One TLS connection to the host, as a lock holds it: requests in turn, raw responses."""

    def __init__(self, site, anchor: bytes, source_port: int = 0):
        sock = socket.socket()
        sock.settimeout(5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # reuse source_port
        sock.bind(("127.0.0.1", source_port))
        sock.connect(("127.0.0.1", site.tls_port))
        self.sock = anchor_context(anchor).wrap_socket(sock, server_hostname="localhost")
        self.buffer = b""

    def send(self, method: str, path: str, body=None, headers=()) -> tuple[bytes, bytes]:
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        return self.send_raw(request_bytes(method, path, data, headers))

    def send_raw(self, data: bytes) -> tuple[bytes, bytes]:
        self.sock.sendall(data)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = int(re.search(rb"\r\nContent-Length: (\d+)", head).group(1))
        while len(rest) < length:
            rest += self._recv()
        self.buffer = rest[length:]
        return head, rest[:length]

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        assert chunk, "host closed the connection"
        return chunk

    def close(self):
        self.sock.close()


@pytest.fixture
def anchor(site):
    return site.fetch_anchor()[1]


@pytest.fixture
def conn(site, anchor):
    c = RawConnection(site, anchor)
    yield c
    c.close()


def lock(site, serial=SERIAL, key=None) -> SimulatedLock:
    return SimulatedLock(serial, "localhost", site.http_port, site.tls_port,
                         (key or site.site_key).hmac_key())


def data_files(host) -> dict:
    root = host.devices.root
    return {p.name: p.read_bytes() for p in sorted(root.glob("*"))
            if p.is_file()} if root.exists() else {}


def status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


# --- the full sequence --------------------------------------------------------------------------

def test_simulated_lock_calls_in_and_gets_a_record_and_its_audits(site, host):
    sim = lock(site)
    first = sim.call_in(alert=True)
    assert first.ok, first
    assert first.statuses == {"PUT /swordfish/lock/Config": 200, "GET /swordfish/lock/db": 200,
                              "POST /swordfish/lock/audit": 201, "POST /swordfish/lock/alert": 201}
    second = sim.call_in(alert=True)
    assert second.ok and second.statuses["POST /swordfish/lock/audit"] == 202
    assert second.statuses["POST /swordfish/lock/alert"] == 202
    record = host.devices.record(SERIAL)
    assert record["model"] == sim.model.upper()
    assert record["last_config"]["lckPrmtrs"]["lckSn"] == SERIAL
    assert record["firmware"]["main"] == "01.52.14" and record["address"] == "127.0.0.1"
    assert record["listener"] == "tls" and record["first_seen"] <= record["last_seen"]
    audits = host.devices.recent_audits(SERIAL, 1000)
    assert [a["seq"] for a in audits] == list(range(1, len(audits) + 1))
    assert [a["event"]["auditId"] for a in audits] == sorted(a["event"]["auditId"] for a in audits)
    assert record["audits"]["count"] == len(audits) >= 2
    assert len(host.devices.recent_alerts(SERIAL)) == 2
    [summary] = host.devices.summaries()
    assert summary.serial == SERIAL and host.devices.audit_counts() == {SERIAL: len(audits)}


def test_call_in_uses_one_connection_for_config_db_and_audit(site, conn):
    for method, path, body in (("PUT", CONFIG, config_body()), ("GET", "/swordfish/lock/db/0", None),
                               ("POST", AUDIT, {"asyncEvents": [{"event": 11111111,
                                                                 "time": 20251013130309}]})):
        head, _ = conn.send(method, path, body)
        assert head.startswith(b"HTTP/1.1 20"), head


def test_request_log_event_of_a_call_in_carries_the_serial(site, host, conn):
    conn.send("PUT", CONFIG, config_body())
    conn.send("GET", "/swordfish/lock/db/0")
    for path in (CONFIG, "/swordfish/lock/db/0"):
        [event] = wait_for_event(host.log, lambda e, p=path: e.path == p)
        assert event.serial == SERIAL


# --- bytes on the wire --------------------------------------------------------------------------

def test_config_reply_is_http11_200_with_empty_json_object(conn):
    head, body = conn.send("PUT", CONFIG, config_body())
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert b"Content-Length: 2" in lines and body == b"{}"


def test_db_reply_has_documented_key_order_and_compact_json(host, conn):
    conn.send("PUT", CONFIG, config_body())
    head, body = conn.send("GET", "/swordfish/lock/db/0x08d16357eef73a69")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 200 OK"
    assert f"Content-Length: {len(body)}".encode() in head.split(b"\r\n")
    assert re.fullmatch(
        rb'\{"db":\{"usrRcrd":\{"deleteAll":0,"delete":\[\],"update":\[\],"add":\[\]\}\},'
        rb'"config":\{"rtcTime":"\d{14}"\},"dbDwnLdTm":"\d{14}","nxtDbVerTS":"0x08d16357eef73a69"\}',
        body), body


def test_audit_reply_is_201_then_202_with_no_body(conn):
    conn.send("PUT", CONFIG, config_body())
    audit = {"asyncEvents": [{"event": 11111111, "time": 20051013130309}], "nxtDbVerTS": "0x1"}
    for expected in (b"HTTP/1.1 201 Created", b"HTTP/1.1 202 Accepted", b"HTTP/1.1 202 Accepted"):
        head, body = conn.send("POST", AUDIT, audit)
        lines = head.split(b"\r\n")
        assert lines[0] == expected and b"Content-Length: 0" in lines and body == b""
        assert not any(line.lower().startswith(b"content-type") for line in lines)


def test_alert_log_starts_with_201_independently_of_audits(conn, host):
    conn.send("PUT", CONFIG, config_body())
    conn.send("POST", AUDIT, {"asyncEvents": []})
    head, _ = conn.send("POST", ALERT, {"asyncEvents": [{"event": 40010000, "time": 20251013130309}]})
    assert head.startswith(b"HTTP/1.1 201 ")
    assert [a["event"]["event"] for a in host.devices.recent_alerts(SERIAL)] == [40010000]


# --- the database reply ------------------------------------------------------------------------

USER = {"usrID": "148", "adaEn": "0", "fnctn": "norm", "crSch": [1], "actDtTm": "20150303000000",
        "expDtTm": "20300101000000", "primeCr": "0" * 32, "prCrTyp": "card"}


def test_lock_behind_gets_the_database_and_its_new_version_then_nothing(host, conn):
    conn.send("PUT", CONFIG, config_body())
    version = host.devices.set_db(SERIAL, {"usrRcrd": {"add": [USER]}, "schedules": []})
    _, body = conn.send("GET", "/swordfish/lock/db/0")
    reply = json.loads(body)
    assert body.startswith(b'{"db":{"usrRcrd":{"deleteAll":0,"delete":[],"update":[],"add":[{')
    assert reply["db"]["usrRcrd"]["add"] == [USER] and reply["db"]["schedules"] == []
    assert reply["nxtDbVerTS"] == version and re.fullmatch(r"0x[0-9a-f]{16}", version)
    _, body = conn.send("GET", f"/swordfish/lock/db/{version}")
    again = json.loads(body)
    assert again["db"] == {"usrRcrd": {"deleteAll": 0, "delete": [], "update": [], "add": []}}
    assert again["nxtDbVerTS"] == version


def test_new_version_only_when_the_database_changes(host, conn):
    conn.send("PUT", CONFIG, config_body())
    first = host.devices.set_db(SERIAL, {"usrRcrd": {"add": [USER]}})
    versions = {json.loads(conn.send("GET", f"/swordfish/lock/db/{v}")[1])["nxtDbVerTS"]
                for v in ("0", first, first)}
    assert versions == {first}
    second = host.devices.set_db(SERIAL, {"usrRcrd": {"add": []}})
    assert int(second, 16) > int(first, 16)


def test_version_with_15_hex_digits_is_accepted_as_current(host, conn):
    conn.send("PUT", CONFIG, config_body())
    _, body = conn.send("GET", "/swordfish/lock/db/0x8d16357eef73a69")
    assert json.loads(body)["nxtDbVerTS"] == "0x8d16357eef73a69"  # adopted as the lock wrote it
    _, body = conn.send("GET", "/swordfish/lock/db/0x08d16357eef73a69")
    assert json.loads(body)["db"]["usrRcrd"]["add"] == []


@pytest.mark.parametrize("asked, sent", [(1, 1), (True, 0), ("1", 0), (0, 0), (None, 0)])
def test_delete_all_is_1_only_when_the_record_says_exactly_1(host, conn, asked, sent):
    conn.send("PUT", CONFIG, config_body())
    usr = {"add": [USER]} if asked is None else {"deleteAll": asked, "add": [USER]}
    host.devices.set_db(SERIAL, {"usrRcrd": usr})
    reply = json.loads(conn.send("GET", "/swordfish/lock/db/0")[1])
    assert reply["db"]["usrRcrd"]["deleteAll"] == sent


def test_rtc_time_is_in_the_site_time_zone_and_next_call_in_follows_the_interval(host, conn):
    host.settings.time_zone = "Pacific/Kiritimati"  # UTC+14: far from this machine's zone
    host.settings.callin_interval = 900
    conn.send("PUT", CONFIG, config_body())
    before = dt.datetime.now(zoneinfo.ZoneInfo("Pacific/Kiritimati")).replace(microsecond=0)
    reply = json.loads(conn.send("GET", "/swordfish/lock/db/0")[1])
    rtc = dt.datetime.strptime(reply["config"]["rtcTime"], "%Y%m%d%H%M%S")
    assert abs((rtc - before.replace(tzinfo=None)).total_seconds()) <= 5
    nxt = dt.datetime.strptime(reply["dbDwnLdTm"], "%Y%m%d%H%M%S")
    assert (nxt - rtc).total_seconds() == 900


def test_head_on_db_answers_like_get_and_changes_nothing(host, conn):
    conn.send("PUT", CONFIG, config_body())
    host.devices.set_db(SERIAL, {"usrRcrd": {"add": [USER]}})
    before = data_files(host)
    conn.sock.sendall(request_bytes("HEAD", "/swordfish/lock/db/0x1234"))
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += conn.sock.recv(1)
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: " in head
    assert data_files(host) == before
    assert status(conn.send("GET", "/swordfish/lock/db/0")[0]) == 200  # the connection goes on


def test_db_for_an_unknown_lock_is_404(site, anchor):
    status_, _, body = site.tls_get(anchor, "/swordfish/lock/db/0?lckSn=FFFF0000FFFF0000")
    assert status_ == 404 and json.loads(body)["status"] == 404


def test_db_with_a_malformed_version_is_400_and_writes_nothing(host, conn):
    conn.send("PUT", CONFIG, config_body())
    before = data_files(host)
    head, body = conn.send("GET", "/swordfish/lock/db/0xZZ")
    assert status(head) == 400 and "version" in json.loads(body)["error"]
    assert data_files(host) == before


# --- nothing lost, nothing mixed ---------------------------------------------------------------

@pytest.mark.slow
def test_fifty_locks_at_once_leave_fifty_intact_records_and_every_audit(site, host):
    fleet = make_fleet(50, "localhost", site.http_port, site.tls_port, site.site_key.hmac_key(),
                       seed=7)
    for sim in fleet:
        sim.fetch_anchor()
    sent = {sim.serial: [] for sim in fleet}
    start = threading.Barrier(len(fleet))
    results = []

    def run(sim):
        original = sim.audit_body

        def recording_body():
            body = original()
            sent[sim.serial].extend(body["asyncEvents"])
            return body

        sim.audit_body = recording_body
        start.wait()
        results.extend([sim.call_in(), sim.call_in()])

    threads = [threading.Thread(target=run, args=(sim,)) for sim in fleet]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    records = sorted(p for p in host.devices.root.glob("*.json") if not p.name.startswith("."))
    # (dotfiles are caches: .audit-counts.json, written 2 s after audits arrive)
    assert len(records) == 50
    for sim in fleet:
        record = json.loads(host.devices.path(sim.serial).read_bytes())
        assert record["last_config"]["lckPrmtrs"]["lckSn"] == sim.serial
        logged = host.devices.recent_audits(sim.serial, 1000)
        assert [a["event"] for a in logged] == sent[sim.serial]
        assert host.devices.record(sim.serial)["audits"]["count"] == len(sent[sim.serial])


def test_repeated_audit_ids_are_skipped(host, conn):
    conn.send("PUT", CONFIG, config_body())
    events = [{"event": 11111111, "time": 20251013130309, "auditId": n} for n in (1, 2, 2)]
    conn.send("POST", AUDIT, {"asyncEvents": events})
    conn.send("POST", AUDIT, {"asyncEvents": events + [{"event": 12000000, "time": 20251013130310,
                                                        "auditId": 3}]})
    assert [a["event"]["auditId"] for a in host.devices.recent_audits(SERIAL)] == [1, 2, 3]


def test_events_without_audit_id_are_all_kept(host, conn):
    conn.send("PUT", CONFIG, config_body())
    event = {"event": 11111111, "time": 20251013130309}
    conn.send("POST", AUDIT, {"asyncEvents": [event, event]})
    conn.send("POST", AUDIT, {"asyncEvents": [event]})
    assert len(host.devices.recent_audits(SERIAL)) == 3


# --- bad input writes nothing ------------------------------------------------------------------

@pytest.mark.parametrize("body, message", [
    (b"not json", "not valid JSON"),
    (b"", "empty"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({"lckPrmtrs": {"nm": "no serial"}}).encode(), "missing lock serial"),
    (json.dumps(config_body(serial="../../etc/passwd")).encode(), "letters, digits"),
    (json.dumps(config_body(battV="5.9")).encode(), "battV must be a JSON object"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "nests deeper than", id="nested-100000"),
    pytest.param(json.dumps(config_body(x=json.loads("[" * 900 + "]" * 900))).encode(),
                 "nests deeper than", id="nested-900"),
    (json.dumps(config_body(battV={"main": float("nan")})).encode(), "NaN is not a JSON number"),
    (json.dumps(config_body(battV={"main": float("inf")})).encode(), "Infinity is not a JSON"),
    (json.dumps(config_body()).replace('"5.90"', "1e400").encode(), "1e400 is out of range"),
])
def test_bad_config_is_400_with_json_error_and_writes_nothing(host, conn, body, message):
    head, reply = conn.send("PUT", CONFIG, body)
    assert status(head) == 400 and message in json.loads(reply)["error"]
    assert data_files(host) == {}


@pytest.mark.parametrize("body, message", [
    (b"{", "not valid JSON"),
    (b'{"events": []}', "asyncEvents"),
    (b'{"asyncEvents": {"event": 1}}', "asyncEvents"),
    (b'{"asyncEvents": [{"event": 11111111}]}', "asyncEvents[0].time"),
    (b'{"asyncEvents": [{"event": "x", "time": 20051013130309}]}', "asyncEvents[0].event"),
    (b'{"asyncEvents": [{"event": 1, "time": 2}, 5]}', "asyncEvents[1]"),
    (b'{"asyncEvents": [{"event": 11111111, "time": 20250101000000, "x": NaN}]}', "NaN"),
    (b'{"asyncEvents": [{"event": 11111111, "time": 20250101000000, "x": -Infinity}]}',
     "-Infinity"),
    (b'{"asyncEvents": [{"event": 11111111, "time": 20250101000000, "x": 1e999}]}', "1e999"),
    pytest.param(b'{"asyncEvents": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                 "nests deeper than", id="nested-100000"),
])
def test_bad_audit_is_400_and_writes_nothing(host, conn, body, message):
    conn.send("PUT", CONFIG, config_body())
    before = data_files(host)
    for path in (AUDIT, ALERT):
        head, reply = conn.send("POST", path, body)
        assert status(head) == 400 and message in json.loads(reply)["error"]
    assert data_files(host) == before


def test_audit_on_a_new_connection_without_a_serial_is_400(site, host, anchor):
    with_config = RawConnection(site, anchor)
    with_config.send("PUT", CONFIG, config_body())
    before = data_files(host)
    fresh = RawConnection(site, anchor)
    head, reply = fresh.send("POST", AUDIT, {"asyncEvents": []})
    assert status(head) == 400 and "missing lock serial" in json.loads(reply)["error"]
    assert data_files(host) == before
    head, _ = fresh.send("POST", f"{AUDIT}?lckSn={SERIAL.lower()}", {"asyncEvents": []})
    assert status(head) == 201
    with_config.close()
    fresh.close()


def test_audit_for_an_unknown_lock_is_404_and_writes_nothing(host, conn):
    head, _ = conn.send("POST", f"{AUDIT}?lckSn=0011", {"asyncEvents": []})
    assert status(head) == 404 and data_files(host) == {}


def test_body_over_the_limit_is_413_with_json_error_and_writes_nothing(host, conn):
    big = json.dumps(config_body(pad="x" * (host.settings.max_body_bytes + 1))).encode()
    head, reply = conn.send_raw(request_bytes("PUT", CONFIG, big)[:4096])  # refused unread
    assert status(head) == 413 and json.loads(reply)["status"] == 413
    assert data_files(host) == {}


def chunked_request(method: str, path: str, body: bytes, chunk: int = 65536) -> bytes:
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + chunk]), body[i:i + chunk])
             for i in range(0, len(body), chunk)]
    return head + b"".join(parts) + b"0\r\n\r\n"


def padded(body: dict, size: int) -> bytes:
    """``body`` as JSON of exactly ``size`` bytes (a pad field fills it up)."""
    data = json.dumps({**body, "pad": ""}).encode()
    return json.dumps({**body, "pad": "x" * (size - len(data))}).encode()


@pytest.mark.parametrize("path", [CONFIG, AUDIT])
@pytest.mark.parametrize("encoding", ["chunked", "content-length"])
def test_body_one_byte_over_the_limit_is_413_and_writes_nothing(host, conn, path, encoding):
    conn.send("PUT", CONFIG, config_body())
    before = data_files(host)
    body = config_body() if path == CONFIG else {"asyncEvents": [{"event": 1, "time": 2}]}
    data = padded(body, host.settings.max_body_bytes + 1)
    method = "PUT" if path == CONFIG else "POST"
    head, reply = conn.send_raw(chunked_request(method, path, data) if encoding == "chunked"
                                else request_bytes(method, path, data))
    assert status(head) == 413 and json.loads(reply)["status"] == 413
    assert data_files(host) == before


def test_chunked_body_of_exactly_the_limit_is_read_whole(host, conn):
    data = padded(config_body(), host.settings.max_body_bytes)
    head, reply = conn.send_raw(chunked_request("PUT", CONFIG, data))
    assert (status(head), reply) == (200, b"{}")
    assert len(host.devices.record(SERIAL)["last_config"]["pad"]) > 1_000_000


def test_corrupt_record_gets_500_stays_untouched_and_is_reported(host, site, anchor):
    host.devices.root.mkdir(parents=True, exist_ok=True)
    path = host.devices.path(SERIAL)
    path.write_bytes(b'{"serial": "00A1B2C3D4E5F607", "mo')
    conn = RawConnection(site, anchor)
    for method, target, body in (("PUT", CONFIG, config_body()),
                                 ("GET", f"/swordfish/lock/db/0?lckSn={SERIAL}", None),
                                 ("POST", f"{AUDIT}?lckSn={SERIAL}", {"asyncEvents": []})):
        head, reply = conn.send(method, target, body)
        assert status(head) == 500 and json.loads(reply)["error"] == "record unreadable"
    conn.close()
    assert data_files(host) == {path.name: b'{"serial": "00A1B2C3D4E5F607", "mo'}
    [summary] = host.devices.summaries()
    assert summary.corrupt and "not valid JSON" in summary.error


@pytest.mark.parametrize("record", [{"host": None}, {"host": {"nxtDbVerTS": "garbage"}}, []])
def test_record_of_the_wrong_shape_gets_500_and_stays_untouched(host, conn, record):
    host.devices.root.mkdir(parents=True, exist_ok=True)
    data = json.dumps(record).encode()
    host.devices.path(SERIAL).write_bytes(data)
    head, reply = conn.send("GET", f"/swordfish/lock/db/0?lckSn={SERIAL}")
    assert status(head) == 500 and json.loads(reply)["error"] == "record unreadable"
    assert data_files(host) == {f"{SERIAL}.json": data}


def test_corrupt_record_answer_keeps_the_path_from_the_lock_and_gives_it_to_the_operator(
        host, conn):
    host.devices.root.mkdir(parents=True, exist_ok=True)
    path = host.devices.path(SERIAL)
    path.write_bytes(b"{")
    head, reply = conn.send("GET", f"/swordfish/lock/db/0?lckSn={SERIAL}")
    assert status(head) == 500
    assert str(host.devices.root) not in reply.decode() and path.name not in reply.decode()
    [event] = wait_for_event(host.log, lambda e: e.status == 500)
    assert str(path) in event.error and "corrupt" in event.error


# --- which lock a connection belongs to -------------------------------------------------------

OTHER = "00FFFFFFFFFFFF01"


def give_lock_a_database_and_list_it(host, serial=SERIAL) -> None:
    host.devices.set_db(serial, {"usrRcrd": {"add": [USER]}})
    host.devices.import_rows(host.devices.parse_import(serial))


@pytest.mark.parametrize("failure", ["not listed", "not JSON", "no serial", "corrupt record"])
def test_failed_config_forgets_the_lock_named_earlier_on_the_connection(host, conn, failure):
    conn.send("PUT", CONFIG, config_body())
    give_lock_a_database_and_list_it(host)
    host.settings.allowlist = True
    body = {"not listed": config_body(OTHER), "not JSON": b"{", "no serial": {"lckPrmtrs": {}},
            "corrupt record": config_body(OTHER)}[failure]
    if failure == "corrupt record":
        host.devices.path(OTHER).write_bytes(b"{")
    head, _ = conn.send("PUT", CONFIG, body)
    assert status(head) in (400, 403, 500)
    before = data_files(host)
    head, reply = conn.send("GET", "/swordfish/lock/db/0")
    assert status(head) == 400 and "missing lock serial" in json.loads(reply)["error"]
    head, _ = conn.send("POST", AUDIT, {"asyncEvents": [{"event": 11111111, "time": 20250101}]})
    assert status(head) == 400 and data_files(host) == before


def test_new_connection_from_the_address_and_port_of_a_closed_one_is_a_new_lock(
        host, site, anchor):
    first = RawConnection(site, anchor)
    port = first.sock.getsockname()[1]
    first.send("PUT", CONFIG, config_body())
    give_lock_a_database_and_list_it(host)
    first.send("POST", AUDIT, {"asyncEvents": []}, headers=[("Connection", "close")])
    assert first.sock.recv(1) == b""  # the host closed it
    first.close()
    before = data_files(host)
    second = RawConnection(site, anchor, source_port=port)  # another lock, same address:port
    assert second.sock.getsockname()[1] == port
    head, reply = second.send("GET", "/swordfish/lock/db/0")
    assert status(head) == 400 and "missing lock serial" in json.loads(reply)["error"]
    head, _ = second.send("POST", AUDIT, {"asyncEvents": [{"event": 11111111, "time": 20250101}]})
    second.close()
    assert status(head) == 400 and data_files(host) == before


# --- who may call in ---------------------------------------------------------------------------

def test_allowlist_serves_only_listed_locks_and_flags_the_others(host, conn):
    host.settings.allowlist = True
    head, reply = conn.send("PUT", CONFIG, config_body())
    assert status(head) == 403 and "allowlist" in json.loads(reply)["error"]
    assert data_files(host) == {}
    [event] = wait_for_event(host.log, lambda e: e.path == CONFIG)
    assert event.serial == SERIAL and "not on the allowlist" in event.error and event.failed
    rows = host.devices.parse_import(f"{SERIAL},Front door,lobby")
    host.devices.import_rows(rows)
    head, _ = conn.send("PUT", CONFIG, config_body())
    assert status(head) == 200
    assert host.devices.record(SERIAL)["name"] == "Front door"


@pytest.mark.parametrize("blank", ["", " ", "\t\n"])
def test_blank_lck_sn_falls_back_to_mn_sn(host, conn, blank):
    body = config_body()
    body["lckPrmtrs"]["lckSn"] = blank
    head, _ = conn.send("PUT", CONFIG, body)
    assert status(head) == 200 and host.devices.record(SERIAL)["serial"] == SERIAL


def test_allowlist_off_lets_a_new_lock_register_itself(host, conn):
    head, _ = conn.send("PUT", CONFIG, config_body())
    assert status(head) == 200
    record = host.devices.record(SERIAL)
    assert record["registered_by"] == "call-in" and record["listed"] is False


def test_call_ins_over_plain_http_are_refused_when_tls_only(host, site):
    host.settings.callins_tls_only = True
    code, _, body = http_get(site.http_port, CONFIG, method="PUT",
                             body=json.dumps(config_body()).encode())
    assert code == 403 and "TLS only" in json.loads(body)["error"]
    assert data_files(host) == {}
    assert lock(site).call_in().ok


def test_call_ins_over_plain_http_work_by_default(host, site):
    code, _, body = http_get(site.http_port, CONFIG, method="PUT",
                             body=json.dumps(config_body()).encode())
    assert (code, body) == (200, b"{}")
    assert host.devices.record(SERIAL)["listener"] == "http"


# --- secrets and notifications -----------------------------------------------------------------

def test_authorization_is_recorded_as_present_or_absent_never_its_value(host, site, anchor):
    token = "Device c2VjcmV0LXRva2VuLXZhbHVl"
    conn = RawConnection(site, anchor)
    conn.send("PUT", CONFIG, config_body(), headers=[("Authorization", token)])
    conn.send("POST", AUDIT, {"asyncEvents": [{"event": 1, "time": 2}]},
              headers=[("Authorization", token)])
    conn.close()
    assert host.devices.record(SERIAL)["authorization"] == "present"
    [event] = wait_for_event(host.log, lambda e: e.path == CONFIG)
    assert event.auth_present and event.headers["Authorization"] == "(present)"
    wait_for_event(host.log, lambda e: e.path == AUDIT)  # every event in the file below
    host.log.flush()
    for path in list(host.devices.root.iterdir()) + list(host.log.path.parent.iterdir()):
        assert path.is_dir() or b"c2VjcmV0" not in path.read_bytes(), path
    other = RawConnection(site, anchor)
    other.send("PUT", CONFIG, config_body())
    other.close()
    assert host.devices.record(SERIAL)["authorization"] == "absent"


def test_on_change_is_called_with_the_serial_after_a_call_in(host, conn):
    seen, called = [], threading.Event()
    host.devices.on_change.append(lambda serial: (seen.append(serial), called.set()))
    conn.send("PUT", CONFIG, config_body())
    assert called.wait(5) and seen[0] == SERIAL


@pytest.mark.parametrize("depth, refused", [(64, False), (65, True)])
def test_json_nesting_limit_is_exact(depth, refused):
    from server.devices.errors import BadRequest
    from server.web.routes_lock import MAX_JSON_DEPTH, parse_json

    assert depth - refused == MAX_JSON_DEPTH
    data = b"[" * depth + b"]" * depth
    if refused:
        with pytest.raises(BadRequest, match="nests deeper"):
            parse_json(data)
    else:
        assert parse_json(data)


def test_brackets_inside_strings_do_not_count_as_nesting():
    from server.web.routes_lock import parse_json

    assert parse_json(json.dumps({"note": "[{" * 500}).encode()) == {"note": "[{" * 500}
