"""SVG snapshots of each console screen at a fixed size with deterministic data: a fixed site
key, Ed25519 certificates from fixed seeds and dates (deterministic signatures, so fixed
fingerprints and hashes), a fixed clock, fixed event times, listeners never bound (no random
port), and the validation reports and device records fixed here so that only the console's
rendering is under test. Update with ``pytest tests/test_snapshots.py --snapshot-update``."""

from __future__ import annotations

import base64
import datetime as dt
import errno
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption,
                                                          PrivateFormat)
from cryptography.x509.oid import NameOID

from console.app import EngageConsole
from console import set_rows
from console.screens.confirm import ConfirmScreen
from console.widgets.lock_log import LockLog
from server.certcheck.report import CertInfo, Finding, Report
from server.certstore import write_set
from server.config import load_settings
from server.devices.errors import DeviceError
from server.devices import health
from server.devices.summary import DeviceSummary
from server.host import Host
from server.sitekey import SiteKey

from .test_console import request, until

SIZE = (120, 34)
NOW = dt.datetime(2026, 11, 22, 8, 0, 30, tzinfo=dt.timezone.utc)
SITE_KEY = SiteKey.parse(base64.b64encode(bytes(range(32))).decode())


def _key(seed: int) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, issuer: str, key, signer, serial: int, days: int, ca: bool):
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(NOW - dt.timedelta(days=30))
            .not_valid_after(NOW + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(signer, None))


def fixed_set(store, name: str, seed: int, server_days: int) -> None:
    root_key, inter_key, server_key = _key(seed), _key(seed + 1), _key(seed + 2)
    root = _cert(f"Site Root {name}", f"Site Root {name}", root_key, root_key, seed, 3650, True)
    inter = _cert(f"Site Intermediate {name}", f"Site Root {name}", inter_key, root_key,
                  seed + 1, 1825, True)
    server = _cert("localhost", f"Site Intermediate {name}", server_key, inter_key, seed + 2,
                   server_days, False)
    write_set(store.set_path(name), root.public_bytes(Encoding.DER),
              server.public_bytes(Encoding.PEM) + inter.public_bytes(Encoding.PEM),
              server_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))


def fixed_report(cert_set, site_key, settings, active=None, now=None) -> Report:
    """What the validation report says, fixed so the snapshot shows only the console."""
    expiring = cert_set.name == "site-2027"
    chain = [CertInfo(depth=depth, role=role, subject=cert.subject.rfc4514_string(),
                      issuer=cert.issuer.rfc4514_string(),
                      bytes=len(cert.public_bytes(Encoding.DER)),
                      not_after=f"{cert.not_valid_after_utc:%Y-%m-%d}", key="Ed25519")
             for depth, role, cert in ((0, "server", cert_set.chain[0]),
                                       (1, "intermediate", cert_set.chain[1]),
                                       (2, "anchor", cert_set.anchor))]
    findings = [Finding("chain.size", "info", "chain is 1,234 bytes of DER, under the limit")]
    if expiring:
        findings.insert(0, Finding("cert.expiring", "warning",
                                   "the server certificate expires in 20 days: renew it",
                                   depth=0, subject="CN=localhost"))
    return Report(set_name=cert_set.name, findings=findings,
                  hash=site_key.hash(cert_set.anchor_der), anchor_sha256=cert_set.anchor_sha256,
                  chain_bytes=1234, chain_limit=4096, largest_key_bits=256,
                  days_to_expiry=20 if expiring else 700, chain=chain)


class FixedDevices:
    """Device records as the console reads them, with fixed times."""

    def __init__(self, settings):
        self.on_change = []
        self.settings = settings

    def clock(self):
        return NOW

    def summaries(self):
        return [DeviceSummary(serial="LOCK0001", model="NDE80", name="Front door",
                              last_seen="2026-11-22T07:58:10+00:00", address="10.44.68.21",
                              firmware="01.02.03", battery="3.1 V"),
                DeviceSummary(serial="LOCK0002", model="LE", name="Back office",
                              last_seen="2026-11-20T08:00:00+00:00", address="10.44.68.22",
                              firmware="01.02.00", battery="2.8 V"),
                DeviceSummary("BROKEN01", corrupt=True, error="line 1: Expecting value")]

    def changes(self, since):
        return 0, None  # always the whole (fixed) list

    def fleet_counts(self, active_anchor):
        return health.counts(self.summaries(), NOW, self.settings, active_anchor)

    def path(self, serial):
        return Path("Engage_Data") / f"{serial}.json"

    def record(self, serial):
        if serial == "BROKEN01":
            raise DeviceError("record BROKEN01.json is corrupt: line 1: Expecting value")
        return {"serial": serial, "model": "NDE80", "name": "Front door",
                "last_seen": "2026-11-22T07:58:10+00:00", "address": "10.44.68.21",
                "firmware": {"main": "01.02.03"}, "audits": 42}

    def recent_audits(self, serial, n=20):
        return [{"time": "2026-11-22T07:58:10Z", "event": "access granted", "user": 17}]

    def recent_alerts(self, serial, n=20):
        return []


@pytest.fixture
def console_app(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(set_rows, "check_set", fixed_report)
    settings = load_settings(env={}, flags={
        "bind": "127.0.0.1", "http_port": 8080, "tls_port": 8443,
        "certs_dir": str(tmp_path / "certs"), "data_dir": str(tmp_path / "Engage_Data"),
        "logs_dir": str(tmp_path / "logs")})
    host = Host(settings, SITE_KEY, ["DEMO site key in use (site.key): not for real locks"])
    fixed_set(host.store, "site-2026", 10, 700)
    fixed_set(host.store, "site-2027", 20, 20)
    (host.store.root / "half-copied").mkdir()
    host.certificates.activate("site-2026", force=True, by="test")
    host.certificates.gate = lambda cert_set: [  # the fixed report's errors: none
        f"{f.id}: {f.message}" for f in fixed_report(cert_set, SITE_KEY, settings).errors]
    host.devices = FixedDevices(settings)
    app = EngageConsole(host, start=False, clock=lambda: NOW)
    yield app
    host.close()


async def fill_log(pilot) -> None:
    host = pilot.app.host
    for n in range(40):
        host.log.record(request(n, serial="LOCK0001" if n % 5 == 0 else "",
                                status=404 if n % 9 == 4 else 200))
    host.log.record(request(40, listener="tls", kind="handshake", method="", path="", status=0,
                            bytes=0, duration_ms=0.0,
                            error="client does not trust our chain (unknown CA)"))
    await until(pilot, lambda: len(pilot.app.screen.query_one(LockLog).shown) == 41
                and fleet_counted(pilot.app))
    pilot.app.clear_notifications()
    await pilot.pause()


def fleet_counted(app) -> bool:
    """The dashboard's fleet line has its counts (a worker computes them)."""
    line = app.screen.query("#fleet-line")
    return not line or line.first().text.startswith("Fleet: ")


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await until(pilot, lambda: fleet_counted(pilot.app), what="the fleet counted")
    await pilot.pause()
    pilot.app.clear_notifications()
    await pilot.pause()


def test_dashboard(console_app, snap_compare):
    assert snap_compare(console_app, terminal_size=SIZE, run_before=fill_log)


def failed_listener(app) -> None:
    """HTTP failed (its port is busy), TLS running with a handshake failure as its last error."""
    from server.listeners import ListenerStatus, bind_error_message

    busy = OSError(errno.EADDRINUSE, "Address already in use")
    statuses = {
        "http": ListenerStatus("http", "FAILED", "127.0.0.1", 8080, "2026-11-22T08:00:01+00:00",
                               last_error=bind_error_message(busy, "127.0.0.1", 8080,
                                                             "--http-port")),
        "tls": ListenerStatus("tls", "RUNNING", "127.0.0.1", 8443, "2026-11-22T08:00:01+00:00",
                              requests=41, errors=1, last_error="TLS handshake from 10.0.0.40: "
                              "client does not trust our chain (unknown CA)")}
    app.host.status = lambda: statuses


def test_dashboard_with_a_failed_listener(console_app, snap_compare):
    """The whole error with its fix is on screen, not cut off in the table's last column."""
    failed_listener(console_app)
    assert snap_compare(console_app, terminal_size=SIZE, run_before=fill_log)


def test_dashboard_paused_and_filtered(console_app, snap_compare):
    async def run_before(pilot):
        await fill_log(pilot)
        await pilot.press("slash", *"lock0001", "enter", "up", "up")
        for n in range(41, 44):
            pilot.app.host.log.record(request(n, serial="LOCK0001"))
        await until(pilot, lambda: pilot.app.screen.query_one(LockLog).pending == 3)

    assert snap_compare(console_app, terminal_size=SIZE, run_before=run_before)


async def select_expiring_set(pilot) -> None:
    await pilot.press("2")
    await settle(pilot)
    await pilot.press("down", "down")
    await settle(pilot)


def test_certificates(console_app, snap_compare):
    assert snap_compare(console_app, terminal_size=SIZE, run_before=select_expiring_set)


async def ask(pilot, key: str) -> None:
    """Press ``key`` and wait for its question (it comes after the fleet preflight's worker)."""
    await pilot.press(key)
    await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen)
                and pilot.app.screen.is_mounted, what="the question")


def test_activation_confirmation(console_app, snap_compare):
    async def run_before(pilot):
        await select_expiring_set(pilot)
        await ask(pilot, "a")

    assert snap_compare(console_app, terminal_size=SIZE, run_before=run_before)


async def select_second_lock(pilot) -> None:
    await pilot.press("3")
    await settle(pilot)
    await pilot.press("down")
    await settle(pilot)


def test_devices(console_app, snap_compare):
    assert snap_compare(console_app, terminal_size=SIZE, run_before=select_second_lock)


async def open_help(pilot) -> None:
    await settle(pilot)
    await pilot.press("question_mark")


def test_help(console_app, snap_compare):
    assert snap_compare(console_app, terminal_size=SIZE, run_before=open_help)


def test_terminal_too_small(console_app, snap_compare):
    assert snap_compare(console_app, terminal_size=(60, 16), run_before=settle)


def test_event_detail(console_app, snap_compare):
    async def run_before(pilot):
        await fill_log(pilot)
        await pilot.press("up", "enter")

    assert snap_compare(console_app, terminal_size=SIZE, run_before=run_before)


async def import_a_missing_file(pilot) -> None:
    await pilot.press("2")
    await settle(pilot)
    await pilot.press("i", *"/nowhere/partner_CA.der")
    await pilot.click("#import")
    await until(pilot, lambda: "Cannot import" in str(
        pilot.app.screen.query_one("#import-problem").render()), what="the problem")
    button = pilot.app.screen.query_one("#import")
    await until(pilot, lambda: not button.has_class("-active"), what="the press effect")


SMALLEST = (80, 24)  # the stated minimum: every key, status, serial and notice still there


def test_dashboard_at_80x24_with_a_failed_listener_and_notices(console_app, snap_compare):
    console_app.host.notices.append(
        "DEMO certificate set 'demo' created in certs for 127.0.0.1, localhost: it is not "
        "signed by your site's CA, so real locks will reject it")
    failed_listener(console_app)
    assert snap_compare(console_app, terminal_size=SMALLEST, run_before=fill_log)


def test_event_detail_at_80x24(console_app, snap_compare):
    async def run_before(pilot):
        await fill_log(pilot)
        await pilot.press("up", "up", "enter")

    assert snap_compare(console_app, terminal_size=SMALLEST, run_before=run_before)


def test_help_at_80x24(console_app, snap_compare):
    assert snap_compare(console_app, terminal_size=SMALLEST, run_before=open_help)

def test_import_form(console_app, snap_compare):
    assert snap_compare(console_app, terminal_size=SIZE, run_before=import_a_missing_file)


def test_certificates_at_80x24(console_app, snap_compare):
    assert snap_compare(console_app, terminal_size=SMALLEST, run_before=select_expiring_set)


def test_activation_confirmation_at_80x24(console_app, snap_compare):
    async def run_before(pilot):
        await select_expiring_set(pilot)
        await ask(pilot, "a")

    assert snap_compare(console_app, terminal_size=SMALLEST, run_before=run_before)


def test_forced_activation_confirmation_at_80x24(console_app, snap_compare, monkeypatch):
    """A set with errors: the name must be typed, the errors are counted."""
    flawed = Finding("host.mismatch", "error", "the server certificate does not cover "
                     "engage.example", depth=0, subject="CN=localhost")

    def with_error(cert_set, *args, **kwargs):
        report = fixed_report(cert_set, *args, **kwargs)
        if cert_set.name == "site-2027":
            report.findings.insert(0, flawed)
        return report

    monkeypatch.setattr(set_rows, "check_set", with_error)

    async def run_before(pilot):
        await select_expiring_set(pilot)
        await ask(pilot, "A")

    assert snap_compare(console_app, terminal_size=SMALLEST, run_before=run_before)


def test_stop_listener_confirmation_at_80x24(console_app, snap_compare):
    from server.listeners import ListenerStatus

    running = ListenerStatus("http", "RUNNING", "127.0.0.1", 8080, "2026-11-22T08:00:01+00:00")
    console_app.host.status = lambda: {"http": running}

    async def run_before(pilot):
        await settle(pilot)
        pilot.app.stop_listeners(("http",))  # what h does while HTTP runs
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen)
                    and pilot.app.screen.is_mounted, what="the question")

    assert snap_compare(console_app, terminal_size=SMALLEST, run_before=run_before)


def test_devices_at_80x24(console_app, snap_compare):
    assert snap_compare(console_app, terminal_size=SMALLEST, run_before=select_second_lock)


def test_import_form_at_80x24(console_app, snap_compare):
    assert snap_compare(console_app, terminal_size=SMALLEST, run_before=import_a_missing_file)


# --- the fleet (issue 13 item 4) -------------------------------------------------------------

OTHER_ANCHOR = "c3" * 32


class FleetDevices(FixedDevices):
    """A fleet with a lock in each health state, trusts and listing states, fixed times."""

    def __init__(self, settings, active_sha256: str):
        super().__init__(settings)
        self.active = active_sha256

    def summaries(self):
        seen = "2026-11-22T07:58:10+00:00"
        return [
            DeviceSummary("LOCK0001", model="NDE80", name="Front door", last_seen=seen,
                          address="10.44.68.21", next_callin="2026-11-22T08:08:10+00:00",
                          anchor_trusted=self.active, trust_recorded=True,
                          provisioned_at="2026-11-01T09:00:00+00:00", listed=True),
            DeviceSummary("LOCK0002", model="LE", name="Back office",
                          last_seen="2026-11-20T08:00:00+00:00", address="10.44.68.22",
                          next_callin="2026-11-20T08:10:00+00:00"),
            DeviceSummary("LOCK0003", model="NDE80", name="Server room [B2]", last_seen=seen,
                          address="10.44.68.23", next_callin="2026-11-22T08:08:10+00:00",
                          anchor_trusted=OTHER_ANCHOR, trust_recorded=True, tls_failures=3,
                          tls_failure="unknown CA", provisioned_at="2026-11-01T09:00:00+00:00"),
            DeviceSummary("LOCK0004", model="MT20W", name="Lab", last_seen=seen,
                          address="10.44.68.24", next_callin="2026-11-22T08:08:10+00:00",
                          anchor_trusted=OTHER_ANCHOR, trust_recorded=True,
                          provisioned_at="2026-11-01T09:00:00+00:00"),
            DeviceSummary("LOCK0005", model="NDE80", name="Loading bay", listed=True,
                          listed_at="2026-11-18T08:00:00+00:00"),
            DeviceSummary("BROKEN01", corrupt=True, error="line 1: Expecting value"),
        ]

    def record(self, serial):
        if serial != "LOCK0003":
            return super().record(serial)
        return {"serial": serial, "model": "NDE80", "name": "Server room [B2]",
                "first_seen": "2026-11-01T09:00:00+00:00",
                "last_seen": "2026-11-22T07:58:10+00:00", "address": "10.44.68.23",
                "listener": "tls", "firmware": {"main": "01.02.03", "ble": "00.09"},
                "battery": {"main": "3.0 V"},
                "anchor_trusted": {"sha256": OTHER_ANCHOR, "at": "2026-11-21T07:58:10+00:00",
                                   "proof": "tls-handshake"},
                "anchor_fetched": {"sha256": OTHER_ANCHOR, "at": "2026-11-01T08:59:00+00:00",
                                   "address": "10.44.68.23", "inferred": "from address"},
                "tls_failures": {"count": 3, "last": [
                    {"at": f"2026-11-22T07:{m}:10+00:00", "reason": "unknown CA",
                     "address": "10.44.68.23"} for m in (38, 48, 58)]}}

    def recent_audits(self, serial, n=20):
        return [{"time": f"2026-11-22T07:5{m}:10Z", "event": "access granted", "user": 17 + m}
                for m in range(3)]

    def recent_alerts(self, serial, n=20):
        return [{"time": "2026-11-22T07:58:10Z", "alert": "TLS Connection Error"}]


@pytest.fixture
def fleet_app(console_app):
    host = console_app.host
    host.devices = FleetDevices(host.settings, host.store.load("site-2026").anchor_sha256)
    return console_app


async def select_failing_lock(pilot) -> None:
    await pilot.press("3")
    await settle(pilot)
    await pilot.press("down", "down", "down")  # BROKEN01, LOCK0001, LOCK0002, LOCK0003
    await settle(pilot)


async def failing_lock_record_end(pilot) -> None:
    await select_failing_lock(pilot)
    pilot.app.screen.query_one("#record").scroll_end(animate=False)
    await settle(pilot)


async def failing_lock_raw_json(pilot) -> None:
    await select_failing_lock(pilot)
    await pilot.press("j")
    await settle(pilot)


def test_fleet(fleet_app, snap_compare):
    assert snap_compare(fleet_app, terminal_size=SIZE, run_before=select_failing_lock)


def test_fleet_at_80x24(fleet_app, snap_compare):
    assert snap_compare(fleet_app, terminal_size=SMALLEST, run_before=select_failing_lock)


def test_fleet_record_pane_at_80x24(fleet_app, snap_compare):
    assert snap_compare(fleet_app, terminal_size=SMALLEST, run_before=failing_lock_record_end)


def test_fleet_record_pane(fleet_app, snap_compare):
    assert snap_compare(fleet_app, terminal_size=SIZE, run_before=failing_lock_record_end)


def test_fleet_raw_json(fleet_app, snap_compare):
    assert snap_compare(fleet_app, terminal_size=SIZE, run_before=failing_lock_raw_json)
def test_migration_progress_at_80x24(console_app, snap_compare):
    """A migration under way: its counts and keys above the sets."""
    from server.migration import service

    service.start(console_app.host.certificates, "site-2027", by="test")

    async def run_before(pilot):
        await select_expiring_set(pilot)
        await until(pilot, lambda: "MIGRATION" in str(
            pilot.app.screen.query_one("#migration-counts").render()), what="the progress")

    assert snap_compare(console_app, terminal_size=SMALLEST, run_before=run_before)


def test_preflight_dialog_lists_the_locks_at_80x24(console_app, snap_compare):
    """The body scrolled to the locks a new anchor cuts off, serial and last seen each."""
    async def run_before(pilot):
        await select_expiring_set(pilot)
        await ask(pilot, "a")
        await pilot.press(*["down"] * 12)

    assert snap_compare(console_app, terminal_size=SMALLEST, run_before=run_before)
