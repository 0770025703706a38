"""The console's pictures (issue 13 item 5), against the real host: on the dashboard the rates
of the last 10 minutes (requests, errors, TLS handshake failures) and the fleet summary; on the
certificates screen the chain's bytes and the largest key as bars against their limits."""

from __future__ import annotations

import datetime as dt
import socket
import ssl

import pytest

from console.app import EngageConsole
from console.widgets.meter import meter
from console.widgets.rates import BUCKET_SECONDS, BUCKETS, RateBuckets, Words
from server.events import Event
from server.lockclient import SimulatedLock

from .helpers import http_get
from .test_console import open_certificates, shown_text, sync, until
from .test_console import make_host, stopped_host  # noqa: F401  (fixtures)

SIZE = (120, 36)
T0 = dt.datetime(2026, 11, 22, 8, 0, 0, tzinfo=dt.timezone.utc)


def rate_words(app) -> str:
    return " ".join(w.text.strip() for w in app.screen.query(Words))


def fail_a_handshake(port: int) -> None:
    """A client that trusts only the system's CAs rejects the host's chain (unknown CA)."""
    context = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(sock, server_hostname="localhost")


@sync
async def test_dashboard_counts_requests_errors_and_handshake_failures_of_the_last_10_minutes(
        make_host):
    host = make_host()
    host.start()
    app = EngageConsole(host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        http_port, tls_port = (host.listeners[n].bound_port for n in ("http", "tls"))
        for path in ("/swordfish/lock/certificates/current", "/nowhere", "/nowhere/either"):
            http_get(http_port, path)
        fail_a_handshake(tls_port)
        await until(pilot, lambda: "requests 3 errors 2 TLS fails 1" in rate_words(app),
                    what=f"the rates (showing {rate_words(app)!r})")


@sync
async def test_dashboard_shows_the_fleet_summary_in_words(make_host):
    host = make_host()
    host.start()
    lock = SimulatedLock("0000000000A1B2C3", "127.0.0.1", host.listeners["http"].bound_port,
                         host.listeners["tls"].bound_port, host.site_key.hmac_key())
    assert lock.call_in().ok
    app = EngageConsole(host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.query_one("#fleet-line").text
                    == "Fleet: 1 lock(s): 1 ok", what="the fleet line")


def test_rate_buckets_keep_10_minutes_only():
    rates = RateBuckets()
    request = Event(listener="http", client="127.0.0.1", status=200)
    for n in range(3 * BUCKETS):
        rates.add([request], T0 + dt.timedelta(seconds=n * BUCKET_SECONDS))
    now = T0 + dt.timedelta(seconds=(3 * BUCKETS - 1) * BUCKET_SECONDS)
    assert len(rates.buckets) == BUCKETS
    assert rates.series("requests", now) == [1] * BUCKETS
    quiet = now + dt.timedelta(seconds=5 * BUCKET_SECONDS)  # nothing came for 50 s
    assert rates.series("requests", quiet)[-5:] == [0] * 5 and sum(
        rates.series("requests", quiet)) == BUCKETS - 5


def test_a_meter_says_its_numbers_and_when_it_is_over_the_limit():
    assert "1,234 of 4,096 bytes (30%)" in meter("Chain size", 1234, 4096, "bytes").plain
    over = meter("Largest key", 4096, 2048, "bits").plain
    assert "4,096 of 2,048 bits (200%) OVER THE LIMIT" in over
    assert "unknown" in meter("Largest key", None, 2048, "bits").plain


@sync
async def test_certificates_screen_shows_chain_bytes_and_largest_key_against_their_limits(
        stopped_host):
    app = EngageConsole(stopped_host, start=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_certificates(pilot, "demo")
        report = app.screen.rows["demo"].report
        await until(pilot, lambda: "Chain size" in shown_text(app.screen.query_one("#meters")),
                    what="the bars")
        text = shown_text(app.screen.query_one("#meters"))
        assert f"{report.chain_bytes:,} of 4,096 bytes" in text
        assert f"{report.largest_key_bits:,} of 2,048 bits" in text
