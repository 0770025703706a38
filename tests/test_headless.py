"""``engage-console --headless`` as a service manager runs it: a real subprocess."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from server import pki
from server.certstore import CertStore

from .helpers import anchor_context, http_get

CURRENT = "/swordfish/lock/certificates/current"
ROOT = Path(__file__).resolve().parents[1]


class Headless:
    """A running ``engage-console --headless`` with its output read line by line."""

    def __init__(self, cwd: Path, *args: str):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
        env["PYTHONPATH"] = str(ROOT)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "console", "--headless", "--bind", "127.0.0.1",
             "--http-port", "0", "--tls-port", "0", *args],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: dict[str, queue.Queue] = {"out": queue.Queue(), "err": queue.Queue()}
        self.seen: dict[str, list[str]] = {"out": [], "err": []}
        for name, stream in (("out", self.proc.stdout), ("err", self.proc.stderr)):
            threading.Thread(target=self._pump, args=(stream, name), daemon=True).start()

    def _pump(self, stream, name):
        for line in stream:
            self.lines[name].put(line.rstrip("\n"))
        self.lines[name].put(None)

    def expect(self, pattern: str, stream: str = "err", timeout: float = 20.0) -> re.Match:
        deadline = time.monotonic() + timeout
        for line in self.seen[stream]:
            if m := re.search(pattern, line):
                return m
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines[stream].get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen[stream].append(line)
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no line matching {pattern!r} in std{stream}: {self.seen[stream]}")

    def port(self, name: str) -> int:
        return int(self.expect(rf"{name} listener RUNNING on 127\.0\.0\.1:(\d+)").group(1))

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture
def run_headless(tmp_path):
    started: list[Headless] = []

    def start(*args, cwd=tmp_path):
        h = Headless(cwd, *args)
        started.append(h)
        return h

    yield start
    for h in started:
        if h.proc.poll() is None:
            h.proc.kill()
            h.proc.wait()


def _anchor_sha(port: int) -> str:
    status, _, body = http_get(port, CURRENT)
    assert status == 200
    return json.loads(body)["cert_url"].rsplit("/", 1)[1].removesuffix(".der")


def test_fresh_folder_gets_labelled_demo_material_serves_and_stops_cleanly(run_headless,
                                                                           tmp_path):
    h = run_headless("--demo")
    h.expect(r"NOTICE: DEMO site key created")
    h.expect(r"NOTICE: DEMO certificate set 'demo' created")
    port = h.port("http")
    assert http_get(port, CURRENT)[0] == 200
    h.expect(r"GET /swordfish/lock/certificates/current 200", stream="out")
    assert h.stop() == 0
    h.expect(r"stopped")
    assert (tmp_path / "site.key").stat().st_mode & 0o077 == 0


def test_json_log_format_prints_one_json_object_per_request(run_headless):
    h = run_headless("--demo", "--log-format", "json", "--http-only")
    port = h.port("http")
    http_get(port, "/nothing")
    event = json.loads(h.expect(r"^\{.*\}$", stream="out").group(0))
    assert (event["path"], event["status"], event["listener"]) == ("/nothing", 404, "http")
    assert h.stop(signal.SIGINT) == 0


def test_activation_by_another_process_is_noticed_within_two_seconds(run_headless, tmp_path):
    h = run_headless("--demo", "--http-only")
    port = h.port("http")
    before = _anchor_sha(port)
    store = CertStore(tmp_path / "certs")
    pki.init_set(store, tmp_path / "ca", "site2", ["localhost"])
    entry = store.record_activation(store.load("site2"), by="another process")
    changed_at = time.monotonic()
    while _anchor_sha(port) == before:
        assert time.monotonic() - changed_at < 2.0, "not noticed within 2 s"
        time.sleep(0.05)  # polling what a lock would see; the host has no event to wait on
    assert _anchor_sha(port) == entry["anchor_sha256"]
    h.expect(r"active certificate set: site2")
    assert h.stop() == 0


def test_sighup_reloads_the_set_without_closing_the_listeners(run_headless, tmp_path):
    h = run_headless("--demo")
    http_port, tls_port = h.port("http"), h.port("tls")
    h.expect(r"tls listener RUNNING")
    old_hash = h.expect(r"active certificate set: demo \(hash (\S+)\)").group(1)
    before = _anchor_sha(http_port)
    old_anchor = (tmp_path / "certs" / "demo" / "anchor.der").read_bytes()
    conn = __import__("http.client").client.HTTPSConnection(
        "localhost", tls_port, timeout=5, context=anchor_context(old_anchor))
    conn.request("GET", CURRENT)
    conn.getresponse().read()

    # Replace the active set's files in place (active.json untouched): only SIGHUP reloads.
    scratch = CertStore(tmp_path / "scratch")
    pki.init_set(scratch, tmp_path / "scratch-ca", "demo", ["localhost"])
    for name in ("anchor.der", "chain.pem", "server.key"):
        shutil.copyfile(tmp_path / "scratch" / "demo" / name, tmp_path / "certs" / "demo" / name)
    assert _anchor_sha(http_port) == before
    h.proc.send_signal(signal.SIGHUP)
    h.expect(r"SIGHUP: reloading")
    # the start-up line names demo too: wait for the one with the new set's hash
    h.expect(rf"active certificate set: demo \(hash (?!{re.escape(old_hash)}\))")
    assert _anchor_sha(http_port) != before
    conn.request("GET", CURRENT)  # the connection opened before SIGHUP is still served
    assert conn.getresponse().status == 200
    conn.close()
    assert h.stop() == 0


def test_nothing_can_start_exits_non_zero_saying_why(run_headless, tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = str(busy.getsockname()[1])
        h = run_headless("--demo", "--http-port", port, "--tls-port", port)
        assert h.proc.wait(timeout=30) == 1
        h.expect(r"http listener FAILED: port \d+ on 127.0.0.1 is already in use")
        h.expect(r"nothing could start")
    finally:
        busy.close()


def test_one_listener_failing_leaves_the_other_running(run_headless):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        h = run_headless("--demo", "--tls-port", str(busy.getsockname()[1]))
        h.expect(r"tls listener FAILED: .*--tls-port")
        assert http_get(h.port("http"), CURRENT)[0] == 200
        assert h.stop() == 0
    finally:
        busy.close()


def test_explicit_missing_site_key_file_is_an_error_not_a_demo(run_headless, tmp_path):
    h = run_headless("--demo", "--site-key-file", str(tmp_path / "nope.key"))
    assert h.proc.wait(timeout=30) == 1
    h.expect(r"cannot start: site key file .*nope.key does not exist")
    assert not (tmp_path / "nope.key").exists()


def test_request_lines_cannot_inject_lines_or_terminal_escapes(run_headless):
    h = run_headless("--demo", "--http-only")
    port = h.port("http")
    http_get(port, "/x%0aFAKE%1b[31m")
    h.expect(r"GET /x\\nFAKE\\x1b\[31m 404", stream="out")
    assert h.stop() == 0
    assert not [line for line in h.seen["out"] if "\x1b" in line or line.startswith("FAKE")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tls_handshake_succeeds(port: int, anchor: bytes) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            with anchor_context(anchor).wrap_socket(sock, server_hostname="localhost"):
                return True
    except OSError:
        return False


def test_tls_listener_starts_once_another_process_activates_a_set(run_headless, tmp_path):
    from server.sitekey import SiteKey, write_key_file

    pki.init_set(CertStore(tmp_path / "certs"), tmp_path / "ca", "site", ["localhost"])
    write_key_file(tmp_path / "site.key", SiteKey.generate())
    tls_port = _free_port()
    h = run_headless("--tls-port", str(tls_port))
    h.expect(r"tls listener FAILED: .*certs activate")
    h.port("http")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    activated = subprocess.run([sys.executable, "-m", "console", "certs", "activate", "site"],
                               cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                               capture_output=True, text=True, timeout=60)
    assert activated.returncode == 0, activated.stderr
    anchor = (tmp_path / "certs" / "site" / "anchor.der").read_bytes()
    deadline = time.monotonic() + 2.0
    while not _tls_handshake_succeeds(tls_port, anchor):
        assert time.monotonic() < deadline, "TLS listener not started within 2 s"
        time.sleep(0.05)  # polling what a lock would see
    h.expect(rf"tls listener RUNNING on 127\.0\.0\.1:{tls_port}")
    assert h.stop() == 0


def test_sighup_starts_a_listener_that_had_failed(run_headless):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    tls_port = busy.getsockname()[1]
    h = run_headless("--demo", "--tls-port", str(tls_port))
    h.expect(r"tls listener FAILED: .*already in use")
    busy.close()
    h.proc.send_signal(signal.SIGHUP)
    h.expect(rf"tls listener RUNNING on 127\.0\.0\.1:{tls_port}")
    assert h.stop() == 0


def test_folder_without_a_site_key_is_refused_without_demo(run_headless, tmp_path):
    h = run_headless()
    assert h.proc.wait(timeout=30) == 2
    h.expect(r"cannot start: site key file .*site.key does not exist: .*`engage-console sitekey "
             r"generate`.*--demo")
    assert not (tmp_path / "site.key").exists() and not (tmp_path / "certs").exists()


def test_start_says_which_set_is_active_and_its_hash(run_headless):
    h = run_headless("--demo", "--http-only")
    said = h.expect(r"active certificate set: demo \(hash (\S{28})\)").group(1)
    assert json.loads(http_get(h.port("http"), CURRENT)[2])["hash"] == said
    assert h.stop() == 0


def test_json_log_format_makes_notices_json_objects_with_a_level(run_headless):
    h = run_headless("--demo", "--log-format", "json", "--http-only")
    h.port("http")
    assert h.stop() == 0
    h.expect(r"stopped")
    notices = [json.loads(line) for line in h.seen["err"]]
    assert {"info", "warning"} <= {n["level"] for n in notices}
    assert any(n["message"].startswith("http listener RUNNING") for n in notices)
    assert all(set(n) == {"time", "level", "message"} for n in notices)


def test_a_failed_listener_is_retried_until_its_port_is_free(run_headless):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    tls_port = busy.getsockname()[1]
    try:
        h = run_headless("--demo", "--tls-port", str(tls_port))
        h.expect(r"tls listener FAILED: .*already in use.*; retrying in 2 s")
    finally:
        busy.close()
    h.expect(rf"tls listener RUNNING on 127\.0\.0\.1:{tls_port}")
    assert h.stop() == 0


def test_sighup_follows_a_changed_site_key(run_headless, tmp_path):
    from server.sitekey import SiteKey

    from .helpers import lock_hash

    h = run_headless("--demo", "--http-only")
    port = h.port("http")
    # Rewrite the key in place, keeping size and times: only SIGHUP makes the host read it.
    path = tmp_path / "site.key"
    stat, text = path.stat(), path.read_text()
    old = next(line for line in text.splitlines() if line and not line.startswith("#"))
    new = SiteKey.generate()
    with open(path, "r+") as f:
        f.write(text.replace(old, new.base64()))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    h.proc.send_signal(signal.SIGHUP)
    expected = lock_hash(new.hmac_key(), (tmp_path / "certs" / "demo" / "anchor.der").read_bytes())
    h.expect(rf"site key changed in .*site.key \(a DEMO key\): /current now answers hash "
             rf"{re.escape(expected)}")
    assert json.loads(http_get(port, CURRENT)[2])["hash"] == expected
    assert new.base64() not in "\n".join(h.seen["err"] + h.seen["out"])
    assert h.stop() == 0


def test_a_stopped_host_leaves_the_summaries_file_whole(run_headless, tmp_path):
    """The host reads the fleet (here: status asks for it) and, when it stops, writes the
    summaries file, so that `certs activate` with the host stopped parses no record."""
    folder = tmp_path / "Engage_Data"
    folder.mkdir()
    for i in range(150):  # more than make the file worth writing
        (folder / f"{i:04X}.json").write_text(json.dumps({"serial": f"{i:04X}"}))
    h = run_headless("--demo", "--http-only")
    h.port("http")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    status = subprocess.run([sys.executable, "-m", "console", "status", "--json"], cwd=tmp_path,
                            env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            text=True, timeout=60)
    assert json.loads(status.stdout)["fleet"]["counts"]["never-seen"] == 150
    assert not (folder / ".summaries.json").exists()  # not yet: at most every 120 s
    assert h.stop() == 0
    columns = json.loads((folder / ".summaries.json").read_bytes())["columns"]
    assert sorted(columns[2]) == [f"{i:04X}" for i in range(150)]  # the serials, every one


def test_device_records_that_cannot_be_read_at_start_are_said_in_the_log_format(run_headless,
                                                                                tmp_path):
    """The fleet is read in the background at start: a failure is a notice like the others
    (a JSON line here), not a traceback, and the host serves on."""
    (tmp_path / "Engage_Data").write_text("not a folder")
    h = run_headless("--demo", "--http-only", "--log-format", "json")
    port = h.port("http")
    notice = json.loads(h.expect(r"^\{.*cannot read the device records.*\}$").group(0))
    assert notice["level"] == "error" and "Not a directory" in notice["message"]
    assert http_get(port, CURRENT)[0] == 200
    assert h.stop() == 0
